"""Unit tests of ``shared.kafka.admin``: an existing topic is compared with its declaration
before anything starts on it."""

from __future__ import annotations

from shared.contracts.topics import DOCS_CHUNKS, INGEST_DOCUMENTS
from shared.kafka.admin import Actual, differences, mismatch_message

MAX = 8 * 1024 * 1024


def test_a_topic_as_declared_has_no_differences_and_more_room_is_fine() -> None:
    as_made = Actual(DOCS_CHUNKS.partitions, DOCS_CHUNKS.config(MAX))
    assert differences(DOCS_CHUNKS, as_made, MAX) == []
    roomier = Actual(4, {**DOCS_CHUNKS.config(MAX), "max.message.bytes": str(2 * MAX)})
    assert differences(DOCS_CHUNKS, roomier, MAX) == []


def test_an_auto_created_topic_differs_in_what_matters() -> None:
    # what a broker that auto-creates topics made of docs.chunks: its own defaults
    auto = Actual(
        1,
        {"cleanup.policy": "delete", "retention.ms": "604800000", "max.message.bytes": "1048588"},
    )
    found = differences(DOCS_CHUNKS, auto, MAX)
    assert "partitions=1, declared 4" in found
    assert "cleanup.policy=delete, declared compact" in found
    assert "retention.ms=604800000, declared -1" in found
    assert f"max.message.bytes=1048588, declared {MAX}" in found
    assert any(d.startswith("min.compaction.lag.ms=None") for d in found)
    text = mismatch_message(
        {"docs.chunks": found, "ingest.documents": ["partitions=1, declared 4"]}, "b:9092"
    )
    assert text.startswith("2 topic(s) on b:9092 differ")
    assert "docs.chunks: partitions=1" in text and "kafka-configs.sh --alter" in text
    assert "kafka-topics.sh --delete" in text
    assert differences(INGEST_DOCUMENTS, Actual(4, INGEST_DOCUMENTS.config(MAX)), MAX) == []
