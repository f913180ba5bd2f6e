"""Unit tests of ``services.feedback.logic``: the join's pure transitions: feedback meets its
trace, waits, expires, is refused; sampling."""

from __future__ import annotations

from datetime import timedelta

import pytest

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
from shared.contracts.events import FeedbackEvent, Metric
from shared.contracts.trace_ids import TraceIds
from shared.redact import DETECTORS, Redactor
from tests.unit.services.feedback.samples import TID, a_trace, fb


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
