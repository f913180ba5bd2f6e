"""Running inference: uvicorn for the API; with the embedded store, the embedding agent runs
in the same process (the embedded store admits one process)."""

from __future__ import annotations

import logging
import threading

import faust
import uvicorn

from services.inference.app import build_runtime, create_app
from services.inference.llm import make_llm
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from shared.topics import INFERENCE_COMPLETED
from shared.vector_store import VectorStore

log = logging.getLogger(__name__)


def api_server(
    settings: InferenceSettings, store: VectorStore, bootstrap: str, loglevel: str = "info"
) -> uvicorn.Server:
    """The API server over ``store`` (loads the LLM); call ``run()`` to serve."""
    llm = make_llm(settings)
    publisher = TracePublisher(
        bootstrap,
        INFERENCE_COMPLETED.name(settings.kafka.topic_prefix),
        settings.trace_buffer,
        settings.trace_linger_ms,
    )
    app = create_app(build_runtime(settings, store, llm, publisher))
    return uvicorn.Server(
        uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level=loglevel, access_log=False
        )
    )


def run_with_api(server: uvicorn.Server, *apps: faust.App, loglevel: str = "info") -> None:
    """Faust keeps the main thread (and its signal handling); the API gets its own loop in a
    thread. Returns when the worker stops."""
    from shared.worker import run_worker

    api = threading.Thread(target=server.run, name="inference-api", daemon=True)
    api.start()
    try:
        run_worker(*apps, loglevel=loglevel)
    finally:
        server.should_exit = True
        api.join(timeout=10)


def serve(settings: InferenceSettings, bootstrap: str, loglevel: str = "info") -> None:
    """Serve the API until interrupted (with the embedding agent when the store is embedded)."""
    store = VectorStore.open(settings.qdrant, settings.platform, settings.kafka.topic_prefix)
    server = api_server(settings, store, bootstrap, loglevel)
    try:
        if settings.qdrant.url:
            server.run()
            return
        from services.embedding.agent import build_app
        from services.embedding.settings import embedding_settings
        from shared.embedder import get_embedder

        esettings = embedding_settings()
        embedding = build_app(
            esettings, bootstrap, store=store, embedder=get_embedder(esettings.model)
        )
        run_with_api(server, embedding, loglevel=loglevel)
    finally:
        store.close()
