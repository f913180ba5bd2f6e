"""Embedding throughput, freshness and the cost of re-ingesting an unchanged corpus.

One run, the same chunks and batch size throughout:
  1. raw ``model.encode`` chunks/s, in this process;
  2. chunks/s through Kafka, the embedding service (its own process) and Qdrant, with the
     service warm; printed as a ratio to (1);
  3. freshness p50/p99 (upstream event time to indexed) through ingestion and embedding at a
     steady rate of about half the capacity measured in (2);
  4. time to re-send the unchanged corpus (new versions, same text) divided by the first time;
  5. the encoder backends side by side (LLMOPS_EMBEDDING_BACKEND): ONNX Runtime's chunks/s,
     fp32 and int8, over torch's on the same chunks, and each one's recall@5 on the labelled
     set of bench/retrieval.py (raw model, title + whole document). A backend may become the
     default only if its recall@5 is within one point of torch's.

    python bench/embed.py [--docs 300] [--batch-size 64] [--seconds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._env import BenchKafka, wait_for  # noqa: E402
from bench.ingest import make_docs  # noqa: E402
from bench.retrieval import baseline, debian_packages  # noqa: E402
from services.ingestion.logic import Ingestor  # noqa: E402
from services.ingestion.settings import IngestionSettings  # noqa: E402
from shared.contracts.events import ChunkBatch, DocumentEvent  # noqa: E402
from shared.contracts.producer import make_producer  # noqa: E402
from shared.contracts.topics import DOCS_CHUNKS, DOCS_INDEXED, INGEST_DOCUMENTS  # noqa: E402
from shared.models.embedder import Embedder  # noqa: E402
from tests.kafka_helpers import ServiceProcess  # noqa: E402


def send(bootstrap: str, topic: str, items: list[ChunkBatch] | list[DocumentEvent]) -> None:
    p = make_producer(bootstrap)
    for b in items:
        p.send(topic, key=b.key.encode(), value=b.to_bytes())
    p.flush()
    p.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the freshness run")
    args = ap.parse_args()

    ingestor = Ingestor.from_settings(IngestionSettings())
    batches = [ingestor.to_batch(d) for d in make_docs(args.docs, 400)]
    texts = [c.text for b in batches for c in b.chunks]
    n_chunks = len(texts)

    model = Embedder()
    model.encode(texts[: args.batch_size], args.batch_size)  # warm-up

    def raw() -> float:
        t0 = time.perf_counter()
        model.encode(texts, args.batch_size)
        return n_chunks / (time.perf_counter() - t0)

    raw_before = raw()

    kafka = BenchKafka.start("embed")
    bootstrap, prefix, tmp = kafka.bootstrap, kafka.prefix, kafka.tmp
    env = kafka.env(EMBEDDING_BATCH_SIZE=str(args.batch_size))
    embedding = ServiceProcess("embedding", env, tmp / "embedding.log")
    ingestion = ServiceProcess("ingestion", env, tmp / "ingestion.log")
    chunks_topic, indexed_topic = DOCS_CHUNKS.name(prefix), DOCS_INDEXED.name(prefix)
    try:
        embedding.start()
        ingestion.start()
        warm = ingestor.to_batch(
            DocumentEvent(tenant="bench", doc_id="warm-up", version=1, content="warm up the model")
        )
        send(bootstrap, chunks_topic, [warm])
        wait_for(bootstrap, indexed_topic, {warm.key: 1})

        t0 = time.time()
        send(bootstrap, chunks_topic, batches)
        first = wait_for(bootstrap, indexed_topic, {b.key: b.version for b in batches})
        first_s = max(d.event_time.timestamp() for d in first.values()) - t0
        service_rate = n_chunks / first_s

        again = [b.model_copy(update={"version": b.version + 1}) for b in batches]
        t0 = time.time()
        send(bootstrap, chunks_topic, again)
        second = wait_for(bootstrap, indexed_topic, {b.key: b.version for b in again})
        second_s = max(d.event_time.timestamp() for d in second.values()) - t0
        encoded_again = sum(d.chunks_encoded for d in second.values())

        # Freshness through ingestion and embedding at about half the capacity.
        per_doc = n_chunks / len(batches)
        rate = 0.5 * service_rate / per_doc
        docs = make_docs(int(rate * args.seconds) + 1, 400, seed=11)
        producer = make_producer(bootstrap)
        start = time.monotonic()
        sent: dict[str, int] = {}
        for i, d in enumerate(docs):
            while time.monotonic() < start + i / rate:
                time.sleep(0.005)
            ev = d.model_copy(
                update={
                    "doc_id": f"fresh-{i:05d}",
                    "event_time": DocumentEvent(tenant="x", doc_id="x", version=0).event_time,
                }
            )
            producer.send(INGEST_DOCUMENTS.name(prefix), key=ev.key.encode(), value=ev.to_bytes())
            sent[ev.key] = ev.version
        producer.flush()
        producer.close()
        fresh = wait_for(bootstrap, indexed_topic, sent)
        lags = sorted((d.event_time - d.source_event_time).total_seconds() for d in fresh.values())
    finally:
        embedding.stop()
        ingestion.stop()
        kafka.stop()
    # The machine's speed drifts: take the raw rate before and after the service runs.
    raw_rate = (raw_before + raw()) / 2
    p50 = statistics.median(lags)
    p99 = lags[min(len(lags) - 1, int(round(0.99 * (len(lags) - 1))))]
    print(f"corpus: {len(batches)} documents, {n_chunks} chunks, batch size {args.batch_size}")
    print(f"raw model.encode:                          {raw_rate:8.1f} chunks/s")
    print(f"Kafka + embedding service + Qdrant:        {service_rate:8.1f} chunks/s")
    print(f"ratio service/raw: {service_rate / raw_rate:.2f}  (target >= 0.85)")
    print(
        f"freshness at {rate:.1f} docs/s ({len(lags)} docs, event time to indexed): "
        f"p50 {p50:.2f}s  p99 {p99:.2f}s"
    )
    print(
        f"re-sent unchanged corpus: {second_s:.2f}s vs first {first_s:.2f}s, "
        f"{encoded_again} chunks encoded again"
    )
    print(f"ratio re-ingest/first: {second_s / first_s:.3f}  (target <= 0.1)")
    backends(texts, args.batch_size)


def backends(texts: list[str], batch_size: int) -> None:
    """Each encoder backend's speed on the same chunks (rounds alternate, the machine's speed
    drifts) and its recall@5 on the labelled set."""
    cases = debian_packages(Path("/var/lib/dpkg/status"))
    models = {b: Embedder(backend=b) for b in ("torch", "onnx", "onnx-int8")}
    for m in models.values():
        m.encode(texts[:batch_size], batch_size)  # load (and export once), warm up
    rates: dict[str, list[float]] = {b: [] for b in models}
    for _ in range(2):
        for b, m in models.items():
            t0 = time.perf_counter()
            m.encode(texts, batch_size)
            rates[b].append(len(texts) / (time.perf_counter() - t0))
    recall = {b: baseline(cases, True, m).recall(5) for b, m in models.items()}
    torch_rate = statistics.median(rates["torch"])
    print(f"encoder backends on {len(texts)} chunks; recall@5 on {len(cases)} Debian packages")
    for b in models:
        rate = statistics.median(rates[b])
        print(
            f"  {b:<10} {rate:8.1f} chunks/s  ratio to torch {rate / torch_rate:5.2f}  "
            f"recall@5 {recall[b]:.3f} ({(recall[b] - recall['torch']) * 100:+.1f} points)"
        )


if __name__ == "__main__":
    main()
