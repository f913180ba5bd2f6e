"""The embedding step: a batch of events in, their documents indexed (off the event loop,
retried while the store is down), one docs.indexed record per document out, each held by the
events of its document. The agent only feeds it batches; tests drive it without a broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from faust.types import EventT, TopicT
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from services.embedding.indexer import Indexer
from shared.contracts.events import ChunkBatch, DocumentIndexed
from shared.kafka.delivery import Deliveries
from shared.kafka.faust_app import handle_isolating

log = logging.getLogger(__name__)
T = TypeVar("T")


class EmbeddingWorker:
    """Indexes batches with ``indexer`` and publishes the results to ``indexed``.

    ``retry_max_s`` caps the wait between tries while the store is failing; ``executor``
    runs the model and the store (one thread: the event loop stays free for Kafka).
    """

    def __init__(
        self,
        indexer: Indexer,
        out: Deliveries,
        indexed: TopicT,
        retry_max_s: float,
        executor: Executor | None = None,
    ) -> None:
        self.indexer, self.out, self.indexed, self.retry_max_s = indexer, out, indexed, retry_max_s
        self.executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="embedding"
        )

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn in the worker thread, retrying with back-off while the store is down."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(self.indexer.store.transient),
            wait=wait_exponential(multiplier=0.5, max=self.retry_max_s),
            before_sleep=lambda rs: log.warning(
                "vector store failing (%s); retrying", rs.outcome.exception() if rs.outcome else "?"
            ),
            reraise=True,
        ):
            with attempt:
                return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        raise AssertionError("unreachable")

    async def take(self, events: list[EventT[Any]]) -> None:
        """One batch from the stream; a record that still fails alone is dead-lettered."""
        await handle_isolating(events, self.handle, self.out, "embedding")

    async def publish(
        self, results: list[DocumentIndexed], good: list[tuple[EventT[Any], ChunkBatch]]
    ) -> None:
        # each result is held by the events of its document, so none of them counts as done
        # before docs.indexed has it
        for r in results:
            sources = [ev for ev, b in good if b.key == r.key] or [ev for ev, _ in good]
            await self.out.send(sources, self.indexed, r.key.encode(), r.to_bytes())

    async def handle(self, events: list[EventT[Any]]) -> None:
        good: list[tuple[EventT[Any], ChunkBatch]] = []
        for ev in events:
            try:
                good.append((ev, ChunkBatch.from_bytes(ev.message.value or b"")))
            except ValidationError as exc:  # can never succeed
                await self.out.dead_letter(ev, "embedding.decode", exc)
        if not good:
            return
        try:
            await self.publish(await self.off_loop(self.indexer.index, [b for _, b in good]), good)
        except Exception as exc:  # noqa: BLE001 - isolate the document that fails
            log.warning("batch failed (%s); indexing its documents one by one", exc)
            for ev, batch in good:
                try:
                    results = await self.off_loop(self.indexer.index, [batch])
                    await self.publish(results, [(ev, batch)])
                except Exception as one:  # noqa: BLE001
                    await self.out.dead_letter(ev, "embedding.index", one)

    async def warm(self) -> None:
        """Load the model and open the collection before the first batch arrives."""
        await asyncio.get_running_loop().run_in_executor(self.executor, self.indexer.target)
