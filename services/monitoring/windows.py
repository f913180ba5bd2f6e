"""Tumbling event-time windows with a grace period: pure, no Kafka.

Observations go into the window their event time falls in. A window closes when the
watermark passes its end plus the grace period; it is then turned into one ``MetricPoint``
per series. The watermark is the latest event time that every source (a topic's partition)
with recent records has reached: a replay after a restart reads one partition's backlog
before another's, and a single latest event time over all of them ran ahead of the slower
ones by more than the grace (a window of 150 traces closed with 42, the rest "late"). A
source that sends nothing for ``idle_s`` (wall clock) stops holding it back. An observation
for a window that has already closed is not merged into anything: it is counted as late, in
the window it arrived in.
Quantiles come from DDSketch (mergeable, with a bounded relative error), never from sorted
lists.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ddsketch import DDSketch

from shared.contracts.events import MetricKind, MetricPoint

# A quantile within 1% of the true value, whatever the scale (latencies, scores, tokens).
RELATIVE_ACCURACY = 0.01
LATE = "monitoring_late_events"
FUTURE = "monitoring_future_events"

Labels = tuple[tuple[str, str], ...]


def labels_of(labels: dict[str, str]) -> Labels:
    """Labels in a hashable, ordered form."""
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Observation:
    """One thing a record says about one metric series.

    counter: counts one (``value`` ignored); distribution: one observed value; ratio: one
    event, matching when ``value`` is 1; gauge: a level.
    """

    name: str
    kind: MetricKind
    labels: Labels
    value: float = 1.0


@dataclass
class Aggregate:
    """What a window knows of one series."""

    kind: MetricKind
    count: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    last: float | None = None
    sketch: DDSketch | None = None

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.last = value
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)
        if self.kind is MetricKind.DISTRIBUTION:
            if self.sketch is None:
                self.sketch = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
            self.sketch.add(value)

    def point(self, name: str, labels: Labels, start: datetime, end: datetime) -> MetricPoint:
        common = {
            "name": name,
            "kind": self.kind,
            "labels": dict(labels),
            "window_start": start,
            "window_end": end,
            "count": self.count,
            # deterministic: a replay of the same records gives the same events
            "event_id": f"{name}|{labels}|{start.isoformat()}",
            "event_time": end,
        }
        if self.kind is MetricKind.COUNTER:
            return MetricPoint(**common, value=float(self.count))
        if self.kind is MetricKind.RATIO:
            return MetricPoint(**common, value=self.total / self.count, sum=self.total)
        if self.kind is MetricKind.GAUGE:
            return MetricPoint(**common, value=self.last, min=self.low, max=self.high)
        sketch = self.sketch
        assert sketch is not None
        q = sketch.get_quantile_value
        return MetricPoint(
            **common,
            value=self.total / self.count,
            sum=self.total,
            min=self.low,
            max=self.high,
            # the sketch's answer is within 1%; clamp it to what was seen
            p50=_clamp(q(0.50), self.low, self.high),
            p95=_clamp(q(0.95), self.low, self.high),
            p99=_clamp(q(0.99), self.low, self.high),
        )


def _clamp(v: float | None, low: float | None, high: float | None) -> float | None:
    if v is None or low is None or high is None:
        return v
    return min(max(v, low), high)


@dataclass
class Windows:
    """Open windows, by start, each with its series."""

    size_s: float
    grace_s: float
    # how far ahead of the wall clock a record's event time may be; None: no bound
    max_future_s: float | None = None
    # how long (wall clock) a source may send nothing and still hold the watermark back
    idle_s: float | None = None
    watermark: datetime | None = None
    open: dict[datetime, dict[tuple[str, Labels], Aggregate]] = field(default_factory=dict)
    closed_before: datetime | None = None  # every window starting earlier has closed
    # per source: the latest event time it brought (None: none yet, since it was assigned),
    # and when (monotonic seconds) it last sent or was assigned
    marks: dict[Hashable, tuple[datetime | None, float]] = field(default_factory=dict)

    def start_of(self, t: datetime) -> datetime:
        """The start of the window ``t`` falls in (windows are aligned to the epoch)."""
        ts = t.timestamp()
        return datetime.fromtimestamp(ts - ts % self.size_s, UTC)

    def add(
        self,
        t: datetime,
        observations: Iterable[Observation],
        now: datetime | None = None,
        source: Hashable | None = None,
        seen: float = 0.0,
    ) -> datetime:
        """Count a record's observations at event time ``t``; returns the start of the window
        it counts in. A record whose window has closed is late: it is counted as late in the
        newest open window, and that window's start is returned. A record more than
        ``max_future_s`` ahead of ``now`` (the wall clock) is counted as a future event in
        the window of ``now`` and moves no watermark: one wrong clock must not close every
        window before its time. ``source`` (a topic's partition) and ``seen`` (monotonic
        seconds) say where and when the record came: the watermark waits for every source
        that sent within ``idle_s``; without a source, the latest event time is the mark."""
        if self.max_future_s is not None:
            now = now or datetime.now(UTC)
            if t > now + timedelta(seconds=self.max_future_s):
                arrived = self.start_of(now)
                if self.closed_before is not None:
                    arrived = max(arrived, self.closed_before)
                self._series(arrived, FUTURE, MetricKind.COUNTER, ()).add(1.0)
                return arrived
        start = self.start_of(t)
        if source is None:
            self.watermark = t if self.watermark is None else max(self.watermark, t)
        else:
            old = self.marks.get(source, (None, seen))[0]
            self.marks[source] = (t if old is None else max(old, t), seen)
            self.refresh(seen)
        if self.closed_before is not None and start < self.closed_before:
            late_at = max(self.start_of(self.watermark or t), self.closed_before)
            self._series(late_at, LATE, MetricKind.COUNTER, ()).add(1.0)
            return late_at
        for o in observations:
            self._series(start, o.name, o.kind, o.labels).add(o.value)
        self.open.setdefault(start, {})
        return start

    def advance(self, t: datetime) -> None:
        """Move the watermark to ``t`` without a record (time passes while nothing comes)."""
        self.watermark = t if self.watermark is None else max(self.watermark, t)

    def expect(self, sources: Iterable[Hashable], now: float) -> None:
        """Sources (partitions) just assigned: each holds the watermark back, from ``now``,
        until it sends or stays quiet for ``idle_s`` (a replay may reach it last)."""
        for source in sources:
            self.marks.setdefault(source, (None, now))

    def refresh(self, now: float) -> None:
        """The watermark from the sources' marks at ``now`` (monotonic seconds): the
        earliest latest event time of the sources that sent within ``idle_s`` (one that has
        sent nothing yet holds it where it is), or, all of them quiet, the latest of all. It
        never moves back."""
        marks = list(self.marks.values())
        active = [t for t, at in marks if self.idle_s is None or now - at <= self.idle_s]
        if any(t is None for t in active):
            return
        seen = [t for t in active if t is not None] or [t for t, _ in marks if t is not None]
        if not seen:
            return
        mark = min(seen)
        self.watermark = mark if self.watermark is None else max(self.watermark, mark)

    def _series(self, start: datetime, name: str, kind: MetricKind, labels: Labels) -> Aggregate:
        series = self.open.setdefault(start, {})
        agg = series.get((name, labels))
        if agg is None:
            agg = series[(name, labels)] = Aggregate(kind)
        return agg

    def _oldest(self) -> datetime | None:
        """The start of the oldest window not closed yet (None: no record seen)."""
        starts = [*self.open, *([self.closed_before] if self.closed_before else [])]
        return min(starts) if starts and self.watermark is not None else None

    def closable(self) -> bool:
        """Whether ``close`` would close a window now (cheap: checked for every record)."""
        first = self._oldest()
        if first is None or self.watermark is None:
            return False
        return first + timedelta(seconds=self.size_s + self.grace_s) <= self.watermark

    def close(self) -> list[tuple[datetime, datetime, list[MetricPoint]]]:
        """Close every window whose end plus grace the watermark has passed, oldest first:
        (start, end, its points) for each window that holds data, and for the newest one
        closed even when it holds none (rules need to see that nothing came). The empty
        windows before it are skipped, not walked: closing costs the windows with data,
        however far the watermark moved."""
        first = self._oldest()
        if first is None or self.watermark is None:
            return []
        size = timedelta(seconds=self.size_s)
        grace = timedelta(seconds=self.grace_s)
        last = self.start_of(self.watermark - size - grace)  # the newest window now due
        if last < first:
            return []
        starts = sorted(s for s in self.open if s <= last)
        if not starts or starts[-1] != last:
            starts.append(last)
        out = []
        for start in starts:
            series = self.open.pop(start, {})
            end = start + size
            points = [agg.point(n, labels, start, end) for (n, labels), agg in series.items()]
            points.sort(key=lambda p: p.key)
            out.append((start, end, points))
        self.closed_before = last + size
        return out
