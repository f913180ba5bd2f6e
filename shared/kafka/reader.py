"""Reading a topic from outside a service: where it ends, and waiting for given events."""

from __future__ import annotations

import time
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition

from shared.events import Event

E = TypeVar("E", bound=Event)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Next offset of every partition of ``topic``."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        return {tp.partition: off for tp, off in c.end_offsets(tps).items()}
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
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
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
