"""HTML to text: how its time grows with the number of blocks, against a plain parse.

For each shape that once stalled ingestion (60,000 sibling paragraphs took 848 s, 60,000
nested divs 178 s, when every block was edited into the parsed tree), it times
``html_to_text`` at N and 4N blocks and prints the ratio (4 for a linear conversion), and the
same for BeautifulSoup's own parse and ``get_text()`` on the same documents, a well-kept
library's linear baseline: the conversion over it shows what one pass over the parser's
events costs beside building a tree.

    python bench/html_text.py [--blocks 15000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.ingestion.normalize import html_to_text  # noqa: E402

SHAPES: dict[str, Callable[[int], str]] = {
    "paragraphs": lambda n: "<p>a</p>" * n,
    "nested divs": lambda n: "<div>" * n + "a" + "</div>" * n,
    "table rows": lambda n: "<table>" + "<tr><td>a</td><th>b</th></tr>" * n + "</table>",
}


def timed(fn: Callable[[str], object], html: str, rounds: int = 3) -> float:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(html)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def soup_text(html: str) -> str:
    from bs4 import BeautifulSoup

    return str(BeautifulSoup(html, "html.parser").get_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=15000, help="N (4N is timed too)")
    n = ap.parse_args().blocks
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * n))  # bs4 on deep nesting
    head = f"{'shape':<12} {'ours N':>9} {'ours 4N':>9} {'4N/N':>6}   {'bs4 N':>9} {'4N/N':>6}"
    print(f"{head}  ours/bs4")
    for name, shape in SHAPES.items():
        small, large = shape(n), shape(4 * n)
        ours = timed(html_to_text, small), timed(html_to_text, large)
        try:
            soup = timed(soup_text, small), timed(soup_text, large)
            ratio = ours[0] / soup[0]
            soup_cols = f"{soup[0] * 1000:8.0f}ms {soup[1] / soup[0]:6.2f}  {ratio:8.2f}"
        except RecursionError:
            soup_cols = "(bs4 cannot parse this deep)"
        print(
            f"{name:<12} {ours[0] * 1000:8.0f}ms {ours[1] * 1000:8.0f}ms "
            f"{ours[1] / ours[0]:6.2f}   {soup_cols}"
        )


if __name__ == "__main__":
    main()
