"""Unit tests of ``services.monitoring.alerts``: alert rules and their lifecycle: pending,
firing, resolved; no data; what on-call sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from services.monitoring.exposition import Exposition
from services.monitoring.observe import lag_points
from services.monitoring.settings import RULES_FILE
from shared.contracts.events import AlertState, MetricKind, MetricPoint
from tests.unit.services.monitoring.clock import at


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
