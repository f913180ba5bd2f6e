"""The local broker's lifecycle through the CLI, and idempotent topic creation."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import UnknownTopicOrPartitionError

from shared.contracts.topics import DOCS_CHUNKS, TOPICS
from shared.kafka import broker
from shared.kafka.admin import TopicMismatch, create_topics
from shared.kafka.broker import answers_metadata, free_port
from shared.settings import PlatformSettings
from tests.kafka_helpers import llmops

pytestmark = pytest.mark.integration


def test_kafka_start_status_stop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    port = free_port()
    env.update(
        LLMOPS_DATA_DIR=str(tmp_path),
        KAFKA_LOCAL_PORT=str(port),
        KAFKA_LOCAL_CONTROLLER_PORT=str(free_port()),
    )
    try:
        assert llmops("kafka", "status", env=env).returncode == 1
        first = llmops("kafka", "start", env=env)
        assert first.returncode == 0, first.stderr
        assert "broker started" in first.stdout
        assert (tmp_path / "kafka" / "data" / "meta.properties").exists(), "storage formatted"
        assert (tmp_path / "kafka" / "broker.log").stat().st_size > 0, "broker logs to a file"
        assert answers_metadata(f"127.0.0.1:{port}")
        again = llmops("kafka", "start", env=env)
        assert "already running" in again.stdout, "a running broker is reused"
        status = llmops("kafka", "status", env=env)
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        stop = llmops("kafka", "stop", env=env)
    assert "broker stopped" in stop.stdout
    assert not answers_metadata(f"127.0.0.1:{port}", timeout_s=1)
    assert llmops("kafka", "status", env=env).returncode == 1


def test_given_cluster_starts_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, LLMOPS_DATA_DIR=str(tmp_path))
    out = llmops("kafka", "start", env=env)
    assert out.returncode == 0 and "KAFKA_BOOTSTRAP_SERVERS is set" in out.stdout
    assert not (tmp_path / "kafka").exists()


def test_topics_create_is_idempotent_and_configured(kafka_bootstrap: str) -> None:
    prefix = "idem."
    first = create_topics(kafka_bootstrap, prefix)
    assert sorted(first) == sorted(t.name(prefix) for t in TOPICS) or first == []
    assert create_topics(kafka_bootstrap, prefix) == []
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        meta = {t["name"]: t for t in admin.describe_topics([t.name(prefix) for t in TOPICS])}
        for t in TOPICS:
            assert len(meta[t.name(prefix)]["partitions"]) == t.partitions
        res = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, DOCS_CHUNKS.name(prefix))]
        )
        configs = res["topic"][DOCS_CHUNKS.name(prefix)]
        assert configs["cleanup.policy"]["value"] == "compact"
        assert configs["retention.ms"]["value"] == "-1"
    finally:
        admin.close()


def test_storage_formats_with_a_cluster_id_that_looks_like_a_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one id in 64 starts with "-": passed as a separate argument, the tool took it for a flag
    monkeypatch.setattr(broker, "base64_uuid", lambda: "-Ab3KJ4dQm6PzKq1cN0x0w")
    settings = PlatformSettings()
    b = broker.local_broker(tmp_path, settings.cache_dir, free_port(), free_port())
    b.run_dir.mkdir(parents=True)
    b._format(broker.broker_classpath(settings.cache_dir), b._write_config())
    meta = (b.run_dir / "data" / "meta.properties").read_text()
    assert "cluster.id=-Ab3KJ4dQm6PzKq1cN0x0w" in meta


def test_a_topic_made_with_the_brokers_defaults_stops_the_start_with_what_differs(
    kafka_bootstrap: str,
) -> None:
    prefix = f"mis{uuid.uuid4().hex[:8]}."
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        # what a broker that auto-creates topics made of docs.chunks when an old process asked
        admin.create_topics([NewTopic(DOCS_CHUNKS.name(prefix), 1, 1)])
        admin.wait_for_topics([DOCS_CHUNKS.name(prefix)], timeout_ms=30000)
    finally:
        admin.close()
    with pytest.raises(TopicMismatch) as info:
        create_topics(kafka_bootstrap, prefix)
    text = str(info.value)
    assert f"{DOCS_CHUNKS.name(prefix)}: partitions=1, declared 4" in text
    assert "cleanup.policy=delete, declared compact" in text and "kafka-topics.sh" in text
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_PREFIX=prefix)
    started = llmops("run", "ingestion", env=env)
    assert started.returncode == 1 and "differ from their declaration" in started.stderr
    assert "Traceback" not in started.stderr


def test_the_local_broker_creates_no_topic_a_client_asks_for(kafka_bootstrap: str) -> None:
    missing = f"nobody-made-{uuid.uuid4().hex[:8]}"
    # a consumer that subscribes to it, as an old process reconnecting to a new broker did
    consumer = KafkaConsumer(missing, bootstrap_servers=kafka_bootstrap, group_id=f"g-{missing}")
    try:
        for _ in range(6):
            consumer.poll(timeout_ms=500)
        # kafka-python 3 may raise UnknownTopicOrPartition instead of returning nothing
        with contextlib.suppress(UnknownTopicOrPartitionError):
            assert not consumer.partitions_for_topic(missing)
    finally:
        consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert missing not in admin.list_topics()
    finally:
        admin.close()


def test_a_broker_that_died_under_its_starter_is_started_again_at_once(tmp_path: Path) -> None:
    settings = PlatformSettings()
    port = free_port()
    # this process starts the broker, as `llmops dev` does: it is the broker's parent
    first = broker.local_broker(tmp_path, settings.cache_dir, port, free_port())
    first.start()
    pid = first.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # a later `llmops kafka start` (a fresh object: what it knows comes from the pid file)
    again = broker.local_broker(tmp_path, settings.cache_dir, port, first.controller_port)
    deadline = time.monotonic() + 10
    while again.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert again.pid() is None, "a dead broker (a zombie until reaped) counts as gone"
    t0 = time.monotonic()
    try:
        assert again.start() is True
        assert time.monotonic() - t0 < 60 and answers_metadata(again.bootstrap)
    finally:
        again.stop()


def test_end_offsets_count_what_was_written_and_are_empty_for_a_topic_that_is_not_there(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    from shared.contracts.producer import make_producer
    from shared.contracts.topics import INGEST_SYNC
    from shared.kafka.reader import end_offsets

    topic = INGEST_SYNC.name(topic_prefix)
    n = INGEST_SYNC.partitions
    assert end_offsets(kafka_bootstrap, topic) == dict.fromkeys(range(n), 0)
    producer = make_producer(kafka_bootstrap)
    for i in range(3):
        producer.send(topic, key=f"k{i}".encode(), value=b"v", partition=0)
    producer.flush()
    producer.close()
    want = {0: 3, **{p: 0 for p in range(1, n)}}
    assert end_offsets(kafka_bootstrap, topic) == want
    assert end_offsets(kafka_bootstrap, topic, partitions=n) == want
    missing = f"{topic_prefix}no-such-topic"
    assert end_offsets(kafka_bootstrap, missing) == {}
    assert end_offsets(kafka_bootstrap, missing, partitions=1) == {}
    # asking created nothing
    assert end_offsets(kafka_bootstrap, missing) == {}
