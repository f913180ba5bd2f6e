"""The monitoring worker: what the agent does with each input and on each timer, as methods
of one object that owns its state (windows, held inputs, alert lifecycles), so each rule of
its orchestration can be driven and tested without a broker.

Every input is held (not acknowledged) until the window it counted in has been published, so
a restart rebuilds open windows from the inputs themselves; so does a rebalance, after which
faust reads every partition again from its commit, and an input read twice in one generation
is counted once. The alerts' lifecycle lives in a
table (``data``, faust's in the service) whose changelog the worker writes after the alerts
are on the broker: a restart neither fires twice nor forgets to resolve.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faust.types import EventT, TopicT
from pydantic import ValidationError

from services.monitoring.alertmanager import AlertmanagerClient
from services.monitoring.alerts import Lifecycle, Rule, Series, Step, alert_of, evaluate
from services.monitoring.dashboard import History
from services.monitoring.drift import DriftMeter, Reference
from services.monitoring.exposition import Exposition
from services.monitoring.observe import LAG, POLLED, lag_points, observe, poll_point
from services.monitoring.settings import MonitoringSettings
from services.monitoring.windows import Windows
from shared.contracts.events import Alert, AlertState, MetricPoint
from shared.contracts.topics import MONITORING_DLQ
from shared.kafka.delivery import Deliveries

log = logging.getLogger(__name__)

# the table's record of how far windows have been published and evaluated
DONE_UNTIL = b"__evaluated_until__"

Encode = Callable[[list[str]], Any]
# consumer lag per group and topic (blocking: called off the event loop)
PollLag = Callable[[], dict[str, dict[str, int]]]


def series_id(key: Series) -> bytes:
    """The table key of one alert's state."""
    return json.dumps([key[0], list(map(list, key[1]))]).encode()


def series_of(raw: bytes) -> Series:
    name, labels = json.loads(raw)
    return name, tuple((k, v) for k, v in labels)


def drift_meter(settings: MonitoringSettings) -> DriftMeter:
    """The questions' drift as the settings describe it."""
    return DriftMeter(
        Reference(
            windows=settings.drift_reference_windows,
            pinned_from=settings.drift_reference_from,
            pinned_to=settings.drift_reference_to,
        ),
        sample=settings.drift_sample,
        per_window=settings.drift_max_per_window,
        min_questions=settings.drift_min_questions,
        permutations=settings.drift_permutations,
    )


@dataclass(frozen=True)
class Outputs:
    """Where the worker writes: metric points, alerts, and the table's changelog."""

    metrics: TopicT
    alerts: TopicT
    changelog: TopicT


class MonitoringWorker:
    """Counts inputs into event-time windows, publishes each window at its close, judges the
    alert rules, polls consumer lag on the wall clock.

    ``names`` maps each watched topic's full name to its declared name; ``data`` is the
    alerts table (bytes to bytes); ``recovered`` says whether it holds the lifecycles again
    after a start or a rebalance; ``monotonic`` and ``now`` are the clocks (tests pass
    their own).
    """

    def __init__(
        self,
        settings: MonitoringSettings,
        rules: list[Rule],
        names: dict[str, str],
        out: Deliveries,
        outputs: Outputs,
        data: MutableMapping[bytes, bytes],
        encode: Encode,
        poll_lag: PollLag,
        recovered: Callable[[], bool] = lambda: True,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings, self.names, self.out, self.outputs = settings, names, out, outputs
        self.data, self.encode, self.poll_lag, self.recovered = data, encode, poll_lag, recovered
        self.monotonic, self.now = monotonic, now
        self.by_name = {r.name: r for r in rules}
        # consumer lag is polled on the wall clock; everything else is counted in event time
        self.lag_rules = [r for r in rules if r.metric in POLLED]
        self.event_rules = [r for r in rules if r.metric not in POLLED]
        self.windows = self.no_windows()
        self.drift = drift_meter(settings)
        self.exposition = Exposition(self.firing)
        self.history = History()
        self.manager = (
            AlertmanagerClient(settings.alertmanager_url, resend_s=settings.alertmanager_resend_s)
            if settings.alertmanager_url
            else None
        )
        self.held: dict[datetime, list[EventT[Any]]] = defaultdict(list)
        # where each held input was read (topic, partition, offset), and the second copies
        # of one that were let go
        self.counted: set[tuple[str, int, int]] = set()
        self.copies = 0
        self.last_input = monotonic()
        self.closing: asyncio.Future[None] | None = None
        self.lock = asyncio.Lock()  # the agent and the timers both close windows; one at a time
        # the service's own DLQ: its letters are counted, never lettered
        self.own_dlq = MONITORING_DLQ.name(settings.kafka.topic_prefix)

    # the alerts' lifecycles ------------------------------------------------------------
    def states(self) -> dict[Series, Lifecycle]:
        return {
            series_of(k): Lifecycle.from_json(json.loads(v))
            for k, v in self.data.items()
            if v and k != DONE_UNTIL
        }

    def firing(self) -> list[Alert]:
        """The alerts firing now, from the kept lifecycles (so they survive a restart)."""
        now_firing = []
        for (name, labels), state in self.states().items():
            rule = self.by_name.get(name)
            if rule is not None and state.phase == "firing":
                at = state.last_sent or state.fired_at
                assert at is not None
                alert = alert_of(rule, dict(labels), Step(state, AlertState.FIRING), at)
                now_firing.append(alert)
        return now_firing

    def done_until(self) -> datetime | None:
        raw = self.data.get(DONE_UNTIL)
        return datetime.fromisoformat(raw.decode()) if raw else None

    async def keep(self, sources: Sequence[EventT[Any]], key: bytes, raw: bytes | None) -> None:
        """Change the table and write its changelog record, held by ``sources``."""
        if raw is None:
            self.data.pop(key, None)
        else:
            self.data[key] = raw
        await self.out.send(list(sources), self.outputs.changelog, key, raw, partition=0)

    # inputs ----------------------------------------------------------------------------
    async def take(self, event: EventT[Any]) -> None:
        """One input: counted (and held until its window is published), or dead-lettered
        with the reason; a letter of the service's own that it cannot count is only logged
        (lettering it again would loop)."""
        try:
            await self.observe(event)
        except Exception as exc:  # noqa: BLE001 - one record must not stop monitoring
            msg = event.message
            if msg.topic == self.own_dlq:
                log.error("could not count dead letter %s: %s", msg.offset, exc)
                return
            await self.out.dead_letter(event, "monitoring", exc)

    async def observe(self, event: EventT[Any]) -> None:
        """Count one input in its window; start closing the windows that are due."""
        msg = event.message
        self.last_input = self.monotonic()
        where = (msg.topic, msg.partition, msg.offset)
        if where in self.counted:
            # a second copy in this generation (faust fetches while it seeks back to the
            # commits): the first is counted and held, and no commit passes it
            self.copies += 1
            return
        try:
            seen = observe(
                self.names[msg.topic], msg.value or b"", self.settings.retrieval_threshold
            )
        except ValidationError as exc:
            await self.out.dead_letter(event, "monitoring.decode", exc)
            return
        start = self.windows.add(
            seen.at, seen.observations, source=(msg.topic, msg.partition), seen=self.monotonic()
        )
        if seen.question is not None and start == self.windows.start_of(seen.at):
            self.drift.add(start, *seen.question, seen.top_score)
        for o in seen.observations:
            if o.name == "inference_latency_ms":
                self.exposition.latency.labels(dict(o.labels)["stage"]).observe(o.value / 1000)
        self.out.hold(event)  # until its window is published
        self.held[start].append(event)
        self.counted.add(where)
        if self.windows.closable() and (self.closing is None or self.closing.done()):
            # in the background: the next records are read while a window's drift is
            # measured (the model runs on its own thread)
            self.closing = asyncio.ensure_future(self.close_due_windows())
            self.closing.add_done_callback(_log_failure)

    def reassigned(self, assigned: Iterable[tuple[str, int]] = ()) -> None:
        """Partitions were assigned (a rebalance): faust now reads every partition again from
        its committed offset, so every input held in an open window comes again. The open
        windows start afresh, as after a restart, and count each input once; the copies held
        before count for nothing (the consumer ignores an earlier generation's
        acknowledgements). Windows already published are skipped again by the table's
        record of them."""
        for start in self.windows.open:
            self.drift.questions.pop(start, None)
            self.drift.tops.pop(start, None)
        self.windows = self.no_windows()
        self.held = defaultdict(list)
        self.counted = set()
        # each partition read holds the watermark back until it sends (or stays quiet)
        watched = [(topic, part) for topic, part in assigned if topic in self.names]
        self.windows.expect(watched, self.monotonic())

    def no_windows(self) -> Windows:
        """Windows as the settings shape them, none open yet."""
        s = self.settings
        return Windows(s.window_s, s.grace_s, s.max_future_s, idle_s=s.grace_s)

    # windows ---------------------------------------------------------------------------
    async def close_due_windows(self) -> None:
        """Publish every window that is due, then let go of its inputs."""
        async with self.lock:
            for start, end, points in self.windows.close():
                sources = self.held.pop(start, [])
                until = self.done_until()
                # after a restart, re-read inputs rebuild windows already published: skip them
                if until is None or end > until:
                    await self.publish_window(sources, start, end, points)
                else:
                    self.drift.questions.pop(start, None)
                    self.drift.tops.pop(start, None)
                self.out.release(sources)  # the window's own hold on its inputs
                self.counted.difference_update(
                    (e.message.topic, e.message.partition, e.message.offset) for e in sources
                )

    async def publish_window(
        self,
        sources: list[EventT[Any]],
        start: datetime,
        end: datetime,
        points: list[MetricPoint],
    ) -> None:
        # the window's drift, measured off the event loop (the model encodes its questions)
        points = points + await asyncio.get_running_loop().run_in_executor(
            None, self.drift.measure, start, end, self.encode
        )
        for p in points:
            await self.out.send(sources, self.outputs.metrics, p.key.encode(), p.to_bytes())
        self.shown(points)
        await self.judge(self.event_rules, points, end, sources)
        await self.keep(sources, DONE_UNTIL, end.isoformat().encode())

    def shown(self, points: list[MetricPoint]) -> None:
        """What /metrics and the dashboard show of ``points``."""
        self.exposition.latest.update(points)
        self.history.add(points)

    async def judge(
        self,
        chosen: list[Rule],
        points: list[MetricPoint],
        now: datetime,
        sources: Sequence[EventT[Any]],
    ) -> None:
        """Run ``chosen`` rules on ``points``; publish what fires or resolves, then keep the
        new states."""
        changed, fired = evaluate(chosen, points, self.states(), now)
        for alert in fired:
            # on the broker before the state that says it was sent is written
            await self.out.deliver(self.outputs.alerts, alert.key.encode(), alert.to_bytes())
            self.history.alert(alert)
            if self.manager is not None:
                await self.manager.transition(alert)
            log.warning(
                "alert %s %s %s: %s",
                alert.rule,
                alert.state.value,
                alert.labels,
                alert.annotations.get("summary", ""),
            )
        for key, state in changed.items():
            raw = None if state.phase == "inactive" else json.dumps(state.to_json()).encode()
            await self.keep(sources, series_id(key), raw)

    # timers ----------------------------------------------------------------------------
    async def tick(self) -> None:
        """With no input for longer than a window and its grace, time still passes: windows
        close (with no data) on the wall clock. Replays stay exact while records flow."""
        idle = self.monotonic() - self.last_input
        s = self.settings
        self.windows.refresh(self.monotonic())  # a source gone quiet holds nothing back
        if self.windows.watermark is not None and idle > s.window_s + s.grace_s:
            self.windows.advance(
                max(self.windows.watermark, self.now() - timedelta(seconds=s.grace_s))
            )
        if self.windows.closable():  # due, and no record came to close it
            await self.close_due_windows()

    async def poll(self) -> None:
        """Consumer lag of every group now, its points and its rules; a failed poll is a
        point of its own (and an alert), never a silent gap."""
        if not self.recovered():  # judging before the lifecycles are back could fire twice
            return
        now = self.now()
        try:
            behind = await asyncio.get_running_loop().run_in_executor(None, self.poll_lag)
            failed = False
        except Exception as exc:  # noqa: BLE001 - the broker may be away; try next time
            log.warning("could not poll consumer lag: %s: %s", type(exc).__name__, exc)
            behind, failed = {}, True
        points = [*lag_points(behind, now, self.settings.window_s)]
        points.append(poll_point(LAG, failed, now, self.settings.window_s))
        async with self.lock:
            for p in points:
                await self.out.send([], self.outputs.metrics, p.key.encode(), p.to_bytes())
            self.shown(points)
            await self.judge(self.lag_rules, points, now, [])

    async def renew(self) -> None:
        """Tell Alertmanager again what is firing (it forgets an alert not renewed)."""
        if self.manager is None or not self.recovered():
            return
        async with self.lock:
            current = self.firing()
        await self.manager.resend(current)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("closing a window failed", exc_info=task.exception())
