"""The ingestion agent: decode, call the pure Ingestor, publish. Nothing else lives here."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import faust
from faust.types import EventT

from services.ingestion.logic import Ingestor, Stale
from services.ingestion.settings import IngestionSettings
from shared.delivery import Deliveries
from shared.faust_app import consume_with_dlq, faust_topic, make_app
from shared.topics import DOCS_CHUNKS, INGEST_DLQ, INGEST_DOCUMENTS

log = logging.getLogger(__name__)


class LimitsTooSmall(RuntimeError):
    """The largest accepted document would not fit in a Kafka record."""


def check_limits(ingestor: Ingestor, max_bytes: int, bootstrap: str | None, topic: str) -> None:
    """Refuse to start when the largest accepted event could chunk into a batch the producer
    (KAFKA_MAX_MESSAGE_BYTES) or the output topic (its max.message.bytes) would refuse."""
    bound = ingestor.max_batch_bytes()
    if bound > max_bytes:
        raise LimitsTooSmall(
            f"INGESTION_MAX_EVENT_BYTES={ingestor.max_event_bytes} with these chunk settings "
            f"can make a chunk batch of up to {bound} bytes, over KAFKA_MAX_MESSAGE_BYTES="
            f"{max_bytes}: raise KAFKA_MAX_MESSAGE_BYTES or lower INGESTION_MAX_EVENT_BYTES"
        )
    if bootstrap is None:
        return
    from shared.kafka.admin import topic_max_message_bytes

    accepted = topic_max_message_bytes(bootstrap, topic)
    if bound > accepted:
        raise LimitsTooSmall(
            f"topic {topic} accepts records of up to {accepted} bytes, but a chunk batch can be "
            f"{bound}: raise its max.message.bytes to {max_bytes} (kafka-configs.sh --alter "
            f"--entity-type topics --entity-name {topic} --add-config "
            f"max.message.bytes={max_bytes}) or lower INGESTION_MAX_EVENT_BYTES"
        )


def build_app(settings: IngestionSettings, bootstrap: str) -> faust.App:
    """The ingestion faust app, ready for a worker."""
    prefix = settings.kafka.topic_prefix
    ingestor = Ingestor.from_settings(settings)
    max_bytes = settings.kafka.max_message_bytes
    check_limits(ingestor, max_bytes, bootstrap, DOCS_CHUNKS.name(prefix))
    app = make_app("ingestion", settings.kafka, settings.platform, bootstrap)
    source = faust_topic(app, INGEST_DOCUMENTS, prefix)
    chunks = faust_topic(app, DOCS_CHUNKS, prefix)
    dlq = faust_topic(app, INGEST_DLQ, prefix)
    # Newest version per document, backed by a compacted changelog so it survives restarts.
    newest = app.Table(
        "doc_versions",
        partitions=INGEST_DOCUMENTS.partitions,
        schema=faust.Schema(
            key_type=str,
            value_type=int,  # type: ignore[arg-type]  # faust's stub lists models only; json takes int
            key_serializer="json",
            value_serializer="json",
        ),
    )
    stats: Counter[str] = Counter()

    def on_dead_letter(error_type: str) -> None:
        stats[f"dlq.{error_type}"] += 1

    out = Deliveries(
        dlq, "ingestion", max_bytes, on_dead_letter, letter_values=settings.platform.dlq_values
    )

    async def handle(event: EventT[Any]) -> None:
        msg = event.message
        key = msg.key.decode("utf-8", "replace") if msg.key is not None else None
        result = ingestor.process(msg.value, msg.key, newest.get(key) if key else None)
        if isinstance(result, Stale):
            stats["stale_dropped"] += 1
            log.info(
                "dropped stale %s v%d (newest seen v%d)",
                result.event.key,
                result.event.version,
                result.newest,
            )
            return
        await out.send(event, chunks, result.key.encode(), result.to_bytes())
        newest[result.key] = result.version
        stats["batches"] += 1
        stats["chunks"] += len(result.chunks)
        for name, n in result.redactions.items():
            stats[f"redacted.{name}"] += n

    @app.agent(source, name="ingest")
    async def ingest(stream: faust.StreamT[Any]) -> None:
        await consume_with_dlq(stream, handle, out, "ingestion")

    @app.timer(interval=30.0)  # type: ignore[untyped-decorator]  # faust leaves it untyped
    async def report() -> None:
        if stats:
            log.info("ingestion so far: %s", dict(sorted(stats.items())))

    return app
