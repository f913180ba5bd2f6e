"""Unit tests of ``shared.store.base``: how a query is planned: which rankings the engine runs,
and what is kept of their results."""

from __future__ import annotations

import math

from shared.store.base import DENSE, SPARSE, Search, SearchMode, Stage


def search(mode: SearchMode, threshold: float | None = 0.3, limit: int = 5) -> Search:
    return Search([1.0, 0.0], "question", [], limit, mode, score_threshold=threshold)


def test_each_mode_plans_its_rankings() -> None:
    assert search(SearchMode.DENSE).plan() == [Stage(DENSE, 5, 0.3)]
    assert search(SearchMode.SPARSE).plan() == [Stage(SPARSE, 10)]  # over-fetched
    assert search(SearchMode.HYBRID).plan() == [Stage(DENSE, 20, 0.3), Stage(SPARSE, 20)]
    # modes given as plain strings (settings, requests) plan the same
    assert Search([1.0], "q", [], 5, "dense", score_threshold=0.3).plan() == [  # type: ignore[arg-type]
        Stage(DENSE, 5, 0.3)
    ]


def test_the_engine_is_asked_for_more_only_when_a_threshold_may_drop_some() -> None:
    assert search(SearchMode.DENSE).engine_limit() == 5  # the engine applies it itself
    assert search(SearchMode.HYBRID).engine_limit() == 10
    assert search(SearchMode.HYBRID, threshold=None).engine_limit() == 5


def test_results_under_the_similarity_threshold_are_dropped_then_trimmed() -> None:
    # the query is [1, 0]: each point's dense vector has the cosine it is named after
    found = [
        (f"p{i}", 1.0 - i / 10, {DENSE: [sim, math.sqrt(1 - sim * sim)]}, {})
        for i, sim in enumerate([0.9, 0.1, 0.5, 0.4])
    ]
    assert [s.id for s in search(SearchMode.HYBRID, limit=2).scored(found)] == ["p0", "p2"]
    assert [s.id for s in search(SearchMode.HYBRID, None, limit=3).scored(found)] == [
        "p0",
        "p1",
        "p2",
    ]
