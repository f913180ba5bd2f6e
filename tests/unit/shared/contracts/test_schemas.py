"""Unit tests of ``shared.contracts.schemas``: the contracts export as JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

from shared.contracts.schemas import export_schemas


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
        "SyncRecord.schema.json",
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
        "content_base64",
        "content_uri",
        "content_sha256",
        "metadata",
        "acl",
    } <= set(doc["properties"])
    assert doc["$id"] == "llmops:DocumentEvent:v2"
    assert "application/pdf" in json.dumps(doc["$defs"]["ContentType"])
    batch = json.loads((tmp_path / "ChunkBatch.schema.json").read_text())
    assert "page" in batch["$defs"]["Chunk"]["properties"]
