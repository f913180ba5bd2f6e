"""The embedding service on the real broker and the real (embedded) Qdrant: searchable
upserts, exact updates and deletes, nothing lost or doubled across a SIGKILL, and a reindex
that keeps retrieval answering."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from services.embedding.indexer import Indexer
from services.embedding.reindex import reindex
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import ChunkBatch, DocumentEvent, DocumentIndexed, Op
from shared.contracts.producer import make_producer
from shared.contracts.topics import DOCS_CHUNKS, DOCS_INDEXED, EMBEDDING_DLQ
from shared.models.embedder import get_embedder
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.base import VectorStore
from shared.store.open import open_store as open_configured
from shared.store.retrieval import retrieve
from tests.kafka_helpers import consume

pytestmark = pytest.mark.integration
ING = Ingestor.from_settings(IngestionSettings(chunk_tokens=64, chunk_overlap=8))


def batch(
    doc_id: str, version: int, text: str = "", op: Op = Op.UPSERT, tenant: str = "acme"
) -> ChunkBatch:
    return ING.to_batch(
        DocumentEvent(
            tenant=tenant, doc_id=doc_id, version=version, op=op, content=text, title=doc_id
        )
    )


def publish(bootstrap: str, topic: str, batches: list[ChunkBatch]) -> None:
    producer = make_producer(bootstrap)
    try:
        for b in batches:
            producer.send(topic, key=b.key.encode(), value=b.to_bytes())
        producer.flush()
    finally:
        producer.close()


def wait_indexed(
    bootstrap: str, topic: str, n: int, timeout_s: float = 120
) -> list[DocumentIndexed]:
    recs = consume(bootstrap, topic, until=n, timeout_s=timeout_s)
    assert len(recs) >= n, f"only {len(recs)} of {n} DocumentIndexed arrived"
    return [DocumentIndexed.from_bytes(r.value) for r in recs]


def open_store(data_dir: Path, prefix: str) -> VectorStore:
    return open_configured(QdrantSettings(), PlatformSettings(data_dir=data_dir), prefix)


def index_state(store: VectorStore) -> dict[str, dict]:  # type: ignore[type-arg]
    name = store.active()
    assert name is not None
    return {str(r.id): dict(r.payload or {}) for r in store.all_payloads(name)}


def _without_time(state: dict[str, dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {k: {f: v for f, v in p.items() if f != "indexed_at"} for k, p in state.items()}


TEXT = "\n\n".join(f"Part {i}: the on-call engineer checks dashboard {i} first." for i in range(10))


def test_service_indexes_updates_deletes_and_replays_exactly(
    kafka_bootstrap: str, topic_prefix: str, start_service, service_env, tmp_path: Path
) -> None:
    chunks_topic, indexed_topic = DOCS_CHUNKS.name(topic_prefix), DOCS_INDEXED.name(topic_prefix)
    a1, c1 = batch("a", 1, TEXT), batch("c", 1, "Lunch is served at noon.")
    a2, c2 = (
        batch("a", 2, "Part 0: the on-call engineer checks dashboard 0 first."),
        batch("c", 2, op=Op.DELETE),
    )
    a3 = batch("a", 3, "Part 0: the on-call engineer checks dashboard 0 first.")
    bad_value = b'{"not": "a chunk batch"}'

    service = start_service("embedding")
    publish(kafka_bootstrap, chunks_topic, [a1, c1])
    wait_indexed(kafka_bootstrap, indexed_topic, 2)
    publish(kafka_bootstrap, chunks_topic, [a2, c2])
    producer = make_producer(kafka_bootstrap)
    producer.send(chunks_topic, key=b"acme/bad", value=bad_value)
    producer.flush()
    producer.close()
    publish(kafka_bootstrap, chunks_topic, [a3])  # same text as a2: no encoding
    reports = wait_indexed(kafka_bootstrap, indexed_topic, 5)
    service.stop()
    assert not service.alive()

    by_version = {(r.doc_id, r.version): r for r in reports}
    assert by_version[("a", 1)].chunk_count == len(a1.chunks) > 2
    assert by_version[("a", 2)].points_deleted == len(a1.chunks) - 1
    assert by_version[("c", 2)].status == "deleted"
    assert (by_version[("a", 3)].chunks_encoded, by_version[("a", 3)].chunks_reused) == (0, 1)
    r = by_version[("a", 1)]
    assert r.source_event_time <= r.ingested_at <= r.event_time
    dlq = consume(kafka_bootstrap, EMBEDDING_DLQ.name(topic_prefix), until=1)
    assert len(dlq) == 1 and dict(dlq[0].headers)["dlq.error_type"] == b"ValidationError"

    data_dir = Path(service_env["LLMOPS_DATA_DIR"])
    store = open_store(data_dir, topic_prefix)
    try:
        state = index_state(store)
        assert set(state) == {a3.chunks[0].chunk_id}, "no stale point, no deleted document"
        assert state[a3.chunks[0].chunk_id]["version"] == 3
        hits = retrieve(store, "which dashboard does on-call check", "acme", [])
        assert [h.doc_id for h in hits] == ["a"]
    finally:
        store.close()

    # the same events replayed twice leave point count and payloads unchanged
    for _ in range(2):
        publish(kafka_bootstrap, chunks_topic, [a1, c1, a2, c2, a3])
    service = start_service("embedding")
    wait_indexed(kafka_bootstrap, indexed_topic, 5 + 10)
    service.stop()
    store = open_store(data_dir, topic_prefix)
    try:
        assert index_state(store) == state
    finally:
        store.close()


@pytest.mark.chaos
def test_sigkill_mid_stream_leaves_an_exact_index(
    kafka_bootstrap: str, topic_prefix: str, start_service, service_env
) -> None:
    chunks_topic, indexed_topic = DOCS_CHUNKS.name(topic_prefix), DOCS_INDEXED.name(topic_prefix)
    first = [
        batch(f"d{i:03d}", 1, f"Document {i} says: " + "alpha beta gamma. " * (i % 7 + 1))
        for i in range(500)
    ]
    # later versions for some documents: fewer chunks, or deleted
    later = [batch(f"d{i:03d}", 2, f"Document {i} was shortened.") for i in range(0, 500, 10)]
    later += [batch(f"d{i:03d}", 2, op=Op.DELETE) for i in range(5, 500, 50)]
    service = start_service("embedding", EMBEDDING_BATCH_SIZE="16")
    # A first wave, then the rest, and the kill right after: it lands mid-stream.
    publish(kafka_bootstrap, chunks_topic, first[:50])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(consume(kafka_bootstrap, indexed_topic, idle_s=0.3)) >= 20:
            break
    publish(kafka_bootstrap, chunks_topic, first[50:] + later)
    time.sleep(0.3)
    service.kill()
    done = len(consume(kafka_bootstrap, indexed_topic, idle_s=1))
    assert 20 <= done < len(first) + len(later), f"kill should land mid-stream ({done})"

    restarted_at = time.monotonic()
    restarted = start_service("embedding")
    final = {b.key: b for b in first + later}
    deadline = time.monotonic() + 240
    seen: set[tuple[str, int]] = set()
    while time.monotonic() < deadline and len(seen) < len(final):
        seen = {
            (r.key, r.version)
            for r in map(
                lambda rec: DocumentIndexed.from_bytes(rec.value),
                consume(kafka_bootstrap, indexed_topic, idle_s=1),
            )
        }
        seen &= {(k, b.version) for k, b in final.items()}
    assert len(seen) == len(final)
    print(f"embedding: caught up {time.monotonic() - restarted_at:.1f} s after its restart")
    restarted.stop()
    store = open_store(Path(service_env["LLMOPS_DATA_DIR"]), topic_prefix)
    try:
        state = index_state(store)
    finally:
        store.close()
    expected = {c.chunk_id: (b, c) for b in final.values() for c in b.chunks}
    assert set(state) == set(expected), "no missing point, no extra point"
    for pid, (b, c) in expected.items():
        p = state[pid]
        assert (p["doc_id"], p["version"], p["content_hash"], p["text"]) == (
            b.doc_id,
            b.version,
            c.content_hash,
            c.text,
        )


def test_reindex_swaps_alias_while_retrieval_keeps_answering(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    batches = [
        batch(f"r{i:02d}", 1, f"Runbook {i}: restart the queue worker {i} gently.")
        for i in range(40)
    ]
    publish(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), batches)
    store = open_configured(
        QdrantSettings(path=tmp_path / "q"), PlatformSettings(data_dir=tmp_path), topic_prefix
    )
    try:
        Indexer(store, get_embedder()).index(batches)  # what the live service built
        old = store.active()
        before = index_state(store)
        answers: list[int] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                answers.append(len(retrieve(store, "restart the queue worker", "acme", [])))

        t = threading.Thread(target=reader)
        t.start()
        try:
            res = reindex(store, get_embedder(), kafka_bootstrap, topic_prefix, batch_size=8)
        finally:
            stop.set()
            t.join()
        assert res.previous == old and res.collection != old
        assert store.active() == res.collection
        assert len(answers) > 3 and min(answers) > 0, "retrieval answered throughout"
        after = index_state(store)
        assert _without_time(after) == _without_time(before), "same documents, new collection"
    finally:
        store.close()


def test_an_old_local_mode_store_is_refused_by_run_and_converted_by_reindex(
    kafka_bootstrap: str, topic_prefix: str, service_env: dict[str, str]
) -> None:
    from shared.store.client import ClientStore
    from tests.kafka_helpers import llmops

    data = Path(service_env["LLMOPS_DATA_DIR"])
    old = ClientStore.local(str(data / "qdrant"), "chunks")  # what the last version wrote
    old.ensure_collection("chunks-all-minilm-l6-v2-384", "all-MiniLM-L6-v2", 384)
    old.close()
    batches = [batch(f"m{i}", 1, f"Migration note {i}: the store moved.") for i in range(5)]
    publish(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), batches)

    for command in (["run", "embedding"], ["dev"]):  # `make run` is `llmops dev`
        refused = llmops(*command, env=service_env, timeout_s=120)
        assert refused.returncode == 1, (command, refused.stderr[-2000:])
        assert "older version" in refused.stderr and "llmops reindex" in refused.stderr
        assert "Traceback" not in refused.stderr

    done = llmops("reindex", env=service_env, timeout_s=300)
    assert done.returncode == 0, done.stderr
    assert "qdrant.local-mode-" in done.stdout and "5 points" in done.stdout
    store = open_configured(QdrantSettings(), PlatformSettings(data_dir=data), topic_prefix)
    try:
        assert store.backend == "qdrant-edge"
        assert {h.doc_id for h in retrieve(store, "migration note", "acme", [], 10)} == {
            f"m{i}" for i in range(5)
        }
    finally:
        store.close()
