"""The feedback service's pure logic: metrics, the join, and the statistics of evaluation."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from services.evaluation.evaluate import CaseRun, Gate, judge
from services.evaluation.stats import auroc, auroc_interval, wilson
from services.feedback.logic import (
    Refused,
    State,
    Waiting,
    case_of,
    expire,
    on_feedback,
    on_trace,
    result_of,
    sampled,
    verify,
)
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
from shared.contracts.events import EvalCase, FeedbackEvent, InferenceTrace, Metric, RetrievedChunk
from shared.contracts.trace_ids import TraceIds
from shared.redact import DETECTORS, Redactor
from tests.eval_results import eval_result

# ---- metrics -------------------------------------------------------------------------------


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


def test_a_metric_is_a_value_or_a_reason_never_both_never_nan() -> None:
    with pytest.raises(ValidationError):
        Metric()
    with pytest.raises(ValidationError):
        Metric(value=1.0, missing="x")
    with pytest.raises(ValidationError):
        Metric(value=float("nan"))


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


# ---- the join ------------------------------------------------------------------------------

TID = "f" * 32


def a_trace(tenant: str = "acme", **kw: Any) -> InferenceTrace:
    fields: dict[str, Any] = {
        "trace_id": TID,
        "tenant": tenant,
        "api_key_id": "k",
        "question": "When?",
        "answer": "[2] At 8:30.",
        "retrieved": [
            RetrievedChunk(chunk_id="c1", doc_id="d1", score=0.5),
            RetrievedChunk(chunk_id="c2", doc_id="d2", score=0.4),
        ],
        "context": ["a.", "b."],
        "status": "ok",
    }
    fields.update(kw)
    return InferenceTrace(**fields)


def fb(up: bool, tenant: str = "acme", author: str = "k", **kw: Any) -> FeedbackEvent:
    value = {"type": "thumbs", "thumbs": "up" if up else "down"}
    return FeedbackEvent(trace_id=TID, tenant=tenant, author=author, value=value, **kw)


def where(f: FeedbackEvent, offset: int = 0) -> Waiting:
    return Waiting(feedback=f, topic="fb", partition=1, offset=offset, raw=f.to_bytes(), arrived=0)


SCORED = {"support_mean": Metric(value=0.9)}


def test_feedback_after_its_trace_joins_and_a_repeat_counts_once() -> None:
    out = on_trace(None, a_trace(), 1, SCORED, now=10)
    assert out.changed and out.state
    up = fb(True)
    for _ in range(3):
        out = on_feedback(out.state, up, where(up), now=11, max_waiting=5)
    assert out.state
    r = result_of(out.state, TID)
    assert [f.feedback_id for f in r.feedback] == [up.event_id] and r.history == []
    assert r.metrics == SCORED


def test_feedback_before_its_trace_waits_then_joins() -> None:
    down = fb(False)
    out = on_feedback(None, down, where(down), now=5, max_waiting=5)
    assert not out.changed and out.state and out.state.waiting
    out = on_trace(out.state, a_trace(), 1, SCORED, now=6)
    assert out.changed and out.state and not out.state.waiting
    assert [f.feedback_id for f in result_of(out.state, TID).feedback] == [down.event_id]
    case = case_of(out.state, TID)
    assert case and case.needs_review and case.expected_docs == ["d2"]


def test_a_changed_value_replaces_the_old_one_which_stays_in_the_history() -> None:
    state = on_trace(None, a_trace(), 1, SCORED, now=1).state
    first = fb(False)
    later = fb(True, event_time=first.event_time + timedelta(seconds=5))
    other_author = fb(False, author="k2")
    for f in (first, later, other_author):
        state = on_feedback(state, f, where(f), now=2, max_waiting=5).state
    assert state
    r = result_of(state, TID)
    assert {f.feedback_id for f in r.feedback} == {later.event_id, other_author.event_id}
    assert [h.feedback_id for h in r.history] == [first.event_id]
    # an older value that arrives late goes to the history, not over the newer one
    stale = fb(False, event_time=first.event_time - timedelta(seconds=5))
    state = on_feedback(state, stale, where(stale), now=3, max_waiting=5).state
    assert state and later.event_id in {f.feedback_id for f in result_of(state, TID).feedback}


def test_another_tenants_feedback_is_dead_lettered_before_or_after_the_trace() -> None:
    alien = fb(True, tenant="globex")
    out = on_feedback(None, alien, where(alien), now=1, max_waiting=5)
    out = on_trace(out.state, a_trace(), 1, SCORED, now=2)
    assert [x.error_type for x in out.letters] == ["TenantMismatch"]
    assert out.state and not out.state.latest
    out = on_feedback(out.state, alien, where(alien), now=3, max_waiting=5)
    assert [x.error_type for x in out.letters] == ["TenantMismatch"]


def test_waiting_is_bounded_in_time_and_count() -> None:
    state = None
    for i in range(3):
        f = fb(True, author=f"a{i}")
        out = on_feedback(state, f, where(f, i), now=float(i), max_waiting=2)
        state = out.state
    assert [x.error_type for x in out.letters] == ["TooMuchWaiting"]
    assert state
    assert expire(state, now=5, join_wait_s=10, ttl_s=100).letters == []
    late = expire(state, now=10.5, join_wait_s=10, ttl_s=100)
    assert [x.error_type for x in late.letters] == ["TraceNotFound"]
    assert late.state and len(late.state.waiting) == 1
    gone = expire(late.state, now=20, join_wait_s=10, ttl_s=100)
    assert gone.state is None and len(gone.letters) == 1


def test_state_expires_after_its_ttl_and_survives_a_round_trip() -> None:
    state = on_trace(None, a_trace(), 1, SCORED, now=100).state
    assert state and State.from_bytes(state.to_bytes()) == state
    assert expire(state, now=150, join_wait_s=1, ttl_s=100).state is state
    assert expire(state, now=200, join_wait_s=1, ttl_s=100).state is None


def test_an_unscored_trace_says_why_and_a_correction_makes_a_case() -> None:
    out = on_trace(None, a_trace(status="error", answer=""), 1, None, now=1)
    assert not out.changed and out.state
    assert out.state.metrics["support_mean"].missing == "the trace's status is error"
    out = on_trace(None, a_trace(), 1, None, now=1)
    assert (
        out.state and out.state.metrics["refusal"].missing == "not sampled (FEEDBACK_SAMPLE_RATE)"
    )
    fixed = fb(True, correction="At 8:30 on weekdays.")
    state = on_feedback(out.state, fixed, where(fixed), now=2, max_waiting=5).state
    assert state
    case = case_of(state, TID)
    assert case and case.expected_answer == "At 8:30 on weekdays." and not case.needs_review
    assert case_of(on_trace(None, a_trace(), 1, SCORED, now=1).state, TID) is None  # type: ignore[arg-type]


def test_sampling_is_by_trace_id_and_near_the_rate() -> None:
    ids = [f"{i:032x}" for i in range(4000)]
    share = sum(sampled(t, 0.25) for t in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert all(sampled(t, 1.0) for t in ids[:10]) and not any(sampled(t, 0.0) for t in ids[:10])
    assert [sampled(t, 0.25) for t in ids[:50]] == [sampled(t, 0.25) for t in ids[:50]]


# ---- statistics ----------------------------------------------------------------------------


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


# ---- reports -------------------------------------------------------------------------------


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


def test_compare_waits_for_enough_data_then_names_the_preferred_version() -> None:
    from services.evaluation.evaluate import compare

    def arm(version: str, n: int, up_rate: float, start: int) -> list[Any]:
        return [eval_result(start + i, version, i >= n * up_rate, 0.6) for i in range(n)]

    few = arm("v1", 10, 0.3, 0) + arm("v2", 10, 0.9, 100)
    arms, verdict = compare(few, "rag", min_n=30)
    assert [a.version for a in arms] == ["v1", "v2"] and arms[0].traffic == 10
    assert verdict.startswith("not enough data: v1, v2 under 30")
    many = arm("v1", 60, 0.3, 0) + arm("v2", 60, 0.9, 100)
    arms, verdict = compare(many, "rag", min_n=30)
    assert arms[1].thumbs_up is not None and arms[1].thumbs_up.estimate == pytest.approx(0.9)
    assert verdict.startswith("v2 is preferred")
    close = arm("v1", 40, 0.5, 0) + arm("v2", 40, 0.55, 100)
    assert (
        compare(close, "rag", min_n=30)[1] == "no difference yet: the thumbs-up intervals overlap"
    )
    assert compare(many, "other")[0] == []


def test_a_trace_id_belongs_to_its_first_tenant_for_good() -> None:
    first = on_trace(None, a_trace(), 1, SCORED, now=10)
    assert first.state is not None
    # a second trace with the same id but another tenant (forged, or from a bug) is refused:
    # it used to replace the state, and the next result carried the other tenant
    again = on_trace(first.state, a_trace(tenant="beta", event_id="other"), 1, SCORED, now=11)
    assert again.refused is not None and again.refused.code == "TenantMismatch"
    assert again.state is first.state and again.state.trace is not None
    assert again.state.trace.tenant == "acme"


def test_a_trace_whose_id_was_not_issued_to_its_tenant_is_refused() -> None:
    ids = TraceIds(b"secret")
    finds = Redactor.named(DETECTORS).finds
    good = a_trace(trace_id=ids.new("acme"))
    verify(good, ids.issued_to, finds)
    for forged in (
        a_trace(trace_id=good.trace_id, tenant="beta"),  # another tenant claims acme's id
        a_trace(trace_id="-" + good.trace_id[1:]),  # edited, or made up
        a_trace(trace_id=TraceIds(b"other secret").new("acme")),
    ):
        with pytest.raises(Refused) as info:
            verify(forged, ids.issued_to, finds)
        assert info.value.code == "ForgedTraceId"
    verify(fb(True, author="k/u-123"), ids.issued_to, finds)
    with pytest.raises(Refused) as info:
        verify(fb(True, author="k/jane.doe@example.com"), ids.issued_to, finds)
    assert info.value.code == "PersonalIdentifier" and "jane" not in str(info.value)


def test_a_prompt_that_could_not_answer_a_case_is_an_error_of_the_gate() -> None:
    cases = [EvalCase(tenant="acme", case_id=c, question="q?") for c in ("a", "b")]
    ok = {c.key: CaseRun(c.case_id, "[1] A.", [], {}) for c in cases}
    failed = {c.key: CaseRun(c.case_id, error="HTTP 422: written for chat models") for c in cases}
    for runs in ({"cand": ok, "base": failed}, {"cand": failed, "base": ok}):
        report = judge(cases, runs, "cand", "base", Gate(), [])
        assert not report.passed and report.exit_code == 2
        assert len(report.errors) == 2 and "written for chat models" in report.errors[0]
    assert judge(cases, {"cand": ok, "base": ok}, "cand", "base", Gate(), []).exit_code in (0, 1)
