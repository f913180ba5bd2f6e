"""Retrieval, written once: embed the query with the active collection's model, then search
with the tenant and acl filter always applied. Used by inference and by tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.models.embedder import Embedder, get_embedder
from shared.models.files import DEFAULT_MODEL
from shared.store.base import (
    DEFAULT_FUSION,
    DEFAULT_MODE,
    DEFAULT_RRF_K,
    Fusion,
    Match,
    Scored,
    Search,
    SearchMode,
    VectorStore,
)
from shared.store.payload import PUBLIC, access_keys

FilterValue = str | int | bool | list[str] | list[int]

# What a search returns of each point's payload: what a Hit holds.
HIT_FIELDS = ["doc_id", "title", "text", "chunk_index", "page", "version", "source", "metadata"]


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk."""

    chunk_id: str
    doc_id: str
    title: str
    text: str
    score: float  # the ranking's own: cosine (dense), BM25 (sparse) or fused (hybrid)
    similarity: float  # cosine of the question and the chunk, in every mode
    chunk_index: int
    page: int | str | None  # the page, slide or sheet it is on; None without pages
    version: int
    source: str
    metadata: dict[str, Any]


def access_filter(tenant: str, groups: list[str]) -> list[Match]:
    """The condition no caller can drop: own tenant, and an acl that admits one of its groups
    (a tenant name has no '/', so no other tenant's key can match)."""
    return [Match("access", access_keys(tenant, [PUBLIC, *groups]))]


def metadata_filter(filters: Mapping[str, FilterValue] | None) -> list[Match]:
    """Caller filters, confined to the document metadata namespace."""
    return [Match(f"metadata.{key}", value) for key, value in (filters or {}).items()]


def query_embedder(
    store: VectorStore,
    collection: str | None,
    embedder_for: Callable[[str], Embedder] = get_embedder,
) -> Embedder:
    """The model that embeds queries for ``collection``: its own, or the default before any."""
    return embedder_for(store.model_of(collection) if collection else DEFAULT_MODEL)


def retrieve(
    store: VectorStore,
    query: str,
    tenant: str,
    groups: list[str],
    top_k: int = 5,
    filters: Mapping[str, FilterValue] | None = None,
    score_threshold: float | None = None,
    embedder_for: Callable[[str], Embedder] = get_embedder,
    timings: dict[str, float] | None = None,
    mode: SearchMode = DEFAULT_MODE,
    fusion: Fusion = DEFAULT_FUSION,
    rrf_k: int = DEFAULT_RRF_K,
) -> list[Hit]:
    """Best chunks for ``query`` that ``tenant`` with ``groups`` may read, best first.

    ``mode`` ranks by the embedding, by BM25, or by both fused in the engine;
    ``score_threshold`` is a cosine similarity every chunk must reach, in every mode.
    ``timings`` (when given) receives the milliseconds spent embedding and searching.
    """
    collection = store.active()
    if collection is None:
        return []
    embedder = query_embedder(store, collection, embedder_for)
    t0 = time.perf_counter()
    vector = embedder.encode([query])[0]
    t1 = time.perf_counter()
    points = store.search(
        collection,
        Search(
            vector,
            query,
            access_filter(tenant, groups) + metadata_filter(filters),
            top_k,
            mode,
            fusion,
            rrf_k,
            score_threshold,
            HIT_FIELDS,
        ),
    )
    if timings is not None:
        timings["embed"] = (t1 - t0) * 1000
        timings["retrieve"] = (time.perf_counter() - t1) * 1000
    return [_hit(p) for p in points]


def _hit(p: Scored) -> Hit:
    pl = p.payload
    return Hit(
        chunk_id=p.id,
        doc_id=pl["doc_id"],
        title=pl.get("title", ""),
        text=pl.get("text", ""),
        score=p.score,
        similarity=p.similarity,
        chunk_index=int(pl.get("chunk_index", 0)),
        page=pl.get("page"),
        version=int(pl.get("version", 0)),
        source=pl.get("source", ""),
        metadata=pl.get("metadata", {}),
    )
