"""Unit tests of ``services.ingestion.validate``: validation names every rejection with its true
reason."""

from __future__ import annotations

import dataclasses

import pytest

from services.ingestion.validate import IngestError, parse_event
from shared.contracts.events import Op
from tests.unit.services.ingestion.samples import ING, METADATA_LIMITS, raw


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
        (raw(content_type="application/msword")[0], b"acme/d1", "UnsupportedContentType"),
        (raw(content_type="application/pdf")[0], b"acme/d1", "SchemaError"),  # bytes as text
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


def test_empty_upsert_is_rejected() -> None:
    with pytest.raises(IngestError) as info:
        ING.process(*raw(content="  <b> </b> ", content_type="text/html"), None)
    assert info.value.code == "EmptyContent"


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
