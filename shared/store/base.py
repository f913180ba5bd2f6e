"""The vector store: one interface, two backends.

- Embedded (the default): Qdrant Edge, Qdrant's own engine in-process (segments, HNSW,
  payload indexes, sparse vectors, fusion). Only ``shared/store/edge.py`` imports it.
- A Qdrant server when ``QDRANT_URL`` is set, through qdrant-client (``shared/store/client.py``).

Readers and writers address a stable alias; it points at the active collection, which is
named after its embedding model and dimension. Every point has a dense vector (the embedding
model's) and a sparse BM25 vector of the same text, so a query can rank by either or fuse
both in the engine. Callers see only the types of this module, never a backend's own.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

# acl holds this marker when a document is readable by every group of its tenant.
# The payload fields filters use, each with a keyword index.
INDEXED_FIELDS = ("doc_key", "tenant", "doc_id", "acl", "access")
DENSE = "dense"
SPARSE = "bm25"
# Each ranking hands this many candidates (per result asked) to the fusion.
PREFETCH_PER_RESULT = 4
# With a score threshold, sparse and hybrid queries ask the engine for this many times the
# results: those under the threshold are dropped after.
OVERFETCH_UNDER_THRESHOLD = 2


class StoreError(RuntimeError):
    """The store cannot be opened as it is; the message says what to do."""


class StoreLocked(StoreError):
    """The embedded store is held by another process."""


class LegacyStore(StoreError):
    """An embedded store written by an older version (qdrant-client's local mode)."""


class SearchMode(StrEnum):
    """How retrieval ranks chunks."""

    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


class Fusion(StrEnum):
    """How hybrid retrieval fuses the dense and the BM25 rankings (in the engine)."""

    RRF = "rrf"
    DBSF = "dbsf"


FilterScalar = str | int | bool

# The retrieval defaults (bench/retrieval.py chose them); INFERENCE_* settings override them.
DEFAULT_MODE = SearchMode.HYBRID
DEFAULT_FUSION = Fusion.DBSF
DEFAULT_RRF_K = 60


@dataclass(frozen=True)
class Match:
    """A filter condition: payload field ``key`` equals ``value``, or one of a list's values."""

    key: str
    value: FilterScalar | list[str] | list[int]


@dataclass(frozen=True)
class Point:
    """A point to write: its dense vector, and the text its BM25 vector is made from."""

    id: str
    vector: Sequence[float]
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Record:
    """A stored point (the dense vector only when asked for)."""

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True)
class Scored:
    """A search result: ``score`` is the ranking's own (cosine, BM25 or fused), ``similarity``
    the cosine of the query and the point's dense vector, whatever the ranking."""

    id: str
    score: float
    similarity: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class Search:
    """One query: the ranking, the filter that always applies, and how many results.

    ``score_threshold`` is a cosine similarity: every result is at least that similar to the
    question, in every mode (the sparse and fused rankings only reorder such chunks).
    """

    vector: list[float]
    text: str
    must: list[Match]
    limit: int
    mode: SearchMode = DEFAULT_MODE
    fusion: Fusion = DEFAULT_FUSION
    rrf_k: int = DEFAULT_RRF_K
    score_threshold: float | None = None
    payload: list[str] | None = None  # the payload fields to return; None: all

    def plan(self) -> list[Stage]:
        """The rankings to run: one, or two for the engine to fuse (dense first)."""
        if self.mode == SearchMode.DENSE:
            return [Stage(DENSE, self.limit, self.score_threshold)]
        if self.mode == SearchMode.SPARSE:
            return [Stage(SPARSE, self.engine_limit())]
        n = max(self.limit * PREFETCH_PER_RESULT, 20)
        return [Stage(DENSE, n, self.score_threshold), Stage(SPARSE, n)]

    def engine_limit(self) -> int:
        """Results to ask the engine for (more when some may fall under the threshold)."""
        if self.score_threshold is None or self.mode == SearchMode.DENSE:
            return self.limit
        return self.limit * OVERFETCH_UNDER_THRESHOLD

    def single(self) -> Stage | None:
        """The one ranking of a dense or sparse query; None when two are fused."""
        stages = self.plan()
        return stages[0] if len(stages) == 1 else None

    def exact(self) -> bool:
        """Whether the engine's score is the cosine itself (a dense ranking), so that no
        vector needs to come back to compute the similarity."""
        top = self.single()
        return top is not None and top.using == DENSE

    def scored(self, found: Sequence[tuple[str, float, Any, dict[str, Any]]]) -> list[Scored]:
        """The results from the engine's ``(id, score, vectors, payload)``, best first: each
        with its similarity, those under the threshold dropped (a cosine similarity in every
        mode: the sparse and fused rankings only reorder chunks that similar), up to the
        limit. Dropping is done here, not in the engine, so that a query scans the dense
        vectors once: a BM25 ranking restricted to the dense candidates over the threshold
        would scan them a second time."""
        scores = [float(score) for _, score, _, _ in found]
        similar = (
            scores
            if self.exact()
            else cosines(self.vector, [dense_of(vectors) for _, _, vectors, _ in found])
        )
        t = self.score_threshold
        return [
            Scored(pid, score, sim, payload)
            for (pid, _, _, payload), score, sim in zip(found, scores, similar, strict=True)
            if t is None or sim >= t
        ][: self.limit]


@dataclass(frozen=True)
class Stage:
    """One ranking of a query plan: by the dense or the BM25 vector."""

    using: str
    limit: int
    threshold: float | None = None


@dataclass
class CollectionInfo:
    """What a collection holds."""

    name: str
    model: str
    dim: int
    points: int


def dense_of(vectors: Any) -> list[float] | None:
    """The dense vector among a point's named vectors (None when it did not come back)."""
    v = vectors.get(DENSE) if isinstance(vectors, dict) else None
    return list(v) if v is not None else None


def cosines(query: Sequence[float], stored: Sequence[Sequence[float] | None]) -> list[float]:
    """Cosine of the query and each stored vector (all unit length: the embedder normalises
    every vector), in one matrix product."""
    if any(v is None for v in stored):
        raise ValueError("the store returned a point without its dense vector")
    if not stored:
        return []
    return [float(x) for x in np.asarray(stored, dtype=np.float32) @ np.asarray(query)]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class VectorStore(ABC):
    """Collections behind an alias, points with dense and BM25 vectors; thread-safe."""

    alias: str
    backend: ClassVar[str] = ""  # which engine, for stats and messages
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _models: dict[str, str] = field(default_factory=dict, repr=False)

    @abstractmethod
    def close(self) -> None:
        """Release the store (and the embedded store's lock)."""

    def transient(self, exc: BaseException) -> bool:
        """A store that is down, slow or short of disk: retry, it is not the input's fault."""
        return isinstance(exc, ConnectionError | TimeoutError | OSError)

    # collections -----------------------------------------------------------------------
    def collection_name(self, model: str, dim: int, generation: str = "") -> str:
        """Collection name for a model and dimension (plus a generation for rebuilds)."""
        base = f"{self.alias}-{slug(Path(model).name)}-{dim}"
        return f"{base}-{generation}" if generation else base

    @abstractmethod
    def ensure_collection(self, name: str, model: str, dim: int) -> None:
        """Create the collection (dense and BM25 vectors, payload indexes) unless it exists."""

    @abstractmethod
    def active(self) -> str | None:
        """The collection the alias points at."""

    @abstractmethod
    def activate(self, collection: str) -> str | None:
        """Point the alias at ``collection`` atomically; return the previous one."""

    @abstractmethod
    def info(self, collection: str) -> CollectionInfo:
        """Model, dimension and size of a collection."""

    @abstractmethod
    def drop(self, collection: str) -> None:
        """Delete a collection."""

    def optimize(self, collection: str) -> None:  # noqa: B027 - most engines need nothing
        """Build the collection's search indexes now, where the engine does not do it by
        itself (a rebuilt collection, before it goes live)."""

    def model_of(self, collection: str) -> str:
        """Embedding model of a collection (cached: a collection's model never changes)."""
        model = self._models.get(collection)
        if model is None:
            model = self._models[collection] = self.info(collection).model
        return model

    # points ----------------------------------------------------------------------------
    @abstractmethod
    def upsert(self, collection: str, points: list[Point]) -> None:
        """Insert or replace points; returns once the store has them."""

    @abstractmethod
    def delete(self, collection: str, ids: list[str]) -> None:
        """Delete points by id; returns once they are gone."""

    @abstractmethod
    def scroll(
        self,
        collection: str,
        must: list[Match],
        offset: str | None,
        limit: int,
        with_vectors: bool,
    ) -> tuple[list[Record], str | None]:
        """A page of points under a filter, and the offset of the next page (None: done)."""

    @abstractmethod
    def search(self, collection: str, search: Search) -> list[Scored]:
        """The best points for ``search``, best first."""

    def doc_points(
        self, collection: str, keys: list[str], with_vectors: bool = False
    ) -> dict[str, list[Record]]:
        """Every point of the given documents (``tenant/doc_id`` keys), in one scan."""
        out: dict[str, list[Record]] = {k: [] for k in keys}
        if keys:
            for rec in self._scan(collection, [Match("doc_key", keys)], with_vectors):
                out[str(rec.payload.get("doc_key"))].append(rec)
        return out

    def all_payloads(self, collection: str) -> list[Record]:
        """Every point's payload (for stats, tests and conversions; a scan)."""
        return list(self._scan(collection, [], False))

    def _scan(self, collection: str, must: list[Match], with_vectors: bool) -> list[Record]:
        out: list[Record] = []
        offset: str | None = None
        with self._lock:
            while True:
                page, offset = self.scroll(collection, must, offset, 1024, with_vectors)
                out.extend(page)
                if offset is None:
                    return out

    def stats(self) -> dict[str, Any]:
        """Points per tenant, model and last indexed time of the active collection."""
        name = self.active()
        if name is None:
            return {"alias": self.alias, "collection": None, "backend": self.backend}
        info = self.info(name)
        per_tenant: Counter[str] = Counter()
        last = 0.0
        for rec in self.all_payloads(name):
            per_tenant[str(rec.payload.get("tenant"))] += 1
            last = max(last, float(rec.payload.get("indexed_at", 0.0)))
        return {
            "alias": self.alias,
            "backend": self.backend,
            "collection": name,
            "model": info.model,
            "dim": info.dim,
            "points": info.points,
            "per_tenant": dict(sorted(per_tenant.items())),
            "last_indexed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last))
            if last
            else None,
        }
