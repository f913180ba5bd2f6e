"""The monitoring agent: every platform topic in, windowed metrics and alerts out.

Thin: decode each record into observations (``observe``), count them in event-time windows
(``windows``), and at each window's close publish its points and run the alert rules
(``alerts``). Every input is held (not acknowledged) until the window it counted in has
been published, so a restart rebuilds open windows from the inputs themselves. The alerts'
lifecycle lives in a faust table whose changelog the agent writes after the alerts are on
the broker: a restart neither fires twice nor forgets to resolve.

One worker sees every partition (its windows need all of them); run one replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.types import EventT
from pydantic import ValidationError

from services.monitoring.alertmanager import AlertmanagerClient
from services.monitoring.alerts import (
    Lifecycle,
    Rule,
    Series,
    Step,
    alert_of,
    evaluate,
    load_rules,
)
from services.monitoring.dashboard import History, page, plotly_js
from services.monitoring.drift import DriftMeter, Reference
from services.monitoring.exposition import Exposition
from services.monitoring.observe import (
    LAG,
    POLLED,
    lag_points,
    observe,
    poll_point,
    watched,
)
from services.monitoring.settings import MonitoringSettings
from services.monitoring.windows import Windows
from shared.delivery import Deliveries
from shared.embedder import Embedder
from shared.events import Alert, AlertState, MetricPoint
from shared.faust_app import faust_topic, make_app
from shared.kafka.lag import consumer_lag
from shared.topics import MONITORING_ALERTS, MONITORING_DLQ, MONITORING_METRICS

log = logging.getLogger(__name__)


# the table's record of how far windows have been published and evaluated
DONE_UNTIL = b"__evaluated_until__"


def series_id(key: Series) -> bytes:
    """The table key of one alert's state."""
    return json.dumps([key[0], list(map(list, key[1]))]).encode()


def series_of(raw: bytes) -> Series:
    name, labels = json.loads(raw)
    return name, tuple((k, v) for k, v in labels)


def build_app(
    settings: MonitoringSettings,
    bootstrap: str,
    rules: list[Rule] | None = None,
    embedder: Embedder | None = None,
) -> faust.App:
    """The monitoring faust app; ``rules`` default to the settings' rules file (read now, so
    a bad file stops the start with its line and reason); ``embedder`` (for the questions'
    drift) may be shared with other services of the process."""
    rules = load_rules(settings.rules_file) if rules is None else rules
    # consumer lag is polled on the wall clock; everything else is counted in event time
    lag_rules = [r for r in rules if r.metric in POLLED]
    event_rules = [r for r in rules if r.metric not in POLLED]
    app = make_app(
        "monitoring",
        settings.kafka,
        settings.platform,
        bootstrap,
        # /metrics and /dashboard, on faust's own web server (aiohttp)
        web_enabled=True,
        web_bind=settings.host,
        web_port=settings.port,
    )
    by_name = {r.name: r for r in rules}
    prefix = settings.kafka.topic_prefix
    names = {t.name(prefix): t.base_name for t in watched()}
    source = app.topic(*names, key_type=bytes, value_type=bytes)
    metrics = faust_topic(app, MONITORING_METRICS, prefix)
    alerts_out = faust_topic(app, MONITORING_ALERTS, prefix)
    dlq = faust_topic(app, MONITORING_DLQ, prefix)
    table = app.Table(
        "alerts",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=1,
        help="Lifecycle of every alert that is not inactive (pending or firing).",
    )
    out = Deliveries(
        dlq,
        "monitoring",
        settings.kafka.max_message_bytes,
        letter_values=settings.platform.dlq_values,
    )
    windows = Windows(settings.window_s, settings.grace_s, settings.max_future_s)
    model = embedder or Embedder(settings.model)
    drift = DriftMeter(
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
    held: dict[datetime, list[EventT[Any]]] = defaultdict(list)
    last_input = {"wall": time.monotonic()}

    lock = asyncio.Lock()  # the agent and the timer both close windows; one at a time

    def states() -> dict[Series, Lifecycle]:
        return {
            series_of(k): Lifecycle.from_json(json.loads(v))
            for k, v in table.data.items()
            if v and k != DONE_UNTIL
        }

    def firing() -> list[Alert]:
        """The alerts firing now, from the kept lifecycles (so they survive a restart)."""
        now_firing = []
        for (name, labels), state in states().items():
            rule = by_name.get(name)
            if rule is not None and state.phase == "firing":
                at = state.last_sent or state.fired_at
                assert at is not None
                alert = alert_of(rule, dict(labels), Step(state, AlertState.FIRING), at)
                now_firing.append(alert)
        return now_firing

    def recovered() -> bool:
        """Whether the table holds the lifecycles again (after a start or a rebalance)."""
        return bool(app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]

    exposition = Exposition(firing)
    history = History()
    manager = (
        AlertmanagerClient(settings.alertmanager_url, resend_s=settings.alertmanager_resend_s)
        if settings.alertmanager_url
        else None
    )

    def done_until() -> datetime | None:
        raw = table.data.get(DONE_UNTIL)
        return datetime.fromisoformat(raw.decode()) if raw else None

    async def keep(sources: list[EventT[Any]], key: bytes, raw: bytes | None) -> None:
        if raw is None:
            table.data.pop(key, None)
        else:
            table.data[key] = raw
        await out.send(sources, table.changelog_topic, key, raw, partition=0)

    async def publish(alert: Alert) -> None:
        # awaited: the state that says it was sent is written only once it is on the broker
        sent = await alerts_out.send(key=alert.key.encode(), value=alert.to_bytes())
        await sent

    async def close_windows() -> None:
        async with lock:
            for start, end, points in windows.close():
                sources = held.pop(start, [])
                until = done_until()
                # after a restart, re-read inputs rebuild windows already published: skip them
                if until is None or end > until:
                    await close(sources, start, end, points)
                else:
                    drift.questions.pop(start, None)
                    drift.tops.pop(start, None)
                for ev in sources:  # the window's own hold on its inputs
                    ev.message.ack(app.consumer)

    async def close(
        sources: list[EventT[Any]], start: datetime, end: datetime, points: list[MetricPoint]
    ) -> None:
        # the window's drift, measured off the event loop (the model encodes its questions)
        points = points + await asyncio.get_running_loop().run_in_executor(
            None, drift.measure, start, end, model.encode
        )
        for p in points:
            await out.send(sources, metrics, p.key.encode(), p.to_bytes())
        exposition.latest.update(points)
        history.add(points)
        await judge(event_rules, points, end, sources)
        await keep(sources, DONE_UNTIL, end.isoformat().encode())

    async def judge(
        chosen: list[Rule], points: list[MetricPoint], now: datetime, sources: list[EventT[Any]]
    ) -> None:
        """Run ``chosen`` rules on ``points``; publish what fires or resolves, then keep the
        new states."""
        changed, fired = evaluate(chosen, points, states(), now)
        for alert in fired:
            await publish(alert)
            history.alert(alert)
            if manager is not None:
                await manager.transition(alert)
            log.warning(
                "alert %s %s %s: %s",
                alert.rule,
                alert.state.value,
                alert.labels,
                alert.annotations.get("summary", ""),
            )
        for key, state in changed.items():
            raw = None if state.phase == "inactive" else json.dumps(state.to_json()).encode()
            await keep(sources, series_id(key), raw)

    closing: dict[str, asyncio.Future[None] | None] = {"task": None}

    def failed_close(task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("closing a window failed", exc_info=task.exception())

    async def count(event: EventT[Any]) -> None:
        msg = event.message
        last_input["wall"] = time.monotonic()
        try:
            seen = observe(names[msg.topic], msg.value or b"", settings.retrieval_threshold)
        except ValidationError as exc:
            await out.dead_letter(event, "monitoring.decode", exc)
            return
        start = windows.add(seen.at, seen.observations)
        if seen.question is not None and start == windows.start_of(seen.at):
            drift.add(start, *seen.question, seen.top_score)
        for o in seen.observations:
            if o.name == "inference_latency_ms":
                exposition.latency.labels(dict(o.labels)["stage"]).observe(o.value / 1000)
        msg.incref()  # held until its window is published
        held[start].append(event)
        if windows.closable() and (closing["task"] is None or closing["task"].done()):
            # in the background: the next records are read while a window's drift is
            # measured (the model runs on its own thread)
            task = asyncio.ensure_future(close_windows())
            task.add_done_callback(failed_close)
            closing["task"] = task

    own_dlq = MONITORING_DLQ.name(prefix)

    @app.agent(source, name="watch")
    async def watch(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                await count(event)
            except Exception as exc:  # noqa: BLE001 - one record must not stop monitoring
                if event.message.topic == own_dlq:
                    # a letter of its own it cannot count: lettering it again would loop
                    log.error("could not count dead letter %s: %s", event.message.offset, exc)
                    continue
                await out.dead_letter(event, "monitoring", exc)

    @app.timer(settings.close_every_s)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        # With no input for longer than a window and its grace, time still passes: windows
        # close (with no data) on the wall clock. Replays stay exact while records flow.
        idle = time.monotonic() - last_input["wall"]
        if windows.watermark is not None and idle > settings.window_s + settings.grace_s:
            windows.advance(
                max(windows.watermark, datetime.now(UTC) - timedelta(seconds=settings.grace_s))
            )
        if windows.closable():  # due, and no record came to close it
            await close_windows()

    @app.timer(settings.window_s)  # type: ignore[untyped-decorator]
    async def lag() -> None:
        if not recovered():  # judging before the lifecycles are back could fire twice
            return
        now = datetime.now(UTC)
        try:
            behind = await asyncio.get_running_loop().run_in_executor(
                None, consumer_lag, bootstrap, prefix
            )
            failed = False
        except Exception as exc:  # noqa: BLE001 - the broker may be away; try next time
            log.warning("could not poll consumer lag: %s: %s", type(exc).__name__, exc)
            behind, failed = {}, True
        points = [*lag_points(behind, now, settings.window_s)]
        points.append(poll_point(LAG, failed, now, settings.window_s))
        async with lock:
            for p in points:
                await out.send([], metrics, p.key.encode(), p.to_bytes())
            exposition.latest.update(points)
            history.add(points)
            await judge(lag_rules, points, now, [])

    if manager is not None:

        @app.timer(manager.resend_s)  # type: ignore[untyped-decorator]
        async def renew() -> None:
            if not recovered():
                return
            async with lock:
                current = firing()
            await manager.resend(current)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        """The last closed window of every series, alerts firing, request latency."""
        return web.bytes(exposition.text(), content_type="text/plain; version=0.0.4")

    @app.page("/dashboard")
    async def dashboard(web: Any, request: Any) -> Any:
        """Charts of the recent windows and the alerts, refreshed every few seconds."""
        return web.html(page())

    @app.page("/dashboard/data")
    async def dashboard_data(web: Any, request: Any) -> Any:
        """What the dashboard draws (JSON)."""
        return web.json(history.data(firing()))

    @app.page("/dashboard/plotly.min.js")
    async def dashboard_plotly(web: Any, request: Any) -> Any:
        """plotly.js from the pinned plotly package (no CDN)."""
        return web.bytes(
            plotly_js(),
            content_type="application/javascript",
            headers={"Cache-Control": "max-age=86400"},
        )

    return app
