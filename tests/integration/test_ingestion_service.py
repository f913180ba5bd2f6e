"""The ingestion service on the real broker: exact batches out, exact dead letters, stale
versions dropped, and nothing valid lost across a SIGKILL."""

from __future__ import annotations

import base64
import json
import time

import pytest

from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import ChunkBatch, DeadLetter, DocumentEvent, Op
from shared.contracts.producer import make_producer
from shared.contracts.topics import DOCS_CHUNKS, INGEST_DLQ, INGEST_DOCUMENTS
from tests.kafka_helpers import consume

pytestmark = pytest.mark.integration
MAX_BYTES = 20_000
N_SIGKILL = 1500


def send_all(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = make_producer(bootstrap)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def comparable(batch: ChunkBatch) -> dict[str, object]:
    return batch.model_dump(exclude={"event_time"})


def test_upserts_deletes_stale_and_malformed(
    kafka_bootstrap: str, topic_prefix: str, start_service
) -> None:
    service = start_service("ingestion", INGESTION_MAX_EVENT_BYTES=str(MAX_BYTES))
    src = INGEST_DOCUMENTS.name(topic_prefix)
    long_text = "\n\n".join(
        f"Paragraph {i}. Reach me at user{i}@example.com or 555-201-{1000 + i}. " * 6
        for i in range(20)
    )
    up1 = DocumentEvent(
        tenant="acme",
        doc_id="guide",
        version=1,
        content=long_text,
        title="Guide",
        acl=["eng"],
        content_type="text/markdown",
    )
    up2 = DocumentEvent(tenant="acme", doc_id="guide", version=2, content="Short now.")
    stale = DocumentEvent(tenant="acme", doc_id="guide", version=1, content="late and stale")
    other = DocumentEvent(
        tenant="beta",
        doc_id="x.html",
        version=7,
        content="<p>Hello <b>there</b></p>",
        content_type="text/html",
    )
    delete = DocumentEvent(op=Op.DELETE, tenant="beta", doc_id="x.html", version=8)
    bad = [
        (b"acme/broken", b"{this is not json"),
        (b"acme/noschema", json.dumps({"tenant": "acme", "doc_id": "noschema"}).encode()),
        (
            b"acme/big",
            DocumentEvent(
                tenant="acme", doc_id="big", version=1, content="y" * (MAX_BYTES + 10)
            ).to_bytes(),
        ),
        (
            b"Acme Corp/x",
            json.dumps(
                {"tenant": "Acme Corp", "doc_id": "x", "version": 1, "content": "c"}
            ).encode(),
        ),
    ]
    # Bad events interleaved with good ones, on the same documents' partition where possible.
    records = [
        (up1.key.encode(), up1.to_bytes()),
        bad[0],
        (up2.key.encode(), up2.to_bytes()),
        bad[1],
        (stale.key.encode(), stale.to_bytes()),
        bad[2],
        (other.key.encode(), other.to_bytes()),
        bad[3],
        (delete.key.encode(), delete.to_bytes()),
    ]
    send_all(kafka_bootstrap, src, records)

    out = consume(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), until=4, timeout_s=90)
    dlq = consume(kafka_bootstrap, INGEST_DLQ.name(topic_prefix), until=4, timeout_s=30)
    assert service.alive(), service.log()
    # settle: nothing else may arrive (the stale event must not produce a batch)
    time.sleep(3)
    out = consume(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), idle_s=2)

    ingestor = Ingestor.from_settings(IngestionSettings(max_event_bytes=MAX_BYTES))
    expected = {
        (e.key, e.version): comparable(ingestor.to_batch(e)) for e in (up1, up2, other, delete)
    }
    got = {}
    for rec in out:
        batch = ChunkBatch.from_bytes(rec.value)
        assert rec.key.decode() == batch.key
        got[(batch.key, batch.version)] = comparable(batch)
    assert got == expected
    assert len(out) == 4, "the stale version produced no batch"
    # order per document is kept
    guide_versions = [ChunkBatch.from_bytes(r.value).version for r in out if r.key == b"acme/guide"]
    assert guide_versions == [1, 2]
    first = got[("acme/guide", 1)]
    assert len(first["chunks"]) > 2 and first["redactions"] == {"email": 120, "phone": 120}
    assert got[("beta/x.html", 8)]["op"] == "delete" and got[("beta/x.html", 8)]["chunks"] == []

    letters = [(r, DeadLetter.from_bytes(r.value)) for r in dlq]
    by_type = {dl.error_type: (r, dl) for r, dl in letters}
    assert set(by_type) == {"InvalidJSON", "SchemaError", "TooLarge", "InvalidIdentifier"}
    for rec, dl in letters:
        original = [v for k, v in bad if (k.decode() if k else None) == dl.key][0]
        assert base64.b64decode(dl.value_b64) == original
        assert dl.topic == src and dl.stage == "ingestion" and dl.error_message
        assert dl.offset >= 0 and dl.partition >= 0
        headers = dict(rec.headers)
        assert headers["dlq.error_type"] == dl.error_type.encode()
        assert headers["dlq.offset"] == str(dl.offset).encode()
    assert "limit is 20000" in by_type["TooLarge"][1].error_message


@pytest.mark.chaos
def test_sigkill_mid_stream_loses_nothing(
    kafka_bootstrap: str, topic_prefix: str, start_service
) -> None:
    """1,500 events; SIGKILL while they stream; restart. Every valid event comes out at least
    once and duplicates carry identical content."""
    service = start_service("ingestion")
    src = INGEST_DOCUMENTS.name(topic_prefix)
    events = [
        DocumentEvent(
            tenant="acme",
            doc_id=f"doc-{i:03d}",
            version=1,
            content=" ".join(f"Sentence {j} of document {i}." for j in range(40)),
        )
        for i in range(N_SIGKILL)
    ]
    records = [(e.key.encode(), e.to_bytes()) for e in events]
    send_all(kafka_bootstrap, src, records[:100])
    # wait until the service is demonstrably in the middle of the stream, then kill it
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if len(consume(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), idle_s=0.5)) >= 20:
            break
    # enough events that the service cannot be through them when the kill lands
    send_all(kafka_bootstrap, src, records[100:])
    service.kill()
    before = len(consume(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), idle_s=1))
    assert 20 <= before < N_SIGKILL, f"kill should land mid-stream, saw {before}"
    restarted_at = time.monotonic()
    start_service("ingestion")

    out = consume(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), until=N_SIGKILL, timeout_s=180)
    print(f"ingestion: caught up {time.monotonic() - restarted_at:.1f} s after its restart")
    out = consume(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), idle_s=3)
    seen: dict[str, dict[str, object]] = {}
    for rec in out:
        batch = ChunkBatch.from_bytes(rec.value)
        content = comparable(batch)
        if batch.key in seen:
            assert seen[batch.key] == content, "a duplicate differs from the first delivery"
        seen[batch.key] = content
    assert set(seen) == {e.key for e in events}, "every valid event came out"
    assert consume(kafka_bootstrap, INGEST_DLQ.name(topic_prefix), idle_s=1) == []


def test_the_largest_accepted_document_is_never_lost(
    kafka_bootstrap: str, topic_prefix: str, start_service
) -> None:
    """510 KB of punctuation under the default 512 KB limit chunks into a batch of over 1 MB
    (2,298 chunks): more than the broker's default record limit. It used to fail in the
    producer after its offset was committed, reaching neither docs.chunks nor the DLQ."""
    start_service("ingestion")
    event = DocumentEvent(tenant="p1", doc_id="punct", version=1, content=".,;:!?" * 85000)
    raw = event.to_bytes()
    assert len(raw) <= IngestionSettings().max_event_bytes
    send_all(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix), [(event.key.encode(), raw)])
    (record,) = consume(kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), until=1, timeout_s=120)
    batch = ChunkBatch.from_bytes(record.value)
    assert len(record.value) > 1024 * 1024 and len(batch.chunks) > 2000
    assert batch.doc_id == "punct" and batch.chunks[-1].char_end == len(event.content)
    assert consume(kafka_bootstrap, INGEST_DLQ.name(topic_prefix), idle_s=2) == []


def set_topic_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(value)}
        )
        admin.alter_configs([resource])
    finally:
        admin.close()


def test_an_output_the_broker_refuses_dead_letters_its_input(
    kafka_bootstrap: str, topic_prefix: str, start_service
) -> None:
    """The output topic's limit lowered under a running service (the broker's 1 MB default,
    say): the producer accepts the 1 MB batch, the broker refuses it after the handler has
    returned. Its input used to be committed and lost; now it is dead-lettered with the
    broker's reason and its offset, and the valid events around it all come out."""
    src, chunks = INGEST_DOCUMENTS.name(topic_prefix), DOCS_CHUNKS.name(topic_prefix)
    start_service("ingestion")
    first = DocumentEvent(tenant="p1", doc_id="first", version=1, content="Started. " * 20)
    send_all(kafka_bootstrap, src, [(first.key.encode(), first.to_bytes())])
    assert len(consume(kafka_bootstrap, chunks, until=1, timeout_s=120)) == 1  # it runs
    set_topic_max_message_bytes(kafka_bootstrap, chunks, 1024 * 1024)

    big = DocumentEvent(tenant="p1", doc_id="punct", version=1, content=".,;:!?" * 85000)
    after = [
        DocumentEvent(tenant="p1", doc_id=f"ok-{i}", version=1, content=f"Fine text {i}. " * 30)
        for i in range(20)
    ]
    send_all(
        kafka_bootstrap,
        src,
        [(e.key.encode(), e.to_bytes()) for e in [big, *after]],
    )
    out = consume(kafka_bootstrap, chunks, until=1 + len(after), timeout_s=120)
    names = {ChunkBatch.from_bytes(r.value).doc_id for r in out}
    assert names == {"first"} | {e.doc_id for e in after}, "every valid event came out"
    (rec,) = consume(kafka_bootstrap, INGEST_DLQ.name(topic_prefix), until=1, timeout_s=60)
    letter = DeadLetter.from_bytes(rec.value)
    assert letter.stage == "ingestion.deliver"
    assert letter.error_type == "MessageSizeTooLargeError"
    assert DocumentEvent.model_validate_json(base64.b64decode(letter.value_b64)) == big
    at = {(r.partition, r.offset): r.value for r in consume(kafka_bootstrap, src, idle_s=1)}
    assert letter.topic == src and at[(letter.partition, letter.offset)] == big.to_bytes()
