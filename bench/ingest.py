"""Ingestion throughput over Kafka versus the same work in-process, side by side in one run.

Prints documents per second through the ingestion service (a separate process, consuming
``ingest.documents`` and producing ``docs.chunks`` on a real broker) divided by documents per
second for the same validation and chunking called in-process on the same documents.
The service rate is measured between its first and last output record (broker timestamps),
so worker start-up and group join are not counted.

Then the scale-out case: the same documents through two workers of the ingestion group,
their rate divided by one worker's (this 2-core machine shares its cores with the broker),
and a second worker joining while the first is mid-stream: how many batches were repeated
(the partitions that move are committed first, so it should be under 1%).

    python bench/ingest.py [--docs 2000] [--words 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._env import BenchKafka  # noqa: E402
from services.ingestion.logic import Ingestor  # noqa: E402
from services.ingestion.settings import IngestionSettings  # noqa: E402
from shared.contracts.events import DocumentEvent  # noqa: E402
from shared.contracts.topics import DOCS_CHUNKS, INGEST_DOCUMENTS  # noqa: E402
from shared.contracts.upstream import publish_documents  # noqa: E402
from shared.kafka.reader import end_offsets  # noqa: E402
from tests.kafka_helpers import ServiceProcess, consume  # noqa: E402

VOCAB = [
    "data",
    "model",
    "stream",
    "kafka",
    "answer",
    "question",
    "tenant",
    "policy",
    "vector",
    "index",
    "update",
    "delete",
    "customer",
    "invoice",
    "contract",
    "shipment",
    "report",
    "quarterly",
    "revenue",
    "engineer",
    "deploy",
]


def make_docs(n: int, words: int, seed: int = 7) -> list[DocumentEvent]:
    rnd = random.Random(seed)
    docs = []
    for i in range(n):
        sentences = []
        for _ in range(words // 10):
            sentences.append(" ".join(rnd.choice(VOCAB) for _ in range(10)).capitalize() + ".")
        paras = ["  ".join(sentences[j : j + 5]) for j in range(0, len(sentences), 5)]
        body = "\n\n".join(paras) + f"\n\nContact owner{i}@example.com."
        docs.append(
            DocumentEvent(
                tenant="bench",
                doc_id=f"doc-{i:05d}",
                version=1,
                content=body,
                content_type="text/markdown",
                title=f"Doc {i}",
            )
        )
    return docs


def _produced(bootstrap: str, topic: str) -> int:
    return sum(end_offsets(bootstrap, topic).values())


def run_workers(
    kafka: BenchKafka, docs: list[DocumentEvent], join_second_at: float | None, name: str
) -> tuple[float, int, int]:
    """Publish ``docs`` under a fresh prefix and run ingestion workers of one group: one, and
    a second once ``join_second_at`` of the output is out (0: both from the start). Returns
    the rate (docs/s between first and last output), the batches out and the repeats."""
    from shared.kafka.admin import create_topics

    prefix = f"{kafka.prefix}{name}."
    create_topics(kafka.bootstrap, prefix)
    out_topic = DOCS_CHUNKS.name(prefix)
    publish_documents(docs, kafka.bootstrap, prefix)

    def worker(n: int) -> ServiceProcess:
        env = kafka.env()
        env.update(KAFKA_TOPIC_PREFIX=prefix, LLMOPS_DATA_DIR=str(kafka.tmp / f"{name}-{n}"))
        return ServiceProcess("ingestion", env, kafka.tmp / f"{name}-{n}.log")

    workers = [worker(1)]
    if join_second_at is not None and join_second_at <= 0:
        workers.append(worker(2))
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = _produced(kafka.bootstrap, out_topic)
            if join_second_at and len(workers) == 1 and done >= join_second_at * len(docs):
                workers.append(worker(2))
                workers[-1].start()
            if done >= len(docs) and (join_second_at is None or len(workers) == 2):
                break
            time.sleep(0.2)
        time.sleep(3)  # anything redone after a late rebalance
        out = consume(kafka.bootstrap, out_topic, idle_s=3)
    finally:
        for w in workers:
            w.stop()
    keys = [r.key for r in out]
    if set(keys) != {d.key.encode() for d in docs}:
        raise SystemExit(f"{name}: not every document came out; see {kafka.tmp}")
    stamps = sorted(r.timestamp for r in out)
    return (len(out) - 1) / ((stamps[-1] - stamps[0]) / 1000), len(out), len(out) - len(set(keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--words", type=int, default=300)
    args = ap.parse_args()
    docs = make_docs(args.docs, args.words)

    ingestor = Ingestor.from_settings(IngestionSettings())
    raw = [(d.to_bytes(), d.key.encode()) for d in docs]

    def in_process_rate() -> float:
        t0 = time.perf_counter()
        for value, key in raw:
            ingestor.process(value, key, None).to_bytes()
        return len(docs) / (time.perf_counter() - t0)

    for value, key in raw[:50]:  # warm-up: regexes, tokenizer caches
        ingestor.process(value, key, None)
    before = in_process_rate()

    kafka = BenchKafka.start("ingest")
    bootstrap, prefix = kafka.bootstrap, kafka.prefix
    env = kafka.env()
    service = ServiceProcess("ingestion", env, kafka.tmp / "ingestion.log")
    try:
        publish_documents(docs, bootstrap, prefix)
        service.start()
        # Watch end offsets only (cheap), so this process does not compete for the CPU.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and _produced(bootstrap, DOCS_CHUNKS.name(prefix)) < len(
            docs
        ):
            time.sleep(1.0)
        out = consume(bootstrap, DOCS_CHUNKS.name(prefix), until=len(docs), timeout_s=120)
        if len(out) < len(docs):
            raise SystemExit(
                f"only {len(out)} of {len(docs)} batches came out; see {service.log_path}"
            )
        stamps = sorted(r.timestamp for r in out)
        over_kafka = (len(out) - 1) / ((stamps[-1] - stamps[0]) / 1000)
        service.stop()
        one, _, _ = run_workers(kafka, docs, None, "one")
        two, _, _ = run_workers(kafka, docs, 0, "two")
        _, joined_out, repeated = run_workers(kafka, docs, 0.25, "join")
    finally:
        service.stop()
        kafka.stop()
    # The machine's speed drifts; take the in-process rate before and after the service run.
    in_process = (before + in_process_rate()) / 2
    print(f"documents: {len(docs)} x ~{args.words} words, topic {INGEST_DOCUMENTS.name(prefix)}")
    print(f"in-process validate+normalise+redact+chunk: {in_process:8.1f} docs/s")
    print(f"through the ingestion service over Kafka:   {over_kafka:8.1f} docs/s")
    print(f"ratio service/in-process: {over_kafka / in_process:.2f}  (target >= 0.8)")
    print(f"scale-out: 1 worker {one:.1f} docs/s, 2 workers {two:.1f} docs/s")
    print(f"ratio 2 workers / 1 worker: {two / one:.2f}  (2 cores, shared with the broker)")
    print(
        f"a second worker joining at 25%: {repeated} of {len(docs)} batches repeated "
        f"({100 * repeated / len(docs):.1f}%; target <= 1%), {joined_out} out"
    )


if __name__ == "__main__":
    main()
