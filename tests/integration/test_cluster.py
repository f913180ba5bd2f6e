"""A local three-broker cluster (`llmops kafka start --brokers 3`): topics made with three
replicas and min ISR 2, `llmops topics check` and `--fix`, a broker lost (acks=all writes go
on, `llmops status` shows the partitions under-replicated) and rejoining until in sync."""

from __future__ import annotations

import os
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from shared.contracts.producer import make_producer
from shared.contracts.topics import INGEST_DOCUMENTS, TOPICS
from shared.kafka.admin import describe, under_replicated
from shared.kafka.broker import LocalCluster, local_cluster
from shared.settings import PlatformSettings
from tests.kafka_helpers import free_window, llmops, wait_for

NODES = 3


def test_a_three_broker_cluster_replicates_loses_a_broker_and_catches_up(
    tmp_path: Path,
) -> None:
    base = free_window(2 * NODES)
    env = dict(
        os.environ,
        LLMOPS_DATA_DIR=str(tmp_path / "data"),
        KAFKA_LOCAL_PORT=str(base),
        KAFKA_LOCAL_CONTROLLER_PORT=str(base + 1),
        LLMOPS_LOG_LEVEL="warning",
    )
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    started = llmops("kafka", "start", "--brokers", str(NODES), env=env)
    # the same nodes the command started, as objects to kill and restart one of
    cluster = local_cluster(
        tmp_path / "data",
        PlatformSettings().cache_dir,
        [(base + 2 * i, base + 1 + 2 * i) for i in range(NODES)],
    )
    assert isinstance(cluster, LocalCluster)
    try:
        assert started.returncode == 0, started.stderr
        assert "cluster started on" in started.stdout
        bootstrap = cluster.bootstrap
        # services reach every node from the first's address (KAFKA_LOCAL_PORT), as ever
        made = llmops("topics", "create", env=env)
        assert made.returncode == 0, made.stderr
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            actual = describe(admin, [t.name() for t in TOPICS])
            for t in TOPICS:
                assert actual[t.name()].replication == 3, t.name()
                assert actual[t.name()].config["min.insync.replicas"] == "2", t.name()
        finally:
            admin.close()

        # the brokers' own topics too (consumer offsets: every group's progress), and what
        # topics a client makes (faust's) get by default
        for node in cluster.nodes:
            config = node.config_file.read_text()
            for line in ("offsets.topic.replication.factor=3", "min.insync.replicas=2"):
                assert line in config.splitlines(), (node.node_id, line)

        check = llmops("topics", "check", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "replication 3, min.insync.replicas 2" in check.stdout

        # an operator's change: found, then set back by --fix
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            name = INGEST_DOCUMENTS.name()
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": "1000"})],
                incremental=True,
            )
        finally:
            admin.close()
        drifted = llmops("topics", "check", env=env)
        assert drifted.returncode == 1
        assert f"retention.ms=1000, declared {INGEST_DOCUMENTS.retention_ms}" in drifted.stdout
        fixed = llmops("topics", "check", "--fix", env=env)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert f"set {name}: retention.ms={INGEST_DOCUMENTS.retention_ms}" in fixed.stdout

        # a broker lost: acks=all writes still succeed (two of three in sync), and the
        # partitions it held show as under-replicated
        lost = cluster.nodes[1]
        assert lost.kill()
        names = [t.name() for t in TOPICS]
        assert wait_for(lambda: sum(under_replicated(bootstrap, names).values()), 60, 1)
        producer = make_producer(bootstrap, request_timeout_ms=10_000)
        try:
            for i in range(50):
                producer.send(INGEST_DOCUMENTS.name(), key=b"k%d" % i, value=b"{}").get(30)
        finally:
            producer.close()
        status = llmops("status", env=env)
        assert status.returncode == 0, status.stderr
        assert "under-replicated partitions: 0" not in status.stdout, status.stdout
        assert INGEST_DOCUMENTS.name() in status.stdout.split("under-replicated")[1]

        # it rejoins with its data and catches up on what it missed
        lost.launch()
        assert wait_for(lambda: not any(under_replicated(bootstrap, names).values()), 120, 1), (
            under_replicated(bootstrap, names)
        )
        status = llmops("status", env=env)
        assert "under-replicated partitions: 0" in status.stdout, status.stdout
    finally:
        stopped = llmops("kafka", "stop", env=env)
        cluster.stop()
    assert stopped.returncode == 0 and "broker stopped" in stopped.stdout
    assert all(n.pid() is None for n in cluster.nodes)
