"""Unit tests of ``shared.kafka.consumer``: what a commit may cover. No broker: the consumer is
the one a service's app makes, and its commit is computed, not sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from shared.kafka.admin import Replication
from shared.kafka.consumer import Consumer, committable_below
from shared.kafka.faust_app import make_app
from shared.settings import KafkaSettings, PlatformSettings
from tests.unit.fakes import in_loop

TOPIC = "src"
PART = TP(TOPIC, 0)


def consumer(tmp_path: Path) -> Any:
    app = make_app(
        "svc",
        KafkaSettings(),
        PlatformSettings(data_dir=tmp_path),
        "127.0.0.1:1",
        Replication(1, 1),
    )
    c = app.consumer
    assert isinstance(c, Consumer)
    app.topics._acking_topics = {TOPIC}  # what the stream's subscription would declare
    app.consumer_generation_id = 7
    app.flow_control.resume()  # the streams are flowing
    return c


def taken(c: Any, offset: int, generation: int = 7) -> ConsumerMessage:
    """A message a stream took: tracked as in hand, with the stream's reference on it."""
    m = ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=PART)
    m.generation_id = generation
    m.incref()
    c.track_message(m)
    return m


def test_the_part_of_the_acknowledged_a_commit_may_cover_stops_at_the_first_in_hand() -> None:
    assert committable_below([4, 5, 6, 9], [7, 8]) == ([4, 5, 6], [9])
    assert committable_below([4, 5, 6], []) == ([4, 5, 6], [])
    assert committable_below([4, 5], [3]) == ([], [4, 5])


@in_loop
async def test_a_record_in_hand_right_after_the_commit_is_not_committed_over(
    tmp_path: Path,
) -> None:
    # faust-streaming#606: committed 10, record 10 still in hand, 11 to 14 done: faust
    # committed 15, and a restart skipped record 10
    c = consumer(tmp_path)
    c._committed_offset[PART] = 10
    slow = taken(c, 10)
    for offset in range(11, 15):
        taken(c, offset).ack(c)
    assert c._new_offset(PART) is None
    assert sorted(c._acked[PART]) == [11, 12, 13, 14], "what is done is kept for later"
    slow.ack(c)
    assert c._new_offset(PART) == 15


@in_loop
async def test_a_commit_stops_below_a_record_in_hand_within_the_run(tmp_path: Path) -> None:
    c = consumer(tmp_path)
    c._committed_offset[PART] = 10
    for offset in (10, 11):
        taken(c, offset).ack(c)
    held = taken(c, 12)  # monitoring holds a record until its window is published
    for offset in (13, 14):
        taken(c, offset).ack(c)
    assert c._new_offset(PART) == 12
    c._committed_offset[PART] = 12
    held.ack(c)
    assert c._new_offset(PART) == 15


@in_loop
async def test_an_earlier_generations_acknowledgement_counts_for_nothing(tmp_path: Path) -> None:
    # after a rebalance faust reads from the commit again; a copy fetched before it is
    # skipped by the stream (and acknowledged by it), and one a service still held comes
    # back too: neither is done in this generation
    c = consumer(tmp_path)
    c._committed_offset[PART] = 20
    stale = taken(c, 20, generation=6)
    assert stale.ack(c) is False
    assert stale.acked and not c._acked[PART]
    again = taken(c, 20)
    taken(c, 21).ack(c)
    assert c._new_offset(PART) is None, "the copy read again is still in hand"
    again.ack(c)
    assert c._new_offset(PART) == 22


@in_loop
async def test_an_acknowledgement_while_the_flow_is_stopped_counts_for_nothing(
    tmp_path: Path,
) -> None:
    # a stream that takes a record after a rebalance or a stop has stopped the flow skips it,
    # and skipping acknowledged it: committed, never done
    c = consumer(tmp_path)
    c._committed_offset[PART] = 30
    skipped = taken(c, 30)
    c.app.flow_control.suspend()
    assert skipped.ack(c) is False
    assert not c._acked[PART] and c._new_offset(PART) is None


@in_loop
async def test_a_revocation_first_lets_the_streams_finish_what_they_took(tmp_path: Path) -> None:
    c = consumer(tmp_path)
    c._committed_offset[PART] = 40
    first, second = taken(c, 40), taken(c, 41)
    settling = asyncio.ensure_future(c.settle({PART}, 30.0))
    await asyncio.sleep(0.1)
    assert PART in c._paused_partitions, "nothing more is fetched of a partition that moves"
    assert not c.app.flow_control.is_active(), "nor taken from the streams' queues"
    first.ack(c)
    skipped = taken(c, 42)  # taken from a queue after the stop: skipped, not done
    skipped.ack(c)
    await asyncio.sleep(0.1)
    assert not settling.done(), "record 41 is still in flight"
    second.ack(c)
    await asyncio.wait_for(settling, 1)
    assert c._new_offset(PART) == 42, "the commit that follows covers 40 and 41, not 42"


@in_loop
async def test_settling_gives_up_after_its_bound(tmp_path: Path) -> None:
    c = consumer(tmp_path)
    taken(c, 50)  # held on purpose, or stuck
    await asyncio.wait_for(c.settle({PART}, 0.2), 2)


@in_loop
async def test_a_partition_with_no_offset_yet_is_read_from_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two rebalances in a row: the first one's recovery sought a partition the second had
    # just assigned (offset None), and aiokafka's ValueError crashed the worker
    sought: list[dict[TP, int]] = []

    async def seek_wait(self: Any, partitions: dict[TP, int]) -> None:
        sought.append(dict(partitions))

    monkeypatch.setattr(AIOKafkaConsumer, "seek_wait", seek_wait)
    c = consumer(tmp_path)
    other = TP(TOPIC, 1)
    await c.seek_wait({PART: 12, other: None})
    # read from its start: left where it was, its state was missing after the recovery
    assert sought == [{PART: 12, other: 0}]


@in_loop
async def test_records_fetched_before_their_partitions_seek_are_not_handed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # faust handed the rest of such a batch to the streams after its seek back to the
    # commits, then dropped the records read again from the commit as already read
    c = consumer(tmp_path)
    other = TP(TOPIC, 1)
    batch = [
        (PART, taken(c, 10)),
        (other, taken(c, 20)),
        (PART, taken(c, 11)),
        (other, taken(c, 21)),
    ]

    async def fetched(self: Any, timeout: float) -> Any:
        for i, item in enumerate(batch):
            if i == 2:  # a rebalance's seek of partition 0 (partition 1 has no commit)
                self._thread.clock += 1
                self._thread.sought = {PART: self._thread.clock}
            yield item

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", fetched)
    c._thread.clock = c._batch_stamp = 4
    handed = [(tp.partition, m.offset) async for tp, m in c.getmany(1.0)]
    assert handed == [(0, 10), (1, 20), (1, 21)], "partition 0's rest is read again"


def slow_commits(c: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[TP, int]]:
    """Make ``c``'s commits flush the producer slowly (as under load) and record, instead of
    sending, the offsets each commits."""
    sent: list[dict[TP, int]] = []

    async def slow_flush() -> None:
        await asyncio.sleep(0.2)

    async def commit_to_broker(offsets: dict[TP, int]) -> bool:
        sent.append(dict(offsets))
        return True

    monkeypatch.setattr(c.app.producer, "flush", slow_flush)
    monkeypatch.setattr(c, "_commit", commit_to_broker)
    monkeypatch.setattr(c, "assignment", lambda: {PART})
    return sent


@in_loop
@pytest.mark.parametrize("last", ["hand-over", "stop"])
async def test_a_last_commit_waits_for_the_timers_commit_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, last: str
) -> None:
    # the timer's commit takes 10-14 out of the acknowledged list, then flushes the producer
    # before recording 15 as committed. A hand-over commit computed then saw 15-19 as a hole
    # after 10 and committed nothing; a stop's (faust's commit()) skipped committing at all:
    # either way 15-19 were done again by whoever read the partition next
    c = consumer(tmp_path)
    sent = slow_commits(c, monkeypatch)
    c._committed_offset[PART] = 10
    for offset in range(10, 15):
        taken(c, offset).ack(c)
    timers = asyncio.ensure_future(c.commit())
    await asyncio.sleep(0.05)  # flushing
    for offset in range(15, 20):
        taken(c, offset).ack(c)
    if last == "hand-over":
        assert await c.commit_after_any_under_way({PART}) is True
    else:
        await c.commit_and_end_transactions()
    assert await timers is True
    assert sent == [{PART: 15}, {PART: 20}], "the last commit covers what followed the timer's"
