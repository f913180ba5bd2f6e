"""What Prometheus scrapes from ``/metrics``: the last closed window of every series as
gauges, the alerts firing now, and a latency histogram of the requests seen.

Names are ``llmops_<metric>`` for a point's value, with ``_p50``, ``_p95``, ``_p99`` for a
distribution's quantiles (DDSketch, the window's) and ``_window_count`` for how many events
the window held. Prometheus then keeps the history and runs its own rules on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.contracts.events import Alert, MetricKind, MetricPoint

PREFIX = "llmops_"
# request latency buckets, in seconds: 50 ms to 2 minutes
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


@dataclass(eq=False)  # a registry keeps collectors in a dict: by identity
class Latest(Collector):
    """The newest point of every series and the alerts firing now, as Prometheus gauges."""

    firing: Callable[[], Iterable[Alert]] = list
    points: dict[str, MetricPoint] = field(default_factory=dict)

    def update(self, points: Iterable[MetricPoint]) -> None:
        for p in points:
            old = self.points.get(p.key)
            if old is None or p.window_end >= old.window_end:
                self.points[p.key] = p

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}

        def gauge(name: str, doc: str, labels: dict[str, str], value: float) -> None:
            fam = families.get(name)
            if fam is None:
                fam = families[name] = GaugeMetricFamily(name, doc, labels=sorted(labels))
            fam.add_metric([labels[k] for k in sorted(labels)], value)

        for p in sorted(self.points.values(), key=lambda p: p.key):
            base = f"{PREFIX}{p.name}"
            what = f"{p.name} over the last closed {p.kind.value} window"
            if p.value is not None:
                gauge(base, what, p.labels, p.value)
            gauge(
                f"{base}_window_count", f"events in the last window of {p.name}", p.labels, p.count
            )
            if p.kind is MetricKind.DISTRIBUTION:
                for q in ("p50", "p95", "p99"):
                    v = getattr(p, q)
                    if v is not None:
                        gauge(f"{base}_{q}", f"{q} of {p.name} (DDSketch, 1%)", p.labels, v)
        alerts = GaugeMetricFamily(
            f"{PREFIX}alerts_firing",
            "1 for every alert firing now",
            labels=["alertname", "severity", "fingerprint"],
        )
        for a in sorted(self.firing(), key=lambda a: a.fingerprint):
            alerts.add_metric([a.rule, a.severity, a.fingerprint], 1.0)
        yield from families.values()
        yield alerts


@dataclass
class Exposition:
    """The registry behind ``/metrics``; ``firing`` gives the alerts firing now."""

    firing: Callable[[], Iterable[Alert]]
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.latest = Latest(self.firing)
        self.registry.register(self.latest)
        self.latency = Histogram(
            f"{PREFIX}request_latency_seconds",
            "Latency of the requests the monitoring service has read, by stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def text(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
