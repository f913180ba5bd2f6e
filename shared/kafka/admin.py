"""Topic administration with kafka-python's admin client: topics created as declared, with the
replication the settings ask for, and checked (and fixed where that is safe) against it."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.contracts.topics import DEFAULT_MAX_MESSAGE_BYTES, TOPICS, Topic

log = logging.getLogger(__name__)

MIN_ISR = "min.insync.replicas"


P = ParamSpec("P")
R = TypeVar("R")
# how often an admin operation is tried when the node it picked cannot be reached
ATTEMPTS = 10


def retried(operation: Callable[P, R]) -> Callable[P, R]:
    """Try an (idempotent) admin operation again, a second apart, when kafka-python cannot
    reach the node it sent a request to: it raises instead of trying another while a lost
    broker is still in the cluster's metadata (until the controller fences it, about 9 s),
    which made `llmops topics create` and every service's start fail with a traceback."""

    @functools.wraps(operation)
    def again(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return operation(*args, **kwargs)
            except KafkaConnectionError as exc:
                if attempt == ATTEMPTS:
                    raise
                log.info("%s: %s; asking again (%d/%d)", operation.__name__, exc, attempt, ATTEMPTS)
                time.sleep(1.0)
        raise AssertionError("unreachable")

    return again


class TopicMismatch(RuntimeError):
    """Existing topics differ from their declaration; the message says how and what to do."""


class ReplicationError(ValueError):
    """The replication asked for cannot be had on this cluster."""


@dataclass(frozen=True)
class Replication:
    """How many copies of every partition, and how many must have a write before an
    ``acks=all`` producer is told it is stored."""

    factor: int
    min_insync: int

    @classmethod
    def resolve(cls, factor: int | None, min_insync: int | None, brokers: int) -> Replication:
        """The settings (KAFKA_REPLICATION_FACTOR, KAFKA_MIN_INSYNC_REPLICAS) on a cluster of
        ``brokers``; unset, the smaller of 3 and ``brokers``, and that minus one (at least 1).
        More replicas than brokers, or a minimum over the factor, is refused with why."""
        f = factor if factor is not None else max(1, min(3, brokers))
        if f > brokers:
            raise ReplicationError(
                f"KAFKA_REPLICATION_FACTOR={f}, but the cluster has {brokers} broker(s): a topic "
                "cannot have more replicas than brokers"
            )
        m = min_insync if min_insync is not None else max(1, f - 1)
        if m > f:
            raise ReplicationError(
                f"KAFKA_MIN_INSYNC_REPLICAS={m} is over the replication factor {f}: no write "
                "could ever be acknowledged"
            )
        return cls(f, m)


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmops-admin")


def broker_count(admin: KafkaAdminClient) -> int:
    """Brokers the cluster reports now."""
    return len(admin.describe_cluster()["brokers"])


@retried
def cluster_replication(
    bootstrap: str, factor: int | None = None, min_insync: int | None = None
) -> Replication:
    """``Replication.resolve`` with the number of brokers the cluster at ``bootstrap`` has."""
    admin = _admin(bootstrap)
    try:
        return Replication.resolve(factor, min_insync, broker_count(admin))
    finally:
        admin.close()


def declared_config(
    topic: Topic, max_message_bytes: int, replication: Replication | None = None
) -> dict[str, str]:
    """A topic's broker-side configuration, with its ``min.insync.replicas`` when given."""
    cfg = topic.config(max_message_bytes)
    if replication is not None:
        cfg[MIN_ISR] = str(replication.min_insync)
    return cfg


@dataclass(frozen=True)
class Actual:
    """What the cluster says of one topic."""

    partitions: int
    config: Mapping[str, str]
    # the fewest replicas any partition has (0: not described)
    replication: int = 0
    # partitions whose in-sync replicas are fewer than their replicas
    under_replicated: int = 0


@dataclass(frozen=True)
class Difference:
    """One way a topic differs from its declaration."""

    key: str  # "partitions", "replication" or a configuration key
    have: str | None
    want: str

    @property
    def configurable(self) -> bool:
        """A topic configuration, which an alter can set without moving any data."""
        return self.key not in ("partitions", "replication")

    @property
    def durability(self) -> bool:
        """How many copies there are: reported, but no reason to stop a service."""
        return self.key in ("replication", MIN_ISR)

    def __str__(self) -> str:
        return f"{self.key}={self.have}, declared {self.want}"


def differences(
    topic: Topic,
    actual: Actual,
    max_message_bytes: int,
    replication: Replication | None = None,
) -> list[Difference]:
    """How an existing topic differs from its declaration (empty: it matches).

    A larger ``max.message.bytes`` than declared is fine (it accepts what we produce); every
    other declared setting must be equal. With ``replication``, the replica count and
    ``min.insync.replicas`` are compared too.
    """
    out = []
    if actual.partitions != topic.partitions:
        out.append(Difference("partitions", str(actual.partitions), str(topic.partitions)))
    if replication is not None and actual.replication != replication.factor:
        out.append(Difference("replication", str(actual.replication), str(replication.factor)))
    for key, want in declared_config(topic, max_message_bytes, replication).items():
        have = actual.config.get(key)
        if key == "max.message.bytes" and have is not None and int(have) >= int(want):
            continue
        if have != want:
            out.append(Difference(key, have, want))
    return out


def mismatch_message(problems: Mapping[str, list[Difference]], bootstrap: str) -> str:
    """What differs, per topic, and how to fix it."""
    lines = [f"{len(problems)} topic(s) on {bootstrap} differ from their declaration:"]
    for name, diffs in sorted(problems.items()):
        lines.append(f"  {name}: {'; '.join(map(str, diffs))}")
    lines += [
        "A topic made by the broker's auto-creation, or by an older version, has the broker's "
        "defaults. `llmops topics check --fix` sets what a configuration change can (or "
        "kafka-configs.sh --alter --entity-type topics --entity-name NAME --add-config "
        "KEY=VALUE); a partition count cannot be changed without moving keys: delete the "
        "topic (kafka-topics.sh --delete --topic NAME) and start again, which creates it as "
        "declared. On the local dev broker, `llmops kafka stop` and removing "
        "LLMOPS_DATA_DIR/kafka starts afresh.",
    ]
    return "\n".join(lines)


def describe(admin: KafkaAdminClient, names: list[str]) -> dict[str, Actual]:
    """Partitions, replicas and every configuration value of each named (existing) topic."""
    if not names:
        return {}
    meta = {t["name"]: t for t in admin.describe_topics(names)}
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    configs = admin.describe_configs(resources, config_filter="all")["topic"]
    out = {}
    for n in names:
        parts = meta[n]["partitions"]
        out[n] = Actual(
            partitions=len(parts),
            config={
                k: str(v["value"]) for k, v in configs[n].items() if v.get("value") is not None
            },
            replication=min((len(p["replica_nodes"]) for p in parts), default=0),
            under_replicated=sum(1 for p in parts if len(p["isr_nodes"]) < len(p["replica_nodes"])),
        )
    return out


@dataclass
class TopicReport:
    """One declared topic as the cluster has it."""

    name: str
    missing: bool = False
    differences: list[Difference] = field(default_factory=list)
    under_replicated: int = 0

    @property
    def ok(self) -> bool:
        """As declared, and every partition fully in sync."""
        return not self.missing and not self.differences and not self.under_replicated


def reports(
    admin: KafkaAdminClient,
    prefix: str,
    topics: list[Topic],
    max_message_bytes: int,
    replication: Replication,
) -> list[TopicReport]:
    """Each of ``topics`` as the cluster has it: missing, or how it differs from its
    declaration and how many of its partitions are out of sync."""
    existing = set(admin.list_topics())
    actual = describe(admin, [t.name(prefix) for t in topics if t.name(prefix) in existing])
    out = []
    for t in topics:
        name = t.name(prefix)
        if name not in actual:
            out.append(TopicReport(name, missing=True))
            continue
        a = actual[name]
        diffs = differences(t, a, max_message_bytes, replication)
        out.append(TopicReport(name, False, diffs, a.under_replicated))
    return out


@retried
def create_topics(
    bootstrap: str,
    prefix: str = "",
    topics: Iterable[Topic] = TOPICS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    factor: int | None = None,
    min_insync: int | None = None,
) -> list[str]:
    """Create every declared topic that does not exist yet, with the replication the
    settings ask for (``Replication.resolve``); return the names created.

    Idempotent. Existing topics are compared with their declaration first: one that differs
    in what a service relies on (auto-created by a broker with its defaults, say) raises
    TopicMismatch with what differs and how to fix it, since a service started on it would
    misbehave (a compacted topic that deletes, records too large for it). Fewer replicas
    than asked is logged, not raised: the data is as safe as it was, and `llmops topics
    check --fix` says and does what can be done. Partition counts are never changed here,
    since that would move keys between partitions.
    """
    topics = list(topics)
    admin = _admin(bootstrap)
    try:
        replication = Replication.resolve(factor, min_insync, broker_count(admin))
        found = reports(admin, prefix, topics, max_message_bytes, replication)
        blocking = {r.name: [d for d in r.differences if not d.durability] for r in found}
        if problems := {n: ds for n, ds in blocking.items() if ds}:
            raise TopicMismatch(mismatch_message(problems, bootstrap))
        if weaker := {r.name: r.differences for r in found if r.differences}:
            log.warning(
                "topics with other replication than asked (%s); `llmops topics check` says "
                "what can be done",
                "; ".join(f"{n}: {', '.join(map(str, ds))}" for n, ds in sorted(weaker.items())),
            )
        missing = {r.name for r in found if r.missing}
        created: list[str] = []
        for t in topics:
            if t.name(prefix) not in missing:
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            t.name(prefix),
                            t.partitions,
                            replication.factor,
                            topic_configs=declared_config(t, max_message_bytes, replication),
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


@retried
def ensure_source_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    factor: int | None = None,
    min_insync: int | None = None,
) -> list[str]:
    """Create the topics of another system's that a service reads (Debezium's, one per
    table) when they do not exist yet, with the settings' replication; the names created.
    A consumer subscribed to a topic that does not exist would see it only at its next
    metadata refresh, minutes after the connector's first record."""
    admin = _admin(bootstrap)
    try:
        replication = Replication.resolve(factor, min_insync, broker_count(admin))
        missing = sorted(set(names) - set(admin.list_topics()))
        created: list[str] = []
        for name in missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            partitions,
                            replication.factor,
                            topic_configs={"min.insync.replicas": str(replication.min_insync)},
                        )
                    ],
                    raise_errors=True,
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # the connector (or another worker) won the race; same outcome
        if created:
            admin.wait_for_topics(created, timeout_ms=30000)
        return created
    finally:
        admin.close()


@retried
def check_topics(
    bootstrap: str,
    prefix: str = "",
    topics: Iterable[Topic] = TOPICS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    factor: int | None = None,
    min_insync: int | None = None,
) -> tuple[Replication, list[TopicReport]]:
    """Every declared topic against the cluster: partitions, replication, min ISR, cleanup,
    retention, record size, and partitions out of sync."""
    admin = _admin(bootstrap)
    try:
        replication = Replication.resolve(factor, min_insync, broker_count(admin))
        return replication, reports(admin, prefix, list(topics), max_message_bytes, replication)
    finally:
        admin.close()


@retried
def fix_topics(bootstrap: str, reports: Iterable[TopicReport]) -> list[str]:
    """Set every configuration that differs from its declaration (an incremental alter: other
    settings stay). Partition counts and replica sets are left alone: one moves keys, the
    other moves data, and both are an operator's decision. Returns what was set."""
    done = []
    admin = _admin(bootstrap)
    try:
        for r in reports:
            configs = {d.key: d.want for d in r.differences if d.configurable}
            if not configs:
                continue
            resource = ConfigResource(ConfigResourceType.TOPIC, r.name, configs=configs)
            admin.alter_configs([resource], incremental=True)
            done += [f"{r.name}: {k}={v}" for k, v in configs.items()]
        return done
    finally:
        admin.close()


@retried
def under_replicated(bootstrap: str, names: list[str]) -> dict[str, int]:
    """Partitions whose in-sync replicas are fewer than their replicas, per existing topic
    (asked when a broker is down, which is when it matters)."""
    admin = _admin(bootstrap)
    try:
        present = sorted(set(names) & set(admin.list_topics()))
        return {name: a.under_replicated for name, a in describe(admin, present).items()}
    finally:
        admin.close()


@retried
def topic_max_message_bytes(bootstrap: str, topic: str) -> int:
    """The largest record ``topic`` accepts (its max.message.bytes, or the broker's)."""
    admin = _admin(bootstrap)
    try:
        key = "max.message.bytes"
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={key: None})
        described = admin.describe_configs([resource], config_filter="all")
        return int(described["topic"][topic][key]["value"])
    finally:
        admin.close()
