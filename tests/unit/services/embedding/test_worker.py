"""Unit tests of ``services.embedding.worker``: the embedding step with an indexer that records
what it is given, faust's own messages and topics settled by hand, no broker or store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.embedding.worker import EmbeddingWorker
from shared.contracts.events import ChunkBatch, DeadLetter, DocumentEvent, DocumentIndexed
from shared.kafka.delivery import Deliveries
from tests.unit.fakes import Consumer, Topic, deliver_all, event, in_loop, settle, stream_acks
from tests.unit.services.ingestion.samples import ING


class StoreDown(Exception):
    pass


@dataclass
class Store:
    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, StoreDown)


@dataclass
class Indexer:
    """Indexes nothing; says each batch is indexed. ``fail`` names documents it refuses;
    ``down`` is how many calls fail as an outage first."""

    fail: set[str] = field(default_factory=set)
    down: int = 0
    calls: list[list[str]] = field(default_factory=list)
    store: Store = field(default_factory=Store)

    def index(self, batches: Sequence[ChunkBatch]) -> list[DocumentIndexed]:
        self.calls.append([b.doc_id for b in batches])
        if self.down:
            self.down -= 1
            raise StoreDown("connection refused")
        if self.fail & {b.doc_id for b in batches}:
            raise ValueError("the store refused the point")
        return [
            DocumentIndexed(
                tenant=b.tenant,
                doc_id=b.doc_id,
                version=b.version,
                op=b.op,
                status="indexed",
                chunk_count=len(b.chunks),
                chunks_encoded=len(b.chunks),
                chunks_reused=0,
                points_deleted=0,
                model="m",
                collection="c",
                source_event_time=b.source_event_time,
                ingested_at=b.event_time,
            )
            for b in batches
        ]


def batch_event(consumer: Consumer, offset: int, doc_id: str) -> Any:
    batch = ING.to_batch(DocumentEvent(tenant="acme", doc_id=doc_id, version=1, content="Text."))
    return event(consumer, offset, batch.to_bytes(), key=batch.key.encode())


def worker(indexer: Indexer) -> tuple[Consumer, Topic, Topic, EmbeddingWorker]:
    consumer, indexed, dlq = Consumer(), Topic("docs.indexed"), Topic("embedding.dlq")
    out = Deliveries(dlq, "embedding", 1 << 20)  # type: ignore[arg-type]
    return consumer, indexed, dlq, EmbeddingWorker(indexer, out, indexed, 0.01)  # type: ignore[arg-type]


@in_loop
async def test_each_document_is_published_and_holds_only_its_own_events() -> None:
    consumer, indexed, _, w = worker(Indexer())
    events = [batch_event(consumer, 0, "a"), batch_event(consumer, 1, "b")]
    await w.take(events)
    for ev in events:
        stream_acks(ev)
    assert [k for k, _, _ in indexed.sent] == [b"acme/a", b"acme/b"]
    indexed.sent[1][2].set_result("meta")
    await settle()
    assert consumer.acked == [1], "b's result is delivered, a's is not yet"
    deliver_all(indexed)
    await settle()
    assert sorted(consumer.acked) == [0, 1]


@in_loop
async def test_a_record_that_is_no_batch_is_dead_lettered_and_the_rest_indexed() -> None:
    consumer, indexed, dlq, w = worker(Indexer())
    events = [event(consumer, 0, b"garbage"), batch_event(consumer, 1, "b")]
    await w.take(events)
    ((_, letter, _),) = dlq.sent
    assert DeadLetter.from_bytes(letter).stage == "embedding.decode"
    assert [k for k, _, _ in indexed.sent] == [b"acme/b"]


@in_loop
async def test_a_document_the_store_refuses_is_dead_lettered_alone() -> None:
    indexer = Indexer(fail={"b"})
    consumer, indexed, dlq, w = worker(indexer)
    events = [batch_event(consumer, i, d) for i, d in enumerate("abc")]
    await w.take(events)
    assert indexer.calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert [k for k, _, _ in indexed.sent] == [b"acme/a", b"acme/c"]
    ((_, letter, _),) = dlq.sent
    dead = DeadLetter.from_bytes(letter)
    assert (dead.offset, dead.stage, dead.error_type) == (1, "embedding.index", "ValueError")


@in_loop
async def test_an_outage_of_the_store_is_waited_out_not_dead_lettered() -> None:
    indexer = Indexer(down=2)
    consumer, indexed, dlq, w = worker(indexer)
    await w.take([batch_event(consumer, 0, "a")])
    assert indexer.calls == [["a"]] * 3
    assert dlq.sent == [] and [k for k, _, _ in indexed.sent] == [b"acme/a"]
