"""Unit tests of ``services.feedback.worker``: the join driven with faust's own messages, a
model that encodes nothing, topics settled by hand and a clock the test moves; no broker."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from services.feedback.logic import State
from services.feedback.settings import FeedbackSettings
from services.feedback.worker import FeedbackJoin, Outputs, Scorer
from shared.contracts.events import DeadLetter, EvalResult
from shared.contracts.trace_ids import TraceIds
from shared.kafka.delivery import Deliveries
from tests.unit.fakes import Consumer, Topic, deliver_all, event, in_loop, settle, stream_acks
from tests.unit.services.feedback.samples import a_trace, fb

IDS = TraceIds(b"secret")
TID = IDS.new("acme")


class Parts:
    """A join over fake topics, its clock at ``now``; it owns partition 0 of the feedback."""

    def __init__(self, **settings: Any) -> None:
        self.consumer, self.dlq = Consumer(), Topic("feedback.dlq")
        self.results, self.cases, self.changelog = Topic("r"), Topic("c"), Topic("log")
        self.now = 1000.0
        self.data: dict[bytes, bytes] = {}
        self.join = FeedbackJoin(
            FeedbackSettings(sample_rate=1.0, **settings),
            Scorer(lambda texts: np.ones((len(texts), 4), dtype=np.float32), 0.5),
            Deliveries(self.dlq, "feedback", 1 << 20),  # type: ignore[arg-type]
            Outputs(self.results, self.cases, self.changelog),  # type: ignore[arg-type]
            self.data,
            "inference.completed",
            owned=lambda: {0},
            trace_ids=IDS,
            clock=lambda: self.now,
        )

    def trace(self, offset: int, **kw: Any) -> Any:
        t = a_trace(trace_id=TID, **kw)
        return event(self.consumer, offset, t.to_bytes(), topic="inference.completed")

    def feedback(self, offset: int, up: bool = True, **kw: Any) -> Any:
        f = fb(up, trace_id=TID, **kw)
        return event(self.consumer, offset, f.to_bytes(), topic="feedback.events")

    async def take(self, *events: Any) -> None:
        await self.join.take(list(events))
        for ev in events:
            stream_acks(ev)


def sent_to(topic: Topic) -> list[bytes | None]:
    return [value for _, value, _ in topic.sent]


@in_loop
async def test_a_trace_and_its_feedback_publish_once_and_are_acknowledged_when_delivered() -> None:
    p = Parts()
    await p.take(p.trace(0), p.feedback(1))
    (result,) = sent_to(p.results)
    assert result is not None and len(EvalResult.from_bytes(result).feedback) == 1
    (kept,) = sent_to(p.changelog)  # the joined state, written by the join itself
    assert kept is not None and State.from_bytes(kept).trace is not None
    deliver_all(p.results)
    await settle()
    assert p.consumer.acked == [], "the state is not on the broker yet"
    deliver_all(p.changelog)
    deliver_all(p.cases)
    await settle()
    assert sorted(p.consumer.acked) == [0, 1]


@in_loop
async def test_the_same_feedback_again_counts_once() -> None:
    p = Parts()
    again = fb(True, trace_id=TID)
    await p.take(p.trace(0), event(p.consumer, 1, again.to_bytes(), topic="feedback.events"))
    await p.take(event(p.consumer, 2, again.to_bytes(), topic="feedback.events"))
    # a replay (after a crash, say) publishes the result again, with the feedback once
    results = [EvalResult.from_bytes(v) for v in sent_to(p.results) if v is not None]
    assert [len(r.feedback) for r in results] == [1, 1]
    assert len(sent_to(p.changelog)) == 2  # the replayed input is held by its own record


@in_loop
async def test_a_forged_trace_is_dead_lettered_and_changes_nothing() -> None:
    p = Parts()
    forged = a_trace(trace_id=TraceIds(b"other").new("acme"))
    await p.take(event(p.consumer, 0, forged.to_bytes(), topic="inference.completed"))
    (letter,) = sent_to(p.dlq)
    assert letter is not None
    dead = DeadLetter.from_bytes(letter)
    assert (dead.stage, dead.error_type) == ("feedback.verify", "ForgedTraceId")
    assert p.results.sent == [] and p.changelog.sent == [] and p.data == {}


@in_loop
async def test_the_sweep_letters_feedback_that_waited_too_long_before_it_drops_its_state() -> None:
    p = Parts(join_wait_s=60)
    await p.take(p.feedback(3))  # its trace never comes
    deliver_all(p.changelog)
    await settle()
    assert p.consumer.acked == [3] and len(p.data) == 1, "it waits in the table"
    await p.join.sweep_once()
    assert len(p.dlq.sent) == 0, "not due yet"
    p.now += 61
    sweep = asyncio.ensure_future(p.join.sweep_once())
    await settle()
    (letter,) = sent_to(p.dlq)
    assert letter is not None
    dead = DeadLetter.from_bytes(letter)
    assert (dead.offset, dead.stage, dead.error_type) == (3, "feedback.join", "TraceNotFound")
    assert len(p.changelog.sent) == 1, "the state stays until its letter is on the broker"
    deliver_all(p.dlq)
    await settle()
    assert sent_to(p.changelog)[1:] == [None], "then it is dropped (a tombstone)"
    deliver_all(p.changelog)
    await sweep
    assert p.data == {}


@in_loop
async def test_the_sweep_leaves_the_partitions_another_worker_owns() -> None:
    p = Parts(join_wait_s=60)
    p.join.owned = lambda: {1}
    await p.take(p.feedback(3))
    p.now += 61
    await p.join.sweep_once()
    assert p.dlq.sent == [] and len(p.data) == 1
