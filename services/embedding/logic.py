"""Embedding's pure logic: what to encode, keep and delete for each document. No I/O here."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.events import Chunk, ChunkBatch, Op, chunk_id
from shared.store.base import Point, Record
from shared.store.payload import PUBLIC, access_keys, filterable, indexed_text


@dataclass(frozen=True)
class StoredPoint:
    """What the store holds for one point of a document."""

    id: str
    version: int
    index_hash: str  # of the text embedded and indexed: the chunk with its context
    model: str
    vector: Sequence[float] | None = None


@dataclass
class DocPlan:
    """The work for one document version."""

    batch: ChunkBatch
    status: str  # indexed, unchanged, deleted or stale
    encode: list[Chunk] = field(default_factory=list)
    reuse: dict[str, Sequence[float]] = field(default_factory=dict)
    delete_ids: list[str] = field(default_factory=list)


def with_point_ids(batch: ChunkBatch) -> ChunkBatch:
    """``batch`` with each chunk's id derived from its tenant, doc id and index: a point id is
    never taken from the record, so a batch cannot overwrite (or delete) a point of another
    document or tenant by naming its id."""
    chunks = [
        c
        if c.chunk_id == (derived := chunk_id(batch.tenant, batch.doc_id, c.index))
        else c.model_copy(update={"chunk_id": derived})
        for c in batch.chunks
    ]
    if all(a is b for a, b in zip(chunks, batch.chunks, strict=True)):
        return batch
    return batch.model_copy(update={"chunks": chunks})


def source_text(batch: ChunkBatch, chunk: Chunk) -> str:
    """The text a chunk is embedded and BM25-indexed from."""
    return indexed_text(batch.title, chunk.heading, chunk.text)


def index_hash(batch: ChunkBatch, chunk: Chunk) -> str:
    """SHA-256 of ``source_text``: a new title or heading re-embeds an unchanged chunk."""
    return hashlib.sha256(source_text(batch, chunk).encode()).hexdigest()


def stored_points(records: Iterable[Record]) -> list[StoredPoint]:
    """StoredPoints from the store's records."""
    return [
        StoredPoint(
            r.id,
            int(r.payload.get("version", -1)),
            str(r.payload.get("index_hash", "")),  # absent before titles were indexed
            str(r.payload.get("embedding_model", "")),
            r.vector,
        )
        for r in records
    ]


def collapse(batches: Sequence[ChunkBatch]) -> tuple[list[ChunkBatch], list[ChunkBatch]]:
    """Latest batch per document (in arrival order), and the ones a later batch superseded."""
    last: dict[str, ChunkBatch] = {}
    superseded: list[ChunkBatch] = []
    for b in batches:
        prev = last.get(b.key)
        if prev is not None:
            if b.version >= prev.version:
                superseded.append(prev)
            else:
                superseded.append(b)
                continue
        last[b.key] = b
    return list(last.values()), superseded


def plan_document(batch: ChunkBatch, existing: Sequence[StoredPoint], model: str) -> DocPlan:
    """Decide what one document version needs, given what is stored for it."""
    stored_version = max((p.version for p in existing), default=None)
    if stored_version is not None and batch.version < stored_version:
        return DocPlan(batch, "stale")
    if batch.op is Op.DELETE:
        return DocPlan(batch, "deleted", delete_ids=[p.id for p in existing])
    by_id = {p.id: p for p in existing}
    plan = DocPlan(batch, "indexed")
    for chunk in batch.chunks:
        old = by_id.get(chunk.chunk_id)
        if (
            old is not None
            and old.vector is not None
            and old.model == model
            and old.index_hash == index_hash(batch, chunk)
        ):
            plan.reuse[chunk.chunk_id] = old.vector
        else:
            plan.encode.append(chunk)
    keep = {c.chunk_id for c in batch.chunks}
    plan.delete_ids = [p.id for p in existing if p.id not in keep]
    if stored_version == batch.version and not plan.encode and not plan.delete_ids:
        # A redelivery or replay of what is stored: write nothing, so payloads stay as they are.
        return DocPlan(batch, "unchanged", reuse=plan.reuse)
    return plan


def payload(batch: ChunkBatch, chunk: Chunk, model: str, indexed_at: float) -> dict[str, Any]:
    """Everything a reader needs about a point, and what idempotency checks."""
    return {
        "doc_key": batch.key,
        "tenant": batch.tenant,
        "doc_id": batch.doc_id,
        "version": batch.version,
        "chunk_id": chunk.chunk_id,
        "chunk_index": chunk.index,
        "text": chunk.text,
        "title": batch.title,
        "heading": chunk.heading,
        "page": chunk.page,
        "source": batch.source,
        "acl": batch.acl or [PUBLIC],
        "access": access_keys(batch.tenant, batch.acl),
        "metadata": filterable(batch.metadata),
        "content_hash": chunk.content_hash,
        "index_hash": index_hash(batch, chunk),
        "embedding_model": model,
        "indexed_at": indexed_at,
    }


def build_points(
    plan: DocPlan, vectors: Mapping[str, Sequence[float]], model: str, indexed_at: float
) -> list[Point]:
    """Points for every chunk of a planned document (new vectors or reused ones)."""
    return [
        Point(
            id=chunk.chunk_id,
            vector=list(vectors.get(chunk.chunk_id) or plan.reuse[chunk.chunk_id]),
            text=source_text(plan.batch, chunk),
            payload=payload(plan.batch, chunk, model, indexed_at),
        )
        for chunk in plan.batch.chunks
    ]
