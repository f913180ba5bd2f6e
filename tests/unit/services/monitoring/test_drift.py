"""Unit tests of ``services.monitoring.drift``: drift of the questions and of the retrieval
scores against a rolling or pinned reference."""

from __future__ import annotations

import numpy as np

from services.monitoring.drift import Reference, mmd_test, sampled, score_shift
from tests.unit.services.monitoring.clock import at


def test_mmd_keeps_its_false_alarm_rate_and_sees_a_shift() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(200, 16))
    same = [mmd_test(rng.normal(size=(40, 16)), reference, permutations=100).p for _ in range(40)]
    false_alarms = sum(p < 0.01 for p in same)
    assert false_alarms <= 2, sorted(same)[:5]  # alpha 1%: about 0.4 of 40 expected
    shifted = mmd_test(rng.normal(loc=0.6, size=(40, 16)), reference, permutations=100)
    assert shifted.p < 0.01 and shifted.mmd2 > max(
        mmd_test(rng.normal(size=(40, 16)), reference, permutations=20).mmd2 for _ in range(5)
    )
    x = rng.normal(size=(30, 8))
    assert mmd_test(x, reference[:, :8]) == mmd_test(x, reference[:, :8])  # deterministic


def test_retrieval_scores_shift_and_the_reference_rolls_or_stays_pinned() -> None:
    rng = np.random.default_rng(3)
    assert score_shift(rng.uniform(0.5, 0.9, 60), rng.uniform(0.5, 0.9, 300)) > 0.01
    assert score_shift(rng.uniform(0.2, 0.5, 60), rng.uniform(0.5, 0.9, 300)) < 0.001
    rolling = Reference(windows=2)
    for i in range(4):
        rolling.add(at(60 * i), np.full((3, 2), float(i)), [float(i)])
    vectors, scores = rolling.sample()
    assert vectors is not None and set(vectors[:, 0]) == {2.0, 3.0} and scores == [2.0, 3.0]
    pinned = Reference(pinned_from=at(60), pinned_to=at(180))
    for i in range(5):
        pinned.add(at(60 * i), np.full((1, 2), float(i)), [float(i)])
    assert pinned.sample()[1] == [1.0, 2.0]
    assert sampled("abc", 1.0) and not sampled("abc", 0.0)
    assert sampled("abc", 0.5) == sampled("abc", 0.5)
