"""Unit tests of ``services.monitoring.worker``: windows, held inputs and alert lifecycles
driven with faust's own messages, topics settled by hand and clocks the test moves; no
broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from services.monitoring.alerts import load_rules
from services.monitoring.observe import watched
from services.monitoring.settings import MonitoringSettings
from services.monitoring.worker import DONE_UNTIL, MonitoringWorker, Outputs
from shared.contracts.events import Alert, AlertState, DeadLetter, MetricPoint
from shared.kafka.delivery import Deliveries
from tests.unit.fakes import Consumer, Topic, deliver_all, event, in_loop, settle, stream_acks
from tests.unit.services.feedback.samples import a_trace

WINDOW, GRACE = 60.0, 10.0
# a window boundary a little in the past: event times near the wall clock are not "future"
T0 = datetime.fromtimestamp((datetime.now(UTC).timestamp() // 3600 - 1) * 3600, UTC)


class Parts:
    def __init__(self, poll_lag: Any = dict) -> None:
        settings = MonitoringSettings(window_s=WINDOW, grace_s=GRACE)
        self.consumer = Consumer()
        self.metrics, self.alerts, self.changelog = Topic("m"), Topic("a", auto=True), Topic("l")
        self.data: dict[bytes, bytes] = {}
        self.clock, self.wall = 0.0, T0
        self.worker = MonitoringWorker(
            settings,
            load_rules(settings.rules_file),
            {t.name(""): t.base_name for t in watched()},
            Deliveries(Topic("monitoring.dlq"), "monitoring", 1 << 20),  # type: ignore[arg-type]
            Outputs(self.metrics, self.alerts, self.changelog),  # type: ignore[arg-type]
            self.data,
            lambda texts: np.ones((len(texts), 4), dtype=np.float32),
            poll_lag=poll_lag,
            monotonic=lambda: self.clock,
            now=lambda: self.wall,
        )

    async def trace_at(self, offset: int, s: float) -> Any:
        t = a_trace(event_time=T0 + timedelta(seconds=s))
        ev = event(self.consumer, offset, t.to_bytes(), topic="inference.completed")
        await self.worker.take(ev)
        stream_acks(ev)
        return ev

    async def closed(self) -> None:
        """Wait for the closing the last input started."""
        if self.worker.closing is not None:
            await self.worker.closing
        await settle()


def points(topic: Topic) -> list[MetricPoint]:
    return [MetricPoint.from_bytes(v) for _, v, _ in topic.sent if v is not None]


@in_loop
async def test_an_input_is_held_until_its_window_is_published_and_delivered() -> None:
    p = Parts()
    await p.trace_at(0, 5)
    await p.trace_at(1, 20)
    assert p.metrics.sent == [] and p.consumer.acked == [], "the window is open"
    await p.trace_at(2, WINDOW + GRACE + 1)  # its event time closes the first window
    await p.closed()
    requests = [x for x in points(p.metrics) if x.name == "inference_requests"]
    assert [(x.window_start, x.value) for x in requests] == [(T0, 2.0)]
    assert p.consumer.acked == [], "the points are not on the broker yet"
    deliver_all(p.metrics)
    await settle()
    assert p.consumer.acked == [], "nor is the record of how far windows are published"
    deliver_all(p.changelog)
    await settle()
    assert sorted(p.consumer.acked) == [0, 1], "the input of the open window stays held"
    assert p.data[DONE_UNTIL] == (T0 + timedelta(seconds=WINDOW)).isoformat().encode()


@in_loop
async def test_windows_published_before_a_restart_are_not_published_again() -> None:
    p = Parts()
    p.data[DONE_UNTIL] = (T0 + timedelta(seconds=WINDOW)).isoformat().encode()
    await p.trace_at(0, 5)  # re-read after the restart
    await p.trace_at(1, WINDOW + GRACE + 1)
    await p.closed()
    assert p.metrics.sent == [] and p.consumer.acked == [0], "let go without a second point"


@in_loop
async def test_inputs_read_again_after_a_rebalance_are_counted_once() -> None:
    # a rebalance makes faust read every partition again from its commit: the inputs held
    # in the open window come a second time (the rolling-restart chaos test counted 181 of
    # a window's 180 traces before)
    p = Parts()
    for offset, s in enumerate((5, 20, 30)):
        await p.trace_at(offset, s)
    p.worker.reassigned()
    for offset, s in enumerate((5, 20, 30)):  # the copies read again
        await p.trace_at(offset, s)
    await p.trace_at(3, WINDOW + GRACE + 1)
    await p.closed()
    requests = [x for x in points(p.metrics) if x.name == "inference_requests"]
    assert [(x.window_start, x.value) for x in requests] == [(T0, 3.0)]
    deliver_all(p.metrics)
    deliver_all(p.changelog)
    await settle()
    assert sorted(p.consumer.acked) == [0, 1, 2], "the copies read again carry the commit"


@in_loop
async def test_a_second_copy_of_an_input_in_one_generation_is_counted_once() -> None:
    # faust fetches while it seeks back to the commits after an assignment: records fetched
    # in that moment come again right after, in the same generation
    p = Parts()
    await p.trace_at(0, 5)
    await p.trace_at(0, 5)
    assert p.consumer.acked == [0] and p.worker.copies == 1, "the copy is let go at once"
    await p.trace_at(1, WINDOW + GRACE + 1)
    await p.closed()
    requests = [x for x in points(p.metrics) if x.name == "inference_requests"]
    assert [(x.window_start, x.value) for x in requests] == [(T0, 1.0)]
    deliver_all(p.metrics)
    deliver_all(p.changelog)
    await settle()
    assert p.consumer.acked == [0, 0], "the first copy, once its window is published"
    assert p.worker.counted == {("inference.completed", 0, 1)}, "forgotten once published"


@in_loop
async def test_with_no_input_the_wall_clock_closes_the_window() -> None:
    p = Parts()
    await p.trace_at(0, 5)
    await p.worker.tick()
    assert p.metrics.sent == [], "not idle long enough"
    p.clock += WINDOW + GRACE + 1
    p.wall = T0 + timedelta(seconds=2 * WINDOW + GRACE)
    await p.worker.tick()
    assert {x.window_start for x in points(p.metrics)} == {T0}


@in_loop
async def test_a_future_event_is_counted_where_it_arrives_and_closes_nothing() -> None:
    p = Parts()
    await p.trace_at(0, 5)
    await p.trace_at(1, 10 * 24 * 3600)  # ten days ahead of every clock
    await p.closed()
    assert p.metrics.sent == [] and p.consumer.acked == []
    assert p.worker.windows.watermark == T0 + timedelta(seconds=5)


@in_loop
async def test_a_record_it_cannot_read_is_dead_lettered_and_counting_goes_on() -> None:
    p = Parts()
    bad = event(p.consumer, 0, b"{}", topic="inference.completed")
    await p.worker.take(bad)
    stream_acks(bad)
    dlq: Topic = p.worker.out.dlq  # type: ignore[assignment]
    (letter,) = [DeadLetter.from_bytes(v) for _, v, _ in dlq.sent]
    assert (letter.offset, letter.stage) == (0, "monitoring.decode")
    deliver_all(dlq)
    await settle()
    assert p.consumer.acked == [0], "done once its letter is delivered, held by no window"
    await p.trace_at(1, 5)
    assert p.worker.held[T0] and p.worker.held[T0][0].message.offset == 1
    assert p.worker.own_dlq == "monitoring.dlq", "its own letters it only logs when unreadable"


def lag_down() -> dict[str, dict[str, int]]:
    raise ConnectionError("broker away")


@in_loop
async def test_a_lag_poll_that_fails_is_a_point_and_then_an_alert() -> None:
    p = Parts(poll_lag=lag_down)
    await p.worker.poll()
    (failed,) = [x for x in points(p.metrics) if x.name == "monitoring_poll_failed"]
    assert failed.value == 1.0 and failed.labels == {"poll": "consumer_lag"}
    assert p.alerts.sent == [], "pending for the rule's 2 minutes"
    p.wall += timedelta(minutes=2, seconds=1)
    await p.worker.poll()
    (raw,) = [v for _, v, _ in p.alerts.sent]
    alert = Alert.from_bytes(raw)
    assert (alert.rule, alert.state) == ("MonitoringPollFailing", AlertState.FIRING)
    assert [a.rule for a in p.worker.firing()] == ["MonitoringPollFailing"]


@in_loop
async def test_nothing_is_judged_before_the_table_is_back() -> None:
    p = Parts(poll_lag=lag_down)
    p.worker.recovered = lambda: False
    await p.worker.poll()
    assert p.metrics.sent == []
