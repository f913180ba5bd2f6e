"""Unit tests of ``services.evaluation.stats``: the statistics of evaluation: Wilson intervals
and AUROC with its interval."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from services.evaluation.stats import auroc, auroc_interval, wilson


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # published Wilson 95% intervals (Newcombe 1998, table I; and 8/10 the textbook case)
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (8, 10, 0.4902, 0.9433),
    ],
)
def test_wilson_intervals_match_known_values(k: int, n: int, low: float, high: float) -> None:
    ci = wilson(k, n)
    assert ci.low == pytest.approx(low, abs=1e-4) and ci.high == pytest.approx(high, abs=1e-4)


@given(
    st.lists(st.tuples(st.floats(-5, 5, allow_nan=False), st.booleans()), min_size=2, max_size=60)
)
def test_auroc_matches_scikit_learn(pairs: list[tuple[float, bool]]) -> None:
    scores, labels = zip(*pairs, strict=True)
    if len(set(labels)) < 2:
        with pytest.raises(ValueError):
            auroc(scores, labels)
        return
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)


def test_auroc_interval_contains_its_estimate_and_separates_signal_from_noise() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(200) < 0.3
    signal = labels + rng.normal(0, 0.5, 200)
    noise = rng.normal(0, 1, 200)
    good, chance = auroc_interval(signal, labels), auroc_interval(noise, labels)
    assert good.low <= good.estimate <= good.high and good.low > 0.5
    assert chance.low <= 0.5 <= chance.high
