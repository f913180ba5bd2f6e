"""Unit tests of ``services.embedding.logic``: embedding's pure planning: what to encode, reuse
and delete for a document version, and what text (title, heading path, chunk) is encoded."""

from __future__ import annotations

from services.embedding.logic import (
    StoredPoint,
    collapse,
    index_hash,
    plan_document,
    source_text,
    with_point_ids,
)
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import ChunkBatch, DocumentEvent, Op, chunk_id
from tests.unit.services.ingestion.samples import NARROW, guide

ING = Ingestor.from_settings(IngestionSettings(chunk_tokens=32, chunk_overlap=0))


M = "all-MiniLM-L6-v2"


def batch(version: int, text: str, op: Op = Op.UPSERT, doc: str = "d") -> ChunkBatch:
    return ING.to_batch(
        DocumentEvent(
            tenant="acme",
            doc_id=doc,
            version=version,
            op=op,
            content=text if op is Op.UPSERT else "",
        )
    )


def stored(b: ChunkBatch, model: str = M) -> list[StoredPoint]:
    return [StoredPoint(c.chunk_id, b.version, index_hash(b, c), model, [0.1]) for c in b.chunks]


TEXT = " ".join(f"Sentence {i} is here." for i in range(40))


def test_new_document_encodes_every_chunk() -> None:
    b = batch(1, TEXT)
    plan = plan_document(b, [], M)
    assert plan.status == "indexed" and len(plan.encode) == len(b.chunks) > 3
    assert plan.reuse == {} and plan.delete_ids == []


def test_same_version_again_is_unchanged_and_writes_nothing() -> None:
    b = batch(1, TEXT)
    plan = plan_document(b, stored(b), M)
    assert plan.status == "unchanged" and plan.encode == [] and plan.delete_ids == []


def test_new_version_same_text_reuses_vectors() -> None:
    b1, b2 = batch(1, TEXT), batch(2, TEXT)
    plan = plan_document(b2, stored(b1), M)
    assert plan.status == "indexed" and plan.encode == []
    assert set(plan.reuse) == {c.chunk_id for c in b2.chunks}


def test_shorter_update_deletes_the_tail_and_encodes_changes() -> None:
    b1, b2 = batch(1, TEXT), batch(2, "Only this now.")
    plan = plan_document(b2, stored(b1), M)
    assert [c.text for c in plan.encode] == ["Only this now."]
    assert sorted(plan.delete_ids) == sorted(c.chunk_id for c in b1.chunks[1:])


def test_other_model_reencodes() -> None:
    b = batch(1, TEXT)
    plan = plan_document(batch(2, TEXT), stored(b, model="other"), M)
    assert len(plan.encode) == len(b.chunks)


def test_delete_removes_all_and_stale_does_nothing() -> None:
    b1 = batch(3, TEXT)
    plan = plan_document(batch(4, "", Op.DELETE), stored(b1), M)
    assert plan.status == "deleted" and len(plan.delete_ids) == len(b1.chunks)
    stale = plan_document(batch(2, "older"), stored(b1), M)
    assert stale.status == "stale" and stale.encode == [] and stale.delete_ids == []


def test_collapse_keeps_the_newest_per_document() -> None:
    a1, a2, b1 = batch(1, "a"), batch(2, "a2"), batch(1, "b", doc="e")
    latest, superseded = collapse([a1, b1, a2])
    assert [(x.doc_id, x.version) for x in latest] == [("d", 2), ("e", 1)]
    assert superseded == [a1]
    latest, superseded = collapse([a2, a1])
    assert latest == [a2] and superseded == [a1]


def test_point_ids_come_from_tenant_doc_and_index_never_from_the_record() -> None:
    b = batch(1, TEXT)
    victim = chunk_id("beta", "vault", 0)  # another tenant's point
    forged = b.model_copy(
        update={"chunks": [b.chunks[0].model_copy(update={"chunk_id": victim}), *b.chunks[1:]]}
    )
    fixed = with_point_ids(forged)
    assert [c.chunk_id for c in fixed.chunks] == [chunk_id("acme", "d", c.index) for c in b.chunks]
    assert victim not in {c.chunk_id for c in fixed.chunks}
    assert with_point_ids(b) is b, "an honest batch is taken as it is"


def test_a_new_title_re_embeds_chunks_whose_text_did_not_change() -> None:
    first = NARROW.to_batch(guide("Old title"))
    stored = [StoredPoint(c.chunk_id, 1, index_hash(first, c), "m", [0.1]) for c in first.chunks]
    same = plan_document(first.model_copy(update={"version": 2}), stored, "m")
    assert same.encode == []
    renamed = NARROW.to_batch(guide("New title")).model_copy(update={"version": 2})
    assert [c.text for c in renamed.chunks] == [c.text for c in first.chunks]
    assert len(plan_document(renamed, stored, "m").encode) == len(renamed.chunks)


def test_a_version_1_batch_without_headings_still_reads() -> None:
    import json

    from shared.contracts.events import ChunkBatch

    batch = NARROW.to_batch(guide("Guide"))
    old = json.loads(batch.to_bytes())
    old["schema_version"] = 1  # what docs.chunks kept from before headings
    for c in old["chunks"]:
        del c["heading"], c["page"]
    read = ChunkBatch.from_bytes(json.dumps(old).encode())
    assert batch.schema_version == 3 and {c.heading for c in read.chunks} == {""}
    assert {c.page for c in read.chunks} == {None}
    assert source_text(read, read.chunks[0]).startswith("Guide\n")
