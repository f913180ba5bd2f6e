"""Unit tests of ``shared.contracts.events``: the event contracts: versions read, values typed
and bounded, ids valid."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contracts.events import (
    TRACE_ID_PATTERN,
    ChunkBatch,
    DocumentEvent,
    EvalCase,
    FeedbackEvent,
    InferenceTrace,
    Metric,
)


def test_a_metric_is_a_value_or_a_reason_never_both_never_nan() -> None:
    with pytest.raises(ValidationError):
        Metric()
    with pytest.raises(ValidationError):
        Metric(value=1.0, missing="x")
    with pytest.raises(ValidationError):
        Metric(value=float("nan"))


def test_traces_of_versions_1_and_2_still_read_and_a_version_4_does_not() -> None:
    new = InferenceTrace(
        trace_id="t" * 32, tenant="a", api_key_id="k", question="q", status="ok", context=["c"]
    )
    assert new.schema_version == 3
    v2 = json.loads(new.to_bytes())
    del v2["user"]
    v2["schema_version"] = 2
    assert InferenceTrace.model_validate(v2).user is None
    old = dict(v2)
    del old["context"], old["groups"]
    old["schema_version"] = 1
    read = InferenceTrace.model_validate(old)
    assert read.schema_version == 1 and read.context == [] and read.groups == []
    with pytest.raises(ValidationError, match="unsupported schema_version 4"):
        InferenceTrace.model_validate({**old, "schema_version": 4})


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"type": "thumbs", "thumbs": "meh"}, "thumbs"),
        ({"type": "score", "score": 6, "min": 1, "max": 5}, "outside its range"),
        ({"type": "score", "score": 1, "min": 5, "max": 1}, "empty range"),
        ({"type": "score", "score": float("inf")}, "finite"),
        ({"type": "label", "label": "x", "allowed": ["a", "b"]}, "is not one of"),
        ({"type": "stars", "stars": 5}, "does not match any of the expected tags"),
    ],
)
def test_feedback_takes_one_typed_value_within_its_declared_range_or_set(
    value: dict,
    error: str,  # type: ignore[type-arg]
) -> None:

    with pytest.raises(ValidationError, match=error):
        FeedbackEvent(trace_id="t" * 32, tenant="a", author="k", value=value)
    ok = FeedbackEvent(
        trace_id="t" * 32,
        tenant="a",
        author="k",
        value={"type": "label", "label": "a", "allowed": ["a"]},
    )
    assert FeedbackEvent.from_bytes(ok.to_bytes()) == ok and ok.down is None


@given(st.from_regex(TRACE_ID_PATTERN, fullmatch=True))
def test_every_trace_id_is_a_valid_case_id(trace_id: str) -> None:
    # a case from feedback takes its trace's id: a trace id that EvalCase refused (one that
    # starts with "-") made the feedback service build an invalid case and stop
    case = EvalCase(tenant="acme", case_id=trace_id, question="q", source_trace_id=trace_id)
    assert case.case_id == trace_id


def test_versions_are_64_bit_and_batches_name_valid_groups_and_ordered_chunks() -> None:
    DocumentEvent(tenant="a", doc_id="d", version=2**63 - 1)
    for too_big in (2**63, 10**30):
        with pytest.raises(ValidationError, match="version"):
            DocumentEvent(tenant="a", doc_id="d", version=too_big)
    good = {
        "op": "upsert",
        "tenant": "a",
        "doc_id": "d",
        "version": 1,
        "source_event_id": "e",
        "source_event_time": "2026-01-01T00:00:00Z",
    }
    ChunkBatch.model_validate({**good, "acl": ["eng"]})
    for bad in (["*"], ["../x"]):
        with pytest.raises(ValidationError, match="invalid group name"):
            ChunkBatch.model_validate({**good, "acl": bad})
    chunk = {
        "chunk_id": "x",
        "text": "t",
        "content_hash": "h",
        "token_count": 1,
        "char_start": 0,
        "char_end": 1,
    }
    with pytest.raises(ValidationError, match="chunk indexes"):
        ChunkBatch.model_validate(
            {**good, "chunks": [{**chunk, "index": 0}, {**chunk, "index": 0}]}
        )


def test_a_document_carries_one_body_and_bytes_types_need_bytes() -> None:
    from shared.contracts.events import ContentType, DocumentEvent

    base = {"tenant": "a", "doc_id": "d", "version": 1}
    pdf = {**base, "content_type": ContentType.PDF}
    assert DocumentEvent(**pdf, content_base64="JVBERg==").content_base64
    assert DocumentEvent(**pdf, content_uri="file:///x.pdf", content_sha256="a" * 64).by_reference
    with pytest.raises(ValidationError, match="is bytes"):
        DocumentEvent(**pdf, content="text where bytes belong")
    with pytest.raises(ValidationError, match="needs content_sha256"):
        DocumentEvent(**pdf, content_uri="file:///x.pdf")
    with pytest.raises(ValidationError, match="one body"):
        DocumentEvent(**base, content="a", content_base64="YQ==")
    with pytest.raises(ValidationError, match="64 lowercase hex"):
        DocumentEvent(**pdf, content_base64="YQ==", content_sha256="XYZ")
    # a delete needs no body, whatever its type
    assert DocumentEvent(**pdf, op="delete").op == "delete"


def test_a_version_1_document_event_still_reads_and_version_2_is_written() -> None:
    from shared.contracts.events import DocumentEvent

    new = DocumentEvent(tenant="a", doc_id="d", version=1, content="x")
    assert new.schema_version == 2
    old = json.loads(new.to_bytes())
    for name in ("content_base64", "content_uri", "content_sha256"):
        del old[name]
    old["schema_version"] = 1
    read = DocumentEvent.model_validate(old)
    assert read.schema_version == 1 and read.content == "x" and read.content_base64 == ""
