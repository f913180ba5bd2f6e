"""The ingestion step: one document event in, through the pure ``Ingestor``, its chunk batch
out (or its dead letter), the newest version per document kept. The agent only feeds it
events; tests drive it without a broker."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import MutableMapping
from typing import Any

from faust.types import EventT, TopicT

from services.ingestion.cdc import CdcMapping
from services.ingestion.logic import Ingestor, stale
from shared.contracts.events import record_key
from shared.kafka.delivery import Deliveries

log = logging.getLogger(__name__)


class IngestionWorker:
    """Ingests events with ``ingestor`` into ``chunks``; ``newest`` is the newest version
    seen per document key (faust's table, backed by a compacted changelog, in the service);
    ``stats`` counts what happened, for the periodic report."""

    def __init__(
        self,
        ingestor: Ingestor,
        out: Deliveries,
        chunks: TopicT,
        newest: MutableMapping[str, int],
        stats: Counter[str] | None = None,
    ) -> None:
        self.ingestor, self.out, self.chunks, self.newest = ingestor, out, chunks, newest
        self.stats = Counter[str]() if stats is None else stats

    def dead_lettered(self, error_type: str) -> None:
        """Count a dead letter by its type (``Deliveries`` calls it)."""
        self.stats[f"dlq.{error_type}"] += 1

    async def take(self, event: EventT[Any]) -> None:
        """One event: a stale version is dropped (and counted), anything else becomes a chunk
        batch whose delivery acknowledges the event. A failure raises to the loop, which
        dead-letters the event."""
        msg = event.message
        doc = self.ingestor.parse(msg.value, msg.key)
        old = stale(doc, self.newest.get(doc.key))
        if old is not None:
            self.stats["stale_dropped"] += 1
            log.info("dropped stale %s v%d (newest seen v%d)", doc.key, doc.version, old.newest)
            return
        body = None
        if self.ingestor.needs_reading(doc):
            # fetching and converting block (a file, a URL, the converter process): off the
            # loop, so the worker keeps its group membership and timers meanwhile
            body = await asyncio.to_thread(self.ingestor.read_body, doc)
            if not isinstance(body, str):
                self.stats["converted"] += 1
                self.stats["ocr_pages"] += body.ocr_pages
        result = self.ingestor.to_batch(doc, body=body)
        await self.out.send(event, self.chunks, result.key.encode(), result.to_bytes())
        self.newest[result.key] = result.version
        self.stats["batches"] += 1
        self.stats["chunks"] += len(result.chunks)
        for name, n in result.redactions.items():
            self.stats[f"redacted.{name}"] += n

    async def report(self) -> None:
        """Log the counts so far (a timer calls it)."""
        if self.stats:
            log.info("ingestion so far: %s", dict(sorted(self.stats.items())))


class CdcWorker:
    """Turns change records of the mapped Debezium topics into document events on
    ``documents`` (ingest.documents), where they are ingested as any upstream system's:
    keyed by document, so a row's changes stay in order. A record that carries no change is
    acknowledged as it is; one the mapping cannot read raises to the loop (dead-lettered)."""

    def __init__(
        self,
        mapping: CdcMapping,
        out: Deliveries,
        documents: TopicT,
        stats: Counter[str] | None = None,
    ) -> None:
        self.mapping, self.out, self.documents = mapping, out, documents
        self.stats = Counter[str]() if stats is None else stats

    async def take(self, event: EventT[Any]) -> None:
        """One change record."""
        msg = event.message
        doc = self.mapping.translate(msg.topic, msg.offset, msg.value)
        if doc is None:
            self.stats["cdc.skipped"] += 1
            return
        await self.out.send(event, self.documents, record_key(doc), doc.to_bytes())
        self.stats[f"cdc.{doc.op}"] += 1
