"""Unit tests of ``services.monitoring.observe``: what each record says to monitoring, and the
point of a failed poll."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.monitoring.alerts import (
    evaluate,
    load_rules,
)
from services.monitoring.observe import LAG, POLL_FAILED, observe, poll_point
from services.monitoring.settings import RULES_FILE
from shared.contracts.events import AlertState, InferenceTrace
from tests.unit.services.monitoring.clock import at


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
