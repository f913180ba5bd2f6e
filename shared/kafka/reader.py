"""Reading a topic from outside a service: where it ends, and waiting for given events."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from shared.contracts.events import Event

E = TypeVar("E", bound=Event)
# kafka-python 3.0.12 builds its cluster metadata without the consumer's retry_backoff_ms, so
# the first metadata request for a topic waited the default 100 ms after the bootstrap: most
# of a no-change `llmops sync` (bench/documents.py). The consumers here shorten it: at 10 ms
# the first ListOffsets of a no-change sync took 16 ms, at 2 ms 7 (at 1 ms no less).
_METADATA_BACKOFF_MS = 2


# librdkafka's own log lines (a broker not up yet...) go to logging, not to stderr
_librdkafka_log = logging.getLogger("llmops.kafka.librdkafka")


def reader(bootstrap: str) -> KafkaConsumer:
    """A consumer for reading topics by partition (no group, no commits)."""
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        retry_backoff_ms=_METADATA_BACKOFF_MS,
        metrics_enabled=False,  # a reader lives for one read: its sensors cost, nobody reads them
    )
    cluster = getattr(c, "_cluster", None)
    if cluster is not None and "retry_backoff_ms" in getattr(cluster, "config", {}):
        cluster.config["retry_backoff_ms"] = _METADATA_BACKOFF_MS
    return c


def partitions(c: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, in order (none: the topic does not exist)."""
    return [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]


def existing(c: KafkaConsumer, topic: str, bootstrap: str) -> list[TopicPartition]:
    """Every partition of ``topic``; LookupError when there is no such topic."""
    tps = partitions(c, topic)
    if not tps:
        raise LookupError(f"no topic {topic} on {bootstrap}")
    return tps


def end_offsets(
    bootstrap: str, topic: str, partitions: int | None = None, timeout_s: float = 30.0
) -> dict[int, int]:
    """Next offset of every partition of ``topic`` (none: there is no such topic);
    ``partitions``, when the caller knows the count, saves listing the topic.

    Through librdkafka (confluent-kafka), not kafka-python: its C client waits on the broker
    outside the GIL, so a thread walking a folder meanwhile is not slowed. In a no-change
    ``llmops sync`` of 10,000 files kafka-python's end offsets, beside the walk, made it
    12 ms slower; these, 2 ms (bench/documents.py)."""
    from confluent_kafka import Consumer, KafkaError, KafkaException
    from confluent_kafka import TopicPartition as Partition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "llmops-end-offsets",  # required by the client; never joined
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
        },
        logger=_librdkafka_log,
    )
    try:
        if partitions is None:
            found = c.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if found is None or found.error is not None:
                return {}
            parts = sorted(found.partitions)
        else:
            parts = list(range(partitions))
        try:
            return {
                p: c.get_watermark_offsets(Partition(topic, p), timeout=timeout_s)[1] for p in parts
            }
        except KafkaException as exc:
            gone = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION)
            if exc.args and exc.args[0].code() in gone:
                return {}
            raise
    finally:
        c.close()


def records_from(
    bootstrap: str, topic: str, start: Mapping[int, int] | None, timeout_s: float
) -> Iterator[ConsumerRecord]:
    """Records of ``topic`` from ``start`` offsets (None: the beginning), as they arrive,
    until ``timeout_s`` has passed; a caller that has what it waits for leaves the loop."""
    c = reader(bootstrap)
    try:
        parts = start if start is not None else end_offsets(bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in parts]
        c.assign(tps)
        if start is None:
            c.seek_to_beginning(*tps)
        else:
            for tp in tps:
                c.seek(tp, start[tp.partition])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                yield from recs
    finally:
        c.close()


def wait_for_events(
    bootstrap: str,
    topic: str,
    model: type[E],
    start: dict[int, int] | None,
    want: dict[str, int],
    timeout_s: float,
) -> dict[str, E]:
    """Events of ``model`` whose key and version are in ``want``, read from ``start`` offsets
    (None: the beginning), until all have arrived or the time is up."""
    got: dict[str, E] = {}
    if not want:
        return got
    for r in records_from(bootstrap, topic, start, timeout_s):
        event = model.from_bytes(r.value)
        key = r.key.decode() if r.key else ""
        if want.get(key) == getattr(event, "version", None):
            got[key] = event
            if not want.keys() - got.keys():
                break
    return got


def read_to_end(
    bootstrap: str,
    topic: str,
    poll_ms: int = 500,
    start: Mapping[int, int] | None = None,
    ended: dict[int, int] | None = None,
    partitions: int | None = None,
) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` from the beginning (or from ``start``'s offsets, where they
    are within the partition) to where it ended when called (what a report reads: later
    records wait for the next run). ``ended``, when given, receives those end offsets.
    ``partitions``, when the caller knows the count, saves listing the cluster's topics."""
    c = reader(bootstrap)
    try:
        if partitions:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
        else:
            tps = existing(c, topic, bootstrap)
        all_ends = c.end_offsets(tps)
        if ended is not None:
            ended.update({tp.partition: off for tp, off in all_ends.items()})
        start = start or {}
        # a partition read to its end already needs no beginning (a no-change sync: none do)
        behind = [tp for tp, off in all_ends.items() if start.get(tp.partition, 0) != off]
        begins = c.beginning_offsets(behind) if behind else {}
        starts: dict[TopicPartition, int] = {}
        for tp in behind:
            at, off = start.get(tp.partition, 0), all_ends[tp]
            starts[tp] = max(begins[tp], at if at <= off else 0)  # past the end: a new topic
        ends = {tp: all_ends[tp] for tp in behind if starts[tp] < all_ends[tp]}
        c.assign(list(ends))
        for tp in ends:
            c.seek(tp, starts[tp])
        while ends:
            for tp, recs in c.poll(timeout_ms=poll_ms).items():
                for r in recs:
                    if r.offset < ends.get(tp, 0):
                        yield r
                if c.position(tp) >= ends.get(tp, 0):
                    ends.pop(tp, None)
                    c.pause(tp)
    finally:
        c.close()


def follow(
    bootstrap: str,
    topic: str,
    from_beginning: bool = False,
    stop_after_s: float | None = None,
    poll_ms: int = 500,
) -> Iterator[ConsumerRecord]:
    """Records of ``topic`` as they come (``tail -f``): from now, or from the beginning;
    until ``stop_after_s`` seconds have passed (None: until interrupted)."""
    c = reader(bootstrap)
    try:
        tps = existing(c, topic, bootstrap)
        c.assign(tps)
        if from_beginning:
            c.seek_to_beginning(*tps)
        else:
            c.seek_to_end(*tps)
            for tp in tps:  # resolve "the end" now, not at the first poll
                c.position(tp)
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        while deadline is None or time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=poll_ms).values():
                yield from recs
    finally:
        c.close()
