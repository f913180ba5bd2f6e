"""Unit tests of ``services.ingestion.logic``: the Ingestor: valid events become exact batches
(chunks, ids, headings, redaction), stale versions are dropped, and the largest accepted event
fits in a Kafka record."""

from __future__ import annotations

import pytest

from services.embedding.logic import source_text
from services.ingestion.agent import check_limits
from services.ingestion.headings import headings
from services.ingestion.logic import Ingestor, Stale, chunk_id, content_hash
from services.ingestion.normalize import normalize
from services.ingestion.settings import IngestionSettings
from services.ingestion.validate import IngestError
from shared.contracts.events import ChunkBatch, ContentType, DocumentEvent, Op
from shared.contracts.topics import DEFAULT_MAX_MESSAGE_BYTES
from tests.unit.services.ingestion.samples import ING, MD, NARROW, guide, raw


def test_chunk_ids_are_deterministic_and_distinct() -> None:
    assert chunk_id("acme", "doc", 0) == chunk_id("acme", "doc", 0)
    ids = {chunk_id(t, d, i) for t in ("a", "b") for d in ("x", "y") for i in range(5)}
    assert len(ids) == 20


def test_chunks_carry_their_heading_and_fit_the_model_with_their_context() -> None:
    batch = NARROW.to_batch(guide("The install guide"))
    marks = headings(normalize(MD * 3, ContentType.MARKDOWN))
    assert [c.heading for c in batch.chunks] == [marks.at(c.char_start) for c in batch.chunks]
    assert {"Install", "Install › Linux › Debian"} <= {c.heading for c in batch.chunks}
    for c in batch.chunks:
        assert "The install guide" not in c.text  # citations show the chunk alone
        with_context = source_text(batch, c)
        assert with_context.startswith("The install guide\n")
        assert len(NARROW.tokenizer.encode(with_context).ids) <= 40 + 2  # joined by one newline
    plain = NARROW.to_batch(guide("t", "# not markdown\n\ntext", ContentType.TEXT))
    assert {c.heading for c in plain.chunks} == {""}


MAX_EVENT = IngestionSettings().max_event_bytes


# Each is the worst case of one kind: most chunks per byte (punctuation: a token a byte),
# JSON escapes (quotes), the most text per chunk (words over 100 letters are one token),
# the most growth in normalisation (NFC triples U+1D160), and personal data that redaction
# replaces with longer placeholders.
WORST = {
    "punctuation": ".,;:!?",
    "quotes": '"',
    "long words": "x" * 101 + " ",
    "nfc growth": "\U0001d160",
    "short addresses": "a@b.io ",
}


def at_max_size(piece: str) -> DocumentEvent:
    base = DocumentEvent(tenant="p1", doc_id="worst", version=1, content=piece)
    room = MAX_EVENT - len(base.model_dump_json().encode())
    n = room // len(piece.encode()) if piece != '"' else room // 2  # a quote is 2 bytes in JSON
    return base.model_copy(update={"content": piece * n})


@pytest.mark.parametrize("kind", list(WORST))
def test_the_worst_events_fit_the_bound(kind: str) -> None:
    ingestor = Ingestor.from_settings(IngestionSettings())
    event = at_max_size(WORST[kind])
    assert len(event.model_dump_json().encode()) <= MAX_EVENT
    batch = ingestor.to_batch(event)
    assert len(batch.to_bytes()) <= ingestor.max_batch_bytes(), kind


def test_the_default_limits_fit_the_default_event_size() -> None:
    ingestor = Ingestor.from_settings(IngestionSettings())
    check_limits(ingestor, DEFAULT_MAX_MESSAGE_BYTES, None, "docs.chunks")


def test_upsert_becomes_an_exact_batch() -> None:
    text = "# Title\n\nMail bob@example.com.   Twice  spaced.\r\n\r\n\r\nNext paragraph."
    ev = DocumentEvent(
        tenant="acme",
        doc_id="a.md",
        version=3,
        content=text,
        content_type=ContentType.MARKDOWN,
        title="T",
        acl=["eng"],
    )
    batch = ING.process(ev.to_bytes(), ev.key.encode(), None)
    assert isinstance(batch, ChunkBatch)
    assert batch.redactions == {"email": 1}
    assert [c.text for c in batch.chunks] == [
        "# Title\n\nMail [EMAIL]. Twice spaced.\n\nNext paragraph."
    ]
    c = batch.chunks[0]
    assert c.chunk_id == chunk_id("acme", "a.md", 0) and c.content_hash == content_hash(c.text)
    assert (batch.version, batch.acl, batch.source_event_id) == (3, ["eng"], ev.event_id)
    # a redelivery of the same event is recognisable: same id, same content
    again = ING.process(ev.to_bytes(), ev.key.encode(), 3)
    assert isinstance(again, ChunkBatch)
    assert again.model_dump(exclude={"event_time"}) == batch.model_dump(exclude={"event_time"})


def test_html_is_reduced_to_visible_text_nfc() -> None:
    html = (
        "<html><head><title>x</title><script>var a=1</script></head><body><p>Cafe\u0301</p>"
        "<p>two  words</p></body></html>"
    )
    ev = DocumentEvent(
        tenant="acme", doc_id="h", version=1, content=html, content_type=ContentType.HTML
    )
    batch = ING.to_batch(ev)
    assert batch.chunks[0].text == "Caf\u00e9\n\ntwo words"


def test_stale_version_is_dropped_and_equal_version_passes() -> None:
    value, key = raw(version=4)
    assert isinstance(ING.process(value, key, 5), Stale)
    assert isinstance(ING.process(value, key, 4), ChunkBatch)
    assert isinstance(ING.process(value, key, None), ChunkBatch)


def test_delete_passes_through_as_delete_batch() -> None:
    ev = DocumentEvent(op=Op.DELETE, tenant="acme", doc_id="d1", version=9)
    batch = ING.process(ev.to_bytes(), ev.key.encode(), 2)
    assert isinstance(batch, ChunkBatch)
    assert batch.op is Op.DELETE and batch.chunks == [] and batch.version == 9


def test_chunk_size_is_capped_at_the_model_limit() -> None:
    ing = Ingestor.from_settings(IngestionSettings(chunk_tokens=100_000))
    assert ing.chunk_tokens == 256
    batch = ing.to_batch(DocumentEvent(tenant="a", doc_id="b", version=1, content="w " * 5000))
    assert max(c.token_count for c in batch.chunks) <= 256


def test_a_doc_id_holding_personal_data_is_refused_unless_allowed() -> None:
    value, key = raw(doc_id="people/jane.doe@example.com/cv")
    with pytest.raises(IngestError) as info:
        ING.parse(value, key)
    assert info.value.code == "PersonalIdentifier" and "email" in str(info.value)
    allowing = Ingestor.from_settings(IngestionSettings(allow_personal_ids=True))
    assert allowing.parse(value, key).doc_id == "people/jane.doe@example.com/cv"


def test_every_free_text_field_is_redacted_in_the_batch() -> None:
    ev = DocumentEvent(
        tenant="acme",
        doc_id="d1",
        version=1,
        content="body",
        title="Notes of jane@example.com",
        source="mailto:jane.doe@example.com",
        metadata={
            "owner_ssn": "123-45-6789",
            "team": "ops",
            "contacts": [{"tel": "+1 415 555 0100"}],
        },
    )
    batch = ING.to_batch(ev)
    assert batch.title == "Notes of [EMAIL]" and batch.source == "mailto:[EMAIL]"
    assert batch.metadata == {
        "owner_ssn": "[SSN]",
        "team": "ops",
        "contacts": [{"tel": "[PHONE]"}],
    }
    assert batch.redactions == {"email": 2, "ssn": 1, "phone": 1}
    assert "example.com" not in batch.to_bytes().decode()


def pdf_event(data: bytes, **fields: object) -> DocumentEvent:
    import base64
    import hashlib

    from shared.contracts.events import ContentType

    return DocumentEvent(
        tenant="acme",
        doc_id="handbook.pdf",
        version=1,
        content_type=ContentType.PDF,
        content_base64=base64.b64encode(data).decode(),
        content_sha256=hashlib.sha256(data).hexdigest(),
        **fields,  # type: ignore[arg-type]
    )


def test_a_converted_document_is_chunked_page_by_page_under_its_heading_path() -> None:
    from tests import documents as make

    words = " ".join(f"word{i}" for i in range(120))
    data = make.pdf(
        [
            make.Page(
                headings=[(1, "Policies")], paragraphs=[f"Refunds take thirty days. {words}"]
            ),
            make.Page(headings=[(2, "Shipping")], paragraphs=["Parcels leave on Tuesdays."]),
            make.Page(scanned=True, paragraphs=["The scanned page names the Lisbon office."]),
        ],
        title="Handbook",
    )
    batch = NARROW.to_batch(pdf_event(data))
    pages = [c.page for c in batch.chunks]
    assert pages == sorted(pages) and set(pages) == {1, 2, 3} and pages.count(1) > 1
    assert batch.title == "Handbook", "the PDF's own title, when the event has none"
    on = {p: " ".join(c.text for c in batch.chunks if c.page == p) for p in (1, 2, 3)}
    assert "thirty days" in on[1] and "Tuesdays" in on[2] and "Lisbon office" in on[3]
    assert "Tuesdays" not in on[1] and "thirty days" not in on[2]
    assert {c.heading for c in batch.chunks if c.page == 2} == {"Policies › Shipping"}
    assert {c.heading for c in batch.chunks if c.page == 3} == {"Policies › Shipping"}
    assert batch.schema_version == 3


def test_a_document_whose_text_outgrows_the_event_limit_is_refused() -> None:
    from services.ingestion.settings import IngestionSettings
    from tests import documents as make

    small = Ingestor.from_settings(IngestionSettings(max_event_bytes=4000))
    data = make.pdf([make.Page(paragraphs=["many words here " * 30])] * 12)
    with pytest.raises(IngestError) as info:
        small.to_batch(pdf_event(data))
    assert info.value.code == "TooLarge" and "once converted" in str(info.value)


def test_text_sent_as_bytes_reads_as_its_type_and_must_be_utf8() -> None:
    import base64

    html = "<h1>Title</h1><p>Body text here.</p>"
    ev = DocumentEvent(
        tenant="acme",
        doc_id="x.html",
        version=1,
        content_type="text/html",
        content_base64=base64.b64encode(html.encode()).decode(),
    )
    batch = ING.to_batch(ev)
    assert "Body text here." in batch.chunks[0].text and batch.chunks[0].page is None
    bad = ev.model_copy(update={"content_base64": base64.b64encode(b"\xff\xfe").decode()})
    with pytest.raises(IngestError) as info:
        ING.to_batch(bad)
    assert info.value.code == "InvalidText"
