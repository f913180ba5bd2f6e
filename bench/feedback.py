"""The feedback service's scoring rate over Kafka versus the same metrics in-process, the
time from a feedback event to its joined result, and the state it holds, in one run.

1. Traces per second scored by the feedback service (a separate process reading
   ``inference.completed`` on a real broker and writing ``eval.results``), between its first
   and last result (broker timestamps), divided by traces per second for the same metrics
   computed in-process on the same traces, in batches of the same size (aim >= 0.85).
2. At half that capacity, traces and feedback on them go in together; for each feedback,
   the time from its event_time to the broker timestamp of the result that first carries it:
   p50 and p99 (aim: p99 under one second plus the batch wait).
3. The state the service keeps per 100k traces (table values and keys, measured with
   tracemalloc on 10k states made by the same transitions).

    python bench/feedback.py [--traces 2000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaProducer  # noqa: E402

from bench._env import BenchKafka  # noqa: E402
from services.feedback.logic import Waiting, on_feedback, on_trace  # noqa: E402
from services.feedback.settings import FeedbackSettings  # noqa: E402
from services.feedback.worker import Scorer, answered  # noqa: E402
from shared.contracts.events import (  # noqa: E402
    EvalResult,
    FeedbackEvent,
    InferenceTrace,
    RetrievedChunk,
)
from shared.contracts.topics import EVAL_RESULTS, FEEDBACK_EVENTS, INFERENCE_COMPLETED  # noqa: E402
from shared.kafka.reader import end_offsets  # noqa: E402
from shared.models.embedder import get_embedder  # noqa: E402
from tests.kafka_helpers import ServiceProcess, consume  # noqa: E402

WORDS = (
    "office",
    "opens",
    "closes",
    "backup",
    "database",
    "gateway",
    "parking",
    "garage",
    "level",
    "badge",
    "visitor",
    "lunch",
    "canteen",
    "payroll",
    "salary",
    "band",
    "weekday",
    "invoice",
    "approval",
    "manager",
    "holiday",
    "request",
    "laptop",
    "password",
    "reset",
    "ticket",
    "printer",
    "floor",
    "kitchen",
    "meeting",
    "room",
    "booking",
    "policy",
    "travel",
    "expense",
)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_traces(n: int, seed: int = 11) -> list[InferenceTrace]:
    """Answered queries like the default model's: a short cited answer, three passages."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        context = [" ".join(sentence(rng, rng.randint(8, 16)) for _ in range(4)) for _ in range(3)]
        out.append(
            InferenceTrace(
                trace_id=BenchKafka.trace_ids().of(f"{i:016x}{rng.getrandbits(64):016x}", "acme"),
                tenant="acme",
                api_key_id="bench",
                question=sentence(rng, 8)[:-1] + "?",
                answer=f"[{rng.randint(1, 3)}] {sentence(rng, rng.randint(5, 12))}",
                context=context,
                retrieved=[
                    RetrievedChunk(chunk_id=f"c{i}-{j}", doc_id=f"d{j}", score=0.7 - 0.1 * j)
                    for j in range(3)
                ],
                prompt_name="rag",
                prompt_version="v3",
                model="gemma3-270m",
                status="ok",
            )
        )
    return out


def thumbs(t: InferenceTrace, i: int) -> FeedbackEvent:
    value = {"type": "thumbs", "thumbs": "down" if i % 4 == 0 else "up"}
    return FeedbackEvent(trace_id=t.trace_id, tenant=t.tenant, author="bench", value=value)


def in_process_rate(traces: list[InferenceTrace], batch: int) -> float:
    """Traces per second for the service's own scoring code, batch by batch."""
    scorer = Scorer(get_embedder().encode, FeedbackSettings().support_threshold)
    scorer.traces({t.trace_id: answered(t) for t in traces[:batch]})  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(traces), batch):
        scorer.traces({t.trace_id: answered(t) for t in traces[i : i + batch]})
    return len(traces) / (time.perf_counter() - t0)


def state_bytes_per_100k(traces: list[InferenceTrace], n: int = 10_000) -> float:
    """Memory of the table's keys and values for ``n`` scored, rated traces, scaled."""
    scorer = Scorer(get_embedder().encode, FeedbackSettings().support_threshold)
    sample = traces[:64]
    metrics = scorer.traces({t.trace_id: answered(t) for t in sample})
    tracemalloc.start()
    table: dict[bytes, bytes] = {}
    for i in range(n):
        t = sample[i % len(sample)].model_copy(update={"trace_id": f"{i:048x}"})
        state = on_trace(None, t, 0, metrics[sample[i % len(sample)].trace_id], 0.0).state
        fb = thumbs(t, i)
        where = Waiting(feedback=fb, topic="f", partition=0, offset=i, raw=b"", arrived=0.0)
        state = on_feedback(state, fb, where, 0.0, 100).state
        assert state is not None
        table[t.trace_id.encode()] = state.to_bytes()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return size * 100_000 / n


def results(bootstrap: str, topic: str) -> list:  # type: ignore[type-arg]
    return consume(bootstrap, topic, idle_s=2, timeout_s=120)


def produced(bootstrap: str, topic: str) -> int:
    return sum(end_offsets(bootstrap, topic).values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0, help="Length of the latency run.")
    args = ap.parse_args()
    settings = FeedbackSettings()
    traces = make_traces(args.traces)
    before = in_process_rate(traces, settings.batch_size)

    kafka = BenchKafka.start("feedback")
    b, p = kafka.bootstrap, kafka.prefix
    service = ServiceProcess("feedback", kafka.env(), kafka.tmp / "feedback.log")
    producer = KafkaProducer(bootstrap_servers=b, acks="all", linger_ms=5)
    out_topic = EVAL_RESULTS.name(p)
    try:
        for t in traces:
            producer.send(INFERENCE_COMPLETED.name(p), key=t.trace_id.encode(), value=t.to_bytes())
        producer.flush()
        service.start()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and produced(b, out_topic) < len(traces):
            time.sleep(1.0)
        out = results(b, out_topic)
        if len({r.key for r in out}) < len(traces):
            raise SystemExit(f"only {len(out)} of {len(traces)} scored; see {service.log_path}")
        stamps = sorted(r.timestamp for r in out)
        over_kafka = (len(out) - 1) / ((stamps[-1] - stamps[0]) / 1000)

        # half capacity: a new trace and feedback on an earlier one per tick
        live = make_traces(int(over_kafka / 2 * args.seconds) + 10, seed=12)
        sent: dict[str, float] = {}
        tick = 2 / over_kafka
        start = time.monotonic()
        for i, t in enumerate(live):
            producer.send(INFERENCE_COMPLETED.name(p), key=t.trace_id.encode(), value=t.to_bytes())
            if i >= 5:
                fb = thumbs(live[i - 5], i)
                producer.send(
                    FEEDBACK_EVENTS.name(p), key=fb.trace_id.encode(), value=fb.to_bytes()
                )
                sent[fb.event_id] = fb.event_time.timestamp()
            producer.flush()
            time.sleep(max(0.0, start + (i + 1) * tick - time.monotonic()))
        time.sleep(5)
        joined_at: dict[str, float] = {}
        for r in results(b, out_topic):
            for f in EvalResult.from_bytes(r.value).feedback:
                if f.feedback_id in sent and f.feedback_id not in joined_at:
                    joined_at[f.feedback_id] = r.timestamp / 1000
    finally:
        producer.close()
        service.stop()
        kafka.stop()
    in_process = (before + in_process_rate(traces, settings.batch_size)) / 2
    lat = sorted(joined_at[k] - sent[k] for k in joined_at)
    per_100k = state_bytes_per_100k(traces)
    print(f"traces: {len(traces)}, batch {settings.batch_size}, wait {settings.batch_wait_s} s")
    print(f"in-process scoring (the service's code):  {in_process:8.1f} traces/s")
    print(f"through the feedback service over Kafka:  {over_kafka:8.1f} traces/s")
    print(f"ratio service/in-process: {over_kafka / in_process:.2f}  (aim >= 0.85)")
    if lat:
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"feedback to joined result at half capacity ({len(lat)} of {len(sent)} joined): "
            f"p50 {p50:.3f} s, p99 {p99:.3f} s (aim: p99 < {1 + settings.batch_wait_s:.1f} s)"
        )
    print(f"state held: {per_100k / 2**20:.0f} MiB per 100k scored, rated traces")


if __name__ == "__main__":
    main()
