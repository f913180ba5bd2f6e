"""Dev mode: the broker, the topics and the services on this machine, plus the sample corpus."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import click

from shared.events import ChunkBatch, DocumentIndexed
from shared.http import wait_ok
from shared.kafka.admin import create_topics
from shared.kafka.reader import end_offsets, wait_for_events
from shared.settings import KafkaSettings, PlatformSettings, ensure_kafka
from shared.topics import DOCS_CHUNKS, DOCS_INDEXED
from shared.upstream import events_from_paths, publish_documents


def _dev_key(data_dir: Path, tenant: str) -> tuple[str, Path]:
    """A dev API key for ``tenant`` (kept in the data folder for `llmops ask`)."""
    from services.inference.auth import dump_keys, new_key

    key_file, keys_file = data_dir / "dev_api_key", data_dir / "api_keys.json"
    if not key_file.exists() or not keys_file.exists():
        key, record = new_key("dev", tenant, [])
        keys_file.write_text(dump_keys([record]))
        key_file.write_text(key)
        key_file.chmod(0o600)
    return key_file.read_text().strip(), keys_file


def _load_corpus(
    bootstrap: str, prefix: str, corpus: list[Path], tenant: str, url: str, key: str
) -> None:
    """Publish the corpus, report what each stage did with it, then say how to ask."""
    click.secho("==> sample corpus", bold=True)
    items = list(events_from_paths(corpus, tenant))
    want = {i.key: i.version for i in items if not isinstance(i, Exception)}
    start = end_offsets(bootstrap, DOCS_CHUNKS.name(prefix))
    start_indexed = end_offsets(bootstrap, DOCS_INDEXED.name(prefix))
    summary = publish_documents(items, bootstrap, prefix, progress=True, total=len(items))
    click.echo(
        f"    published {summary.sent} documents ({summary.bytes} bytes), {summary.failed} failed"
    )
    for err in summary.errors:
        click.echo(f"    failed: {err}")
    batches = wait_for_events(bootstrap, DOCS_CHUNKS.name(prefix), ChunkBatch, start, want, 120)
    for key_ in sorted(want):
        b = batches.get(key_)
        if b is None:
            click.echo(f"    {key_:<40} not ingested yet")
            continue
        tokens = sum(c.token_count for c in b.chunks)
        red = ", ".join(f"{k}={v}" for k, v in sorted(b.redactions.items())) or "none"
        click.echo(f"    {key_:<40} {len(b.chunks):>3} chunks {tokens:>6} tokens  redacted: {red}")
    click.secho("==> vector store", bold=True)
    indexed = wait_for_events(
        bootstrap, DOCS_INDEXED.name(prefix), DocumentIndexed, start_indexed, want, 300
    )
    for key_ in sorted(want):
        r = indexed.get(key_)
        if r is None:
            click.echo(f"    {key_:<40} not indexed yet")
            continue
        lag = (r.event_time - r.source_event_time).total_seconds()
        click.echo(
            f"    {key_:<40} {r.status:<9} {r.chunk_count:>3} points, "
            f"{r.chunks_encoded} encoded, {r.chunks_reused} reused, "
            f"{lag:.1f}s from publish to searchable"
        )
    if not wait_ok(f"{url}/readyz", 300):
        click.echo(f"    the API at {url} is not ready yet")
    click.secho(
        f"==> ask at {url} (OpenAPI docs: {url}/docs); Ctrl-C stops everything but "
        "the broker (`llmops kafka stop`)",
        bold=True,
    )
    click.echo('    llmops ask "How does ingestion handle a stale version?"')
    click.echo(
        f"    curl -N {url}/v1/query -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' "
        """-d '{"question": "How are deletes handled?", "stream": true}'"""
    )


def run_dev(corpus: list[Path], tenant: str = "default") -> None:
    """Everything in this process: ingestion and embedding (faust, each its own consumer
    group, wired only through topics), inference (one HTTP server), embedded Qdrant, the
    embedded LLM. Indexes the corpus, then serves until Ctrl-C."""
    from services.embedding.agent import build_app as build_embedding
    from services.embedding.settings import embedding_settings
    from services.inference.server import api_server, run_with_api
    from services.inference.settings import inference_settings
    from services.ingestion.agent import build_app as build_ingestion
    from services.ingestion.settings import ingestion_settings
    from shared.embedder import get_embedder
    from shared.vector_store import VectorStore

    kafka, platform = KafkaSettings(), PlatformSettings()
    click.secho("==> Kafka", bold=True)
    bootstrap = ensure_kafka(kafka, platform)
    created = create_topics(bootstrap, kafka.topic_prefix)
    click.echo(f"    broker on {bootstrap}; topics: {len(created)} created, the rest existed")

    key, keys_file = _dev_key(platform.data_dir, tenant)
    os.environ.setdefault("INFERENCE_API_KEYS_FILE", str(keys_file))
    isettings, esettings = inference_settings(), embedding_settings()
    click.secho("==> services (one process)", bold=True)
    store = VectorStore.open(isettings.qdrant, platform, kafka.topic_prefix)
    click.echo(f"    vector store: {isettings.qdrant.url or platform.data_dir / 'qdrant'}")
    server = api_server(isettings, store, bootstrap, loglevel="warning")
    click.echo(f"    LLM: {isettings.llm_backend}; API on http://{isettings.host}:{isettings.port}")
    ingestion = build_ingestion(ingestion_settings(), bootstrap)
    embedding = build_embedding(
        esettings, bootstrap, store=store, embedder=get_embedder(esettings.model)
    )
    url = f"http://{isettings.host}:{isettings.port}"
    threading.Thread(
        target=_load_corpus,
        daemon=True,
        name="corpus",
        args=(bootstrap, kafka.topic_prefix, corpus, tenant, url, key),
    ).start()
    try:
        run_with_api(server, ingestion, embedding, loglevel="warning")
    finally:
        store.close()  # release the embedded store's lock before the interpreter goes
