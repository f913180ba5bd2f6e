"""On a local three-broker cluster (replication 3, min ISR 2), with the services as separate
processes (two ingestion workers, one embedding writer: the embedded store admits one process,
so a second writer needs a Qdrant server), SIGKILL the broker that leads the most partitions
while 1,000 documents are published and indexed: every acknowledged document is indexed once,
no service is restarted, and the broker, started again, rejoins and catches up."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from shared.contracts.events import DocumentEvent, DocumentIndexed
from shared.contracts.producer import make_producer
from shared.contracts.topics import DOCS_INDEXED, INGEST_DOCUMENTS, TOPICS
from shared.kafka.admin import create_topics, under_replicated
from shared.kafka.broker import LocalBroker, LocalCluster, local_cluster
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.open import open_store
from tests.kafka_helpers import ServiceProcess, consume, free_window, wait_for

pytestmark = pytest.mark.chaos
N = 1000
NODES = 3


def busiest_leader(cluster: LocalCluster, prefix: str) -> LocalBroker:
    """The node leading the most partitions of the platform's topics."""
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        described = admin.describe_topics([t.name(prefix) for t in TOPICS])
    finally:
        admin.close()
    leaders = Counter(p["leader_id"] for t in described for p in t["partitions"])
    node_id = leaders.most_common(1)[0][0]
    return next(n for n in cluster.nodes if n.node_id == node_id)


def test_the_busiest_broker_killed_mid_publish_and_mid_indexing_loses_nothing(
    tmp_path: Path,
) -> None:
    base = free_window(2 * NODES)
    cluster = local_cluster(
        tmp_path / "cluster",
        PlatformSettings().cache_dir,
        [(base + 2 * i, base + 1 + 2 * i) for i in range(NODES)],
    )
    assert isinstance(cluster, LocalCluster)
    cluster.start()
    prefix, data = "ck.", tmp_path / "data"
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap,
        KAFKA_TOPIC_PREFIX=prefix,
        LLMOPS_DATA_DIR=str(data),
        LLMOPS_LOG_LEVEL="warning",
    )
    services = [
        ServiceProcess("ingestion", env, tmp_path / "ingestion-1.log"),
        ServiceProcess("ingestion", env, tmp_path / "ingestion-2.log"),
        ServiceProcess("embedding", env, tmp_path / "embedding.log"),
    ]

    def logs() -> str:
        return "\n".join(f"--- {s.log_path.name}\n{s.log()[-1500:]}" for s in services)

    try:
        create_topics(cluster.bootstrap, prefix)
        for s in services:
            s.start()
        docs = [
            DocumentEvent(
                tenant="acme",
                doc_id=f"c-{i:04d}",
                version=1,
                content=f"Document {i} says its token is tok{i:04d}x. " * 3,
            )
            for i in range(N)
        ]
        producer = make_producer(cluster.bootstrap, request_timeout_ms=10_000)
        src = INGEST_DOCUMENTS.name(prefix)
        futures = {}
        for d in docs[: N // 2]:
            futures[d.key] = producer.send(src, key=d.key.encode(), value=d.to_bytes())
        producer.flush()
        # indexing is under way when the broker dies, and so is the second half's publish
        assert wait_for(
            lambda: consume(cluster.bootstrap, DOCS_INDEXED.name(prefix), idle_s=0.3), 180, 0.5
        ), logs()
        victim = busiest_leader(cluster, prefix)
        for i, d in enumerate(docs[N // 2 :]):
            futures[d.key] = producer.send(src, key=d.key.encode(), value=d.to_bytes())
            if i == N // 4:
                killed_at = time.monotonic()
                assert victim.kill()
        acked = set()
        for key, fut in futures.items():
            try:
                fut.get(timeout=120)
                acked.add(key)
            except Exception:  # noqa: BLE001 - not acknowledged: the publisher knows to resend
                pass
        producer.close()
        # two of three replicas in sync: the cluster takes every write through the loss
        assert len(acked) == N, f"{N - len(acked)} publishes failed with a broker down"

        indexed: dict[str, DocumentIndexed] = {}

        def all_indexed() -> bool:
            for rec in consume(cluster.bootstrap, DOCS_INDEXED.name(prefix), idle_s=1):
                ev = DocumentIndexed.from_bytes(rec.value)
                indexed[ev.key] = ev
            return acked <= set(indexed)

        assert wait_for(all_indexed, 300, 1), (sorted(acked - set(indexed))[:5], logs())
        print(
            f"cluster: {N} acknowledged with node {victim.node_id} killed; all indexed "
            f"{time.monotonic() - killed_at:.1f} s after the kill, no service restarted"
        )
        assert all(s.alive() for s in services), logs()

        # the broker comes back with its data and catches up on what it missed
        rejoin_at = time.monotonic()
        victim.launch()
        names = [t.name(prefix) for t in TOPICS]
        assert wait_for(
            lambda: not any(under_replicated(cluster.bootstrap, names).values()), 180, 1
        ), under_replicated(cluster.bootstrap, names)
        print(f"cluster: node {victim.node_id} in sync {time.monotonic() - rejoin_at:.1f} s after")
    finally:
        for s in services:
            s.stop()
        cluster.stop()
    # the embedding writer's own store: every acknowledged document, none doubled
    store = open_store(QdrantSettings(), PlatformSettings(data_dir=data), prefix)
    try:
        collection = store.active()
        assert collection is not None
        points = Counter(str((p.payload or {})["doc_key"]) for p in store.all_payloads(collection))
    finally:
        store.close()
    for key in acked:
        assert points[key] == indexed[key].chunk_count, key
    assert sum(points.values()) == sum(indexed[k].chunk_count for k in acked)
