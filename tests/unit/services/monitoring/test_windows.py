"""Unit tests of ``services.monitoring.windows``: event-time windows: closing after the grace,
late and future events, replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.monitoring.windows import LATE, Observation, Windows
from shared.contracts.events import MetricKind, MetricPoint
from tests.unit.services.monitoring.clock import at


def latency(v: float) -> Observation:
    return Observation("lat", MetricKind.DISTRIBUTION, (("tenant", "a"),), v)


def test_a_window_closes_after_its_grace_and_late_events_are_counted_not_merged() -> None:
    w = Windows(size_s=60, grace_s=10)
    for i in range(1, 1001):
        w.add(at(i * 0.05), [latency(float(i))])  # all in [12:00, 12:01)
    assert w.close() == [] and not w.closable()
    w.add(at(65), [latency(5.0)])  # 12:01:05: inside the grace, the first window stays open
    assert w.close() == []
    w.add(at(30), [latency(1e6)])  # late but within grace: merged into its window
    w.add(at(70), [])  # the watermark passes 12:01 + 10 s
    assert w.closable()
    ((start, end, points),) = w.close()
    assert not w.closable()
    assert (start, end) == (at(0), at(60))
    (p,) = points
    assert p.count == 1001 and p.max == 1e6 and p.min == 1
    assert p.p50 == pytest.approx(501, rel=0.02) and p.p99 == pytest.approx(991, rel=0.02)
    assert w.add(at(59), [latency(7.0)]) == at(60)  # its window has closed: counted there
    w.add(at(130), [])
    ((_, _, second),) = w.close()
    by_name = {p.name: p for p in second}
    assert by_name[LATE].count == 1, "counted where it arrived"
    assert by_name["lat"].count == 1 and by_name["lat"].max == 5.0, "and merged nowhere"


def test_windows_without_data_still_close_and_replays_give_the_same_points() -> None:
    def run() -> list[tuple[datetime, list[MetricPoint]]]:
        w = Windows(size_s=10, grace_s=0)
        w.add(at(1), [Observation("n", MetricKind.COUNTER, ())])
        w.add(at(35), [Observation("n", MetricKind.COUNTER, ())])
        return [(s, pts) for s, _, pts in w.close()]

    first = run()
    # the newest window closed is there even without data; the empty ones before it are not
    assert [(s, len(p)) for s, p in first] == [(at(0), 1), (at(20), 0)]
    assert run() == first  # event ids and times too


def test_a_far_future_event_moves_no_window_and_closing_skips_empty_ones() -> None:
    w = Windows(size_s=60, grace_s=10, max_future_s=300)
    now = at(30)
    w.add(at(20), [Observation("n", MetricKind.COUNTER, ())], now=now)
    start = w.add(at(48 * 3600), [Observation("n", MetricKind.COUNTER, ())], now=now)
    assert start == at(0), "counted where it arrived"
    assert w.watermark == at(20) and not w.closable(), "the watermark did not move"
    w.add(at(100), [Observation("n", MetricKind.COUNTER, ())], now=at(100))
    ((s, _, points),) = w.close()
    by = {p.name: p.count for p in points}
    assert s == at(0) and by == {"n": 1, "monitoring_future_events": 1}
    # a year-2999 stamp within the bound (a clock that is right, much later): the windows in
    # between are not walked, only the ones with data and the newest are closed
    far = datetime(2999, 1, 1, tzinfo=UTC)
    w.add(far, [], now=far)
    closed = w.close()
    assert [c[0] for c in closed] == [at(60), w.start_of(far - timedelta(seconds=70))]


def test_the_watermark_waits_for_every_source_with_recent_records() -> None:
    # a replay reads one partition's backlog before another's: the fast one must not close
    # the windows the slow one is still filling (a window of 150 traces closed with 42)
    w = Windows(size_s=10, grace_s=5, idle_s=30)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    obs = [Observation("n", MetricKind.COUNTER, ())]
    w.expect([("t", 0), ("t", 1)], now=99.0)  # both assigned, neither read yet
    for s in range(0, 60, 2):  # partition 0's backlog, a minute of it, read first
        w.add(t0 + timedelta(seconds=s), obs, source=("t", 0), seen=100.0)
    assert w.watermark is None and not w.closable(), "partition 1 has sent nothing yet"
    w.add(t0 + timedelta(seconds=1), obs, source=("t", 1), seen=100.5)
    assert w.watermark == t0 + timedelta(seconds=1), "held back by partition 1"
    assert not w.closable()
    for s in range(3, 60, 2):  # partition 1 catches up
        w.add(t0 + timedelta(seconds=s), obs, source=("t", 1), seen=101.0)
    closed = {start: points for start, _, points in w.close()}
    first = closed[t0]
    assert [p.count for p in first] == [10], "every record of the first window, none late"
    assert all(p.name != LATE for points in closed.values() for p in points)


def test_a_quiet_source_stops_holding_the_watermark_back() -> None:
    w = Windows(size_s=10, grace_s=5, idle_s=30)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    obs = [Observation("n", MetricKind.COUNTER, ())]
    w.add(t0, obs, source=("dlq", 0), seen=0.0)  # one record, then nothing
    w.add(t0 + timedelta(seconds=40), obs, source=("t", 0), seen=10.0)
    assert w.watermark == t0
    w.refresh(31.0)  # the DLQ partition has been quiet for longer than idle_s
    assert w.watermark == t0 + timedelta(seconds=40) and w.closable()
