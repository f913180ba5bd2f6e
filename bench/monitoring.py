"""Monitoring throughput over Kafka versus the same window work in-process, and how soon an
alert fires, side by side in one run.

1. Traces per second through the monitoring service (a separate process reading
   ``inference.completed`` and publishing ``monitoring.metrics``) divided by traces per second
   for the same decoding, windowing, drift (the questions are embedded) and rule evaluation
   called in-process, both with the default settings (aim >= 0.85). The
   service's rate is measured between the first and the last window it published (broker
   timestamps), so start-up and group join are not counted.
2. Live traffic at a steady rate turns from healthy to failing at a window boundary: the wall
   time from the first failing trace to the ``firing`` record on ``monitoring.alerts``,
   divided by window + ``for`` + grace (aim <= 1.1).

    python bench/monitoring.py [--traces 20000] [--windows 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaProducer  # noqa: E402

from bench._env import BenchKafka  # noqa: E402
from services.monitoring.alerts import Rule, evaluate  # noqa: E402
from services.monitoring.drift import DriftMeter, Reference  # noqa: E402
from services.monitoring.observe import observe  # noqa: E402
from services.monitoring.settings import MonitoringSettings  # noqa: E402
from services.monitoring.windows import Windows  # noqa: E402
from shared.contracts.events import Alert, InferenceTrace, MetricPoint, RetrievedChunk  # noqa: E402
from shared.contracts.topics import INFERENCE_COMPLETED, MONITORING_ALERTS, MONITORING_METRICS  # noqa: E402
from shared.kafka.reader import read_to_end  # noqa: E402
from shared.models.embedder import Embedder  # noqa: E402
from tests.kafka_helpers import ServiceProcess  # noqa: E402

WINDOW_S, GRACE_S, FOR_S = 5, 1, 10
RULES = f"""
rules:
  - name: HighErrorRate
    metric: inference_error_rate
    condition: "> 0.5"
    min_count: 5
    for: {FOR_S}s
    keep_firing_for: 10s
    severity: critical
"""


def trace(i: int, at: datetime, status: str = "ok") -> InferenceTrace:
    return InferenceTrace(
        trace_id=f"bench-{i:08d}",
        tenant=f"t{i % 3}",
        api_key_id="k",
        question="How do I rotate the VPN certificate?",
        answer="Run the rotation job [1].",
        retrieved=[RetrievedChunk(chunk_id="c", doc_id="d", score=0.6 + (i % 7) / 20)],
        prompt_name="rag",
        prompt_version="v3",
        model="gemma3-270m",
        prompt_tokens=300 + i % 50,
        completion_tokens=40 + i % 30,
        timings_ms={"retrieve": 20 + i % 9, "first_token": 300 + i % 97, "total": 900 + i % 400},
        status=status,
        event_time=at,
    )


def send(bootstrap: str, topic: str, raws: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i, raw in enumerate(raws):
        producer.send(topic, key=str(i).encode(), value=raw)
    producer.flush()
    producer.close()


def in_process(raws: list[bytes], rules: list[Rule], embedder: Embedder) -> float:
    """Traces per second for decode + windows + drift + rules, as the agent does them, with
    the service's default settings."""
    s = MonitoringSettings()
    windows, states = Windows(s.window_s, s.grace_s, s.max_future_s), {}
    drift = DriftMeter(
        Reference(windows=s.drift_reference_windows),
        per_window=s.drift_max_per_window,
        min_questions=s.drift_min_questions,
        permutations=s.drift_permutations,
    )
    t0 = time.perf_counter()
    for raw in raws:
        seen = observe("inference.completed", raw, s.retrieval_threshold)
        start = windows.add(seen.at, seen.observations)
        if seen.question is not None:
            drift.add(start, *seen.question, seen.top_score)
        for start, end, points in windows.close():
            points = points + drift.measure(start, end, embedder.encode)
            for p in points:
                p.to_bytes()
            changed, _ = evaluate(rules, points, states, end)
            states.update(changed)
    return len(raws) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=20000)
    ap.add_argument("--windows", type=int, default=20)
    args = ap.parse_args()
    start = datetime.fromtimestamp((time.time() // 60 - 60) * 60, UTC)
    per = args.traces // args.windows
    raws = [
        trace(i, start + timedelta(seconds=60 * (i // per) + 59 * (i % per) / per)).to_bytes()
        for i in range(args.traces)
    ]
    closer = trace(args.traces, start + timedelta(seconds=60 * args.windows + 30)).to_bytes()
    rules_file = Path(__file__).resolve().parents[1] / "rules" / "alerts.yaml"
    from services.monitoring.alerts import load_rules

    rules = [r for r in load_rules(rules_file) if r.metric != "consumer_lag"]
    embedder = Embedder(MonitoringSettings().model)
    in_process(raws[:2500], rules, embedder)  # warm-up: the model loads
    before = in_process(raws, rules, embedder)

    kafka = BenchKafka.start("monitoring")
    b, prefix = kafka.bootstrap, kafka.prefix
    rules_path = kafka.tmp / "rules.yaml"
    rules_path.write_text(RULES)
    try:
        send(b, INFERENCE_COMPLETED.name(prefix), [*raws, closer])
        service = ServiceProcess(
            "monitoring",
            kafka.env(MONITORING_PORT=str(_free_port())),
            kafka.tmp / "monitoring.log",
        )
        service.start()
        stamps = _window_stamps(b, prefix, args.windows, service)
        service.stop()
        # the service's rate: the traces of windows 2..n between the first and last close
        over_kafka = per * (args.windows - 1) / ((stamps[-1] - stamps[0]) / 1000)
        ratio_fire = _time_to_fire(kafka, rules_path)
    finally:
        kafka.stop()
    in_proc = (before + in_process(raws, rules, embedder)) / 2
    print(f"traces: {args.traces} in {args.windows} one-minute windows, 3 tenants")
    print(f"in-process decode+windows+drift+rules: {in_proc:9.1f} traces/s")
    print(f"through the monitoring service:  {over_kafka:9.1f} traces/s")
    print(f"ratio service/in-process: {over_kafka / in_proc:.2f}  (target >= 0.85)")
    print(
        f"first failing trace to firing: {ratio_fire[0]:.1f} s; window + for + grace = "
        f"{WINDOW_S + FOR_S + GRACE_S} s; ratio {ratio_fire[1]:.2f}  (target <= 1.1)"
    )


def _free_port() -> int:
    from shared.kafka.broker import free_port

    return free_port()


def _window_stamps(b: str, prefix: str, n: int, service: ServiceProcess) -> list[int]:
    """Broker timestamps of the requests point of each closed window, once all n are out."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        by_window: dict[datetime, int] = {}
        for r in read_to_end(b, MONITORING_METRICS.name(prefix)):
            p = MetricPoint.from_bytes(r.value)
            if p.name == "inference_error_rate":
                by_window[p.window_start] = max(by_window.get(p.window_start, 0), r.timestamp)
        if len(by_window) >= n:
            return sorted(by_window.values())
        if not service.alive():
            raise SystemExit(f"the monitoring service died; see {service.log_path}")
        time.sleep(1)
    raise SystemExit(f"not every window came out; see {service.log_path}")


def _time_to_fire(kafka: BenchKafka, rules_path: Path) -> tuple[float, float]:
    """Live traffic, healthy then failing from a window boundary: seconds to the firing."""
    prefix = f"{kafka.prefix}live."
    from shared.kafka.admin import create_topics

    create_topics(kafka.bootstrap, prefix)
    env = kafka.env(
        MONITORING_RULES_FILE=str(rules_path),
        MONITORING_WINDOW_S=str(WINDOW_S),
        MONITORING_GRACE_S=str(GRACE_S),
        MONITORING_PORT=str(_free_port()),
    )
    env["KAFKA_TOPIC_PREFIX"] = prefix
    service = ServiceProcess("monitoring", env, kafka.tmp / "monitoring-live.log")
    service.start()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks=1, linger_ms=0)
    topic = INFERENCE_COMPLETED.name(prefix)
    i, failing_from, fired_at = 0, None, None
    try:
        # healthy traffic until the service is surely running, then fail from a boundary
        healthy_until = time.time() + 20
        healthy_until += WINDOW_S - healthy_until % WINDOW_S
        deadline = time.time() + 120
        while time.time() < deadline and fired_at is None:
            now = time.time()
            status = "ok" if now < healthy_until else "error"
            if status == "error" and failing_from is None:
                failing_from = time.monotonic()
            t = trace(i, datetime.fromtimestamp(now, UTC), status)
            producer.send(topic, key=t.trace_id.encode(), value=t.to_bytes())
            producer.flush()
            i += 1
            if failing_from is not None and i % 10 == 0:
                recs = read_to_end(kafka.bootstrap, MONITORING_ALERTS.name(prefix))
                if any(Alert.from_bytes(r.value).state.value == "firing" for r in recs):
                    fired_at = time.monotonic()
            time.sleep(0.05)
    finally:
        producer.close()
        service.stop()
    if fired_at is None or failing_from is None:
        raise SystemExit(f"no firing alert within 2 minutes; see {service.log_path}")
    took = fired_at - failing_from
    return took, took / (WINDOW_S + FOR_S + GRACE_S)


if __name__ == "__main__":
    main()
