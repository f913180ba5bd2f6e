"""The monitoring service's pure parts: windows, what records say, rules and the lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.monitoring.alerts import (
    INACTIVE,
    Lifecycle,
    NoData,
    Rule,
    RulesError,
    evaluate,
    fingerprint,
    firing_now,
    load_rules,
    step,
)
from services.monitoring.commands import alert_line, point_line
from services.monitoring.drift import Reference, mmd_test, sampled, score_shift
from services.monitoring.exposition import Exposition
from services.monitoring.observe import LAG, POLL_FAILED, lag_points, observe, poll_point
from services.monitoring.settings import RULES_FILE
from services.monitoring.windows import LATE, Observation, Windows
from shared.contracts.events import AlertState, InferenceTrace, MetricKind, MetricPoint

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


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


def trace(status: str = "ok", total: float = 120.0, score: float = 0.8) -> bytes:
    return InferenceTrace(
        trace_id="t" * 16,
        tenant="acme",
        api_key_id="k",
        question="q?",
        status=status,
        timings_ms={"retrieve": 20.0, "total": total},
        retrieved=[{"chunk_id": "c", "doc_id": "d", "score": score}],
        event_time=at(3),
    ).to_bytes()


def test_a_trace_says_requests_errors_latency_and_retrieval() -> None:
    seen = observe("inference.completed", trace(), 0.3)
    assert seen.at == at(3)
    by = {(o.name, dict(o.labels).get("stage")): o for o in seen.observations}
    assert by[("inference_error_rate", None)].value == 0.0
    assert by[("inference_latency_ms", "total")].value == 120.0
    assert by[("retrieval_empty_rate", None)].value == 0
    failed = observe("inference.completed", trace(status="error"), 0.3).observations
    assert {o.name: o.value for o in failed}["inference_error_rate"] == 1.0
    with pytest.raises(ValidationError):
        observe("inference.completed", b'{"not": "a trace"}', 0.3)


def rule(**kw: object) -> Rule:
    base: dict[str, object] = {"name": "R", "metric": "m", "condition": "> 1"}
    return Rule.model_validate({**base, **kw})


def test_pending_then_firing_then_resolved_after_keep_firing_for() -> None:
    r = rule(**{"for": "2m", "keep_firing_for": "1m"})
    s = step(INACTIVE, 5, at(0), r)
    assert s.state.phase == "pending" and s.publish is None
    s = step(s.state, 5, at(60), r)
    assert s.publish is None
    s = step(s.state, 5, at(120), r)
    assert s.publish is AlertState.FIRING and s.state.fired_at == at(120)
    s = step(s.state, 0, at(180), r)  # stops holding: keeps firing for a minute
    assert s.publish is None and s.state.phase == "firing"
    s = step(s.state, 5, at(200), r)  # holds again: no second firing (no flapping)
    assert s.publish is None
    s = step(s.state, 0, at(240), r)
    assert s.publish is None
    s = step(s.state, 0, at(300), r)  # a minute after it stopped holding
    assert s.publish is AlertState.RESOLVED and s.state.phase == "inactive"
    # a pending alert that stops holding goes back quietly
    assert step(step(INACTIVE, 5, at(0), r).state, 0, at(60), r) == step(INACTIVE, 0, at(60), r)


def test_no_data_policies_and_the_repeat_interval() -> None:
    firing = step(INACTIVE, 5, at(0), rule()).state
    assert step(firing, None, at(60), rule()).publish is AlertState.RESOLVED
    assert step(firing, None, at(60), rule(no_data="keep_state")).state == firing
    assert step(firing, None, at(60), rule(no_data="alerting")).publish is None
    repeat = rule(repeat_interval="5m")
    assert step(firing, 5, at(240), repeat).publish is None
    again = step(firing, 5, at(300), repeat)
    assert again.publish is AlertState.FIRING and again.state.last_sent == at(300)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0, 3)), max_size=40), st.sampled_from(NoData))
def test_firing_and_resolved_alternate_whatever_the_values(
    values: list[float | None], no_data: NoData
) -> None:
    r = rule(**{"for": "1m", "keep_firing_for": "2m", "repeat_interval": "100d"}, no_data=no_data)
    state, published = INACTIVE, []
    for i, v in enumerate(values):
        s = step(state, v, at(60 * i), r)
        state = s.state
        if s.publish is not None:
            published.append(s.publish)
    # firing, resolved, firing, ... : never a second firing or a resolved out of turn
    assert all(
        p is (AlertState.FIRING if i % 2 == 0 else AlertState.RESOLVED)
        for i, p in enumerate(published)
    )
    assert Lifecycle.from_json(state.to_json()) == state


def point(value: float, tenant: str = "a", count: int = 10) -> MetricPoint:
    return MetricPoint(
        name="m",
        kind=MetricKind.RATIO,
        labels={"tenant": tenant},
        window_start=at(0),
        window_end=at(60),
        count=count,
        value=value,
    )


def test_each_series_is_its_own_alert_with_a_stable_fingerprint() -> None:
    r = rule(annotations={"summary": "{{ labels.tenant }} at {{ value }}"}, min_count=5)
    states, alerts = evaluate([r], [point(2, "a"), point(0, "b"), point(9, "c", 3)], {}, at(60))
    (alert,) = alerts
    assert alert.labels["tenant"] == "a" and alert.annotations["summary"] == "a at 2"
    assert alert.fingerprint == fingerprint("R", {"tenant": "a"}) and alert.starts_at == at(60)
    assert alert.event_time == at(60)  # event time: a replay gives the same record
    states2, alerts2 = evaluate([r], [], states, at(120))  # no data for a: resolves
    assert [a.state for a in alerts2] == [AlertState.RESOLVED]
    assert alerts2[0].ends_at == at(120) and alerts2[0].starts_at == at(60)
    assert all(s.phase == "inactive" for s in states2.values())


def test_the_default_rules_load_and_a_bad_file_names_its_line(tmp_path: Path) -> None:
    names = {r.name for r in load_rules(RULES_FILE)}
    assert {"HighErrorRate", "LLMUnavailable", "DeadLetters", "StaleIndex"} <= names
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - name: A\n    metric: m\n    condition: '> 1'\n"
        "  - name: B\n    metric: m\n    condition: 'more than 3'\n"
    )
    with pytest.raises(RulesError, match=r"rules.yaml:5: condition: .*more than 3"):
        load_rules(bad)
    bad.write_text("rules:\n  - name: A\n    metric: m\n    condition: '> 1'\n    for: soon\n")
    with pytest.raises(RulesError, match=r":2: for: .*not a duration"):
        load_rules(bad)
    bad.write_text("rules:\n  - name: [unclosed\n")
    with pytest.raises(RulesError, match=r"rules.yaml:\d+: not YAML"):
        load_rules(bad)
    bad.write_text(
        "rules:\n  - name: A\n    metric: m\n    condition: '> 1'\n"
        "    annotations: {summary: '{{ value '}\n"
    )
    with pytest.raises(RulesError, match=r":2: annotations: .*annotation summary"):
        load_rules(bad)


def test_what_the_on_call_sees() -> None:
    r = rule(annotations={"summary": "{{ labels.tenant }} fails", "runbook_url": "rb#x"})
    _, (fired,) = evaluate([r], [point(2, "a")], {}, at(60))
    firing = {("R", (("tenant", "a"),)): step(INACTIVE, 2, at(60), r).state}
    _, (resolved,) = evaluate([r], [], firing, at(120))
    line = alert_line(fired)
    assert "FIRING" in line and "tenant=a" in line and "runbook: rb#x" in line
    assert "\x1b[31m" in line and "\x1b[32m" in alert_line(resolved)  # red, then green
    _, (other,) = evaluate([rule(name="S", severity="critical")], [point(2, "b")], {}, at(60))
    assert firing_now([fired, other]) == [other, fired]  # most severe first
    assert firing_now([fired, other, resolved]) == [other]
    (lag,) = lag_points({"embedding": {"docs.chunks": 1200}}, at(60), 60)
    assert (lag.key, lag.value, lag.window_start) == (
        'consumer_lag{service="embedding",topic="docs.chunks"}',
        1200.0,
        at(0),
    )
    assert point_line(lag).endswith(f"{lag.key} count=1 value=1200")


def test_the_prometheus_text_holds_the_last_window_and_the_alerts_firing() -> None:
    r = rule()
    _, (fired,) = evaluate([r], [point(2, "a")], {}, at(60))
    exposition = Exposition(lambda: [fired])
    older = point(0.5, "a").model_copy(update={"window_end": at(0)})
    dist = MetricPoint(
        name="lat",
        kind=MetricKind.DISTRIBUTION,
        labels={"stage": "total"},
        window_start=at(0),
        window_end=at(60),
        count=3,
        value=2.0,
        p50=2.0,
        p95=2.9,
        p99=3.0,
    )
    exposition.latest.update([point(2, "a"), older, dist])
    exposition.latency.labels("total").observe(0.2)
    text = exposition.text().decode()
    assert 'llmops_m{tenant="a"} 2.0' in text  # the newest window, not the older one
    assert 'llmops_m_window_count{tenant="a"} 10.0' in text
    assert 'llmops_lat_p95{stage="total"} 2.9' in text
    assert f'llmops_alerts_firing{{alertname="R",fingerprint="{fired.fingerprint}"' in text
    assert 'llmops_request_latency_seconds_bucket{le="0.25",stage="total"} 1.0' in text


def test_mmd_keeps_its_false_alarm_rate_and_sees_a_shift() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(200, 16))
    same = [mmd_test(rng.normal(size=(40, 16)), reference, permutations=100).p for _ in range(40)]
    false_alarms = sum(p < 0.01 for p in same)
    assert false_alarms <= 2, sorted(same)[:5]  # alpha 1%: about 0.4 of 40 expected
    shifted = mmd_test(rng.normal(loc=0.6, size=(40, 16)), reference, permutations=100)
    assert shifted.p < 0.01 and shifted.mmd2 > max(
        mmd_test(rng.normal(size=(40, 16)), reference, permutations=20).mmd2 for _ in range(5)
    )
    x = rng.normal(size=(30, 8))
    assert mmd_test(x, reference[:, :8]) == mmd_test(x, reference[:, :8])  # deterministic


def test_retrieval_scores_shift_and_the_reference_rolls_or_stays_pinned() -> None:
    rng = np.random.default_rng(3)
    assert score_shift(rng.uniform(0.5, 0.9, 60), rng.uniform(0.5, 0.9, 300)) > 0.01
    assert score_shift(rng.uniform(0.2, 0.5, 60), rng.uniform(0.5, 0.9, 300)) < 0.001
    rolling = Reference(windows=2)
    for i in range(4):
        rolling.add(at(60 * i), np.full((3, 2), float(i)), [float(i)])
    vectors, scores = rolling.sample()
    assert vectors is not None and set(vectors[:, 0]) == {2.0, 3.0} and scores == [2.0, 3.0]
    pinned = Reference(pinned_from=at(60), pinned_to=at(180))
    for i in range(5):
        pinned.add(at(60 * i), np.full((1, 2), float(i)), [float(i)])
    assert pinned.sample()[1] == [1.0, 2.0]
    assert sampled("abc", 1.0) and not sampled("abc", 0.0)
    assert sampled("abc", 0.5) == sampled("abc", 0.5)


def test_monitoring_that_cannot_poll_fires_its_own_alert() -> None:
    (rule_,) = [r for r in load_rules(RULES_FILE) if r.metric == POLL_FAILED]
    states: dict[Any, Any] = {}
    fired = []
    for minute in range(4):  # a failed poll every window: consumer lag is unknown
        now = at(60 * minute)
        states, alerts = evaluate([rule_], [poll_point(LAG, True, now, 60)], states, now)
        fired += alerts
    assert [(a.rule, a.state) for a in fired] == [("MonitoringPollFailing", AlertState.FIRING)]
    assert fired[0].labels["poll"] == "consumer_lag"
    ok = at(60 * 4)
    _, later = evaluate([rule_], [poll_point(LAG, False, ok, 60)], states, ok)
    assert later == [], "keep_firing_for holds it a while"
