"""Rows of a database through change data capture versus the same documents published
directly, side by side in one run, on the real parts: PostgreSQL (Debian's server), a Kafka
Connect worker with the Debezium PostgreSQL connector, the broker, and the ingestion and
embedding services in one process reading the mapping.

1. Throughput: N rows inserted in one transaction, from the insert to the last one indexed,
   divided by N documents published as DocumentEvents, from the publish to the last one
   indexed (target: at least 0.8).
2. Freshness: rows inserted one by one at half the CDC rate measured in 1; for each, the time
   from its commit (Debezium's ``source.ts_ms``, the document's ``event_time``) to the end of
   its indexing (``docs.indexed``): p50 and p99 (target: p99 at most 2 s plus the embedding
   batch wait, EMBEDDING_BATCH_WAIT_S).

    python bench/cdc.py [--rows 1000] [--fresh-s 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._env import BenchKafka  # noqa: E402
from services.embedding.settings import EmbeddingSettings  # noqa: E402
from shared.contracts.events import DocumentEvent, DocumentIndexed  # noqa: E402
from shared.contracts.topics import DOCS_INDEXED  # noqa: E402
from shared.contracts.upstream import publish_documents  # noqa: E402
from shared.kafka.broker import free_port  # noqa: E402
from shared.kafka.connect import LocalConnect, add_connector, connector_from_file  # noqa: E402
from shared.kafka.reader import end_offsets, records_from  # noqa: E402
from shared.settings import PlatformSettings  # noqa: E402
from tests.kafka_helpers import ServiceProcess  # noqa: E402
from tests.postgres import Postgres, pg_bin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "the",
    "quarterly",
    "report",
    "says",
    "revenue",
    "grew",
    "while",
    "the",
    "support",
    "queue",
    "shrank",
    "again",
]


def body(i: int) -> str:
    return f"Row {i} of the bench. " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(60))


def indexed(
    bootstrap: str, topic: str, start: dict[int, int], keys: set[str], timeout_s: float = 600
) -> dict[str, DocumentIndexed]:
    """The first DocumentIndexed of each key in ``keys``, read from ``start``."""
    got: dict[str, DocumentIndexed] = {}
    for r in records_from(bootstrap, topic, start, timeout_s):
        key = r.key.decode()
        if key in keys and key not in got:
            got[key] = DocumentIndexed.from_bytes(r.value)
            if not keys - got.keys():
                break
    if keys - got.keys():
        raise SystemExit(f"only {len(got)} of {len(keys)} documents were indexed")
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--rows", type=int, default=1000, help="rows (and documents) per throughput run"
    )
    ap.add_argument("--fresh-s", type=float, default=30.0, help="seconds of steady inserts")
    args = ap.parse_args()

    kafka = BenchKafka.start("cdc")
    name = f"bench{uuid.uuid4().hex[:6]}"
    topic = f"{name}.public.rows"
    mapping = kafka.tmp / "mapping.yaml"
    mapping.write_text(
        f"tables:\n  - topic: {topic}\n    tenant: {{value: bench}}\n    doc_id: [id]\n"
        '    doc_id_prefix: "row-"\n    content: "{body}"\n'
    )
    pg = Postgres(kafka.tmp / "pg", free_port())
    worker = LocalConnect(
        run_dir=kafka.tmp / "connect",
        port=free_port(),
        bootstrap=kafka.bootstrap,
        cache_dir=PlatformSettings().cache_dir,
        group_id=f"{name}-connect",
    )
    service = ServiceProcess(
        "ingestion embedding",
        kafka.env(INGESTION_CDC_MAPPING_FILE=str(mapping)),
        kafka.tmp / "services.log",
    )
    psql: subprocess.Popen[str] | None = None
    out = DOCS_INDEXED.name(kafka.prefix)
    try:
        print("starting PostgreSQL, Kafka Connect and the services...", flush=True)
        pg.start()
        pg.psql("CREATE TABLE rows (id int PRIMARY KEY, body text NOT NULL);")
        worker.start()
        service.start()
        conn, config = connector_from_file(
            ROOT / "infra" / "connect" / "postgres.json",
            {
                "PGPORT": str(pg.port),
                "PGPASSWORD": pg.password,
                "CDC_TOPIC_PREFIX": name,
                "CDC_SLOT": name,
                "CDC_TABLES": "public.rows",
            },
        )
        add_connector(worker.url, conn, config)

        def insert(ids: range) -> None:
            values = ",".join(f"({i}, $${body(i)}$$)" for i in ids)
            pg.psql(f"INSERT INTO rows VALUES {values};")

        # warm-up: the model loaded, the connector streaming, the groups joined
        start = end_offsets(kafka.bootstrap, out)
        insert(range(20))
        publish_documents(
            [
                DocumentEvent(tenant="bench", doc_id=f"warm-{i}", version=1, content=body(i))
                for i in range(20)
            ],
            kafka.bootstrap,
            kafka.prefix,
        )
        indexed(
            kafka.bootstrap,
            out,
            start,
            {f"bench/row-{i}" for i in range(20)} | {f"bench/warm-{i}" for i in range(20)},
        )

        n = args.rows
        docs = [
            DocumentEvent(tenant="bench", doc_id=f"direct-{i}", version=1, content=body(i))
            for i in range(n)
        ]
        start = end_offsets(kafka.bootstrap, out)
        t0 = time.time()
        publish_documents(docs, kafka.bootstrap, kafka.prefix)
        got = indexed(kafka.bootstrap, out, start, {f"bench/direct-{i}" for i in range(n)})
        direct_s = max(e.event_time.timestamp() for e in got.values()) - t0

        rows = range(1000, 1000 + n)
        start = end_offsets(kafka.bootstrap, out)
        t0 = time.time()
        insert(rows)
        got = indexed(kafka.bootstrap, out, start, {f"bench/row-{i}" for i in rows})
        cdc_s = max(e.event_time.timestamp() for e in got.values()) - t0
        direct_rate, cdc_rate = n / direct_s, n / cdc_s
        print(f"direct DocumentEvents: {n} in {direct_s:.1f} s = {direct_rate:.1f} docs/s")
        print(f"CDC rows (one insert): {n} in {cdc_s:.1f} s = {cdc_rate:.1f} rows/s")
        print(
            f"rows/s through PostgreSQL, Debezium, ingestion and embedding / direct: "
            f"{cdc_rate / direct_rate:.2f}  (target >= 0.8)"
        )

        # freshness at half the CDC rate, one row per transaction
        rate = cdc_rate / 2
        count = max(20, int(rate * args.fresh_s))
        psql = subprocess.Popen(
            [
                str(pg_bin() / "psql"),
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(pg.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={"PGPASSWORD": pg.password, "PATH": "/usr/bin:/bin"},
        )
        assert psql.stdin is not None
        fresh = range(100_000, 100_000 + count)
        start = end_offsets(kafka.bootstrap, out)
        began = time.monotonic()
        for k, i in enumerate(fresh):
            delay = began + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            psql.stdin.write(f"INSERT INTO rows VALUES ({i}, $${body(i)}$$);\n")
            psql.stdin.flush()
        got = indexed(kafka.bootstrap, out, start, {f"bench/row-{i}" for i in fresh})
        lags = sorted((e.event_time - e.source_event_time).total_seconds() for e in got.values())
        p50 = statistics.median(lags)
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        wait = EmbeddingSettings().batch_wait_s
        print(
            f"freshness at {rate:.1f} rows/s ({count} rows, one per transaction): "
            f"commit to searchable p50 {p50:.2f} s, p99 {p99:.2f} s "
            f"(target p99 <= 2 s + batch wait {wait:.1f} s = {2 + wait:.1f} s)"
        )
    finally:
        if psql is not None and psql.stdin is not None:
            psql.stdin.close()
            psql.wait(10)
        service.stop()
        worker.stop()
        pg.stop()
        kafka.stop()


if __name__ == "__main__":
    main()
