"""Topic administration with kafka-python's admin client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from shared.contracts.topics import DEFAULT_MAX_MESSAGE_BYTES, TOPICS, Topic


class TopicMismatch(RuntimeError):
    """Existing topics differ from their declaration; the message says how and what to do."""


@dataclass(frozen=True)
class Actual:
    """What the cluster says of one topic."""

    partitions: int
    config: Mapping[str, str]


def differences(topic: Topic, actual: Actual, max_message_bytes: int) -> list[str]:
    """How an existing topic differs from its declaration (empty: it matches).

    A larger ``max.message.bytes`` than declared is fine (it accepts what we produce); every
    other declared setting must be equal.
    """
    out = []
    if actual.partitions != topic.partitions:
        out.append(f"partitions={actual.partitions}, declared {topic.partitions}")
    for key, want in topic.config(max_message_bytes).items():
        have = actual.config.get(key)
        if key == "max.message.bytes" and have is not None and int(have) >= int(want):
            continue
        if have != want:
            out.append(f"{key}={have}, declared {want}")
    return out


def mismatch_message(problems: Mapping[str, list[str]], bootstrap: str) -> str:
    """What differs, per topic, and how to fix it."""
    lines = [f"{len(problems)} topic(s) on {bootstrap} differ from their declaration:"]
    for name, diffs in sorted(problems.items()):
        lines.append(f"  {name}: {'; '.join(diffs)}")
    lines += [
        "A topic made by the broker's auto-creation, or by an older version, has the broker's "
        "defaults. Fix it with kafka-configs.sh --alter --entity-type topics --entity-name "
        "NAME --add-config KEY=VALUE for a setting; a partition count cannot be changed "
        "without moving keys: delete the topic (kafka-topics.sh --delete --topic NAME) and "
        "start again, which creates it as declared. On the local dev broker, "
        "`llmops kafka stop` and removing LLMOPS_DATA_DIR/kafka starts afresh.",
    ]
    return "\n".join(lines)


def describe(admin: KafkaAdminClient, names: list[str]) -> dict[str, Actual]:
    """Partitions and every configuration value of each named (existing) topic."""
    if not names:
        return {}
    meta = {t["name"]: t for t in admin.describe_topics(names)}
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    configs = admin.describe_configs(resources, config_filter="all")["topic"]
    return {
        n: Actual(
            partitions=len(meta[n]["partitions"]),
            config={
                k: str(v["value"]) for k, v in configs[n].items() if v.get("value") is not None
            },
        )
        for n in names
    }


def create_topics(
    bootstrap: str,
    prefix: str = "",
    topics: Iterable[Topic] = TOPICS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[str]:
    """Create every declared topic that does not exist yet; return the names created.

    Idempotent. Existing topics are compared with their declaration first: one that differs
    (auto-created by a broker with its defaults, say) raises TopicMismatch with what differs
    and how to fix it, since a service started on it would misbehave (a compacted topic that
    deletes, records too large for it). Partition counts are never changed here, since that
    would move keys between partitions.
    """
    topics = list(topics)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmops-admin")
    try:
        existing = set(admin.list_topics())
        present = [t for t in topics if t.name(prefix) in existing]
        actual = describe(admin, [t.name(prefix) for t in present])
        problems = {
            t.name(prefix): d
            for t in present
            if (d := differences(t, actual[t.name(prefix)], max_message_bytes))
        }
        if problems:
            raise TopicMismatch(mismatch_message(problems, bootstrap))
        created: list[str] = []
        for t in topics:
            if t.name(prefix) in existing:
                continue
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
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmops-admin")
    try:
        key = "max.message.bytes"
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={key: None})
        described = admin.describe_configs([resource], config_filter="all")
        return int(described["topic"][topic][key]["value"])
    finally:
        admin.close()
