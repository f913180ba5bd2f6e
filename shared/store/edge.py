"""The embedded vector store on Qdrant Edge (``qdrant-edge-py``, beta and pinned): the only
module that imports it.

An Edge shard is one collection, so the store is a folder of them::

    <path>/store.json                  format and aliases (replaced atomically)
    <path>/.lock                       held while a process has the store open
    <path>/collections/<name>/meta.json   embedding model and dimension
    <path>/collections/<name>/shard/      the Edge shard (segments, WAL, indexes)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import qdrant_edge as qe

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
    StoreLocked,
    VectorStore,
    dense_of,
)
from shared.store.bm25 import bm25_document, bm25_query

FORMAT = "qdrant-edge/1"
# qdrant-edge-py 0.9.0 turns MatchValue(True) into MatchValue(1), which matches no boolean: a
# boolean payload value is stored as one of these strings, and a boolean match is made on it.
_BOOLS = {True: "\x00bool:true", False: "\x00bool:false"}
_FROM_BOOLS = {v: k for k, v in _BOOLS.items()}


def _encode(value: Any) -> Any:
    if isinstance(value, bool):
        return _BOOLS[value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        return _FROM_BOOLS.get(value, value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _legacy(path: Path) -> bool:
    """A folder qdrant-client's local mode wrote (its meta.json lists collections)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "collections" in meta


def _filter(must: list[Match]) -> qe.Filter | None:
    if not must:
        return None
    conds: list[Any] = [
        qe.FieldCondition(
            key=m.key,
            match=qe.MatchAny(m.value)
            if isinstance(m.value, list)
            else qe.MatchValue(_encode(m.value)),
        )
        for m in must
    ]
    return qe.Filter(must=conds)


def _vector(stage: Stage, search: Search) -> Any:
    if stage.using == DENSE:
        return search.vector
    return qe.SparseVector(*bm25_query(search.text))


def _prefetch(stage: Stage, search: Search, flt: qe.Filter | None) -> qe.Prefetch:
    return qe.Prefetch(
        limit=stage.limit,
        query=qe.Query.Nearest(_vector(stage, search), using=stage.using),
        filter=flt,
        score_threshold=stage.threshold,
    )


@dataclass
class EdgeStore(VectorStore):
    """Collections as Edge shards in one folder, held by one process."""

    backend = "qdrant-edge"
    path: Path = field(default=Path("."))
    _lockfile: IO[str] | None = field(default=None, repr=False)
    _shards: dict[str, qe.EdgeShard] = field(default_factory=dict, repr=False)
    moved_aside: list[Path] = field(default_factory=list)  # old stores a conversion moved
    _cached: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def at(cls, path: Path, alias: str, legacy: Path, convert: bool = False) -> EdgeStore:
        """Open (or create) the store in ``path``; StoreLocked if another process has it."""
        olds = [p for p in dict.fromkeys([path, legacy]) if _legacy(p)]
        moved: list[Path] = []
        if olds and not (path / "store.json").exists():
            if not convert:
                raise LegacyStore(
                    f"{olds[0]} holds a vector store written by an older version (qdrant-client's "
                    f"local mode); this version keeps its embedded store in Qdrant Edge at {path}. "
                    "Run `llmops reindex` to rebuild it there from docs.chunks (the old folder is "
                    "moved aside, not deleted), or set QDRANT_URL to use a Qdrant server."
                )
            for old in olds:
                aside = old.with_name(f"{old.name}.local-mode-{time.strftime('%Y%m%d%H%M%S')}")
                old.rename(aside)
                moved.append(aside)
        path.mkdir(parents=True, exist_ok=True)
        lockfile = (path / ".lock").open("a")
        try:
            fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lockfile.close()
            raise StoreLocked(
                f"the embedded vector store at {path} is open in another process (a running "
                "embedding service?). Stop it, or use a Qdrant server (QDRANT_URL)."
            ) from exc
        store = cls(alias=alias, path=path, _lockfile=lockfile, moved_aside=moved)
        if not (path / "store.json").exists():
            store._write_state({"format": FORMAT, "aliases": {}})
        return store

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            if self._lockfile is not None:
                self._lockfile.close()  # releases the flock
                self._lockfile = None

    # state -----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        """The aliases, read once: this process holds the lock, so only it can change the
        file. Never changed in place: ``_write_state`` replaces it (``active()`` reads it on
        every query, which a copy each time would slow)."""
        if self._cached is None:
            state: dict[str, Any] = json.loads((self.path / "store.json").read_text())
            if state.get("format") != FORMAT:
                raise RuntimeError(
                    f"{self.path}/store.json: unknown format {state.get('format')!r}"
                )
            self._cached = state
        return self._cached

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.path / f".store.json.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.path / "store.json")  # a crash leaves the old file or the new one
        self._cached = state

    def _dir(self, name: str) -> Path:
        return self.path / "collections" / name

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is None:
            if not (self._dir(name) / "meta.json").exists():
                raise KeyError(f"no collection {name!r} in {self.path}")
            shard = self._shards[name] = qe.EdgeShard.load(str(self._dir(name) / "shard"))
        return shard

    # collections -----------------------------------------------------------------------
    def ensure_collection(self, name: str, model: str, dim: int) -> None:
        with self._lock:
            d = self._dir(name)
            if (d / "meta.json").exists():
                return
            shutil.rmtree(d, ignore_errors=True)  # a creation cut short
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            d.mkdir(parents=True)
            shard = qe.EdgeShard.create(str(d / "shard"), config)
            for f in INDEXED_FIELDS:
                shard.update(qe.UpdateOperation.create_field_index(f, qe.PayloadSchemaType.Keyword))
            shard.flush()
            self._shards[name] = shard
            # Written last: a folder without it is a creation that did not finish.
            (d / "meta.json").write_text(json.dumps({"embedding_model": model, "dim": dim}))

    def active(self) -> str | None:
        with self._lock:
            name: str | None = self._state()["aliases"].get(self.alias)
            return name

    def activate(self, collection: str) -> str | None:
        with self._lock:
            self._shard(collection)  # it must exist
            state = self._state()
            previous: str | None = state["aliases"].get(self.alias)
            self._write_state({**state, "aliases": {**state["aliases"], self.alias: collection}})
            return previous

    def info(self, collection: str) -> CollectionInfo:
        with self._lock:
            meta = json.loads((self._dir(collection) / "meta.json").read_text())
            count = self._shard(collection).count(qe.CountRequest(exact=True))
        return CollectionInfo(collection, str(meta["embedding_model"]), int(meta["dim"]), count)

    def drop(self, collection: str) -> None:
        with self._lock:
            shard = self._shards.pop(collection, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._dir(collection), ignore_errors=True)

    # points ----------------------------------------------------------------------------
    def upsert(self, collection: str, points: list[Point]) -> None:
        if not points:
            return
        edge = [
            qe.Point(
                p.id,
                {DENSE: list(p.vector), SPARSE: qe.SparseVector(*bm25_document(p.text))},
                _encode(p.payload),
            )
            for p in points
        ]
        with self._lock:
            self._shard(collection).update(qe.UpdateOperation.upsert_points(edge))

    def delete(self, collection: str, ids: list[str]) -> None:
        if ids:
            with self._lock:
                self._shard(collection).update(qe.UpdateOperation.delete_points(list(ids)))

    def scroll(
        self,
        collection: str,
        must: list[Match],
        offset: str | None,
        limit: int,
        with_vectors: bool,
    ) -> tuple[list[Record], str | None]:
        request = qe.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=_filter(must),
            with_payload=True,
            with_vector=[DENSE] if with_vectors else False,
        )
        with self._lock:
            page, nxt = self._shard(collection).scroll(request)
        return [Record(str(r.id), _decode(r.payload or {}), dense_of(r.vector)) for r in page], (
            str(nxt) if nxt is not None else None
        )

    def search(self, collection: str, search: Search) -> list[Scored]:
        flt = _filter(search.must)
        top = search.single()
        if top:
            query: Any = qe.Query.Nearest(_vector(top, search), using=top.using)
        elif search.fusion == "dbsf":
            query = qe.Fusion.Dbsf()
        else:
            query = qe.Fusion.Rrf(k=search.rrf_k)
        request = qe.QueryRequest(
            limit=search.engine_limit(),
            query=query,
            prefetches=None if top else [_prefetch(s, search, flt) for s in search.plan()],
            filter=flt,
            score_threshold=top.threshold if top else None,
            with_payload=search.payload or True,
            with_vector=False if search.exact() else [DENSE],
        )
        with self._lock:
            points = self._shard(collection).query(request)
        return search.scored(
            [(str(p.id), p.score, p.vector, _decode(p.payload or {})) for p in points]
        )

    def optimize(self, collection: str) -> None:
        """Merge segments and build the HNSW index. Edge does this only when asked, and holds
        the GIL throughout (17 s at 50k points: the whole process stops), so only a rebuild
        calls it, before its collection goes live; points added later are searched exactly."""
        with self._lock:
            self._shard(collection).optimize()
