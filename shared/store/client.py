"""The vector store on a Qdrant server, through qdrant-client (``QDRANT_URL``).

The same code also runs against qdrant-client's local mode (``ClientStore.local``): the
store contract tests use it where no server can be started, so this path is exercised on
every machine, and on a real server where Docker exists.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from shared.settings import QdrantSettings
from shared.store.base import (
    DENSE,
    INDEXED_FIELDS,
    SPARSE,
    CollectionInfo,
    LegacyStore,
    Match,
    Point,
    Record,
    Scored,
    Search,
    Stage,
    VectorStore,
    dense_of,
)
from shared.store.bm25 import bm25_document, bm25_query


def _filter(must: list[Match]) -> qm.Filter | None:
    if not must:
        return None
    conds: list[qm.Condition] = [
        qm.FieldCondition(
            key=m.key,
            match=qm.MatchAny(any=m.value)
            if isinstance(m.value, list)
            else qm.MatchValue(value=m.value),
        )
        for m in must
    ]
    return qm.Filter(must=conds)


def _vector(stage: Stage, search: Search) -> Any:
    if stage.using == DENSE:
        return search.vector
    indices, values = bm25_query(search.text)
    return qm.SparseVector(indices=indices, values=values)


def _prefetch(stage: Stage, search: Search, flt: qm.Filter | None) -> qm.Prefetch:
    return qm.Prefetch(
        query=_vector(stage, search),
        using=stage.using,
        limit=stage.limit,
        filter=flt,
        score_threshold=stage.threshold,
    )


@dataclass
class ClientStore(VectorStore):
    """Collections and aliases of a Qdrant server (or of qdrant-client's local mode)."""

    backend = "qdrant-server"
    client: QdrantClient = field(default=None, repr=False)  # type: ignore[assignment]

    @classmethod
    def connect(cls, settings: QdrantSettings, alias: str, convert: bool = False) -> ClientStore:
        """The server at ``settings.url``. LegacyStore if its alias points at a collection an
        older version made, unless ``convert`` (``llmops reindex`` builds a new one)."""
        key = settings.api_key.get_secret_value() if settings.api_key else None
        client = QdrantClient(url=settings.url, api_key=key, timeout=int(settings.timeout_s))
        store = cls(alias=alias, client=client)
        if not convert:
            try:
                store.refuse_legacy(str(settings.url))
            except LegacyStore:
                store.close()
                raise
        return store

    def refuse_legacy(self, where: str) -> None:
        """LegacyStore if the alias points at a collection an older version made (one unnamed
        vector, no BM25): this version can neither write nor search it."""
        active = self.active()
        if active is None:
            return
        params = self.client.get_collection(active).config.params
        vectors, sparse = params.vectors, params.sparse_vectors
        if not (isinstance(vectors, dict) and DENSE in vectors and SPARSE in (sparse or {})):
            raise LegacyStore(
                f"collection {active} (alias {self.alias}) on {where} was made by an older "
                "version: one unnamed vector, no BM25. Run `llmops reindex` to build a new "
                "collection from docs.chunks and move the alias to it (the old one is kept)."
            )

    @classmethod
    def local(cls, location: str, alias: str) -> ClientStore:
        """qdrant-client's local mode (``:memory:`` or a folder): for tests and conversions."""
        client = QdrantClient(location=location) if location == ":memory:" else None
        store = cls(alias=alias, client=client or QdrantClient(path=location))
        store.backend = "qdrant-client-local"  # type: ignore[misc]
        return store

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def transient(self, exc: BaseException) -> bool:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if isinstance(exc, UnexpectedResponse):
            code = exc.status_code
            return code is not None and (code >= 500 or code == 429)
        return isinstance(exc, ResponseHandlingException) or super().transient(exc)

    # collections -----------------------------------------------------------------------
    def ensure_collection(self, name: str, model: str, dim: int) -> None:
        with self._lock:
            if self.client.collection_exists(name):
                return
            self.client.create_collection(
                name,
                vectors_config={DENSE: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                metadata={"embedding_model": model, "dim": dim},
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # local mode says indexes are a no-op
                for f in INDEXED_FIELDS:
                    self.client.create_payload_index(name, f, qm.PayloadSchemaType.KEYWORD)

    def active(self) -> str | None:
        with self._lock:
            for a in self.client.get_aliases().aliases:
                if a.alias_name == self.alias:
                    return a.collection_name
        return None

    def activate(self, collection: str) -> str | None:
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
        with self._lock:
            meta = self.client.get_collection(collection).config.metadata or {}
            count = self.client.count(collection, exact=True).count
        return CollectionInfo(
            collection, str(meta.get("embedding_model", "?")), int(meta.get("dim", 0)), count
        )

    def drop(self, collection: str) -> None:
        with self._lock:
            self.client.delete_collection(collection)

    # points ----------------------------------------------------------------------------
    def upsert(self, collection: str, points: list[Point]) -> None:
        if not points:
            return
        structs = []
        for p in points:
            indices, values = bm25_document(p.text)
            structs.append(
                qm.PointStruct(
                    id=p.id,
                    vector={
                        DENSE: list(p.vector),
                        SPARSE: qm.SparseVector(indices=indices, values=values),
                    },
                    payload=p.payload,
                )
            )
        with self._lock:
            self.client.upsert(collection, points=structs, wait=True)

    def delete(self, collection: str, ids: list[str]) -> None:
        if ids:
            with self._lock:
                self.client.delete(
                    collection, points_selector=qm.PointIdsList(points=list(ids)), wait=True
                )

    def scroll(
        self,
        collection: str,
        must: list[Match],
        offset: str | None,
        limit: int,
        with_vectors: bool,
    ) -> tuple[list[Record], str | None]:
        with self._lock:
            page, nxt = self.client.scroll(
                collection,
                scroll_filter=_filter(must),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=[DENSE] if with_vectors else False,
            )
        return [Record(str(r.id), dict(r.payload or {}), dense_of(r.vector)) for r in page], (
            str(nxt) if nxt is not None else None
        )

    def search(self, collection: str, search: Search) -> list[Scored]:
        flt = _filter(search.must)
        top = search.single()
        if top:
            query: Any = _vector(top, search)
        elif search.fusion == "dbsf":
            query = qm.FusionQuery(fusion=qm.Fusion.DBSF)
        else:
            query = qm.RrfQuery(rrf=qm.Rrf(k=search.rrf_k))
        with self._lock:
            points = self.client.query_points(
                collection,
                query=query,
                using=top.using if top else None,
                prefetch=None if top else [_prefetch(s, search, flt) for s in search.plan()],
                query_filter=flt,
                limit=search.engine_limit(),
                score_threshold=top.threshold if top else None,
                with_payload=search.payload or True,
                with_vectors=False if search.exact() else [DENSE],
            ).points
        return search.scored(
            [(str(p.id), p.score, p.vector, dict(p.payload or {})) for p in points]
        )
