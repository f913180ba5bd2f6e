"""Unit tests of ``services.ingestion.normalize``: normalisation of HTML to visible text, in time
linear in its size."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from services.ingestion.normalize import html_to_text


def lines_run(fn: Callable[[], object]) -> int:
    """Python lines executed by ``fn``: a count of operations that, unlike a time, is the
    same on every run and every machine."""
    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize(
    "shape",
    [
        lambda n: "<p>a</p>" * n,  # siblings: one insertion per block was quadratic (848 s)
        lambda n: "<div>" * n + "a" + "</div>" * n,  # nesting (178 s at 60,000)
        lambda n: "<table>" + "<tr><td>a</td><th>b</th></tr>" * n + "</table>",
    ],
    ids=["paragraphs", "nested", "table"],
)
def test_html_conversion_is_linear_in_the_number_of_blocks(shape: Callable[[int], str]) -> None:
    small = lines_run(lambda: html_to_text(shape(1000)))
    large = lines_run(lambda: html_to_text(shape(4000)))
    assert large / small < 4.4, (small, large)  # linear: 4 times the blocks, 4 times the work
