"""The monitoring agent: every platform topic in, windowed metrics and alerts out.

Thin: it wires faust's topics, table, timers and pages to the ``MonitoringWorker``, which
holds the windows, the held inputs and the alerts' lifecycles (see ``worker``).

One worker sees every partition (its windows need all of them); run one replica.
"""

from __future__ import annotations

from typing import Any

import faust

from services.monitoring.alerts import Rule, load_rules
from services.monitoring.dashboard import page, plotly_js
from services.monitoring.observe import watched
from services.monitoring.settings import MonitoringSettings
from services.monitoring.worker import MonitoringWorker, Outputs
from shared.contracts.topics import MONITORING_ALERTS, MONITORING_DLQ, MONITORING_METRICS
from shared.kafka.faust_app import dead_letters, faust_topic, make_app, unless_cut_short
from shared.kafka.lag import consumer_lag
from shared.models.embedder import Embedder


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
    app = make_app(
        "monitoring",
        settings.kafka,
        settings.platform,
        bootstrap,
        # /metrics and /dashboard, on faust's own web server (aiohttp)
        web_enabled=True,
        web_bind=settings.host,
        web_port=settings.port,
        # inputs are held until their window is published: a rebalance must not wait for
        # them (every partition is read again from its commit afterwards anyway)
        stream_wait_empty=False,
    )
    prefix = settings.kafka.topic_prefix
    names = {t.name(prefix): t.base_name for t in watched()}
    table = alerts_table(app)
    model = embedder or Embedder(settings.model)
    worker = MonitoringWorker(
        settings,
        rules,
        names,
        dead_letters(app, MONITORING_DLQ, "monitoring", settings.kafka, settings.platform),
        Outputs(
            metrics=faust_topic(app, MONITORING_METRICS, prefix),
            alerts=faust_topic(app, MONITORING_ALERTS, prefix),
            changelog=table.changelog_topic,
        ),
        table.data,
        model.encode,
        poll_lag=lambda: consumer_lag(bootstrap, prefix),
        # whether the table holds the lifecycles again (after a start or a rebalance)
        recovered=lambda: bool(app.tables.recovery.completed.is_set()),  # type: ignore[attr-defined]
    )
    source = app.topic(*names, key_type=bytes, value_type=bytes)

    @app.agent(source, name="watch")
    async def watch(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            await unless_cut_short(worker.take(event), [event], worker.out)

    @app.on_partitions_assigned.connect
    def reassigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # before the seek back to the commits (faust's recovery); args: the assigned set
        (assigned,) = args
        worker.reassigned((tp.topic, tp.partition) for tp in assigned)

    app.timer(settings.close_every_s)(worker.tick)
    app.timer(settings.window_s)(worker.poll)
    if worker.manager is not None:
        app.timer(worker.manager.resend_s)(worker.renew)
    pages(app, worker)
    return app


def alerts_table(app: faust.App) -> Any:
    """The table of the alerts' lifecycles (one partition: one worker judges every rule)."""
    return app.Table(
        "alerts",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=1,
        help="Lifecycle of every alert that is not inactive (pending or firing).",
    )


def pages(app: faust.App, worker: MonitoringWorker) -> None:
    """/metrics and the dashboard, on faust's web server."""

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        """The last closed window of every series, alerts firing, request latency."""
        return web.bytes(worker.exposition.text(), content_type="text/plain; version=0.0.4")

    @app.page("/dashboard")
    async def dashboard(web: Any, request: Any) -> Any:
        """Charts of the recent windows and the alerts, refreshed every few seconds."""
        return web.html(page())

    @app.page("/dashboard/data")
    async def dashboard_data(web: Any, request: Any) -> Any:
        """What the dashboard draws (JSON)."""
        return web.json(worker.history.data(worker.firing()))

    @app.page("/dashboard/plotly.min.js")
    async def dashboard_plotly(web: Any, request: Any) -> Any:
        """plotly.js from the pinned plotly package (no CDN)."""
        return web.bytes(
            plotly_js(),
            content_type="application/javascript",
            headers={"Cache-Control": "max-age=86400"},
        )
