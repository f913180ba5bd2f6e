"""Documents through the ingestion service on the real broker: valid PDF, Office and image
files (inline and by reference) become chunk batches with their pages, while hostile ones
interleaved with them (corrupt, encrypted, a zip bomb, 5,000 pages, one that stalls OCR,
one that needs too much memory, references outside what is allowed or with the wrong hash)
are each dead-lettered with their reason, and the service is never restarted."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from shared.contracts.events import ChunkBatch, ContentType, DocumentEvent
from shared.contracts.producer import make_producer
from shared.contracts.topics import DOCS_CHUNKS, INGEST_DLQ, INGEST_DOCUMENTS
from tests import documents as make
from tests.kafka_helpers import consume

pytestmark = pytest.mark.integration


def inline(doc_id: str, data: bytes, ctype: ContentType) -> DocumentEvent:
    return DocumentEvent(
        tenant="acme",
        doc_id=doc_id,
        version=1,
        content_type=ctype,
        content_base64=base64.b64encode(data).decode(),
        content_sha256=hashlib.sha256(data).hexdigest(),
    )


def by_ref(doc_id: str, uri: str, data: bytes, ctype: ContentType) -> DocumentEvent:
    return DocumentEvent(
        tenant="acme",
        doc_id=doc_id,
        version=1,
        content_type=ctype,
        content_uri=uri,
        content_sha256=hashlib.sha256(data).hexdigest(),
    )


def test_valid_documents_are_indexed_and_hostile_ones_dead_lettered_around_them(
    kafka_bootstrap: str, topic_prefix: str, start_service, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    scan = make.pdf(
        [
            make.Page(headings=[(1, "Travel")], paragraphs=["Trains are booked two weeks ahead."]),
            make.Page(scanned=True, paragraphs=["The daily meal allowance is forty euros."]),
        ]
    )
    (share / "travel.pdf").write_bytes(scan)
    huge = make.blank_pdf(5000)  # 1.6 MB: by reference, as a large file travels
    (share / "huge.pdf").write_bytes(huge)
    (tmp_path / "outside.pdf").write_bytes(scan)
    memory_hog = io.BytesIO()
    Image.new("RGB", (11000, 10000), (255, 255, 255)).save(memory_hog, format="PNG")
    valid = {
        "guide.docx": (
            inline(
                "guide.docx",
                make.docx([("h1", "Setup"), ("p", "Install the agent first.")]),
                ContentType.DOCX,
            ),
            "Install the agent first.",
        ),
        "deck.pptx": (
            inline(
                "deck.pptx",
                make.pptx([("Roadmap", ["Ship the mobile app in May."])]),
                ContentType.PPTX,
            ),
            "Ship the mobile app in May.",
        ),
        "prices.xlsx": (
            inline(
                "prices.xlsx",
                make.xlsx({"Plans": [["Plan", "Price"], ["Team", 12]]}),
                ContentType.XLSX,
            ),
            "| Team | 12 |",
        ),
        "sign.png": (
            inline(
                "sign.png",
                make.text_image(["Visitors sign in at the front desk."]),
                ContentType.PNG,
            ),
            "Visitors sign in at the front desk.",
        ),
        "travel.pdf": (
            by_ref("travel.pdf", (share / "travel.pdf").as_uri(), scan, ContentType.PDF),
            "The daily meal allowance is forty euros.",
        ),
    }
    hostile = {
        "corrupt.pdf": (
            inline("corrupt.pdf", b"%PDF-1.7\n" + b"\x00\x17" * 300 + b"\n%%EOF", ContentType.PDF),
            "Unreadable",
        ),
        "locked.pdf": (
            inline(
                "locked.pdf",
                make.pdf([make.Page(paragraphs=["x"])], password="pw"),
                ContentType.PDF,
            ),
            "Encrypted",
        ),
        "bomb.docx": (
            inline("bomb.docx", make.zip_bomb_docx(80 * 1024 * 1024), ContentType.DOCX),
            "TooLarge",
        ),
        "huge.pdf": (
            by_ref("huge.pdf", (share / "huge.pdf").as_uri(), huge, ContentType.PDF),
            "TooManyPages",
        ),
        "stall.png": (
            inline("stall.png", make.slow_image(3000), ContentType.PNG),
            "ConversionTimeout",
        ),
        "hog.png": (inline("hog.png", memory_hog.getvalue(), ContentType.PNG), "TooLarge"),
        "outside.pdf": (
            by_ref("outside.pdf", (tmp_path / "outside.pdf").as_uri(), scan, ContentType.PDF),
            "FetchRefused",
        ),
        "passwd.pdf": (
            by_ref("passwd.pdf", "file:///etc/passwd", scan, ContentType.PDF),
            "FetchRefused",
        ),
        "web.pdf": (
            by_ref("web.pdf", "https://example.com/x.pdf", scan, ContentType.PDF),
            "FetchRefused",
        ),
        "forged.pdf": (
            by_ref("forged.pdf", (share / "travel.pdf").as_uri(), b"other bytes", ContentType.PDF),
            "HashMismatch",
        ),
    }
    service = start_service(
        "ingestion",
        INGESTION_CONVERT_TIMEOUT_S="4",
        INGESTION_CONVERT_MEMORY_MB="400",
        INGESTION_MAX_UNPACKED_BYTES=str(32 * 1024 * 1024),
        INGESTION_FETCH_ROOTS=json.dumps([str(share)]),
    )
    pid = service.proc.pid
    order = [v for pair in zip(valid.values(), hostile.values(), strict=False) for v in pair]
    order += list(hostile.values())[len(valid) :]
    producer = make_producer(kafka_bootstrap)
    for ev, _ in order:
        producer.send(INGEST_DOCUMENTS.name(topic_prefix), key=ev.key.encode(), value=ev.to_bytes())
    producer.flush()
    producer.close()

    dlq = consume(kafka_bootstrap, INGEST_DLQ.name(topic_prefix), until=len(hostile), timeout_s=180)
    batches = consume(
        kafka_bootstrap, DOCS_CHUNKS.name(topic_prefix), until=len(valid), timeout_s=30
    )
    assert service.alive() and service.proc is not None and service.proc.pid == pid, (
        "never restarted: " + service.log()[-2000:]
    )

    got = {ChunkBatch.from_bytes(r.value).doc_id: ChunkBatch.from_bytes(r.value) for r in batches}
    assert set(got) == set(valid)
    for doc_id, (_, sentence) in valid.items():
        assert sentence in " ".join(c.text for c in got[doc_id].chunks), doc_id
    travel = got["travel.pdf"]
    assert {c.page for c in travel.chunks if "forty euros" in c.text} == {2}
    assert {c.page for c in travel.chunks if "two weeks" in c.text} == {1}
    assert {c.page for c in got["deck.pptx"].chunks} == {1}
    assert {c.page for c in got["prices.xlsx"].chunks} == {"Plans"}

    reasons = {
        r.key.decode().split("/", 1)[1]: dict(r.headers)["dlq.error_type"].decode() for r in dlq
    }
    assert reasons == {doc_id: code for doc_id, (_, code) in hostile.items()}
