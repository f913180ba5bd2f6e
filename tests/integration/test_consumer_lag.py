"""Consumer lag on a stack shaped like `make run`'s: several groups, one reading every topic,
others a few, each asked for the first time by a fresh client."""

from __future__ import annotations

import os

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from shared.contracts.topics import DOCS_CHUNKS, INGEST_DLQ, INGEST_DOCUMENTS, TOPICS
from shared.kafka.lag import consumer_lag
from tests.kafka_helpers import llmops

pytestmark = pytest.mark.integration

# what each service's group reads, as `llmops run all` has them (monitoring reads them all)
GROUPS = {
    "ingestion": [INGEST_DOCUMENTS],
    "embedding": [DOCS_CHUNKS],
    "monitoring": list(TOPICS),
}
PUBLISHED = {INGEST_DOCUMENTS.base_name: 10, DOCS_CHUNKS.base_name: 7, INGEST_DLQ.base_name: 3}


def test_lag_of_every_group_on_every_topic_and_llmops_status_prints_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    producer = KafkaProducer(bootstrap_servers=b)
    for topic, n in PUBLISHED.items():
        for i in range(n):
            producer.send(f"{p}{topic}", key=str(i).encode(), value=b"x")
    producer.flush()
    producer.close()
    for service, topics in GROUPS.items():
        group = KafkaConsumer(bootstrap_servers=b, group_id=f"{p}llmops-{service}")
        tps = [TopicPartition(t.name(p), n) for t in topics for n in range(t.partitions)]
        group.assign(tps)
        group.commit({tp: OffsetAndMetadata(0, "", -1) for tp in tps})
        group.close()
    # kafka-python's end_offsets raised KeyError here: it dropped the partitions of topics
    # whose leader it did not know yet when they were asked for with known ones
    lag = consumer_lag(b, p)
    assert lag["ingestion"] == {"ingest.documents": 10}
    assert lag["embedding"] == {"docs.chunks": 7}
    expected = {t.base_name: PUBLISHED.get(t.base_name, 0) for t in TOPICS}
    assert lag["monitoring"] == expected
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=b, KAFKA_TOPIC_PREFIX=p)
    status = llmops("status", env=env)
    assert status.returncode == 0, status.stderr
    assert "consumer lag" in status.stdout and "monitoring" in status.stdout
    assert "Traceback" not in status.stderr
