"""Files become DocumentEvents; contracts export as JSON Schema; topics are declared once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contracts.events import (
    TRACE_ID_PATTERN,
    ChunkBatch,
    ContentType,
    DocumentEvent,
    EvalCase,
    Op,
)
from shared.contracts.schemas import export_schemas
from shared.contracts.topics import DOCS_CHUNKS, TOPICS
from shared.contracts.upstream import InputError, delete_event, events_from_paths


def test_files_and_folders_become_events(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Alpha doc\n\nbody")
    (tmp_path / "sub" / "b.html").write_text("<title>Beta</title><p>x</p>")
    (tmp_path / "c.txt").write_text("plain")
    (tmp_path / "skip.bin").write_bytes(b"\0")
    good = DocumentEvent(tenant="t2", doc_id="j1", version=5, content="from jsonl")
    (tmp_path / "d.jsonl").write_text(good.model_dump_json() + '\n\n{"tenant": "x"}\n')
    items = list(events_from_paths([tmp_path], tenant="acme", acl=["eng"]))
    events = [i for i in items if isinstance(i, DocumentEvent)]
    errors = [i for i in items if isinstance(i, InputError)]
    by_id = {e.doc_id: e for e in events}
    assert set(by_id) == {"a.md", "sub/b.html", "c.txt", "j1"}
    assert by_id["a.md"].title == "Alpha doc" and by_id["a.md"].content_type is ContentType.MARKDOWN
    assert by_id["sub/b.html"].title == "Beta" and by_id["sub/b.html"].acl == ["eng"]
    assert by_id["c.txt"].title == "c" and by_id["j1"].tenant == "t2"
    assert len(errors) == 1 and "d.jsonl:3" in str(errors[0])


def test_delete_event_parses_tenant_and_doc() -> None:
    ev = delete_event("acme/sub/b.html")
    assert (ev.op, ev.tenant, ev.doc_id) == (Op.DELETE, "acme", "sub/b.html")
    for bad in ("acme", "acme/", "Bad Tenant/x"):
        try:
            delete_event(bad)
        except InputError:
            continue
        raise AssertionError(bad)


def test_schema_export(tmp_path: Path) -> None:
    files = export_schemas(tmp_path)
    names = {f.name for f in files}
    assert names == {
        "Alert.schema.json",
        "ChunkBatch.schema.json",
        "DeadLetter.schema.json",
        "DocumentEvent.schema.json",
        "DocumentIndexed.schema.json",
        "EvalCase.schema.json",
        "EvalResult.schema.json",
        "FeedbackEvent.schema.json",
        "InferenceTrace.schema.json",
        "MetricPoint.schema.json",
    }
    doc = json.loads((tmp_path / "DocumentEvent.schema.json").read_text())
    assert {
        "schema_version",
        "event_id",
        "event_time",
        "op",
        "tenant",
        "doc_id",
        "version",
        "source",
        "title",
        "content",
        "content_type",
        "metadata",
        "acl",
    } <= set(doc["properties"])


def test_topics_are_unique_and_chunks_compacted() -> None:
    assert len({t.base_name for t in TOPICS}) == len(TOPICS)
    assert DOCS_CHUNKS.config()["cleanup.policy"] == "compact"
    assert DOCS_CHUNKS.name("p.") == "p.docs.chunks"


def test_a_version_1_trace_still_reads_and_a_version_3_does_not() -> None:
    from shared.contracts.events import InferenceTrace

    new = InferenceTrace(
        trace_id="t" * 32, tenant="a", api_key_id="k", question="q", status="ok", context=["c"]
    )
    assert new.schema_version == 2
    old = json.loads(new.to_bytes())
    del old["context"], old["groups"]
    old["schema_version"] = 1
    read = InferenceTrace.model_validate(old)
    assert read.schema_version == 1 and read.context == [] and read.groups == []
    with pytest.raises(ValidationError, match="unsupported schema_version 3"):
        InferenceTrace.model_validate({**old, "schema_version": 3})


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
    from shared.contracts.events import FeedbackEvent

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
