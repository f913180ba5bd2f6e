"""The Indexer: applies planned document versions to the vector store. Blocking; no Kafka.

The embedding agent runs it in a worker thread; ``llmops reindex`` and tests call it directly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.embedding.logic import (
    DocPlan,
    build_points,
    collapse,
    plan_document,
    source_text,
    stored_points,
    with_point_ids,
)
from shared.contracts.events import ChunkBatch, DocumentIndexed
from shared.models.embedder import Embedder
from shared.store.base import VectorStore


@dataclass
class Indexer:
    """Writes ChunkBatches into one collection (by default the one the alias points at)."""

    store: VectorStore
    embedder: Embedder
    batch_size: int = 64
    collection: str | None = None

    def target(self) -> str:
        """The collection to write: fixed, else the active one (created on first use)."""
        if self.collection:
            self.store.ensure_collection(self.collection, self.embedder.name, self.embedder.dim)
            return self.collection
        active = self.store.active()
        if active is None:
            active = self.store.collection_name(self.embedder.name, self.embedder.dim)
            self.store.ensure_collection(active, self.embedder.name, self.embedder.dim)
            self.store.activate(active)
        return active

    def index(self, batches: Sequence[ChunkBatch]) -> list[DocumentIndexed]:
        """Index the batches; return one DocumentIndexed per batch. Idempotent."""
        collection = self.target()
        model = self.embedder.name
        latest, superseded = collapse([with_point_ids(b) for b in batches])
        stored = self.store.doc_points(collection, [b.key for b in latest], with_vectors=True)
        plans = [plan_document(b, stored_points(stored[b.key]), model) for b in latest]
        # One model call sequence across every document of the batch.
        todo = [
            (c.chunk_id, source_text(p.batch, c))
            for p in plans
            if p.status == "indexed"
            for c in p.encode
        ]
        vectors = dict(
            zip(
                [i for i, _ in todo],
                self.embedder.encode([t for _, t in todo], self.batch_size),
                strict=True,
            )
        )
        now = time.time()
        points = [
            pt
            for p in plans
            if p.status == "indexed"
            for pt in build_points(p, vectors, model, now)
        ]
        self.store.upsert(collection, points)
        self.store.delete(collection, [i for p in plans for i in p.delete_ids])
        # Superseded versions first, so docs.indexed keeps each document's version order.
        out = [self._report(b, "superseded", None, collection) for b in superseded]
        out += [self._report(p.batch, p.status, p, collection) for p in plans]
        return out

    def _report(
        self, b: ChunkBatch, status: str, plan: DocPlan | None, collection: str
    ) -> DocumentIndexed:
        indexed = plan is not None and status in ("indexed", "unchanged")
        return DocumentIndexed(
            tenant=b.tenant,
            doc_id=b.doc_id,
            version=b.version,
            op=b.op,
            status=status,
            chunk_count=len(b.chunks) if indexed else 0,
            chunks_encoded=len(plan.encode) if plan and indexed else 0,
            chunks_reused=len(plan.reuse) if plan and indexed else 0,
            points_deleted=len(plan.delete_ids) if plan else 0,
            model=self.embedder.name,
            collection=collection,
            source_event_time=b.source_event_time,
            ingested_at=b.event_time,
        )
