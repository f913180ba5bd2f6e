"""The on-call's dashboard (``/dashboard``): recent windows of the key metrics as plotly.js
charts and the alerts with their states, refreshed every few seconds. plotly.js is served from
the ``plotly`` package (``/dashboard/plotly.min.js``): nothing comes from a CDN.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from shared.contracts.events import Alert, MetricPoint

# (chart id, title, metric, field, y-axis title): one chart each, one line per series
PANELS: tuple[tuple[str, str, str, str, str], ...] = (
    ("requests", "Requests per window", "inference_requests", "count", "requests"),
    ("errors", "Error rate", "inference_error_rate", "value", "share"),
    ("latency", "Latency p95 by stage", "inference_latency_ms", "p95", "ms"),
    ("tokens", "Completion tokens p95", "inference_completion_tokens", "p95", "tokens"),
    ("freshness", "Freshness p99 (upstream to searchable)", "index_freshness_s", "p99", "s"),
    ("dead_letters", "Dead letters", "dead_letters", "count", "records"),
    ("feedback", "Thumbs-down rate", "feedback_thumbs_down_rate", "value", "share"),
    ("retrieval", "Queries finding nothing", "retrieval_empty_rate", "value", "share"),
    ("drift", "Question drift (MMD² against the reference)", "question_drift_mmd", "value", "MMD²"),
    ("lag", "Consumer lag", "consumer_lag", "value", "records"),
)
KEEP = 360  # windows per series: six hours of one-minute windows


@dataclass
class History:
    """Recent points of every series the dashboard shows, and recent alert transitions."""

    points: dict[str, deque[MetricPoint]] = field(default_factory=dict)
    transitions: deque[Alert] = field(default_factory=lambda: deque(maxlen=200))

    def add(self, new: Iterable[MetricPoint]) -> None:
        shown = {metric for _, _, metric, _, _ in PANELS}
        for p in new:
            if p.name in shown:
                self.points.setdefault(p.key, deque(maxlen=KEEP)).append(p)

    def alert(self, a: Alert) -> None:
        self.transitions.append(a)

    def data(self, firing: Iterable[Alert]) -> dict[str, Any]:
        """What the page draws: per panel, one line per series; the alerts."""
        panels = []
        for chart, title, metric, fld, unit in PANELS:
            lines = []
            for _, pts in sorted(self.points.items()):
                if not pts or pts[0].name != metric:
                    continue
                xs = [p.window_end.isoformat() for p in pts if getattr(p, fld) is not None]
                ys = [float(getattr(p, fld)) for p in pts if getattr(p, fld) is not None]
                label = ",".join(f"{k}={v}" for k, v in sorted(pts[0].labels.items()))
                lines.append({"name": label or metric, "x": xs, "y": ys})
            panels.append({"id": chart, "title": title, "unit": unit, "lines": lines})

        def row(a: Alert) -> dict[str, Any]:
            return {
                "rule": a.rule,
                "state": a.state.value,
                "severity": a.severity,
                "labels": {k: v for k, v in a.labels.items() if k not in ("alertname", "severity")},
                "summary": a.annotations.get("summary", ""),
                "runbook": a.annotations.get("runbook_url", ""),
                "starts_at": a.starts_at.isoformat(),
                "ends_at": a.ends_at.isoformat() if a.ends_at else None,
            }

        return {
            "panels": panels,
            "firing": [row(a) for a in firing],
            "transitions": [row(a) for a in reversed(self.transitions)],
        }


@cache
def plotly_js() -> bytes:
    """plotly.js as the pinned ``plotly`` package ships it."""
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()


@cache
def page() -> str:
    """The dashboard's HTML (it loads only from this server)."""
    return (resources.files("services.monitoring") / "templates" / "dashboard.html").read_text()
