"""The vector store's contract, run on every backend (the ``any_store`` fixture): Qdrant Edge,
qdrant-client's local mode, and a Qdrant server where Docker exists. Whatever the platform
needs of a store is here; the embedded store's own duties (one process, on disk, refusing an
old store) follow."""

from __future__ import annotations

import math
import random
import uuid
from pathlib import Path

import pytest

from shared.settings import PlatformSettings, QdrantSettings
from shared.store.base import (
    Fusion,
    LegacyStore,
    Match,
    Point,
    Search,
    SearchMode,
    StoreLocked,
    VectorStore,
)
from shared.store.client import ClientStore
from shared.store.open import open_store
from shared.store.payload import access_keys
from shared.store.retrieval import access_filter

pytestmark = pytest.mark.integration
DIM = 8
MODEL = "all-MiniLM-L6-v2"


def unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def axis(i: int, tilt: float = 0.0) -> list[float]:
    """A unit vector close to axis ``i`` (``tilt`` moves it towards the next axis)."""
    v = [0.0] * DIM
    v[i % DIM], v[(i + 1) % DIM] = 1.0, tilt
    return unit(v)


def pid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def point(
    name: str, vector: list[float], text: str, tenant: str = "acme", **extra: object
) -> Point:
    payload = {
        "doc_key": f"{tenant}/{name.split('#')[0]}",
        "tenant": tenant,
        "doc_id": name.split("#")[0],
        "text": text,
        **extra,
    }
    payload["access"] = access_keys(tenant, payload.get("acl", []))  # type: ignore[arg-type]
    return Point(pid(name), vector, text, payload)


def fresh(store: VectorStore) -> str:
    name = store.collection_name(MODEL, DIM)
    store.ensure_collection(name, MODEL, DIM)
    store.ensure_collection(name, MODEL, DIM)  # a second call changes nothing
    return name


def acme(store: VectorStore, c: str, search: Search) -> list[str]:
    return [str(s.payload["doc_id"]) for s in store.search(c, search)]


def test_collections_aliases_and_stats(any_store: VectorStore) -> None:
    s = any_store
    assert s.active() is None and s.stats()["collection"] is None
    a = fresh(s)
    assert s.activate(a) is None and s.active() == a
    b = s.collection_name(MODEL, DIM, "20260101")
    s.ensure_collection(b, MODEL, DIM)
    s.upsert(b, [point("d1#0", axis(0), "alpha"), point("d2#0", axis(1), "beta", tenant="beta")])
    assert s.activate(b) == a and s.active() == b
    info = s.info(b)
    assert (info.model, info.dim, info.points) == (MODEL, DIM, 2)
    assert s.model_of(b) == MODEL
    st = s.stats()
    assert st["collection"] == b and st["per_tenant"] == {"acme": 1, "beta": 1}
    s.drop(a)
    assert s.active() == b and s.info(b).points == 2


def test_upsert_replaces_by_id_delete_and_scroll(any_store: VectorStore) -> None:
    s = any_store
    c = fresh(s)
    s.upsert(c, [point("d1#0", axis(0), "first"), point("d1#1", axis(1), "second")])
    s.upsert(c, [point("d1#0", axis(2), "first, edited", version=2)])
    assert s.info(c).points == 2
    got = s.doc_points(c, ["acme/d1", "acme/none"], with_vectors=True)
    assert got["acme/none"] == []
    by_id = {r.id: r for r in got["acme/d1"]}
    assert by_id[pid("d1#0")].payload["text"] == "first, edited"
    assert by_id[pid("d1#0")].vector == pytest.approx(axis(2), abs=1e-6)
    assert s.doc_points(c, ["acme/d1"])["acme/d1"][0].vector is None
    s.delete(c, [pid("d1#1")])
    assert [r.id for r in s.doc_points(c, ["acme/d1"])["acme/d1"]] == [pid("d1#0")]
    # more than a page: every point once
    rng = random.Random(7)
    many = [point(f"m{i}#0", unit([rng.gauss(0, 1) for _ in range(DIM)]), "x") for i in range(1500)]
    s.upsert(c, many)
    ids = [r.id for r in s.all_payloads(c)]
    assert len(ids) == len(set(ids)) == 1501


def test_every_mode_keeps_tenants_and_acls_apart(any_store: VectorStore) -> None:
    s = any_store
    c = fresh(s)
    s.upsert(
        c,
        [
            point("open#0", axis(0), "the quarterly zeppelin budget"),
            point("hr#0", axis(0, 0.1), "zeppelin salaries", acl=["hr"]),
            point("other#0", axis(0), "zeppelin budget of another tenant", tenant="beta"),
        ],
    )
    for mode in SearchMode:
        for groups, expected in ((["eng"], {"open"}), (["hr"], {"open", "hr"})):
            must = access_filter("acme", groups)
            found = acme(s, c, Search(axis(0), "zeppelin budget", must, 10, mode))
            assert set(found) == expected, (mode, groups)


def test_dense_sparse_and_hybrid_rank_as_they_should(any_store: VectorStore) -> None:
    s = any_store
    c = fresh(s)
    # "near" is the embedding's answer, "words" the keywords' answer.
    s.upsert(
        c,
        [
            point("near#0", axis(0), "a page about something else entirely"),
            # pointing away: last of the dense ranking, so no tie decides the fused order
            point("words#0", [-x for x in axis(0)], "the flux capacitor maintenance schedule"),
            point("both#0", axis(0, 0.3), "flux capacitor overview"),
            *[
                point(f"noise{i}#0", axis(5, i / 10), f"unrelated filler text {i}")
                for i in range(8)
            ],
        ],
    )
    must = [Match("tenant", "acme")]
    q = Search(axis(0), "flux capacitor schedule", must, 3)
    dense = acme(s, c, Search(q.vector, q.text, must, 3, SearchMode.DENSE))
    sparse = acme(s, c, Search(q.vector, q.text, must, 3, SearchMode.SPARSE))
    assert dense[:2] == ["near", "both"]
    assert sparse[0] == "words" and set(sparse) == {"words", "both"}  # BM25: only term matches
    for fusion in Fusion:
        hybrid = s.search(c, Search(q.vector, q.text, must, 3, SearchMode.HYBRID, fusion))
        assert hybrid[0].payload["doc_id"] == "both", fusion  # high in both rankings
        assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    # every mode reports the cosine similarity beside its own score
    for h in s.search(c, Search(q.vector, q.text, must, 3, SearchMode.SPARSE)):
        expected = {"words": -1.0, "both": axis(0, 0.3)[0]}[str(h.payload["doc_id"])]
        assert h.similarity == pytest.approx(expected, abs=1e-5)


def test_a_score_threshold_is_a_similarity_in_every_mode(any_store: VectorStore) -> None:
    s = any_store
    c = fresh(s)
    s.upsert(
        c,
        [
            point("close#0", axis(0, 0.2), "flux notes"),
            point("far#0", axis(4), "flux capacitor flux capacitor"),
        ],
    )
    must = [Match("tenant", "acme")]
    for mode in SearchMode:
        found = s.search(c, Search(axis(0), "flux capacitor", must, 5, mode, score_threshold=0.5))
        assert [h.payload["doc_id"] for h in found] == ["close"], mode
        assert all(h.similarity >= 0.5 for h in found)


def test_metadata_filters_match_strings_integers_and_booleans(any_store: VectorStore) -> None:
    s = any_store
    c = fresh(s)
    s.upsert(
        c,
        [
            point("a#0", axis(0), "x", metadata={"team": "ops", "year": 2024, "draft": False}),
            point("b#0", axis(0), "x", metadata={"team": "dev", "year": 2025, "draft": True}),
        ],
    )
    base = [Match("tenant", "acme")]
    for cond, expected in (
        (Match("metadata.team", "ops"), ["a"]),
        (Match("metadata.year", [2025, 2026]), ["b"]),
        (Match("metadata.draft", True), ["b"]),
    ):
        assert acme(s, c, Search(axis(0), "x", [*base, cond], 5, SearchMode.DENSE)) == expected


def test_the_embedded_store_is_one_process_on_disk(tmp_path: Path) -> None:
    settings, platform = QdrantSettings(), PlatformSettings(data_dir=tmp_path)
    s = open_store(settings, platform)
    assert s.backend == "qdrant-edge"
    c = fresh(s)
    s.activate(c)
    s.upsert(c, [point("d#0", axis(0), "kept on disk")])
    with pytest.raises(StoreLocked, match="open in another process"):
        open_store(settings, platform)
    s.close()
    again = open_store(settings, platform)
    try:
        assert again.active() == c and again.info(c).points == 1
        hits = again.search(c, Search(axis(0), "disk", [Match("tenant", "acme")], 1))
        assert hits[0].payload["text"] == "kept on disk"
    finally:
        again.close()


def test_an_old_local_mode_store_is_refused_then_moved_aside(tmp_path: Path) -> None:
    old = ClientStore.local(str(tmp_path / "qdrant"), "chunks")  # as the last version wrote it
    old.ensure_collection("chunks-x", MODEL, DIM)
    old.close()
    settings, platform = QdrantSettings(), PlatformSettings(data_dir=tmp_path)
    with pytest.raises(LegacyStore, match="llmops reindex"):
        open_store(settings, platform)
    new = open_store(settings, platform, convert_legacy=True)
    new.close()
    assert not (tmp_path / "qdrant").exists()
    (moved,) = tmp_path.glob("qdrant.local-mode-*")
    assert (moved / "meta.json").exists()  # kept, for the operator to delete
    open_store(settings, platform).close()  # converted: opens without complaint


def test_a_server_collection_of_an_older_version_is_refused_until_reindexed(
    tmp_path: Path,
) -> None:
    from qdrant_client import models as qm

    store = ClientStore.local(str(tmp_path / "server-like"), "chunks")
    try:  # what the last version made: one unnamed vector
        store.client.create_collection(
            "chunks-old", vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE)
        )
        store.activate("chunks-old")
        with pytest.raises(LegacyStore, match="llmops reindex"):
            store.refuse_legacy("the server")
        new = store.collection_name(MODEL, DIM, "2")
        store.ensure_collection(new, MODEL, DIM)
        assert store.activate(new) == "chunks-old"
        store.refuse_legacy("the server")  # reindexed: nothing to say
    finally:
        store.close()
