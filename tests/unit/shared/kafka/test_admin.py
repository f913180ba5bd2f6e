"""Unit tests of ``shared.kafka.admin``: an existing topic is compared with its declaration
before anything starts on it; replication is resolved from the settings and the cluster."""

from __future__ import annotations

import pytest

from shared.contracts.topics import DOCS_CHUNKS, INGEST_DOCUMENTS
from shared.kafka.admin import (
    Actual,
    Replication,
    ReplicationError,
    declared_config,
    differences,
    mismatch_message,
)

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
    diffs = differences(DOCS_CHUNKS, auto, MAX)
    found = list(map(str, diffs))
    assert "partitions=1, declared 4" in found
    assert "cleanup.policy=delete, declared compact" in found
    assert "retention.ms=604800000, declared -1" in found
    assert f"max.message.bytes=1048588, declared {MAX}" in found
    assert any(d.startswith("min.compaction.lag.ms=None") for d in found)
    text = mismatch_message({"docs.chunks": diffs, "ingest.documents": diffs[:1]}, "b:9092")
    assert text.startswith("2 topic(s) on b:9092 differ")
    assert "docs.chunks: partitions=1" in text and "kafka-configs.sh --alter" in text
    assert "kafka-topics.sh --delete" in text
    assert differences(INGEST_DOCUMENTS, Actual(4, INGEST_DOCUMENTS.config(MAX)), MAX) == []


def test_replication_defaults_to_three_copies_or_the_brokers_there_are() -> None:
    assert Replication.resolve(None, None, 1) == Replication(1, 1)
    assert Replication.resolve(None, None, 2) == Replication(2, 1)
    assert Replication.resolve(None, None, 3) == Replication(3, 2)
    assert Replication.resolve(None, None, 5) == Replication(3, 2)
    assert Replication.resolve(2, None, 5) == Replication(2, 1)
    assert Replication.resolve(3, 3, 3) == Replication(3, 3)
    with pytest.raises(ReplicationError, match="has 1 broker"):
        Replication.resolve(3, None, 1)
    with pytest.raises(ReplicationError, match="over the replication factor 2"):
        Replication.resolve(2, 3, 3)


def test_fewer_replicas_or_another_min_isr_is_reported_apart_from_what_stops_a_start() -> None:
    three = Replication(3, 2)
    made = Actual(4, declared_config(INGEST_DOCUMENTS, MAX, three), replication=3)
    assert differences(INGEST_DOCUMENTS, made, MAX, three) == []
    # made on one broker, before the cluster grew
    old = Actual(4, declared_config(INGEST_DOCUMENTS, MAX, Replication(1, 1)), replication=1)
    diffs = differences(INGEST_DOCUMENTS, old, MAX, three)
    assert list(map(str, diffs)) == [
        "replication=1, declared 3",
        "min.insync.replicas=1, declared 2",
    ]
    assert all(d.durability for d in diffs)
    assert [d.key for d in diffs if d.configurable] == ["min.insync.replicas"]
    # without a replication to compare with, only the topic's own contract counts
    assert differences(INGEST_DOCUMENTS, old, MAX) == []


def test_an_admin_operation_is_asked_again_while_the_node_it_picked_is_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kafka.errors import KafkaConnectionError

    from shared.kafka import admin

    monkeypatch.setattr(admin.time, "sleep", lambda s: None)
    calls = []

    @admin.retried
    def operation(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:  # the lost broker, still in the metadata
            raise KafkaConnectionError("111 ECONNREFUSED")
        return x * 2

    assert operation(21) == 42 and calls == [21, 21, 21]

    @admin.retried
    def never(x: int) -> int:
        raise KafkaConnectionError("111 ECONNREFUSED")

    with pytest.raises(KafkaConnectionError):
        never(1)

    @admin.retried
    def mismatch(x: int) -> int:
        calls.append(x)
        raise admin.TopicMismatch("differs")

    calls.clear()
    with pytest.raises(admin.TopicMismatch):  # not a connection: said at once
        mismatch(1)
    assert calls == [1]
