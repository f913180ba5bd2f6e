"""Dev mode: the broker, the topics and the services on this machine, plus the sample corpus."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TypeVar

import click

from shared.events import ChunkBatch, DocumentIndexed, Event
from shared.kafka.admin import create_topics
from shared.settings import KafkaSettings, PlatformSettings, ensure_kafka
from shared.topics import DOCS_CHUNKS, DOCS_INDEXED
from shared.upstream import events_from_paths, publish_documents


def _services(qdrant_server: bool) -> tuple[str, ...]:
    # The embedded store admits one process: there, inference runs the embedding agent too.
    return ("ingestion", "embedding", "inference") if qdrant_server else ("ingestion", "inference")


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


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        return {tp.partition: off for tp, off in c.end_offsets(tps).items()}
    finally:
        c.close()


E = TypeVar("E", bound=Event)


def _wait_for(
    bootstrap: str,
    topic: str,
    model: type[E],
    start: dict[int, int],
    want: dict[str, int],
    timeout_s: float,
) -> dict[str, E]:
    """Events of ``model`` for the wanted key and version, published after ``start``."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    got: dict[str, E] = {}
    try:
        tps = [TopicPartition(topic, p) for p in start]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, start[tp.partition])
        deadline = time.monotonic() + timeout_s
        while want.keys() - got.keys() and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                for r in recs:
                    b = model.from_bytes(r.value)
                    key = r.key.decode() if r.key else ""
                    if want.get(key) == getattr(b, "version", None):
                        got[key] = b
        return got
    finally:
        c.close()


def _wait_ready(
    url: str, procs: dict[str, subprocess.Popen[bytes]], timeout_s: float = 300
) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and all(p.poll() is None for p in procs.values()):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    click.echo(f"    the API at {url} is not ready yet; see the inference log")


def run_dev(corpus: list[Path], tenant: str = "default") -> None:
    """Start everything, index the corpus, report, then keep serving until Ctrl-C."""
    kafka, platform = KafkaSettings(), PlatformSettings()
    click.secho("==> Kafka", bold=True)
    bootstrap = ensure_kafka(kafka, platform)
    click.echo(f"    broker on {bootstrap}")
    created = create_topics(bootstrap, kafka.topic_prefix)
    click.echo(f"    topics: {len(created)} created, the rest existed")

    log_dir = platform.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    from services.inference.settings import inference_settings
    from shared.settings import QdrantSettings

    api = inference_settings()
    key, keys_file = _dev_key(platform.data_dir, tenant)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap)
    env.setdefault("INFERENCE_API_KEYS_FILE", str(keys_file))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    click.secho("==> services", bold=True)
    for name in _services(bool(QdrantSettings().url)):
        log_path = log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        click.echo(f"    {name}: pid {procs[name].pid}, log {log_path}")
    try:
        click.secho("==> sample corpus", bold=True)
        items = list(events_from_paths(corpus, tenant))
        want = {i.key: i.version for i in items if not isinstance(i, Exception)}
        keys = set(want)
        start = _end_offsets(bootstrap, DOCS_CHUNKS.name(kafka.topic_prefix))
        start_indexed = _end_offsets(bootstrap, DOCS_INDEXED.name(kafka.topic_prefix))
        summary = publish_documents(
            items, bootstrap, kafka.topic_prefix, progress=True, total=len(items)
        )
        click.echo(
            f"    published {summary.sent} documents ({summary.bytes} bytes), "
            f"{summary.failed} failed"
        )
        for err in summary.errors:
            click.echo(f"    failed: {err}")
        batches = _wait_for(
            bootstrap, DOCS_CHUNKS.name(kafka.topic_prefix), ChunkBatch, start, want, 120
        )
        for key in sorted(keys):
            b = batches.get(key)
            if b is None:
                click.echo(f"    {key:<40} not ingested yet (see {log_dir}/ingestion.log)")
                continue
            tokens = sum(c.token_count for c in b.chunks)
            red = ", ".join(f"{k}={v}" for k, v in sorted(b.redactions.items())) or "none"
            click.echo(
                f"    {key:<40} {len(b.chunks):>3} chunks {tokens:>6} tokens  redacted: {red}"
            )
        click.secho("==> vector store", bold=True)
        indexed = _wait_for(
            bootstrap,
            DOCS_INDEXED.name(kafka.topic_prefix),
            DocumentIndexed,
            start_indexed,
            want,
            180,
        )
        for key in sorted(keys):
            r = indexed.get(key)
            if r is None:
                click.echo(f"    {key:<40} not indexed yet (see {log_dir}/embedding.log)")
                continue
            lag = (r.event_time - r.source_event_time).total_seconds()
            click.echo(
                f"    {key:<40} {r.status:<9} {r.chunk_count:>3} points, "
                f"{r.chunks_encoded} encoded, {r.chunks_reused} reused, "
                f"{lag:.1f}s from publish to searchable"
            )
        url = f"http://{api.host}:{api.port}"
        _wait_ready(url, procs)
        click.secho(f"==> ask at {url} (OpenAPI: {url}/docs)", bold=True)
        click.echo('    llmops ask "What does the ingestion service do?"')
        click.echo(
            f"    curl -N {url}/v1/query -H 'Authorization: Bearer {key}' "
            f"-H 'Content-Type: application/json' "
            f'-d \'{{"question": "How are deletes handled?", "stream": true}}\''
        )
        click.secho(
            "==> running; Ctrl-C stops the services (the broker keeps running; "
            "`llmops kafka stop` stops it)",
            bold=True,
        )
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        raise click.ClickException(f"service(s) {dead} exited; see {log_dir}")
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
