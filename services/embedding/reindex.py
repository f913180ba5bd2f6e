"""Rebuild the index into a new collection by replaying the compacted ``docs.chunks`` topic,
then swap the alias. Readers keep using the alias (the old collection) until the swap."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError
from tqdm import tqdm

from services.embedding.indexer import Indexer
from shared.contracts.events import ChunkBatch
from shared.contracts.topics import DOCS_CHUNKS
from shared.kafka.reader import partitions
from shared.models.embedder import Embedder
from shared.store.base import VectorStore

log = logging.getLogger(__name__)


@dataclass
class ReindexResult:
    """What a rebuild did."""

    collection: str
    previous: str | None
    records: int
    invalid: int
    points: int


def _replay(
    consumer: KafkaConsumer,
    tps: list[TopicPartition],
    indexer: Indexer,
    batch_size: int,
    bar: tqdm,
) -> tuple[int, int]:
    """Index from the consumer's position until it reaches the current end offsets."""
    records = invalid = 0
    while True:
        end = consumer.end_offsets(tps)
        if all(consumer.position(tp) >= end[tp] for tp in tps):
            return records, invalid
        polled = consumer.poll(timeout_ms=500, max_records=batch_size)
        batches = []
        for recs in polled.values():
            for r in recs:
                records += 1
                try:
                    batches.append(ChunkBatch.from_bytes(r.value))
                except ValidationError:
                    invalid += 1  # ingestion never publishes these; nothing to index
        if batches:
            indexer.index(batches)
        consumer.commit()
        bar.update(sum(len(v) for v in polled.values()))


def reindex(
    store: VectorStore,
    embedder: Embedder,
    bootstrap: str,
    prefix: str = "",
    batch_size: int = 64,
    keep_old: bool = True,
    progress: bool = False,
) -> ReindexResult:
    """Build a new collection for ``embedder``'s model from docs.chunks and activate it."""
    generation = time.strftime("%Y%m%d%H%M%S") + f"{time.time_ns() % 1000:03d}"
    collection = store.collection_name(embedder.name, embedder.dim, generation)
    store.ensure_collection(collection, embedder.name, embedder.dim)
    indexer = Indexer(store, embedder, batch_size, collection=collection)
    topic = DOCS_CHUNKS.name(prefix)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}llmops-reindex-{generation}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tps = partitions(consumer, topic)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        total = sum(consumer.end_offsets(tps).values())
        with tqdm(total=total, unit="rec", desc="replaying", disable=not progress) as bar:
            records, invalid = _replay(consumer, tps, indexer, batch_size, bar)
        if progress:
            print("building the search index of the new collection", file=sys.stderr)
        store.optimize(collection)
        with tqdm(unit="rec", desc="catching up", disable=not progress) as bar:
            previous = store.activate(collection)
            # Whatever the live service wrote to the old collection just before the swap:
            more, bad = _replay(consumer, tps, indexer, batch_size, bar)
    finally:
        consumer.close()
    if previous and previous != collection and not keep_old:
        store.drop(previous)
    return ReindexResult(
        collection, previous, records + more, invalid + bad, store.info(collection).points
    )
