"""The bad-input corpus: every kind of broken event we know, for every input topic, mixed
with valid ones. Each bad event is dead-lettered with its reason and original offset; every
valid one is indexed. Grow the corpus when a new kind turns up."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from shared.contracts.events import DeadLetter, DocumentEvent, DocumentIndexed, chunk_id
from shared.contracts.producer import make_producer
from shared.contracts.topics import (
    DOCS_CHUNKS,
    DOCS_INDEXED,
    EMBEDDING_DLQ,
    INGEST_DLQ,
    INGEST_DOCUMENTS,
)
from shared.kafka.dlq import protected
from tests.kafka_helpers import choke, consume

pytestmark = pytest.mark.chaos
CHOKE_INGEST, CHOKE_EMBED = "choke-on-this-document", "choke-on-this-batch"


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"tenant": "acme", "doc_id": "bad", "version": 1, "content": "text"}
    base.update(fields)
    return base


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


def keyed(obj: dict[str, Any]) -> bytes:
    return f"{obj['tenant']}/{obj['doc_id']}".encode()


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


# (what it is, key, value, the error type it must be dead-lettered with)
DOCUMENTS: list[tuple[str, bytes | None, bytes | None, str]] = [
    ("not JSON", b"acme/bad", b"{not json", "InvalidJSON"),
    ("not UTF-8", b"acme/bad", b"\xff\xfe\x00", "InvalidJSON"),
    ("a JSON list", b"acme/bad", b"[1, 2]", "SchemaError"),
    ("a tombstone", b"acme/bad", None, "SchemaError"),
    ("no version", b"acme/bad", js({"tenant": "acme", "doc_id": "bad"}), "SchemaError"),
    ("an unknown field", b"acme/bad", js(event(colour="red")), "SchemaError"),
    ("a future schema", b"acme/bad", js(event(schema_version=9)), "SchemaError"),
    ("a negative version", b"acme/bad", js(event(version=-1)), "VersionOutOfRange"),
    ("an unknown op", b"acme/bad", js(event(op="upsertt")), "SchemaError"),
    ("a bad event_time", b"acme/bad", js(event(event_time="yesterday")), "SchemaError"),
    ("a bad tenant", b"Acme Corp/bad", js(event(tenant="Acme Corp")), "InvalidIdentifier"),
    ("a '..' doc id", b"acme/a/../b", js(event(doc_id="a/../b")), "InvalidIdentifier"),
    ("a bad group", b"acme/bad", js(event(acl=["not ok"])), "InvalidIdentifier"),
    (
        "a Word 97 file",
        b"acme/bad",
        js(event(content_type="application/msword")),
        "UnsupportedContentType",
    ),
    ("a PDF as text", b"acme/bad", js(event(content_type="application/pdf")), "SchemaError"),
    ("the wrong key", b"acme/other", js(event()), "KeyMismatch"),
    ("no key", None, js(event()), "KeyMismatch"),
    ("too large", b"acme/bad", js(event(content="y" * 600_000)), "TooLarge"),
    (
        "nested too deep to read",
        b"acme/bad",
        b'{"metadata": ' * 5000 + b"1" + b"}" * 5000,
        "TooDeep",
    ),
    ("a lone surrogate", b"acme/bad", js(event(content="a \ud800 b")), "InvalidText"),
    ("deep metadata", b"acme/bad", js(event(metadata=nested(8))), "MetadataTooDeep"),
    ("huge metadata", b"acme/bad", js(event(metadata={"b": "x" * 40_000})), "MetadataTooLarge"),
    (
        "an e-mail as doc id",
        b"acme/jane@example.com",
        js(event(doc_id="jane@example.com")),
        "PersonalIdentifier",
    ),
    ("no text at all", b"acme/bad", js(event(content="   \n\t ")), "EmptyContent"),
    ("a version over 64 bits", b"acme/bad", js(event(version=2**63)), "VersionOutOfRange"),
    ("a version of 10**30", b"acme/bad", js(event(version=10**30)), "VersionOutOfRange"),
    (
        "a version two days ahead of the clock",
        b"acme/bad",
        js(event(version=time.time_ns() + 2 * 86400 * 10**9)),
        "VersionOutOfRange",
    ),
    (
        "an e-mail as acl group",
        b"acme/bad",
        js(event(acl=["jane@example.com"])),
        "PersonalIdentifier",
    ),
    (
        "an e-mail as metadata key",
        b"acme/bad",
        js(event(metadata={"jane@example.com": "owner"})),
        "PersonalIdentifier",
    ),
    # the service's own logic raises on it (planted): dead-lettered, the rest go on
    (
        "a record the logic chokes on",
        b"acme/bad",
        js(event(content=CHOKE_INGEST)),
        "PlantedFailure",
    ),
    (
        "HTML with no text",
        b"acme/bad",
        js(event(content="<p> </p>", content_type="text/html")),
        "EmptyContent",
    ),
]


def batch(doc_id: str, **fields: Any) -> dict[str, Any]:
    """A chunk batch as ingestion writes it (one chunk), with fields replaced."""
    chunk = {
        "chunk_id": chunk_id("acme", doc_id, 0),
        "index": 0,
        "text": f"Chunk of {doc_id}.",
        "content_hash": "0" * 64,
        "token_count": 5,
        "char_start": 0,
        "char_end": 10,
    }
    base: dict[str, Any] = {
        "op": "upsert",
        "tenant": "acme",
        "doc_id": doc_id,
        "version": 1,
        "chunks": [chunk],
        "source_event_id": "e",
        "source_event_time": "2026-01-01T00:00:00Z",
    }
    base.update(fields)
    return base


def chunk_of(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {**batch(doc_id)["chunks"][0], **fields}


CHUNKS: list[tuple[str, bytes | None, bytes | None, str]] = [
    ("not JSON", b"acme/c1", b"\x00garbage", "ValidationError"),
    ("a document, not a batch", b"acme/c2", js(event(doc_id="c2")), "ValidationError"),
    ("a future schema", b"acme/c3", js({"schema_version": 99}), "ValidationError"),
    ("a wildcard group", b"acme/c4", js(batch("c4", acl=["*"])), "ValidationError"),
    ("a path as group", b"acme/c5", js(batch("c5", acl=["../x"])), "ValidationError"),
    (
        "two chunks with one index",
        b"acme/c6",
        js(batch("c6", chunks=[chunk_of("c6"), chunk_of("c6", text="again")])),
        "ValidationError",
    ),
    ("a batch the logic chokes on", b"acme/c7", js(batch(CHOKE_EMBED)), "PlantedFailure"),
]


def test_every_bad_event_is_dead_lettered_with_its_reason_and_every_valid_one_indexed(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any
) -> None:
    service = start_service(
        "ingestion embedding",
        **choke(
            {
                "services.ingestion.logic:Ingestor.to_batch": CHOKE_INGEST,
                "services.embedding.indexer:Indexer.index": CHOKE_EMBED,
            }
        ),
    )
    valid = [
        DocumentEvent(tenant="acme", doc_id=f"ok-{i}", version=1, content=f"Valid document {i}.")
        for i in range(len(DOCUMENTS) + 1)
    ]
    producer = make_producer(kafka_bootstrap)
    try:
        src, chunks = INGEST_DOCUMENTS.name(topic_prefix), DOCS_CHUNKS.name(topic_prefix)
        # a valid event, a bad one, a valid one...: bad ones must not hold up good ones
        for i, good in enumerate(valid):
            producer.send(src, key=good.key.encode(), value=good.to_bytes())
            if i < len(DOCUMENTS):
                _, key, value, _ = DOCUMENTS[i]
                producer.send(src, key=key, value=value)
        for _, key, value, _ in CHUNKS:
            producer.send(chunks, key=key, value=value)
        producer.flush()
    finally:
        producer.close()

    dlq = consume(kafka_bootstrap, INGEST_DLQ.name(topic_prefix), until=len(DOCUMENTS))
    letters = [DeadLetter.from_bytes(r.value) for r in dlq]
    assert sorted(dl.error_type for dl in letters) == sorted(t for *_, t in DOCUMENTS), [
        (dl.error_type, dl.error_message[:80]) for dl in letters
    ]
    for dl in letters:
        assert dl.error_message and dl.offset >= 0 and dl.topic == src
        # a letter keeps its record's value, redacted (LLMOPS_DLQ_VALUES); not UTF-8: none
        originals = [v for _, _, v, t in DOCUMENTS if t == dl.error_type]
        assert dl.value_form in ("redacted", "omitted")
        kept = [protected(v or b"", "redacted")[0] for v in originals]
        assert base64.b64decode(dl.value_b64) in kept
        assert "jane@example.com" not in dl.model_dump_json()

    bad_chunks = consume(kafka_bootstrap, EMBEDDING_DLQ.name(topic_prefix), until=len(CHUNKS))
    chunk_letters = [DeadLetter.from_bytes(r.value) for r in bad_chunks]
    assert sorted(dl.error_type for dl in chunk_letters) == sorted(t for *_, t in CHUNKS)
    stages = {dl.error_type: dl.stage for dl in chunk_letters}
    assert stages == {"ValidationError": "embedding.decode", "PlantedFailure": "embedding.index"}

    indexed = consume(
        kafka_bootstrap, DOCS_INDEXED.name(topic_prefix), until=len(valid), timeout_s=180
    )
    done = {DocumentIndexed.from_bytes(r.value).key for r in indexed}
    assert done == {e.key for e in valid}, service.log()[-3000:]
    assert service.alive(), service.log()[-3000:]
