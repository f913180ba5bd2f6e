"""Unit tests of ``services.feedback.scores``: the online metrics of an answer: sentences,
citations, support, retrieval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.feedback.scores import (
    Answered,
    citation_metrics,
    cited_numbers,
    correction_similarity,
    is_refusal,
    retrieval,
    score,
    sentences,
    support,
    texts_of,
    without_citations,
)
from shared.contracts.events import Metric
from tests.eval_results import eval_result


def test_sentences_split_at_ends_and_lines_and_drop_bare_markers() -> None:
    text = "[1] It opens at 8:30. It closes at 18:00!\nIs it open on Sunday? No.\n[2]\n- "
    assert sentences(text) == [
        "[1] It opens at 8:30.",
        "It closes at 18:00!",
        "Is it open on Sunday?",
        "No.",
    ]
    assert sentences("Use e.g. the guide. Then ask.") == ["Use e.g. the guide.", "Then ask."]
    assert sentences("") == [] and sentences("[3] [4]") == []


@given(
    st.lists(st.from_regex(r"[A-Z][a-z]{1,8}( [a-z]{1,8}){0,4}[.!?]", fullmatch=True), max_size=8)
)
def test_sentences_of_joined_sentences_are_those_sentences(parts: list[str]) -> None:
    assert sentences(" ".join(parts)) == parts


@given(
    st.lists(st.integers(1, 999), min_size=1, max_size=5), st.text(alphabet="abc .", max_size=20)
)
def test_citations_are_parsed_in_order_single_or_grouped(ns: list[int], filler: str) -> None:
    grouped = f"{filler}[{', '.join(map(str, ns))}]{filler}"
    single = filler.join(f"[{n}]" for n in ns)
    assert cited_numbers(grouped) == ns and cited_numbers(single) == ns
    assert "[" not in without_citations(grouped)


def test_refusals_are_recognised_and_answers_are_not() -> None:
    for text in (
        "I do not know.",
        "i don't know",
        "I do not know: no document I may read answers this.",
        "The passages do not say; it is not in the passages.",
        "I cannot answer that.",
    ):
        assert is_refusal(text), text
    for text in ("[1] At 8:30 on weekdays.", "Nobody knows the trouble", "Know your rights [2]."):
        assert not is_refusal(text), text


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_support_is_the_best_context_match_per_answer_sentence() -> None:
    a = Answered(
        "q?", "[1] Opens at 8:30. Parking is free [2].", ["Opens at 8:30.", "Bikes."], [0.7]
    )
    vectors = {
        "Opens at 8:30.": unit(1, 0, 0),
        "Parking is free.": unit(0, 1, 1),
        "Bikes.": unit(0, 1, 0),
    }
    m = support(a, vectors, threshold=0.9)
    assert m["support_mean"].value == pytest.approx((1 + math.sqrt(0.5)) / 2, abs=1e-5)
    assert m["support_min"].value == pytest.approx(math.sqrt(0.5), abs=1e-5)
    assert m["support_share"].value == 0.5
    assert texts_of(a) >= set(vectors)


@pytest.mark.parametrize(
    ("answered", "reason"),
    [
        (Answered("q", "It opens.", None, []), "the trace has no context (schema v1)"),
        (Answered("q", "It opens.", [], []), "no passages were given to the model"),
        (Answered("q", "I do not know.", ["x."], []), "the answer is a refusal"),
        (Answered("q", "  ", ["x."], []), "the answer is empty"),
    ],
)
def test_support_says_why_it_is_missing(answered: Answered, reason: str) -> None:
    for metric in support(answered, {}, 0.5).values():
        assert metric == Metric(missing=reason)


@given(st.lists(st.floats(-1, 1), max_size=6))
def test_retrieval_metrics_are_in_range_or_missing(scores: list[float]) -> None:
    m = retrieval(scores)
    assert m["retrieval_passed"].value == (1.0 if scores else 0.0)
    if scores:
        assert m["retrieval_top1"].value == pytest.approx(max(scores), abs=1e-6)
        assert -1 <= (m["retrieval_mean"].value or 0) <= m["retrieval_top1"].value + 1e-6  # type: ignore[operator]
    else:
        assert m["retrieval_top1"].missing
    if len(scores) > 1:
        assert (m["retrieval_margin"].value or 0) >= 0
    else:
        assert m["retrieval_margin"].missing == "fewer than two passages"


def test_citations_count_sentences_that_cite_and_numbers_that_exist() -> None:
    a = Answered(
        "q", "It opens at 8:30 [1]. It closes at six [3]. Bring a badge.", ["a.", "b."], []
    )
    m = citation_metrics(a)
    assert m["citation_rate"].value == pytest.approx(2 / 3, abs=1e-6)
    assert m["citation_validity"].value == 0.5
    assert citation_metrics(Answered("q", "No cites.", ["a."], []))["citation_validity"].missing


def test_score_gives_every_online_metric_and_correction_similarity_compares_texts() -> None:
    texts = ["q?", "Opens at 8:30.", "Open at 8:30."]
    vectors = {t: unit(1, i * 0.1, 0) for i, t in enumerate(texts)}
    m = score(Answered("q?", "Opens at 8:30. [1]", ["Open at 8:30."], [0.6, 0.5]), vectors, 0.5)
    from services.feedback.scores import ONLINE

    assert set(m) == set(ONLINE)
    assert m["correction_similarity"].missing == "no correction given"
    sim = correction_similarity("[1] Opens at 8:30.", "Open at 8:30.", vectors)
    assert sim.value is not None and 0.9 < sim.value <= 1


def test_agreement_finds_the_metric_that_predicts_thumbs_down_and_says_when_it_cannot() -> None:
    from services.evaluation.evaluate import agreement

    rng = np.random.default_rng(3)
    results = []
    for i in range(120):
        down = bool(rng.random() < 0.4)
        support = float((0.3 if down else 0.7) + rng.normal(0, 0.15))
        results.append(eval_result(i, "v1", down, support))
    results += [eval_result(1000 + i, "v1", None, 0.5) for i in range(20)]  # unrated: not counted
    results.append(eval_result(2000, "v1", True, None))  # missing: not counted, never NaN
    rows = {a.metric: a for a in agreement(results)}
    support = rows["support_mean"]
    assert support.n == 120 and support.auroc is not None
    assert support.auroc.low > 0.7 and support.verdict == "agrees with users"
    assert rows["refusal"].auroc is None and "not enough data (0 rated" in rows["refusal"].verdict
    noise = [eval_result(i, "v1", bool(i % 2), float(rng.random())) for i in range(60)]
    assert {a.metric: a for a in agreement(noise)}[
        "support_mean"
    ].verdict == "no better than chance"
