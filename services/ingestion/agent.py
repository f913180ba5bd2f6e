"""The ingestion agent: events of ingest.documents into the ``IngestionWorker``; the start's
limit check. Nothing else lives here."""

from __future__ import annotations

from typing import Any

import faust

from services.ingestion.cdc import load_mapping
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from services.ingestion.worker import CdcWorker, IngestionWorker
from shared.contracts.topics import DOCS_CHUNKS, INGEST_DLQ, INGEST_DOCUMENTS
from shared.kafka.faust_app import consume_with_dlq, dead_letters, faust_topic, make_app


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
    out = dead_letters(app, INGEST_DLQ, "ingestion", settings.kafka, settings.platform, max_bytes)
    worker = IngestionWorker(ingestor, out, faust_topic(app, DOCS_CHUNKS, prefix), newest)
    out.on_dead_letter = worker.dead_lettered  # counted in the worker's report

    @app.agent(faust_topic(app, INGEST_DOCUMENTS, prefix), name="ingest")
    async def ingest(stream: faust.StreamT[Any]) -> None:
        await consume_with_dlq(stream, worker.take, out, "ingestion")

    if settings.cdc_mapping_file is not None:
        # rows of the mapped tables become document events on ingest.documents
        mapping = load_mapping(settings.cdc_mapping_file)
        if bootstrap:
            from shared.kafka.admin import ensure_source_topics

            ensure_source_topics(
                bootstrap,
                mapping.topics,
                INGEST_DOCUMENTS.partitions,
                settings.kafka.replication_factor,
                settings.kafka.min_insync_replicas,
            )
        changes = CdcWorker(mapping, out, faust_topic(app, INGEST_DOCUMENTS, prefix), worker.stats)
        tables = app.topic(*mapping.topics, key_type=bytes, value_type=bytes, internal=False)

        @app.agent(tables, name="cdc")
        async def cdc(stream: faust.StreamT[Any]) -> None:
            await consume_with_dlq(stream, changes.take, out, "ingestion")

    app.timer(interval=30.0)(worker.report)
    return app
