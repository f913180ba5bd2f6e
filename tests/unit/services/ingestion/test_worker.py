"""Unit tests of ``services.ingestion.worker``: the ingestion step driven with faust's own
messages and a topic settled by hand, no broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.ingestion.cdc import CdcMapping, TableMapping, Unmappable, Value
from services.ingestion.validate import IngestError
from services.ingestion.worker import CdcWorker, IngestionWorker
from shared.contracts.events import ChunkBatch, DocumentEvent
from shared.kafka.delivery import Deliveries
from tests.unit.fakes import Consumer, Topic, deliver_all, event, in_loop, settle, stream_acks
from tests.unit.services.ingestion.samples import ING


def doc_event(consumer: Consumer, offset: int, version: int, content: str = "Some text.") -> Any:
    doc = DocumentEvent(tenant="acme", doc_id="d1", version=version, content=content)
    return event(consumer, offset, doc.to_bytes(), key=doc.key.encode())


def worker() -> tuple[Consumer, Topic, IngestionWorker]:
    consumer, chunks = Consumer(), Topic("docs.chunks")
    out = Deliveries(Topic("ingest.dlq"), "ingestion", 1 << 20)  # type: ignore[arg-type]
    return consumer, chunks, IngestionWorker(ING, out, chunks, {})  # type: ignore[arg-type]


@in_loop
async def test_an_event_is_acknowledged_once_its_batch_is_delivered_and_counted() -> None:
    consumer, chunks, w = worker()
    ev = doc_event(consumer, 5, 3, "Jane's address is jane@example.com.")
    await w.take(ev)
    stream_acks(ev)
    ((key, value, _),) = chunks.sent
    batch = ChunkBatch.from_bytes(value)
    assert key == b"acme/d1" and batch.version == 3
    assert consumer.acked == [], "the batch is queued, not yet on the broker"
    deliver_all(chunks)
    await settle()
    assert consumer.acked == [5]
    assert w.newest == {"acme/d1": 3}
    assert w.stats["batches"] == 1 and w.stats["chunks"] == len(batch.chunks)
    assert w.stats["redacted.email"] == 1


@in_loop
async def test_an_older_version_after_a_newer_one_is_dropped_and_an_equal_one_passes() -> None:
    consumer, chunks, w = worker()
    await w.take(doc_event(consumer, 0, 7))
    stale = doc_event(consumer, 1, 6)
    await w.take(stale)
    stream_acks(stale)
    assert len(chunks.sent) == 1, "the stale version produced nothing"
    assert consumer.acked == [1], "and is done at once"
    assert w.stats["stale_dropped"] == 1
    await w.take(doc_event(consumer, 2, 7))  # the same version again: replays stay exact
    assert len(chunks.sent) == 2 and w.newest["acme/d1"] == 7


@in_loop
async def test_a_bad_event_raises_to_the_loop_and_leaves_the_newest_version_alone() -> None:
    consumer, chunks, w = worker()
    await w.take(doc_event(consumer, 0, 2))
    with pytest.raises(IngestError) as raised:
        await w.take(event(consumer, 1, b"{not json", key=b"acme/d1"))
    assert raised.value.code == "InvalidJSON"
    assert w.newest == {"acme/d1": 2} and len(chunks.sent) == 1
    w.dead_lettered("InvalidJSON")
    assert w.stats["dlq.InvalidJSON"] == 1


@in_loop
async def test_a_document_in_bytes_is_converted_off_the_loop_and_counted() -> None:
    import base64

    from shared.contracts.events import ContentType
    from tests import documents as make

    consumer, chunks, w = worker()
    deck = make.pptx([("Launch", ["The launch is on the fifth of May."]), ("Risks", ["None."])])
    doc = DocumentEvent(
        tenant="acme",
        doc_id="deck.pptx",
        version=1,
        content_type=ContentType.PPTX,
        content_base64=base64.b64encode(deck).decode(),
    )
    await w.take(event(consumer, 0, doc.to_bytes(), key=doc.key.encode()))
    ((_, value, _),) = chunks.sent
    batch = ChunkBatch.from_bytes(value)
    assert [c.page for c in batch.chunks] == [1, 2] and batch.title == "Launch"
    assert w.stats["converted"] == 1 and w.stats["ocr_pages"] == 0


def cdc_worker() -> tuple[Consumer, Topic, CdcWorker]:
    mapping = CdcMapping(
        {
            "pg.public.t": TableMapping(
                topic="pg.public.t", tenant=Value(value="acme"), doc_id=["id"], content="{body}"
            )
        }
    )
    consumer, documents = Consumer(), Topic("ingest.documents")
    out = Deliveries(Topic("ingest.dlq"), "ingestion", 1 << 20)  # type: ignore[arg-type]
    return consumer, documents, CdcWorker(mapping, out, documents)  # type: ignore[arg-type]


@in_loop
async def test_a_row_change_becomes_a_document_event_keyed_by_document() -> None:
    consumer, documents, w = cdc_worker()
    row = {"op": "c", "after": {"id": 3, "body": "Hello"}, "source": {"lsn": 77}}
    ev = event(consumer, 9, json.dumps(row).encode(), topic="pg.public.t", key=b'{"id":3}')
    await w.take(ev)
    stream_acks(ev)
    ((key, value, _),) = documents.sent
    doc = DocumentEvent.from_bytes(value)
    assert key == b"acme/3" and (doc.doc_id, doc.version, doc.content) == ("3", 77, "Hello")
    assert consumer.acked == [], "acknowledged once the document event is on the broker"
    deliver_all(documents)
    await settle()
    assert consumer.acked == [9] and w.stats["cdc.upsert"] == 1


@in_loop
async def test_a_tombstone_is_acknowledged_with_nothing_sent() -> None:
    consumer, documents, w = cdc_worker()
    ev = event(consumer, 4, None, topic="pg.public.t")
    await w.take(ev)
    stream_acks(ev)
    await settle()
    assert documents.sent == [] and consumer.acked == [4] and w.stats["cdc.skipped"] == 1


@in_loop
async def test_an_unmappable_change_raises_to_the_loop_that_dead_letters_it() -> None:
    consumer, _, w = cdc_worker()
    with pytest.raises(Unmappable, match="no column 'body'"):
        await w.take(
            event(
                consumer,
                1,
                b'{"op": "c", "after": {"id": 1}, "source": {"lsn": 1}}',
                topic="pg.public.t",
            )
        )
