"""Unit tests of ``shared.kafka.faust_app``: the faust app every service gets (limits from the
settings, flow control), and the batch handler that dead-letters only the record it chokes on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shared.contracts.events import DeadLetter
from shared.kafka.admin import Replication
from shared.kafka.faust_app import handle_isolating, make_app
from shared.settings import KafkaSettings, PlatformSettings
from tests.unit.fakes import deliver_all, event, in_loop, settle, stream_acks

ONE = Replication(1, 1)  # no broker to ask


def test_changelogs_are_replicated_and_the_producer_is_idempotent(tmp_path: Path) -> None:
    platform = PlatformSettings(data_dir=tmp_path)
    app = make_app("svc", KafkaSettings(), platform, "127.0.0.1:1", Replication(3, 2))
    assert app.conf.topic_replication_factor == 3
    table = app.Table("t", partitions=2, extra_topic_configs={"segment.ms": "1000"})
    assert table.changelog_topic.replicas is None, "faust falls back on the app's factor"
    assert table.changelog_topic.config == {"min.insync.replicas": "2", "segment.ms": "1000"}
    settings = {**app.producer._settings_default(), **app.producer._settings_extra()}
    assert settings["acks"] == -1 or settings["acks"] == "all"
    assert settings["enable_idempotence"] is True


def test_the_app_takes_its_limits_and_session_from_the_settings(tmp_path: Path) -> None:
    kafka = KafkaSettings(max_message_bytes=3 * 1024 * 1024, session_timeout_s=7.5)
    app = make_app("svc", kafka, PlatformSettings(data_dir=tmp_path), "127.0.0.1:1", ONE)
    assert app.conf.producer_max_request_size == 3 * 1024 * 1024
    assert app.conf.consumer_max_fetch_size == 3 * 1024 * 1024
    assert app.conf.broker_session_timeout == 7.5
    assert app.conf.broker_heartbeat_interval == 2.5
    # faust's own default (60 s) made a killed dev process wait a minute before resuming
    assert KafkaSettings().session_timeout_s == 10.0


def test_resuming_flow_that_is_on_keeps_what_is_queued(tmp_path: Path) -> None:
    # faust's recovery resumed flow a second time after the streams had started fetching,
    # and that resume emptied the queues: a restarted service lost records and stopped
    # committing
    app = make_app("svc", KafkaSettings(), PlatformSettings(data_dir=tmp_path), "127.0.0.1:1", ONE)
    flow = app.flow_control
    queue = app.FlowControlQueue(clear_on_resume=True)
    queue.force_put_nowait("queued while suspended")
    flow.resume()
    assert queue.empty(), "a resume after a suspension still drops what predates it"
    queue.force_put_nowait("fetched while flowing")
    flow.resume()
    assert queue.get_nowait() == "fetched while flowing"
    flow.suspend()
    queue.force_put_nowait("queued while suspended")
    flow.resume()
    assert queue.empty()


@in_loop
async def test_one_record_a_batch_handler_chokes_on_is_dead_lettered_alone(parts: Any) -> None:
    consumer, out, dlq, errors, deliveries = parts
    events = [event(consumer, i, f"record {i}".encode()) for i in range(5)]
    handled: list[list[int]] = []

    async def handler(batch: list[Any]) -> None:
        handled.append([ev.message.offset for ev in batch])
        if any(ev.message.offset == 2 for ev in batch):
            raise ValueError("the logic chokes on record 2")
        for ev in batch:
            await deliveries.send(ev, out, b"k", ev.message.value)

    await handle_isolating(events, handler, deliveries, "svc")
    assert handled == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]
    (letter_rec,) = dlq.sent
    letter = DeadLetter.from_bytes(letter_rec[1])
    assert (letter.offset, letter.stage, letter.error_type) == (2, "svc", "ValueError")
    assert sorted(v for _, v, _ in out.sent) == [f"record {i}".encode() for i in (0, 1, 3, 4)]
    for ev in events:
        stream_acks(ev)
    for *_, fut in [*out.sent, *dlq.sent]:
        fut.set_result("meta")
    await settle()
    assert sorted(consumer.acked) == [0, 1, 2, 3, 4], "every record went somewhere"


@in_loop
async def test_a_batch_cut_short_by_a_stop_stays_unacknowledged(parts: Any) -> None:
    # the stream acknowledges what it handed over as its loop exits, cancelled or not: a
    # batch being indexed at a SIGTERM was committed without its outputs, and lost
    consumer, out, dlq, errors, deliveries = parts
    events = [event(consumer, i) for i in range(3)]
    started = asyncio.Event()

    async def handler(batch: list[Any]) -> None:
        await deliveries.send(batch[0], out, b"k", b"done before the stop")
        started.set()
        await asyncio.Event().wait()  # indexing when the worker stops

    task = asyncio.ensure_future(handle_isolating(events, handler, deliveries, "svc"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for ev in events:
        stream_acks(ev)
    deliver_all(out)
    await settle()
    assert consumer.acked == [] and dlq.sent == []
