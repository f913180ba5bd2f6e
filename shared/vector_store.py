"""The vector store: one code path for embedded Qdrant (on disk) and a Qdrant server.

Readers and writers address the stable alias; it points at the active collection, which is
named after its embedding model and dimension. The embedded store is single-process (it
takes a file lock), so every call goes through one lock and the process owns the store.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from shared.settings import PlatformSettings, QdrantSettings

log = logging.getLogger(__name__)

INDEXED_FIELDS = {
    "doc_key": qm.PayloadSchemaType.KEYWORD,
    "tenant": qm.PayloadSchemaType.KEYWORD,
    "doc_id": qm.PayloadSchemaType.KEYWORD,
    "acl": qm.PayloadSchemaType.KEYWORD,
}
# acl holds this marker when a document is readable by every group of its tenant.
PUBLIC = "*"


class StoreLocked(RuntimeError):
    """The embedded store is held by another process."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class CollectionInfo:
    """What a collection holds."""

    name: str
    model: str
    dim: int
    points: int


@dataclass
class VectorStore:
    """Thread-safe facade over a QdrantClient."""

    client: QdrantClient
    alias: str
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _models: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls, settings: QdrantSettings, platform: PlatformSettings, prefix: str = ""
    ) -> VectorStore:
        """Connect to the server in ``settings.url``, else open the embedded store on disk."""
        alias = _slug(f"{prefix}{settings.alias}") or "chunks"
        if settings.url:
            key = settings.api_key.get_secret_value() if settings.api_key else None
            client = QdrantClient(url=settings.url, api_key=key, timeout=int(settings.timeout_s))
        else:
            path = settings.path or platform.data_dir / "qdrant"
            Path(path).mkdir(parents=True, exist_ok=True)
            try:
                client = QdrantClient(path=str(path))
            except RuntimeError as exc:
                if "already accessed" in str(exc):
                    raise StoreLocked(
                        f"the embedded vector store at {path} is open in another process "
                        "(a running embedding service?). Stop it, or use a Qdrant server "
                        "(QDRANT_URL)."
                    ) from exc
                raise
        return cls(client=client, alias=alias)

    def close(self) -> None:
        """Release the store (and the embedded store's file lock)."""
        with self._lock:
            self.client.close()

    # collections -----------------------------------------------------------------------
    def collection_name(self, model: str, dim: int, generation: str = "") -> str:
        """Collection name for a model and dimension (plus a generation for rebuilds)."""
        base = f"{self.alias}-{_slug(Path(model).name)}-{dim}"
        return f"{base}-{generation}" if generation else base

    def ensure_collection(self, name: str, model: str, dim: int) -> None:
        """Create the collection with payload indexes unless it exists."""
        with self._lock:
            if self.client.collection_exists(name):
                return
            self.client.create_collection(
                name,
                vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                metadata={"embedding_model": model, "dim": dim},
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # embedded Qdrant says indexes are a no-op
                for field_name, schema in INDEXED_FIELDS.items():
                    self.client.create_payload_index(name, field_name, schema)

    def active(self) -> str | None:
        """The collection the alias points at."""
        with self._lock:
            for a in self.client.get_aliases().aliases:
                if a.alias_name == self.alias:
                    return a.collection_name
        return None

    def activate(self, collection: str) -> str | None:
        """Point the alias at ``collection`` in one atomic operation; return the previous one."""
        with self._lock:
            previous = self.active()
            ops: list[Any] = []
            if previous is not None:
                ops.append(
                    qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.alias))
                )
            ops.append(
                qm.CreateAliasOperation(
                    create_alias=qm.CreateAlias(collection_name=collection, alias_name=self.alias)
                )
            )
            self.client.update_collection_aliases(change_aliases_operations=ops)
            return previous

    def info(self, collection: str) -> CollectionInfo:
        """Model, dimension and size of a collection."""
        with self._lock:
            c = self.client.get_collection(collection)
            meta = c.config.metadata or {}
            count = self.client.count(collection, exact=True).count
        return CollectionInfo(
            collection, str(meta.get("embedding_model", "?")), int(meta.get("dim", 0)), count
        )

    def model_of(self, collection: str) -> str:
        """Embedding model of a collection (cached: a collection's model never changes)."""
        model = self._models.get(collection)
        if model is None:
            with self._lock:
                meta = self.client.get_collection(collection).config.metadata or {}
            model = self._models[collection] = str(meta.get("embedding_model", ""))
        return model

    def drop(self, collection: str) -> None:
        """Delete a collection."""
        with self._lock:
            self.client.delete_collection(collection)

    # points ----------------------------------------------------------------------------
    def doc_points(
        self, collection: str, keys: list[str], with_vectors: bool = False
    ) -> dict[str, list[qm.Record]]:
        """Every point of the given documents (``tenant/doc_id`` keys), in one scan."""
        out: dict[str, list[qm.Record]] = {k: [] for k in keys}
        if not keys:
            return out
        flt = qm.Filter(must=[qm.FieldCondition(key="doc_key", match=qm.MatchAny(any=keys))])
        offset = None
        with self._lock:
            while True:
                page, offset = self.client.scroll(
                    collection,
                    scroll_filter=flt,
                    limit=1024,
                    offset=offset,
                    with_payload=True,
                    with_vectors=with_vectors,
                )
                for rec in page:
                    out[str((rec.payload or {}).get("doc_key"))].append(rec)
                if offset is None:
                    return out

    def upsert(self, collection: str, points: list[qm.PointStruct]) -> None:
        """Insert or replace points; returns once the store has them (wait=True)."""
        if points:
            with self._lock:
                self.client.upsert(collection, points=points, wait=True)

    def delete(self, collection: str, ids: list[str]) -> None:
        """Delete points by id (wait=True)."""
        if ids:
            with self._lock:
                self.client.delete(
                    collection, points_selector=qm.PointIdsList(points=ids), wait=True
                )

    def search(
        self,
        collection: str,
        vector: list[float],
        must: list[qm.Condition],
        limit: int,
        score_threshold: float | None = None,
    ) -> list[qm.ScoredPoint]:
        """Nearest points under a filter."""
        with self._lock:
            return self.client.query_points(
                collection,
                query=vector,
                query_filter=qm.Filter(must=must),
                limit=limit,
                with_payload=True,
                score_threshold=score_threshold,
            ).points

    def all_payloads(self, collection: str) -> list[qm.Record]:
        """Every point's payload (for stats and tests; a scan)."""
        out: list[qm.Record] = []
        offset = None
        with self._lock:
            while True:
                page, offset = self.client.scroll(
                    collection, limit=1024, offset=offset, with_payload=True, with_vectors=False
                )
                out.extend(page)
                if offset is None:
                    return out

    def stats(self) -> dict[str, Any]:
        """Points per tenant, model and last indexed time of the active collection."""
        name = self.active()
        if name is None:
            return {"alias": self.alias, "collection": None}
        info = self.info(name)
        per_tenant: Counter[str] = Counter()
        last = 0.0
        for rec in self.all_payloads(name):
            p = rec.payload or {}
            per_tenant[str(p.get("tenant"))] += 1
            last = max(last, float(p.get("indexed_at", 0.0)))
        return {
            "alias": self.alias,
            "collection": name,
            "model": info.model,
            "dim": info.dim,
            "points": info.points,
            "per_tenant": dict(sorted(per_tenant.items())),
            "last_indexed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last))
            if last
            else None,
        }
