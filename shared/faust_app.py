"""Faust plumbing written once: the app factory and the per-event consumer loop with its DLQ."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.types import EventT, StreamT, TopicT

from shared.kafka.dlq import dead_letter, dlq_headers
from shared.settings import KafkaSettings, PlatformSettings
from shared.topics import Topic

log = logging.getLogger(__name__)

Handler = Callable[[EventT[Any]], Awaitable[None]]


def make_app(
    service: str, kafka: KafkaSettings, platform: PlatformSettings, bootstrap: str, **kw: Any
) -> faust.App:
    """A faust app whose consumer group is ``<prefix>llmops-<service>``; values stay raw bytes."""
    app_id = f"{kafka.topic_prefix}llmops-{service}"
    datadir = platform.data_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "broker": f"kafka://{bootstrap}",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "store": "memory://",
        "datadir": str(datadir),
        "web_enabled": False,
        "producer_acks": -1,
        "producer_max_request_size": kafka.max_message_bytes,
        "consumer_max_fetch_size": kafka.max_message_bytes,
        # Batch produce requests: one request per record costs the broker and us dearly.
        "producer_linger": 0.01,
        "producer_max_batch_size": 512 * 1024,
        "topic_replication_factor": 1,
        "broker_session_timeout": kafka.session_timeout_s,
        # a third of the session, as Kafka recommends
        "broker_heartbeat_interval": kafka.session_timeout_s / 3,
        "broker_commit_every": 500,
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": True,
    }
    config.update(kw)
    app = faust.App(app_id, **config)
    new_consumer = app._new_consumer

    def consumer_that_commits_before_handing_over() -> Any:
        consumer: Any = new_consumer()
        revoke = consumer.on_partitions_revoked

        async def on_partitions_revoked(revoked: set[Any]) -> None:
            # faust commits on its timer only, and its first step on revocation forgets what
            # was acknowledged on the partitions that move: their next owner would redo up to
            # a commit interval of work (8% of a stream when a second worker joined). Commit
            # them first, so a scale-out or a rolling restart repeats (almost) nothing.
            # force: commit() does nothing when its timer's commit is under way, and that
            # one may predate the last acknowledgements
            await consumer.force_commit(revoked)
            await revoke(revoked)

        consumer.on_partitions_revoked = on_partitions_revoked
        return consumer

    app._new_consumer = consumer_that_commits_before_handing_over  # type: ignore[method-assign]
    return app


def faust_topic(app: faust.App, topic: Topic, prefix: str) -> TopicT:
    """The faust handle of a declared topic (raw bytes both ways)."""
    return app.topic(
        topic.name(prefix),
        key_type=bytes,
        value_type=bytes,
        partitions=topic.partitions,
        internal=False,
    )


# Room for the record's own framing and headers beside its key and value.
RECORD_OVERHEAD_BYTES = 1024


class OutputTooLarge(Exception):
    """A record the broker could never accept: dead-lettering its input is the only way on."""

    code = "OutputTooLarge"


def check_record_size(key: bytes | None, value: bytes, max_bytes: int) -> None:
    """Raise OutputTooLarge when a record is over ``max_bytes`` (KAFKA_MAX_MESSAGE_BYTES)."""
    size = len(key or b"") + len(value) + RECORD_OVERHEAD_BYTES
    if size > max_bytes:
        raise OutputTooLarge(
            f"the output record would be {size} bytes, over KAFKA_MAX_MESSAGE_BYTES={max_bytes}"
        )


async def send_checked(topic: TopicT, key: bytes | None, value: bytes, max_bytes: int) -> None:
    """Send a record an agent produced for the event in hand.

    A record over the limit fails here, inside the handler, so the consumer loop dead-letters
    the event with the reason; sent anyway, it would fail in the producer after the event's
    offset was committed, and the event would be lost without a trace.
    """
    check_record_size(key, value, max_bytes)
    await topic.send(key=key, value=value)


async def send_dead_letter(dlq: TopicT, event: EventT[Any], stage: str, exc: BaseException) -> str:
    """Dead-letter one event with the reason; return the error type used."""
    msg = event.message
    error_type = getattr(exc, "code", None) or type(exc).__name__
    dl = dead_letter(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        stage=stage,
        error_type=error_type,
        error_message=str(exc) or repr(exc),
    )
    log.warning(
        "dead-lettered %s[%d]@%d: %s: %s",
        msg.topic,
        msg.partition,
        msg.offset,
        error_type,
        dl.error_message[:200],
    )
    await dlq.send(key=msg.key, value=dl.to_bytes(), headers=dlq_headers(dl))
    return error_type


async def consume_with_dlq(
    stream: StreamT[Any],
    handler: Handler,
    dlq: TopicT,
    stage: str,
    on_error: Callable[[str], None] | None = None,
) -> None:
    """Run ``handler`` per event; any exception dead-letters that event and the loop goes on.

    Faust acknowledges a message whose handler raised, so catching here is what keeps a bad
    event from being skipped silently. Errors with a ``code`` attribute keep it as error type.
    """
    async for event in stream.events():
        try:
            await handler(event)
        except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
            error_type = await send_dead_letter(dlq, event, stage, exc)
            if on_error is not None:
                on_error(error_type)
