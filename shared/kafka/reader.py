"""Reading a topic from outside a service: where it ends, and waiting for given events."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from shared.contracts.events import Event

E = TypeVar("E", bound=Event)
# kafka-python 3.0.12 builds its cluster metadata without the consumer's retry_backoff_ms, so
# the first metadata request for a topic waited the default 100 ms after the bootstrap: most
# of a no-change `llmops sync` (bench/documents.py). The consumers here shorten it.
_METADATA_BACKOFF_MS = 10


def reader(bootstrap: str) -> KafkaConsumer:
    """A consumer for reading topics by partition (no group, no commits)."""
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        retry_backoff_ms=_METADATA_BACKOFF_MS,
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


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Next offset of every partition of ``topic``."""
    c = reader(bootstrap)
    try:
        return {tp.partition: off for tp, off in c.end_offsets(partitions(c, topic)).items()}
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
    c = reader(bootstrap)
    got: dict[str, E] = {}
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
        while want.keys() - got.keys() and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                for r in recs:
                    event = model.from_bytes(r.value)
                    key = r.key.decode() if r.key else ""
                    if want.get(key) == getattr(event, "version", None):
                        got[key] = event
        return got
    finally:
        c.close()


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
        begins = c.beginning_offsets(tps)
        starts: dict[TopicPartition, int] = {}
        for tp, off in all_ends.items():
            at = (start or {}).get(tp.partition, 0)
            starts[tp] = max(begins[tp], at if at <= off else 0)  # past the end: a new topic
        ends = {tp: off for tp, off in all_ends.items() if starts[tp] < off}
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
