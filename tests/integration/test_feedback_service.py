"""The feedback service on the real broker: joins in either order, dead letters with reasons,
idempotent feedback, and a SIGKILL that neither loses a join nor counts one twice."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared.contracts.events import (
    DeadLetter,
    EvalCase,
    EvalResult,
    FeedbackEvent,
    InferenceTrace,
    RetrievedChunk,
)
from shared.contracts.topics import (
    EVAL_CASES,
    EVAL_RESULTS,
    FEEDBACK_DLQ,
    FEEDBACK_EVENTS,
    INFERENCE_COMPLETED,
)
from shared.contracts.upstream import publish_feedback
from shared.kafka.reader import end_offsets, read_to_end
from tests.kafka_helpers import choke, signed, wait_for

FAST = {"FEEDBACK_JOIN_WAIT_S": "4", "FEEDBACK_SWEEP_INTERVAL_S": "0.5"}
CHOKE = "a question the join chokes on"


def trace(trace_id: str, tenant: str = "acme", **kw: Any) -> InferenceTrace:
    """An answered query, as inference publishes it."""
    fields: dict[str, Any] = {
        "trace_id": trace_id,
        "tenant": tenant,
        "api_key_id": "k1",
        "question": "When does the Lisbon office open?",
        "answer": "[1] The Lisbon office opens at 8:30 on weekdays.",
        "context": ["The Lisbon office opens at 8:30 and closes at 18:00 on weekdays."],
        "retrieved": [RetrievedChunk(chunk_id="c1", doc_id="guide", score=0.71)],
        "prompt_name": "rag",
        "prompt_version": "v3",
        "model": "gemma3-270m",
        "status": "ok",
    }
    fields.update(kw)
    return InferenceTrace(**fields)


def thumbs(trace_id: str, up: bool, tenant: str = "acme", **kw: Any) -> FeedbackEvent:
    """A thumbs feedback event."""
    value = {"type": "thumbs", "thumbs": "up" if up else "down"}
    return FeedbackEvent(trace_id=trace_id, tenant=tenant, author="k1", value=value, **kw)


def send_traces(bootstrap: str, prefix: str, traces: list[InferenceTrace]) -> None:
    """Publish traces the way inference does (keyed by trace id)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for t in traces:
        producer.send(INFERENCE_COMPLETED.name(prefix), key=t.trace_id.encode(), value=t.to_bytes())
    producer.flush()
    producer.close()


def latest_results(bootstrap: str, prefix: str) -> dict[str, EvalResult]:
    """The latest EvalResult per trace, reading to the topic's end (not until it is quiet: a
    busy machine can pause a reader longer than any quiet time)."""
    out: dict[str, EvalResult] = {}
    for rec in read_to_end(bootstrap, EVAL_RESULTS.name(prefix)):
        r = EvalResult.from_bytes(rec.value)
        out[r.trace_id] = r
    return out


def explain(b: str, p: str, ids: list[str], service: Any) -> str:
    """What a failed restart left behind: the traces not joined, the group's committed
    offsets against the ends, and the service's log with every thread and task (SIGUSR1
    makes mode's worker print them)."""
    os.kill(service.proc.pid, signal.SIGUSR1)
    time.sleep(2)
    got = latest_results(b, p)
    lost = [(ids.index(t), t in got) for t in ids if not (got.get(t) and got[t].feedback)]
    group = KafkaConsumer(bootstrap_servers=b, group_id=f"{p}llmops-feedback")
    names = (INFERENCE_COMPLETED.name(p), FEEDBACK_EVENTS.name(p))
    committed = {(t, n): group.committed(TopicPartition(t, n)) for t in names for n in range(4)}
    group.close()
    ends = {t: end_offsets(b, t) for t in names}
    return (
        f"not joined (index, has a result): {lost}\ncommitted {committed}\nends {ends}\n"
        f"{service.log()[-30000:]}"
    )


def test_feedback_joins_its_trace_in_either_order_and_dead_letters_the_rest(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    svc = start_service("feedback", **FAST, **choke({"services.feedback.logic:on_trace": CHOKE}))
    after, before, never, retrieve = (signed(c * 32) for c in "abcd")
    # Records the join must refuse, ahead of everything else: a trace that claims acme's
    # trace id for tenant beta (it used to take over acme's state and move its case), one
    # whose id starts with "-" (valid for traces, once refused by EvalCase: the join stopped)
    # with a thumbs-down on it, and a trace the join's own logic chokes on (planted).
    forged, dashed, choking = trace(after, tenant="beta"), "-" + signed("e" * 32)[1:], signed("f")
    send_traces(b, p, [forged, trace(dashed), trace(choking, question=CHOKE)])
    publish_feedback(
        [
            thumbs(dashed, False),
            FeedbackEvent(
                trace_id=after,
                tenant="acme",
                author="k1/jane@example.com",
                value={"type": "thumbs", "thumbs": "up"},
            ),
        ],
        b,
        p,
    )
    # ten ordinary traces and their feedback behind the refused ones: every one joins
    more = [signed(f"9{i:031x}") for i in range(10)]
    send_traces(b, p, [trace(t) for t in more])
    publish_feedback([thumbs(t, True) for t in more], b, p)
    send_traces(b, p, [trace(after), trace(retrieve, endpoint="retrieve", answer="")])
    first_up = thumbs(after, True)
    publish_feedback(
        [
            first_up,
            first_up,
            first_up,  # the same event three times counts once
            thumbs(before, False, comment="wrong office"),
            thumbs(never, True),
            thumbs(after, False, tenant="globex"),  # another tenant's feedback
            FeedbackEvent(
                trace_id=retrieve,
                tenant="acme",
                author="k2",
                name="relevant",
                value={"type": "score", "score": 2, "min": 1, "max": 5},
            ),
        ],
        b,
        p,
    )
    time.sleep(1)
    send_traces(b, p, [trace(before)])  # its feedback came first, and waited

    def joined() -> dict[str, EvalResult] | None:
        got = latest_results(b, p)
        ok = all(got.get(t) and got[t].feedback for t in (after, before, retrieve, *more))
        return got if ok else None

    results = wait_for(joined)
    assert results, svc.log()[-3000:]
    assert set(results) == {after, before, retrieve, *more}
    assert [f.feedback_id for f in results[after].feedback] == [first_up.event_id]
    assert results[before].feedback[0].value.thumbs == "down"  # type: ignore[union-attr]
    assert results[before].feedback[0].comment == "wrong office"
    # an answered trace is scored; a retrieve trace is not, and says why
    m = results[after].metrics
    assert m["support_mean"].value is not None and m["support_mean"].value > 0.8
    assert m["citation_validity"].value == 1.0 and m["refusal"].value == 0.0
    assert m["correction_similarity"].missing == "no correction given"
    assert "retrieve trace" in (results[retrieve].metrics["support_mean"].missing or "")

    letters = wait_for(
        lambda: got if len(got := list(read_to_end(b, FEEDBACK_DLQ.name(p)))) >= 7 else None,
        timeout_s=30,
    )
    assert letters, "no dead letters"
    by_type: dict[str, list[DeadLetter]] = {}
    for r in letters:
        dl = DeadLetter.from_bytes(r.value)
        by_type.setdefault(dl.error_type, []).append(dl)
    assert {k: len(v) for k, v in by_type.items()} == {
        "TraceNotFound": 2,  # never, and the thumbs-down on the refused "-" trace
        "TenantMismatch": 1,
        "ForgedTraceId": 2,
        "PersonalIdentifier": 1,
        "PlantedFailure": 1,
    }, [(dl.error_type, dl.error_message) for v in by_type.values() for dl in v]
    assert {dl.key for dl in by_type["TraceNotFound"]} == {never, dashed}
    (mismatch,) = by_type["TenantMismatch"]
    assert mismatch.key == after and "globex" in mismatch.error_message
    assert {dl.key for dl in by_type["ForgedTraceId"]} == {after, dashed}
    assert "jane@example.com" not in by_type["PersonalIdentifier"][0].model_dump_json()
    assert by_type["PlantedFailure"][0].key == choking
    # the forged trace changed nothing of acme's: its tenant and its case stay acme's
    assert results[after].tenant == "acme"
    assert all(
        EvalResult.from_bytes(r.value).tenant == "acme"
        for r in read_to_end(b, EVAL_RESULTS.name(p))
        if EvalResult.from_bytes(r.value).trace_id == after
    )

    # a thumbs-down became a case to review; a changed value replaces it and keeps history
    cases = {
        EvalCase.from_bytes(r.value).case_id: EvalCase.from_bytes(r.value)
        for r in read_to_end(b, EVAL_CASES.name(p))
        if r.value
    }
    assert cases[before].needs_review and cases[before].expected_answer is None
    assert cases[before].expected_docs == ["guide"]
    fixed = thumbs(before, False, correction="It opens at 8:30.")
    publish_feedback([fixed], b, p)

    def corrected() -> EvalResult | None:
        r = latest_results(b, p).get(before)
        return r if r and r.feedback[0].feedback_id == fixed.event_id else None

    result = wait_for(corrected)
    assert result, svc.log()[-3000:]
    assert len(result.feedback) == 1 and [h.comment for h in result.history] == ["wrong office"]
    sim = result.metrics["correction_similarity"].value
    assert sim is not None and sim > 0.5
    latest_case = [
        EvalCase.from_bytes(r.value) for r in read_to_end(b, EVAL_CASES.name(p)) if r.value
    ][-1]
    assert latest_case.expected_answer == "It opens at 8:30." and not latest_case.needs_review


def test_a_killed_service_loses_no_join_and_counts_none_twice(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    ids = [signed(f"{i:032x}") for i in range(300)]
    feedback = {t: thumbs(t, i % 3 != 0) for i, t in enumerate(ids)}
    svc = start_service("feedback")
    half = len(ids) // 2
    # the first half: feedback before its trace for even ones, after for odd ones
    publish_feedback([feedback[t] for t in ids[:half:2]], b, p)
    send_traces(b, p, [trace(t) for t in ids[:half]])
    publish_feedback([feedback[t] for t in ids[1:half:2]], b, p)
    assert wait_for(lambda: len(latest_results(b, p)) >= 20, every_s=0.2), svc.log()[-3000:]
    svc.kill()  # mid-stream: no flush, no commit
    send_traces(b, p, [trace(t) for t in ids[half:]])
    publish_feedback([feedback[t] for t in ids[half:]], b, p)
    again = start_service("feedback")

    def complete() -> dict[str, EvalResult] | None:
        got = latest_results(b, p)
        return got if all(got.get(t) and got[t].feedback for t in ids) else None

    results = wait_for(complete, timeout_s=180)
    assert results, explain(b, p, ids, again)
    assert set(results) == set(ids)
    for t in ids:  # every feedback joined once, and only its own
        assert [f.feedback_id for f in results[t].feedback] == [feedback[t].event_id]
        assert results[t].metrics["support_mean"].value is not None
    assert list(read_to_end(b, FEEDBACK_DLQ.name(p))) == []


def test_waiting_feedback_survives_a_restart_in_the_table(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    ids = [signed(f"{i:032x}") for i in range(40)]
    feedback = {t: thumbs(t, True) for t in ids}
    first = start_service("feedback")
    publish_feedback([feedback[t] for t in ids], b, p)  # all wait: no trace yet
    send_traces(b, p, [trace(ids[0])])
    assert wait_for(lambda: ids[0] in latest_results(b, p)), first.log()[-3000:]
    first.stop()
    again = start_service("feedback")
    send_traces(b, p, [trace(t) for t in ids[1:]])

    def complete() -> dict[str, EvalResult] | None:
        got = latest_results(b, p)
        return got if all(got.get(t) and got[t].feedback for t in ids) else None

    results = wait_for(complete, timeout_s=120)
    # (once in CI, 25 of 39 were not joined after a clean restart; not seen again in six
    # runs, three of them beside two busy loops: what it says when it fails tells why)
    assert results, explain(b, p, ids, again)
