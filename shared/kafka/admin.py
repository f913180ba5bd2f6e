"""Topic administration with kafka-python's admin client."""

from __future__ import annotations

from collections.abc import Iterable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from shared.settings import DEFAULT_MAX_MESSAGE_BYTES
from shared.topics import TOPICS, Topic


def create_topics(
    bootstrap: str,
    prefix: str = "",
    topics: Iterable[Topic] = TOPICS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[str]:
    """Create every declared topic that does not exist yet; return the names created.

    Idempotent: existing topics are left as they are (their partitions are never changed here,
    since that would move keys between partitions).
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmops-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t.name(prefix) not in existing]
        created: list[str] = []
        for t in wanted:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            t.name(prefix),
                            t.partitions,
                            1,
                            topic_configs=t.config(max_message_bytes),
                        )
                    ],
                    raise_errors=True,
                )
                created.append(t.name(prefix))
            except TopicAlreadyExistsError:
                pass  # another process won the race; same outcome
        if created:
            admin.wait_for_topics(created, timeout_ms=30000)
        return created
    finally:
        admin.close()


def topic_max_message_bytes(bootstrap: str, topic: str) -> int:
    """The largest record ``topic`` accepts (its max.message.bytes, or the broker's)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmops-admin")
    try:
        key = "max.message.bytes"
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={key: None})
        described = admin.describe_configs([resource], config_filter="all")
        return int(described["topic"][topic][key]["value"])
    finally:
        admin.close()
