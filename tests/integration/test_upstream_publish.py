"""The upstream side on the real broker: publish_documents and ``llmops ingest``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.contracts.events import DocumentEvent, Op
from shared.contracts.topics import INGEST_DOCUMENTS
from shared.contracts.upstream import InputError, publish_documents
from tests.kafka_helpers import consume

pytestmark = pytest.mark.integration


def test_publish_documents_counts_and_keys(kafka_bootstrap: str, topic_prefix: str) -> None:
    events = [
        DocumentEvent(tenant="acme", doc_id=f"d{i}", version=1, content=f"doc {i}")
        for i in range(5)
    ]
    summary = publish_documents(
        [*events, InputError("x.bin: unsupported")], kafka_bootstrap, topic_prefix
    )
    assert (summary.sent, summary.failed) == (5, 1)
    assert summary.bytes == sum(len(e.to_bytes()) for e in events)
    recs = consume(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix), until=5)
    assert sorted(r.key for r in recs) == sorted(e.key.encode() for e in events)
    got = sorted((DocumentEvent.from_bytes(r.value) for r in recs), key=lambda e: e.doc_id)
    assert got == events


def test_cli_ingest_files_and_delete(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\ntext")
    (tmp_path / "docs" / "b.txt").write_text("more text")
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_PREFIX=topic_prefix)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "ingest",
            str(tmp_path / "docs"),
            "--tenant",
            "acme",
            "--delete",
            "acme/old.md",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "sent 3, failed 0" in out.stdout
    assert "publishing" in out.stderr, "a progress bar is shown"
    recs = consume(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix), until=3)
    events = {
        DocumentEvent.from_bytes(r.value).doc_id: DocumentEvent.from_bytes(r.value) for r in recs
    }
    assert set(events) == {"a.md", "b.txt", "old.md"}
    assert events["old.md"].op is Op.DELETE and events["a.md"].title == "A"
