"""The embedding agent: take a batch of events, index it off the loop, ack, publish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import faust
from faust.types import EventT
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from services.embedding.indexer import Indexer
from services.embedding.settings import EmbeddingSettings
from shared.delivery import Deliveries
from shared.embedder import Embedder
from shared.events import ChunkBatch, DocumentIndexed
from shared.faust_app import faust_topic, handle_isolating, make_app
from shared.topics import DOCS_CHUNKS, DOCS_INDEXED, EMBEDDING_DLQ
from shared.vector_store import VectorStore

log = logging.getLogger(__name__)
T = TypeVar("T")


def build_app(
    settings: EmbeddingSettings,
    bootstrap: str,
    store: VectorStore | None = None,
    embedder: Embedder | None = None,
) -> faust.App:
    """The embedding faust app; ``store`` and ``embedder`` may be shared with other services
    of the same process (the embedded store allows one process)."""
    app = make_app("embedding", settings.kafka, settings.platform, bootstrap)
    prefix = settings.kafka.topic_prefix
    store = store or VectorStore.open(settings.qdrant, settings.platform, prefix)
    embedder = embedder or Embedder(settings.model)
    indexer = Indexer(store, embedder, settings.batch_size)
    source = faust_topic(app, DOCS_CHUNKS, prefix)
    indexed = faust_topic(app, DOCS_INDEXED, prefix)
    dlq = faust_topic(app, EMBEDDING_DLQ, prefix)
    # One thread for the model and the store: the event loop stays free for Kafka.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")

    async def off_loop(fn: Callable[..., T], *args: Any) -> T:
        """Run fn in the worker thread, retrying with back-off while the store is down."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(store.transient),
            wait=wait_exponential(multiplier=0.5, max=settings.retry_max_s),
            before_sleep=lambda rs: log.warning(
                "vector store failing (%s); retrying", rs.outcome.exception() if rs.outcome else "?"
            ),
            reraise=True,
        ):
            with attempt:
                return await asyncio.get_running_loop().run_in_executor(worker, fn, *args)
        raise AssertionError("unreachable")

    out = Deliveries(
        dlq,
        "embedding",
        settings.kafka.max_message_bytes,
        letter_values=settings.platform.dlq_values,
    )

    async def publish(
        results: list[DocumentIndexed], good: list[tuple[EventT[Any], ChunkBatch]]
    ) -> None:
        # each result is held by the events of its document, so none of them counts as done
        # before docs.indexed has it
        for r in results:
            sources = [ev for ev, b in good if b.key == r.key] or [ev for ev, _ in good]
            await out.send(sources, indexed, r.key.encode(), r.to_bytes())

    async def handle(events: list[EventT[Any]]) -> None:
        good: list[tuple[EventT[Any], ChunkBatch]] = []
        for ev in events:
            try:
                good.append((ev, ChunkBatch.from_bytes(ev.message.value or b"")))
            except ValidationError as exc:  # can never succeed
                await out.dead_letter(ev, "embedding.decode", exc)
        if not good:
            return
        try:
            await publish(await off_loop(indexer.index, [b for _, b in good]), good)
        except Exception as exc:  # noqa: BLE001 - isolate the document that fails
            log.warning("batch failed (%s); indexing its documents one by one", exc)
            for ev, batch in good:
                try:
                    await publish(await off_loop(indexer.index, [batch]), [(ev, batch)])
                except Exception as one:  # noqa: BLE001
                    await out.dead_letter(ev, "embedding.index", one)

    @app.agent(source, name="embed")
    async def embed(stream: faust.StreamT[Any]) -> None:
        # Events are acknowledged only after the body returns: after Qdrant has them.
        # (take_events is on faust's Stream, not on the StreamT interface it is typed as.)
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_size, within=settings.batch_wait_s
        )
        async for events in batches:
            await handle_isolating(list(events), handle, out, "embedding")

    @app.task  # type: ignore[untyped-decorator]  # faust leaves it untyped
    async def warm() -> None:
        # Load the model and open the collection before the first batch arrives.
        await asyncio.get_running_loop().run_in_executor(worker, indexer.target)

    return app
