"""bench/otel.py's paired ratio: block by block, with an interval that says whether one run
can tell a target met from a target missed."""

from __future__ import annotations

import random

import pytest

from bench.otel import paired_ratio, verdict


def test_a_ratio_is_taken_block_by_block_so_drift_between_blocks_cancels() -> None:
    # the machine slows down tenfold half-way: both sides' blocks slow with it
    off = [10.0] * 10 + [100.0] * 10
    on = [11.0] * 10 + [110.0] * 10
    assert paired_ratio(on, off, 10) == (pytest.approx(1.1), pytest.approx(1.1), pytest.approx(1.1))


def test_the_interval_narrows_with_more_blocks_and_holds_the_true_ratio() -> None:
    rng = random.Random(1)

    def noisy(n: int, scale: float) -> list[float]:
        return [scale * rng.lognormvariate(0, 0.2) for _ in range(n)]

    few = paired_ratio(noisy(50, 1.02), noisy(50, 1.0), 10)
    many = paired_ratio(noisy(5000, 1.02), noisy(5000, 1.0), 10)
    assert few[1] <= 1.02 <= few[2] and many[1] <= 1.02 <= many[2]
    assert many[2] - many[1] < (few[2] - few[1]) / 3


def test_the_verdict_says_when_a_run_cannot_tell() -> None:
    assert verdict(0.98, 1.02) == "met"
    assert verdict(1.04, 1.08) == "missed"
    assert verdict(1.00, 1.05) == "cannot tell"
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0], 10)
