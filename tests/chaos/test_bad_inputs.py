"""The bad-input corpus: every kind of broken event we know, for every input topic, mixed
with valid ones. Each bad event is dead-lettered with its reason and original offset; every
valid one is indexed. Grow the corpus when a new kind turns up."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.events import DeadLetter, DocumentEvent, DocumentIndexed
from shared.kafka.producer import make_producer
from shared.topics import DOCS_CHUNKS, DOCS_INDEXED, EMBEDDING_DLQ, INGEST_DLQ, INGEST_DOCUMENTS
from tests.kafka_helpers import consume

pytestmark = pytest.mark.chaos


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
    ("a negative version", b"acme/bad", js(event(version=-1)), "SchemaError"),
    ("an unknown op", b"acme/bad", js(event(op="upsertt")), "SchemaError"),
    ("a bad event_time", b"acme/bad", js(event(event_time="yesterday")), "SchemaError"),
    ("a bad tenant", b"Acme Corp/bad", js(event(tenant="Acme Corp")), "InvalidIdentifier"),
    ("a '..' doc id", b"acme/a/../b", js(event(doc_id="a/../b")), "InvalidIdentifier"),
    ("a bad group", b"acme/bad", js(event(acl=["not ok"])), "InvalidIdentifier"),
    ("a PDF", b"acme/bad", js(event(content_type="application/pdf")), "UnsupportedContentType"),
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
    (
        "HTML with no text",
        b"acme/bad",
        js(event(content="<p> </p>", content_type="text/html")),
        "EmptyContent",
    ),
]

CHUNKS: list[tuple[str, bytes | None, bytes | None, str]] = [
    ("not JSON", b"acme/c1", b"\x00garbage", "ValidationError"),
    ("a document, not a batch", b"acme/c2", js(event(doc_id="c2")), "ValidationError"),
    ("a future schema", b"acme/c3", js({"schema_version": 99}), "ValidationError"),
]


def test_every_bad_event_is_dead_lettered_with_its_reason_and_every_valid_one_indexed(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any
) -> None:
    service = start_service("ingestion embedding")
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
        originals = [v for _, _, v, t in DOCUMENTS if t == dl.error_type]
        assert base64.b64decode(dl.value_b64) in [v or b"" for v in originals]

    bad_chunks = consume(kafka_bootstrap, EMBEDDING_DLQ.name(topic_prefix), until=len(CHUNKS))
    chunk_letters = [DeadLetter.from_bytes(r.value) for r in bad_chunks]
    assert len(chunk_letters) == len(CHUNKS)
    assert {dl.stage for dl in chunk_letters} == {"embedding.decode"}

    indexed = consume(
        kafka_bootstrap, DOCS_INDEXED.name(topic_prefix), until=len(valid), timeout_s=180
    )
    done = {DocumentIndexed.from_bytes(r.value).key for r in indexed}
    assert done == {e.key for e in valid}, service.log()[-3000:]
    assert service.alive(), service.log()[-3000:]
