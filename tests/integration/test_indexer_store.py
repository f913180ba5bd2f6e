"""The Indexer against every vector store backend (``any_store``: Qdrant Edge, qdrant-client,
a Qdrant server where Docker exists) and the real model: exact updates and deletes,
idempotent replays, no encoding of unchanged chunks, retrieval that keeps tenants and acls
apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.embedding.indexer import Indexer
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import ChunkBatch, DocumentEvent, Op
from shared.models.embedder import get_embedder
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.base import VectorStore
from shared.store.open import open_store
from shared.store.retrieval import retrieve

pytestmark = pytest.mark.integration
ING = Ingestor.from_settings(IngestionSettings(chunk_tokens=48, chunk_overlap=8))


class CountingEmbedder:
    """The real model, with its calls counted."""

    def __init__(self) -> None:
        self.inner = get_embedder()
        self.name = self.inner.name
        self.calls = 0
        self.texts = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: list[str], batch_size: int = 64) -> list[list[float]]:
        if texts:
            self.calls += 1
            self.texts += len(texts)
        return self.inner.encode(texts, batch_size)


def doc(
    version: int,
    text: str,
    doc_id: str = "guide",
    tenant: str = "acme",
    acl: list[str] | None = None,
    op: Op = Op.UPSERT,
) -> ChunkBatch:
    return ING.to_batch(
        DocumentEvent(
            tenant=tenant,
            doc_id=doc_id,
            version=version,
            op=op,
            content=text,
            acl=acl or [],
            title=f"{doc_id} title",
        )
    )


LONG = "\n\n".join(
    f"Section {i}. The deployment runbook step {i} restarts the "
    f"service number {i} and checks its health endpoint."
    for i in range(12)
)


@pytest.fixture
def store(any_store: VectorStore) -> VectorStore:
    return any_store


def points_of(store: VectorStore) -> dict[str, dict]:  # type: ignore[type-arg]
    name = store.active()
    assert name is not None
    return {str(r.id): dict(r.payload or {}) for r in store.all_payloads(name)}


def test_upsert_update_delete_replay_are_exact(store: VectorStore) -> None:
    emb = CountingEmbedder()
    idx = Indexer(store, emb, batch_size=16)  # type: ignore[arg-type]
    v1, other = doc(1, LONG), doc(1, "Holiday policy: 25 days.", doc_id="policy")
    res = idx.index([v1, other])
    assert [r.status for r in res] == ["indexed", "indexed"]
    pts = points_of(store)
    assert set(pts) == {c.chunk_id for c in v1.chunks + other.chunks}
    first = pts[v1.chunks[0].chunk_id]
    assert first["tenant"] == "acme" and first["doc_id"] == "guide" and first["version"] == 1
    assert first["chunk_index"] == 0 and first["text"] == v1.chunks[0].text
    assert first["title"] == "guide title" and first["acl"] == ["*"]
    assert first["content_hash"] == v1.chunks[0].content_hash
    assert first["embedding_model"] == "all-MiniLM-L6-v2" and first["indexed_at"] > 0
    hits = retrieve(store, "how do I restart service number 3", "acme", [])
    assert hits and hits[0].doc_id == "guide"

    # an update with fewer chunks leaves no stale point
    v2 = doc(2, "Section 0. The deployment runbook step 0 restarts the service.")
    assert len(v2.chunks) < len(v1.chunks)
    (r,) = idx.index([v2])
    assert r.points_deleted == len(v1.chunks) - len(v2.chunks)
    pts = points_of(store)
    assert {k for k, p in pts.items() if p["doc_id"] == "guide"} == {c.chunk_id for c in v2.chunks}
    assert all(p["version"] == 2 for p in pts.values() if p["doc_id"] == "guide")

    # replaying the same events twice changes nothing, and calls the model zero times
    before, calls = points_of(store), emb.calls
    for _ in range(2):
        res = idx.index([v1, other, v2])
        assert {r.status for r in res} <= {"unchanged", "stale", "superseded"}
    assert points_of(store) == before
    assert emb.calls == calls

    # an unchanged document re-sent as a new version: payloads move on, the model is not called
    v3 = doc(3, "Section 0. The deployment runbook step 0 restarts the service.")
    (r,) = idx.index([v3])
    assert (r.status, r.chunks_encoded, r.chunks_reused) == ("indexed", 0, len(v3.chunks))
    assert emb.calls == calls
    assert all(p["version"] == 3 for p in points_of(store).values() if p["doc_id"] == "guide")

    # a delete leaves none
    (r,) = idx.index([doc(4, "", op=Op.DELETE)])
    assert r.status == "deleted" and r.points_deleted == len(v3.chunks)
    assert {p["doc_id"] for p in points_of(store).values()} == {"policy"}


def test_retrieval_keeps_tenants_and_acls_apart(store: VectorStore) -> None:
    idx = Indexer(store, get_embedder(), batch_size=16)
    idx.index(
        [
            doc(1, "Salary bands for engineers are confidential.", "salaries", acl=["hr"]),
            doc(1, "The cafeteria opens at eight.", "cafeteria"),
            doc(1, "Salary bands at beta corp are public.", "beta-salaries", tenant="beta"),
        ]
    )
    seen = {h.doc_id for h in retrieve(store, "salary bands", "acme", ["eng"], top_k=10)}
    assert seen == {"cafeteria"}
    seen = {h.doc_id for h in retrieve(store, "salary bands", "acme", ["hr"], top_k=10)}
    assert seen == {"salaries", "cafeteria"}
    seen = {h.doc_id for h in retrieve(store, "salary bands", "beta", ["hr"], top_k=10)}
    assert seen == {"beta-salaries"}


def test_a_batch_naming_another_tenants_chunk_id_cannot_touch_it(store: VectorStore) -> None:
    idx = Indexer(store, get_embedder(), batch_size=16)
    victim = doc(1, "The beta vault code rotates every Monday.", "vault", tenant="beta")
    idx.index([victim])
    stolen = victim.chunks[0].chunk_id
    # acme's batch claims beta's point id for its own chunk; then acme deletes its document
    forged = doc(1, "Overwritten by acme.", "intruder")
    forged = forged.model_copy(
        update={"chunks": [forged.chunks[0].model_copy(update={"chunk_id": stolen})]}
    )
    idx.index([forged])
    idx.index([doc(2, "", "intruder", op=Op.DELETE)])
    pts = points_of(store)
    assert pts[stolen]["tenant"] == "beta" and pts[stolen]["text"] == victim.chunks[0].text
    hits = retrieve(store, "vault code", "beta", [])
    assert [h.doc_id for h in hits] == ["vault"]
    assert not [p for p in pts.values() if p["doc_id"] == "intruder"]


def test_index_stats_cli(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    store = open_store(QdrantSettings(), PlatformSettings(data_dir=tmp_path))
    try:
        Indexer(store, get_embedder()).index([doc(1, LONG), doc(1, "x y z", "o", tenant="beta")])
        expected = {"acme": len(doc(1, LONG).chunks), "beta": 1}
    finally:
        store.close()
    env = dict(os.environ, LLMOPS_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "index", "stats"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "all-MiniLM-L6-v2 (384 dims)" in out and "last indexed 20" in out
    for tenant, n in expected.items():
        assert f"{tenant}" in out and f"{n} points" in out
