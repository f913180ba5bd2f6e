"""Running inference: uvicorn for the API; with the embedded store, the embedding agent runs
in the same process (the embedded store admits one process)."""

from __future__ import annotations

import logging
import threading

import uvicorn

from services.inference.app import build_runtime, create_app
from services.inference.llm import make_llm
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from shared.kafka.admin import create_topics
from shared.settings import ensure_kafka
from shared.topics import INFERENCE_COMPLETED
from shared.vector_store import VectorStore

log = logging.getLogger(__name__)


def serve(settings: InferenceSettings, loglevel: str = "info") -> None:
    """Serve the API until interrupted."""
    bootstrap = ensure_kafka(settings.kafka, settings.platform)
    prefix = settings.kafka.topic_prefix
    create_topics(bootstrap, prefix)
    store = VectorStore.open(settings.qdrant, settings.platform, prefix)
    llm = make_llm(settings)
    publisher = TracePublisher(bootstrap, INFERENCE_COMPLETED.name(prefix), settings.trace_buffer)
    app = create_app(build_runtime(settings, store, llm, publisher))
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=loglevel, access_log=False
    )
    server = uvicorn.Server(config)
    if settings.qdrant.url:
        server.run()
        return
    # Embedded store: this process also owns the writer. Faust keeps the main thread (and
    # its signal handling); the API runs on its own loop in a thread.
    from services.embedding.agent import build_app
    from services.embedding.settings import embedding_settings
    from shared.embedder import get_embedder
    from shared.worker import run_worker

    api = threading.Thread(target=server.run, name="inference-api", daemon=True)
    api.start()
    try:
        esettings = embedding_settings()
        embedding = build_app(
            esettings, bootstrap, store=store, embedder=get_embedder(esettings.model)
        )
        run_worker(embedding, loglevel=loglevel)
    finally:
        server.should_exit = True
        api.join(timeout=10)
