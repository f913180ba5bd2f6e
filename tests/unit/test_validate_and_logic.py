"""Validation names every rejection; the Ingestor turns valid events into exact batches."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from services.ingestion.logic import Ingestor, Stale, chunk_id, content_hash
from services.ingestion.normalize import html_to_text
from services.ingestion.settings import IngestionSettings
from services.ingestion.validate import IngestError, parse_event
from shared.contracts.events import ChunkBatch, ContentType, DocumentEvent, Op

ING = Ingestor.from_settings(IngestionSettings(chunk_tokens=64, chunk_overlap=8))
METADATA_LIMITS = {
    "max_metadata_bytes": ING.max_metadata_bytes,
    "max_metadata_depth": ING.max_metadata_depth,
}


def raw(**fields: object) -> tuple[bytes, bytes]:
    base: dict[str, object] = {"tenant": "acme", "doc_id": "d1", "version": 1, "content": "hi"}
    base.update(fields)
    return json.dumps(base).encode(), f"{base['tenant']}/{base['doc_id']}".encode()


@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (b"{not json", b"acme/d1", "InvalidJSON"),
        (b"\xff\xfe", b"acme/d1", "InvalidJSON"),
        (b"[1, 2]", b"acme/d1", "SchemaError"),
        (raw(version="one")[0], b"acme/d1", "SchemaError"),
        (raw(op="upsertt")[0], b"acme/d1", "SchemaError"),
        (raw(unknown_field=1)[0], b"acme/d1", "SchemaError"),
        (raw(schema_version=9)[0], b"acme/d1", "SchemaError"),
        (raw(tenant="Acme Corp")[0], b"Acme Corp/d1", "InvalidIdentifier"),
        (raw(doc_id="../etc/passwd")[0], b"acme/../etc/passwd", "InvalidIdentifier"),
        (raw(acl=["ok", "not ok"])[0], b"acme/d1", "InvalidIdentifier"),
        (raw(content_type="application/pdf")[0], b"acme/d1", "UnsupportedContentType"),
        (raw()[0], b"acme/other", "KeyMismatch"),
        (raw()[0], None, "KeyMismatch"),
        (None, b"acme/d1", "SchemaError"),
        (raw(content="x" * 600_000)[0], b"acme/d1", "TooLarge"),
    ],
)
def test_rejections_are_named(value: bytes | None, key: bytes | None, code: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_event(value, key, max_bytes=512 * 1024, **METADATA_LIMITS)
    assert info.value.code == code
    assert str(info.value)


def test_valid_event_parses() -> None:
    ev = parse_event(*raw(acl=["b", "a", "a"]), max_bytes=1024, **METADATA_LIMITS)
    assert ev.key == "acme/d1" and ev.acl == ["a", "b"] and ev.op is Op.UPSERT


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


def test_empty_upsert_is_rejected() -> None:
    with pytest.raises(IngestError) as info:
        ING.process(*raw(content="  <b> </b> ", content_type="text/html"), None)
    assert info.value.code == "EmptyContent"


def test_chunk_size_is_capped_at_the_model_limit() -> None:
    ing = Ingestor.from_settings(IngestionSettings(chunk_tokens=100_000))
    assert ing.chunk_tokens == 256
    batch = ing.to_batch(DocumentEvent(tenant="a", doc_id="b", version=1, content="w " * 5000))
    assert max(c.token_count for c in batch.chunks) <= 256


def deep(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("value", "key", "code", "reason"),
    [
        (raw(doc_id="kb/../secrets")[0], b"acme/kb/../secrets", "InvalidIdentifier", "'..'"),
        (raw(doc_id="kb/./a")[0], b"acme/kb/./a", "InvalidIdentifier", "'.'"),
        (raw(metadata=deep(5))[0], b"acme/d1", "MetadataTooDeep", "5 levels deep"),
        (raw(metadata={"blob": "x" * 20_000})[0], b"acme/d1", "MetadataTooLarge", "limit is"),
        (b'{"metadata": ' * 20_000 + b"1" + b"}" * 20_000, b"acme/d1", "TooDeep", "deep"),
        (raw(content="ok \ud800 no")[0], b"acme/d1", "InvalidText", "lone surrogate"),
        (raw(metadata={"k": ["\udfff"]})[0], b"acme/d1", "InvalidText", "event.metadata.k"),
    ],
)
def test_each_rejection_gives_its_true_reason(
    value: bytes, key: bytes, code: str, reason: str
) -> None:
    with pytest.raises(IngestError) as info:
        ING.parse(value, key)
    assert (info.value.code, reason in str(info.value)) == (code, True), str(info.value)


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


def test_a_version_far_ahead_of_the_clock_or_over_64_bits_is_refused() -> None:
    now_ns = 1_800_000_000 * 10**9
    ing = dataclasses.replace(ING, clock_ns=lambda: now_ns, max_version_ahead_s=3600)
    assert ing.parse(*raw(version=now_ns + 3599 * 10**9)).version == now_ns + 3599 * 10**9
    assert ing.parse(*raw(version=7)).version == 7, "counters are far below the bound"
    for version in (now_ns + 3601 * 10**9, 2**63 - 1, 2**63, 10**30):
        with pytest.raises(IngestError) as info:
            ing.parse(*raw(version=version))
        assert info.value.code == "VersionOutOfRange", version


@pytest.mark.parametrize(
    "fields",
    [
        {"acl": ["jane.doe@example.com"]},
        {"metadata": {"owner": {"jane.doe@example.com": "yes"}}},
        {"metadata": {"+44 20 7946 0958": 1}},
    ],
)
def test_personal_data_in_groups_or_metadata_keys_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(IngestError) as info:
        ING.parse(*raw(**fields))
    assert info.value.code == "PersonalIdentifier"
    assert "jane" not in str(info.value) and "7946" not in str(info.value)
    allowed = dataclasses.replace(ING, allow_personal_ids=True)
    assert allowed.parse(*raw(**fields))


def test_a_document_that_takes_too_long_is_refused_with_processing_timeout() -> None:
    ticks = iter(range(10**6))
    ing = dataclasses.replace(ING, processing_timeout_s=50, clock=lambda: float(next(ticks)))
    event = ing.parse(*raw(content=" ".join(f"Sentence {i}." for i in range(2000))))
    with pytest.raises(IngestError) as info:
        ing.to_batch(event)  # every check moves this clock on by one second
    assert info.value.code == "ProcessingTimeout"
    assert ING.to_batch(event).chunks, "the same document within its time"


def lines_run(fn: Callable[[], object]) -> int:
    """Python lines executed by ``fn``: a count of operations that, unlike a time, is the
    same on every run and every machine."""
    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize(
    "shape",
    [
        lambda n: "<p>a</p>" * n,  # siblings: one insertion per block was quadratic (848 s)
        lambda n: "<div>" * n + "a" + "</div>" * n,  # nesting (178 s at 60,000)
        lambda n: "<table>" + "<tr><td>a</td><th>b</th></tr>" * n + "</table>",
    ],
    ids=["paragraphs", "nested", "table"],
)
def test_html_conversion_is_linear_in_the_number_of_blocks(shape: Callable[[int], str]) -> None:
    small = lines_run(lambda: html_to_text(shape(1000)))
    large = lines_run(lambda: html_to_text(shape(4000)))
    assert large / small < 4.4, (small, large)  # linear: 4 times the blocks, 4 times the work
