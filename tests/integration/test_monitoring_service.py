"""The monitoring service on the real broker: windows published at close, an error-rate alert
that goes pending, fires once and resolves, the same alerts from a replay, a SIGKILL that
neither fires twice nor forgets to resolve, and bad records dead-lettered."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from shared.contracts.events import Alert, AlertState, DeadLetter, InferenceTrace, MetricPoint
from shared.contracts.topics import (
    INFERENCE_COMPLETED,
    MONITORING_ALERTS,
    MONITORING_DLQ,
    MONITORING_METRICS,
    TOPICS,
)
from shared.kafka.admin import create_topics
from shared.kafka.reader import read_to_end
from tests.kafka_helpers import choke
from tests.kafka_helpers import llmops as run_cli
from tests.kafka_helpers import wait_for as poll

WINDOW_S = 10
RULES = """
rules:
  - name: HighErrorRate
    metric: inference_error_rate
    condition: "> 0.5"
    min_count: 3
    for: 20s
    keep_firing_for: 20s
    severity: critical
    annotations:
      summary: "{{ value }} of requests of {{ labels.tenant }} fail"
      runbook_url: docs/operations.md#higherrorrate
"""
# an aligned start a while ago: event time, not the wall clock, drives everything
T0 = datetime.fromtimestamp((time.time() // 60 - 10) * 60, UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def traces(window: int, status: str, n: int = 5) -> list[InferenceTrace]:
    return [
        InferenceTrace(
            trace_id=f"w{window:02d}-{i:02d}-{status}",
            tenant="acme",
            api_key_id="k1",
            question="q?",
            status=status,
            timings_ms={"total": 100.0 + i},
            event_time=at(window * WINDOW_S + i),
        )
        for i in range(n)
    ]


ERRORS_FIRE = [t for w in range(2) for t in traces(w, "ok")] + [
    t for w in range(2, 6) for t in traces(w, "error")
]
CALM_RESOLVE = [t for w in range(6, 10) for t in traces(w, "ok")] + traces(12, "ok", 1)


def send(bootstrap: str, prefix: str, records: list[InferenceTrace | bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for r in records:
        raw = r if isinstance(r, bytes) else r.to_bytes()
        producer.send(INFERENCE_COMPLETED.name(prefix), key=b"k", value=raw)
    producer.flush()
    producer.close()


def alerts(bootstrap: str, prefix: str) -> list[Alert]:
    return [
        Alert.from_bytes(r.value) for r in read_to_end(bootstrap, MONITORING_ALERTS.name(prefix))
    ]


def wait_for(check: Callable[[], Any], timeout_s: float = 120.0) -> Any:
    return poll(check, timeout_s, every_s=0.5)


def monitoring_env(tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return {
        "MONITORING_RULES_FILE": str(rules),
        "MONITORING_WINDOW_S": str(WINDOW_S),
        "MONITORING_GRACE_S": "2",
    }


def transitions(found: list[Alert]) -> list[tuple[AlertState, datetime, datetime | None]]:
    return [(a.state, a.starts_at, a.ends_at) for a in found]


def llmops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, timeout_s=120)


def test_an_error_burst_fires_once_and_resolves_and_a_replay_says_the_same(
    kafka_bootstrap: str,
    topic_prefix: str,
    start_service: Any,
    service_env: dict[str, str],
    tmp_path: Path,
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    env = monitoring_env(tmp_path)
    svc = start_service("monitoring", **env)
    send(b, p, [*ERRORS_FIRE, *CALM_RESOLVE])
    found = wait_for(lambda: len(alerts(b, p)) >= 2 and alerts(b, p))
    assert found, svc.log()[-3000:]
    # pending at the close of the first failing window (30 s), firing 20 s later, resolved
    # 20 s after the first calm window closed (70 s): all in event time
    assert transitions(found) == [
        (AlertState.FIRING, at(50), None),
        (AlertState.RESOLVED, at(50), at(90)),
    ]
    firing = found[0]
    assert firing.labels["alertname"] == "HighErrorRate" and firing.labels["tenant"] == "acme"
    assert firing.annotations["summary"] == "1 of requests of acme fail"
    assert firing.fingerprint == found[1].fingerprint and firing.severity == "critical"

    points = [MetricPoint.from_bytes(r.value) for r in read_to_end(b, MONITORING_METRICS.name(p))]
    first = {
        pt.key: pt for pt in points if pt.window_start == at(0) and pt.name.startswith("inference")
    }
    requests = first['inference_requests{endpoint="query",status="ok",tenant="acme"}']
    assert requests.count == 5 and requests.window_end == at(WINDOW_S)
    latency = first['inference_latency_ms{endpoint="query",stage="total",tenant="acme"}']
    assert (latency.count, latency.min, latency.max) == (5, 100.0, 104.0)
    assert latency.p50 is not None and abs(latency.p50 - 102.0) <= 1.03  # DDSketch: 1%

    # the on-call's commands read the same topics
    tail = llmops("alerts", "tail", "--from-beginning", "--for", "3", env=service_env)
    assert tail.stdout.count("FIRING") == 1 and tail.stdout.count("RESOLVED") == 1, tail
    assert "1 of requests of acme fail" in tail.stdout
    assert "runbook: docs/operations.md#higherrorrate" in tail.stdout
    status = llmops("status", env=service_env)
    assert status.returncode == 0, status.stderr
    assert re.search(r"^  monitoring +\d+ ", status.stdout, re.M), status.stdout
    assert 'inference_requests{endpoint="query",status="ok",tenant="acme"}' in status.stdout
    assert "alerts firing now: 0" in status.stdout

    # the same records under another prefix give the same alerts, ids and times included
    replay = f"{p}replay."
    create_topics(b, replay)
    start_service("monitoring", KAFKA_TOPIC_PREFIX=replay, **env)
    send(b, replay, [*ERRORS_FIRE, *CALM_RESOLVE])
    again = wait_for(lambda: len(alerts(b, replay)) >= 2 and alerts(b, replay))
    assert [a.model_dump() for a in again] == [a.model_dump() for a in found]

    # consumer lag, polled from the broker each window, comes out as gauges
    def lag_of_monitoring() -> list[MetricPoint]:
        return [
            pt
            for r in read_to_end(b, MONITORING_METRICS.name(p))
            if (pt := MetricPoint.from_bytes(r.value)).name == "consumer_lag"
            and pt.labels["service"] == "monitoring"
        ]

    lag = wait_for(lag_of_monitoring, timeout_s=60)
    assert lag and lag[0].labels["topic"] in {t.base_name for t in TOPICS}


def test_a_killed_service_neither_fires_twice_nor_forgets_to_resolve(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any, tmp_path: Path
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    env = monitoring_env(tmp_path)
    svc = start_service("monitoring", **env)
    send(b, p, ERRORS_FIRE)
    assert wait_for(lambda: alerts(b, p)), svc.log()[-3000:]
    svc.kill()  # while the alert is firing
    again = start_service("monitoring", **env)
    send(b, p, CALM_RESOLVE)
    found = wait_for(
        lambda: any(a.state is AlertState.RESOLVED for a in alerts(b, p)) and alerts(b, p)
    )
    assert found, again.log()[-3000:]
    # a record re-sent after the kill carries the same event id: one transition each
    distinct = {a.event_id: a for a in found}
    assert transitions(list(distinct.values())) == [
        (AlertState.FIRING, at(50), None),
        (AlertState.RESOLVED, at(50), at(90)),
    ]


def test_a_bad_record_is_dead_lettered_and_the_windows_go_on(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any, tmp_path: Path
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    choking = "a question monitoring chokes on"
    start_service(
        "monitoring",
        **monitoring_env(tmp_path),
        **choke({"services.monitoring.observe:observe": choking}),
    )
    planted = traces(1, "ok", 1)[0].model_copy(update={"question": choking})
    # two days ahead of the clock: it used to move the watermark, and everything after it
    # counted as late until that hour came
    future = traces(2, "ok", 1)[0].model_copy(update={"event_time": at(0) + timedelta(days=2)})
    send(
        b, p, [*traces(0, "ok", 2), b'{"trace_id": "broken"}', planted, future, *traces(3, "ok", 1)]
    )
    letters = wait_for(
        lambda: (
            got
            if len(
                got := [
                    DeadLetter.from_bytes(r.value) for r in read_to_end(b, MONITORING_DLQ.name(p))
                ]
            )
            >= 2
            else None
        )
    )
    assert [(d.stage, d.error_type, d.topic) for d in letters] == [
        ("monitoring.decode", "ValidationError", INFERENCE_COMPLETED.name(p)),
        ("monitoring", "PlantedFailure", INFERENCE_COMPLETED.name(p)),
    ]

    def points() -> dict[str, dict[datetime, int]]:
        out: dict[str, dict[datetime, int]] = {}
        for r in read_to_end(b, MONITORING_METRICS.name(p)):
            pt = MetricPoint.from_bytes(r.value)
            out.setdefault(pt.name, {})[pt.window_start] = pt.count
        return out

    got = wait_for(lambda: got if "monitoring_future_events" in (got := points()) else None)
    assert got, points()
    # the windows around the bad records count the valid ones, in their own windows (later
    # windows may close too: with no input for a window and its grace, the wall clock moves
    # time on); the future record is counted where it arrived, and nothing came late
    requests = got["inference_requests"]
    assert requests[at(0)] == 2 and requests[at(30)] == 1, requests
    assert sum(got["monitoring_future_events"].values()) == 1
    assert "monitoring_late_events" not in got


def test_late_events_inside_the_grace_count_and_later_ones_are_counted_as_late(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any, tmp_path: Path
) -> None:
    b, p = kafka_bootstrap, topic_prefix

    def one(at_s: float, name: str) -> InferenceTrace:
        return InferenceTrace(
            trace_id=f"late-event-{name}",
            tenant="acme",
            api_key_id="k1",
            question="q?",
            status="ok",
            event_time=at(at_s),
        )

    start_service("monitoring", **monitoring_env(tmp_path))

    def points() -> dict[tuple[str, datetime], int]:
        return {
            (pt.name, pt.window_start): pt.count
            for r in read_to_end(b, MONITORING_METRICS.name(p))
            if (pt := MetricPoint.from_bytes(r.value)).name
            in ("inference_requests", "monitoring_late_events")
        }

    # window [10, 20) closes once event time passes 22 (grace 2 s), on every partition that
    # sends (the others stop holding it back after the grace)
    send(b, p, [one(15, "a"), one(21, "b"), one(19, "in-grace"), one(25, "c")])
    assert wait_for(lambda: ("inference_requests", at(10)) in points())
    send(b, p, [one(18, "late"), one(45, "closer")])
    got = wait_for(lambda: ("inference_requests", at(20)) in points() and points())
    assert got[("inference_requests", at(10))] == 2, got  # 15 and 19 (inside the grace)
    assert got[("inference_requests", at(20))] == 2, got  # 21 and 25; 18 merged nowhere
    assert got[("monitoring_late_events", at(20))] == 1, got  # counted where it arrived


DRIFT_RULES = """
rules:
  - name: QuestionDrift
    metric: question_drift_p
    condition: "< 0.01"
    for: 10s
    severity: warning
"""


def questions(kind: str, window: int, n: int = 20) -> list[InferenceTrace]:
    """Questions from one of two fixed distributions (seeded: every run asks the same)."""
    import random

    rng = random.Random(f"{kind}-{window}")
    if kind == "it":
        template = "How do I {} the {} on my {}?"
        words = [
            ["reset", "rotate", "renew", "configure", "unlock", "update", "sync"],
            ["VPN certificate", "password", "MFA token", "mail client", "laptop disk key"],
            ["work laptop", "phone", "office desktop", "tablet"],
        ]
    else:
        template = "How long should I {} {} for {} guests?"
        words = [
            ["roast", "braise", "bake", "grill", "poach", "steam"],
            ["chicken thighs", "salmon", "leg of lamb", "sourdough loaf", "carrots"],
            [str(n) for n in range(2, 10)],
        ]

    def make() -> str:
        return template.format(*(rng.choice(w) for w in words))

    return [
        InferenceTrace(
            trace_id=f"{kind}-{window:02d}-{i:02d}",
            tenant="acme",
            api_key_id="k1",
            question=make(),
            status="ok",
            retrieved=[{"chunk_id": "c", "doc_id": "d", "score": 0.5 + rng.random() / 4}],
            event_time=at(window * WINDOW_S + i / 4),
        )
        for i in range(n)
    ]


def test_questions_from_the_reference_raise_no_drift_and_new_ones_do(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any, tmp_path: Path
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    rules = tmp_path / "drift.yaml"
    rules.write_text(DRIFT_RULES)
    start_service(
        "monitoring",
        MONITORING_RULES_FILE=str(rules),
        MONITORING_WINDOW_S=str(WINDOW_S),
        MONITORING_GRACE_S="2",
        MONITORING_DRIFT_REFERENCE_WINDOWS="4",
        MONITORING_DRIFT_MIN_QUESTIONS="15",
    )
    same = [t for w in range(8) for t in questions("it", w)]
    other = [t for w in range(8, 11) for t in questions("cooking", w)]
    send(b, p, [*same, *other, *questions("it", 14, 1)])

    def drift() -> dict[datetime, float]:
        return {
            pt.window_start: pt.value
            for r in read_to_end(b, MONITORING_METRICS.name(p))
            if (pt := MetricPoint.from_bytes(r.value)).name == "question_drift_p"
            and pt.value is not None
        }

    got = wait_for(lambda: at(10 * WINDOW_S) in drift() and drift(), 180)
    assert got, "drift measured for every window with a reference"
    before = [v for start, v in got.items() if start < at(8 * WINDOW_S)]
    after = [v for start, v in got.items() if at(8 * WINDOW_S) <= start < at(10 * WINDOW_S)]
    print(f"drift p-values, same questions: {before}; new ones: {after}")
    assert len(before) == 7 and len(after) == 2
    assert sum(v < 0.01 for v in before) == 0, "no false alarm over seven windows"
    assert all(v < 0.01 for v in after)
    fired = [a for a in alerts(b, p) if a.state is AlertState.FIRING]
    # pending at the first new window's close (90 s), firing at the next (100 s)
    assert [(a.rule, a.starts_at) for a in fired] == [("QuestionDrift", at(100))]


def test_the_on_call_commands_work_on_a_cluster_with_no_topics_yet(
    kafka_bootstrap: str, service_env: dict[str, str]
) -> None:
    env = {**service_env, "KAFKA_TOPIC_PREFIX": f"fresh{time.monotonic_ns()}."}
    status = llmops("status", env=env)
    assert status.returncode == 0, status.stderr
    assert "no closed window yet" in status.stdout and "alerts firing now: 0" in status.stdout
    tail = llmops("alerts", "tail", "--for", "1", env=env)
    assert tail.returncode == 0 and tail.stdout == "", tail.stderr
