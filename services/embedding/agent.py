"""The embedding agent: batches of docs.chunks into the ``EmbeddingWorker``; nothing else."""

from __future__ import annotations

from typing import Any

import faust

from services.embedding.indexer import Indexer
from services.embedding.settings import EmbeddingSettings
from services.embedding.worker import EmbeddingWorker
from shared.contracts.topics import DOCS_CHUNKS, DOCS_INDEXED, EMBEDDING_DLQ
from shared.kafka.faust_app import dead_letters, faust_topic, make_app
from shared.models.embedder import Embedder
from shared.store.base import VectorStore
from shared.store.open import open_store


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
    store = store or open_store(settings.qdrant, settings.platform, prefix)
    indexer = Indexer(store, embedder or Embedder(settings.model), settings.batch_size)
    out = dead_letters(app, EMBEDDING_DLQ, "embedding", settings.kafka, settings.platform)
    worker = EmbeddingWorker(
        indexer, out, faust_topic(app, DOCS_INDEXED, prefix), settings.retry_max_s
    )

    @app.agent(faust_topic(app, DOCS_CHUNKS, prefix), name="embed")
    async def embed(stream: faust.StreamT[Any]) -> None:
        # Events are acknowledged only once what they produced is delivered: after Qdrant
        # has them. (take_events is on faust's Stream, not on the StreamT it is typed as.)
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_size, within=settings.batch_wait_s
        )
        async for events in batches:
            await worker.take(list(events))

    app.task(worker.warm)
    return app
