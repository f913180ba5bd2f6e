"""The on-call engineer's commands: follow alerts and metrics, and one screen of status."""

from __future__ import annotations

import click

from services.monitoring.alerts import firing_now
from shared.cli import Context, pass_context
from shared.contracts.events import Alert, AlertState, MetricPoint
from shared.contracts.topics import MONITORING_ALERTS, MONITORING_METRICS, TOPICS

# the figures `llmops status` shows of the last window, by metric name
KEY_FIGURES = (
    "inference_requests",
    "inference_error_rate",
    "inference_latency_ms",
    "retrieval_empty_rate",
    "index_freshness_s",
    "dead_letters",
    "feedback_thumbs_down_rate",
)


def alert_line(a: Alert) -> str:
    """One alert transition, as `alerts tail` prints it (firing red, resolved green)."""
    labels = " ".join(
        f"{k}={v}" for k, v in sorted(a.labels.items()) if k not in ("alertname", "severity")
    )
    value = "" if a.value is None else f" value={a.value:.4g}"
    when = (a.ends_at if a.state is AlertState.RESOLVED else a.starts_at) or a.starts_at
    text = (
        f"{when:%Y-%m-%d %H:%M:%S} {a.state.value.upper():8} {a.severity:8} {a.rule} "
        f"{labels}{value}"
    )
    summary = a.annotations.get("summary")
    runbook = a.annotations.get("runbook_url")
    lines = [click.style(text, fg="red" if a.state is AlertState.FIRING else "green", bold=True)]
    if summary:
        lines.append(f"    {summary}")
    if runbook:
        lines.append(f"    runbook: {runbook}")
    return "\n".join(lines)


def point_line(p: MetricPoint) -> str:
    """One metric point, as `metrics tail` prints it."""
    figures = [f"count={p.count}"]
    for name in ("value", "p50", "p95", "p99", "max"):
        v = getattr(p, name)
        if v is not None:
            figures.append(f"{name}={v:.4g}")
    return f"{p.window_end:%H:%M:%S} {p.key} {' '.join(figures)}"


FROM_BEGINNING = click.option(
    "--from-beginning", is_flag=True, help="Start at the topic's beginning, not now."
)
STOP_AFTER = click.option(
    "--for",
    "stop_after_s",
    type=float,
    default=None,
    help="Stop after this many seconds (default: until Ctrl-C).",
)


@click.group("alerts")
def alerts_group() -> None:
    """Alerts on monitoring.alerts (firing and resolved, by the alert rules)."""


@alerts_group.command("tail")
@FROM_BEGINNING
@STOP_AFTER
@pass_context
def alerts_tail(ctx: Context, from_beginning: bool, stop_after_s: float | None) -> None:
    """Follow alert transitions: firing in red, resolved in green, with runbook links."""
    from shared.kafka.reader import follow

    ctx.ensure_topics()  # a fresh cluster: wait for the first alert, not fail
    topic = MONITORING_ALERTS.name(ctx.prefix)
    for rec in follow(ctx.bootstrap, topic, from_beginning, stop_after_s):
        click.echo(alert_line(Alert.from_bytes(rec.value)))


@click.group("metrics")
def metrics_group() -> None:
    """Windowed metrics on monitoring.metrics."""


@metrics_group.command("tail")
@click.option("--name", "names", multiple=True, help="Only these metrics (repeatable).")
@FROM_BEGINNING
@STOP_AFTER
@pass_context
def metrics_tail(
    ctx: Context, names: tuple[str, ...], from_beginning: bool, stop_after_s: float | None
) -> None:
    """Follow metric points as their windows close."""
    from shared.kafka.reader import follow

    ctx.ensure_topics()
    topic = MONITORING_METRICS.name(ctx.prefix)
    for rec in follow(ctx.bootstrap, topic, from_beginning, stop_after_s):
        p = MetricPoint.from_bytes(rec.value)
        if not names or p.name in names:
            click.echo(point_line(p))


def under_replicated_line(ctx: Context) -> None:
    """The partitions of the platform's topics with fewer replicas in sync than they have:
    a broker is down or catching up, and one more lost would lose their acknowledged
    records."""
    from kafka.errors import KafkaError

    from shared.kafka.admin import under_replicated

    try:
        counts = under_replicated(ctx.bootstrap, [t.name(ctx.prefix) for t in TOPICS])
    except KafkaError as exc:
        click.secho(f"replication: unknown ({type(exc).__name__}: {exc})", fg="red")
        return
    behind = {t: n for t, n in counts.items() if n}
    total = sum(behind.values())
    click.secho(f"under-replicated partitions: {total}", bold=True, fg="red" if total else "green")
    for topic, n in sorted(behind.items()):
        click.echo(f"  {topic:28} {n}")


@click.command("status")
@pass_context
def status(ctx: Context) -> None:
    """One screen: every service's consumer lag, the last window's key figures, the alerts
    firing now."""
    from shared.kafka.lag import consumer_lag
    from shared.kafka.reader import read_to_end

    ctx.ensure_topics()
    click.secho("consumer lag (records not yet processed)", bold=True)
    from kafka.errors import KafkaError

    try:
        lag: dict[str, dict[str, int]] | None = consumer_lag(ctx.bootstrap, ctx.prefix)
    except KafkaError as exc:  # say so, and show the rest of the screen
        lag = None
        click.secho(f"  unknown: the broker did not tell ({type(exc).__name__}: {exc})", fg="red")
    if lag == {}:
        click.echo("  no service has committed offsets yet")
    for service, topics in (lag or {}).items():
        detail = ", ".join(f"{t} {n}" for t, n in sorted(topics.items()))
        click.echo(f"  {service:12} {sum(topics.values()):8}  ({detail})")

    under_replicated_line(ctx)
    points = [
        p
        for r in read_to_end(ctx.bootstrap, MONITORING_METRICS.name(ctx.prefix))
        if (p := MetricPoint.from_bytes(r.value)).name in KEY_FIGURES
    ]
    last = max((p.window_end for p in points), default=None)
    click.secho(
        "last window" + (f" (ending {last:%Y-%m-%d %H:%M:%S} UTC)" if last else ""), bold=True
    )
    shown = [p for p in points if p.window_end == last]
    if not shown:
        click.echo("  no closed window yet (is `llmops run monitoring` running?)")
    for p in sorted(shown, key=lambda p: (KEY_FIGURES.index(p.name), p.key)):
        click.echo("  " + point_line(p).split(" ", 1)[1])

    history = [
        Alert.from_bytes(r.value)
        for r in read_to_end(ctx.bootstrap, MONITORING_ALERTS.name(ctx.prefix))
    ]
    firing = firing_now(history)
    click.secho(f"alerts firing now: {len(firing)}", bold=True, fg="red" if firing else "green")
    for a in firing:
        click.echo(alert_line(a))


commands = click.Group(commands=[alerts_group, metrics_group, status])
