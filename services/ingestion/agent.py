"""The ingestion agent: decode, call the pure Ingestor, publish. Nothing else lives here."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import faust
from faust.types import EventT

from services.ingestion.logic import Ingestor, Stale
from services.ingestion.settings import IngestionSettings
from shared.faust_app import consume_with_dlq, faust_topic, make_app
from shared.topics import DOCS_CHUNKS, INGEST_DLQ, INGEST_DOCUMENTS

log = logging.getLogger(__name__)


def build_app(settings: IngestionSettings, bootstrap: str) -> faust.App:
    """The ingestion faust app, ready for a worker."""
    app = make_app("ingestion", settings.kafka, settings.platform, bootstrap)
    prefix = settings.kafka.topic_prefix
    ingestor = Ingestor.from_settings(settings)
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
        await chunks.send(key=result.key.encode(), value=result.to_bytes())
        newest[result.key] = result.version
        stats["batches"] += 1
        stats["chunks"] += len(result.chunks)
        for name, n in result.redactions.items():
            stats[f"redacted.{name}"] += n

    def on_error(error_type: str) -> None:
        stats[f"dlq.{error_type}"] += 1

    @app.agent(source, name="ingest")
    async def ingest(stream: faust.StreamT[Any]) -> None:
        await consume_with_dlq(stream, handle, dlq, "ingestion", on_error)

    @app.timer(interval=30.0)  # type: ignore[untyped-decorator]  # faust leaves it untyped
    async def report() -> None:
        if stats:
            log.info("ingestion so far: %s", dict(sorted(stats.items())))

    return app
