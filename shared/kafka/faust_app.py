"""Faust plumbing written once: the app factory and the per-event consumer loop with its DLQ."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import EventT, StreamT, TopicT
from mode.utils.queues import FlowControlEvent

from shared.contracts.topics import Topic
from shared.kafka.admin import MIN_ISR, Replication, cluster_replication
from shared.kafka.consumer import new_consumer
from shared.kafka.delivery import Deliveries
from shared.settings import KafkaSettings, PlatformSettings

log = logging.getLogger(__name__)

Handler = Callable[[EventT[Any]], Awaitable[None]]
BatchHandler = Callable[[list[EventT[Any]]], Awaitable[None]]


def make_app(
    service: str,
    kafka: KafkaSettings,
    platform: PlatformSettings,
    bootstrap: str,
    replication: Replication | None = None,
    **kw: Any,
) -> faust.App:
    """A faust app whose consumer group is ``<prefix>llmops-<service>``; values stay raw bytes.

    Its changelog and repartition topics get the replication the settings ask for
    (``replication``, by default ``cluster_replication``: it asks the cluster how many
    brokers it has), and its producer writes with ``acks=all`` and idempotence, like every
    producer of the platform.
    """
    if replication is None:
        replication = cluster_replication(
            bootstrap, kafka.replication_factor, kafka.min_insync_replicas
        )
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
        # Never over the topics' limit: a batch the broker refuses fails every record in it,
        # and only the record that is too large alone may be dead-lettered for it.
        "producer_max_batch_size": min(512 * 1024, kafka.max_message_bytes),
        "topic_replication_factor": replication.factor,
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
    # the commit rules every service relies on (shared.kafka.consumer says which and why)
    app._new_consumer = functools.partial(new_consumer, app)  # type: ignore[method-assign]
    new_producer = app._new_producer

    def idempotent_producer() -> Any:
        # faust asks aiokafka for idempotence only inside transactions; outside them a
        # producer retrying after a lost broker could write a record twice
        producer: Any = new_producer()
        producer._settings_extra = lambda: {"acks": "all", "enable_idempotence": True}
        return producer

    app._new_producer = idempotent_producer  # type: ignore[method-assign]
    new_table = app.Table

    def replicated_table(*args: Any, **kw: Any) -> Any:
        # a changelog is a table's only copy: as many in sync as any other topic
        kw["extra_topic_configs"] = {MIN_ISR: str(replication.min_insync)} | dict(
            kw.get("extra_topic_configs") or {}
        )
        return new_table(*args, **kw)

    app.Table = replicated_table  # type: ignore[method-assign]
    keep_what_flows(app.flow_control)
    return app


def keep_what_flows(flow: FlowControlEvent) -> None:
    """Make ``flow.resume()`` clear the stream queues only when flow was suspended.

    A resume empties every stream queue, which is right after a suspension (what is queued
    then predates the seek to the committed offsets). But faust's recovery also resumes flow
    that is already on, after it has resumed the stream partitions and awaited their seek:
    the records fetched in that await were dropped without being acknowledged, and the
    partitions' commits stopped at the first of them for good (a restarted feedback service
    lost joins and never committed again). Those records are valid; keep them.
    """
    resume = flow.resume

    def resume_unless_flowing() -> None:
        if not flow.is_active():
            resume()

    flow.resume = resume_unless_flowing  # type: ignore[method-assign]


def faust_topic(app: faust.App, topic: Topic, prefix: str) -> TopicT:
    """The faust handle of a declared topic (raw bytes both ways)."""
    return app.topic(
        topic.name(prefix),
        key_type=bytes,
        value_type=bytes,
        partitions=topic.partitions,
        internal=False,
    )


def dead_letters(
    app: faust.App,
    dlq: Topic,
    service: str,
    kafka: KafkaSettings,
    platform: PlatformSettings,
    max_bytes: int | None = None,
) -> Deliveries:
    """A service's ``Deliveries``: its dead letters go to ``dlq``, named with ``service``,
    keeping what ``LLMOPS_DLQ_VALUES`` says of each input; records up to ``max_bytes``
    (default: the producer's limit)."""
    return Deliveries(
        faust_topic(app, dlq, kafka.topic_prefix),
        service,
        kafka.max_message_bytes if max_bytes is None else max_bytes,
        letter_values=platform.dlq_values,
    )


async def consume_with_dlq(
    stream: StreamT[Any], handler: Handler, deliveries: Deliveries, stage: str
) -> None:
    """Run ``handler`` per event; any exception dead-letters that event and the loop goes on.

    Faust acknowledges a message whose handler raised, so catching here is what keeps a bad
    event from being skipped silently. Errors with a ``code`` attribute keep it as error type.
    What the handler sends goes through ``deliveries``, so an event counts as done only once
    its outputs (or its dead letter) are on the broker.
    """
    async for event in stream.events():
        await unless_cut_short(
            _dead_lettering(handler, event, deliveries, stage), [event], deliveries
        )


async def _dead_lettering(
    handler: Handler, event: EventT[Any], deliveries: Deliveries, stage: str
) -> None:
    try:
        await handler(event)
    except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
        await deliveries.dead_letter(event, stage, exc)


async def unless_cut_short(
    work: Awaitable[None], events: Sequence[EventT[Any]], deliveries: Deliveries
) -> None:
    """Await ``work`` on ``events``; if the worker stops (cancels it) half-way, ``events``
    stay unacknowledged, so a restart does them again.

    A stream acknowledges what it handed over as its loop exits, cancelled or not, and the
    worker's last commit then covered an event whose outputs were never sent (a batch being
    indexed at a SIGTERM was lost to the rolling-restart chaos test this way)."""
    try:
        await work
    except asyncio.CancelledError:
        for event in events:
            deliveries.hold(event)  # released by nobody: never acknowledged in this process
        raise


async def handle_isolating(
    events: list[EventT[Any]], handler: BatchHandler, deliveries: Deliveries, stage: str
) -> None:
    """Run ``handler`` on a batch; if it raises, run it on each event alone and dead-letter
    the events that still raise, so one record a service's logic chokes on can neither stop
    the batch behind it nor be skipped silently.

    A handler must be safe to run again on events of a batch that failed half-way: what it
    already sent counts once downstream (the services' outputs are idempotent per input).
    Cut short by a stop, the batch stays unacknowledged (``unless_cut_short``).
    """
    await unless_cut_short(_isolating(events, handler, deliveries, stage), events, deliveries)


async def _isolating(
    events: list[EventT[Any]], handler: BatchHandler, deliveries: Deliveries, stage: str
) -> None:
    try:
        await handler(events)
        return
    except Exception as exc:  # noqa: BLE001 - isolate the record that fails
        if len(events) == 1:
            await deliveries.dead_letter(events[0], stage, exc)
            return
        log.warning(
            "a batch of %d failed (%s: %s); handling its records one by one",
            len(events),
            type(exc).__name__,
            exc,
        )
    for event in events:
        try:
            await handler([event])
        except Exception as one:  # noqa: BLE001 - every failure is dead-lettered
            await deliveries.dead_letter(event, stage, one)
