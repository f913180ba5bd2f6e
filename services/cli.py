"""``llmops``: one entry point for the broker, topics, schemas, services and upstream tools."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from shared.settings import KafkaSettings, PlatformSettings, configured_broker, ensure_kafka


def _bootstrap() -> str:
    return ensure_kafka(KafkaSettings(), PlatformSettings())


def _local_broker():  # type: ignore[no-untyped-def]
    return configured_broker(KafkaSettings(), PlatformSettings())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """LLMOps platform: ingest documents over Kafka, index them, answer questions.

    Settings come from the environment (see the README's settings table); with
    KAFKA_BOOTSTRAP_SERVERS unset a local broker is started under LLMOPS_DATA_DIR.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


@main.group()
def kafka() -> None:
    """Run the local single-node Kafka broker (KRaft, from Maven Central jars)."""


@kafka.command("start")
def kafka_start() -> None:
    """Start the local broker in the background (formats storage on first start).

    Reuses a broker that already answers. Does nothing when KAFKA_BOOTSTRAP_SERVERS is set.
    """
    if KafkaSettings().bootstrap_servers:
        click.echo(f"KAFKA_BOOTSTRAP_SERVERS is set; using {KafkaSettings().bootstrap_servers}")
        return
    broker = _local_broker()
    started = broker.start()
    click.echo(
        f"broker {'started' if started else 'already running'} on {broker.bootstrap} "
        f"(log: {broker.log_file})"
    )


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the local broker cleanly."""
    broker = _local_broker()
    click.echo("broker stopped" if broker.stop() else "no local broker was running")


@kafka.command("status")
def kafka_status() -> None:
    """Say whether the broker answers; exit 1 when it does not."""
    k = KafkaSettings()
    if k.bootstrap_servers:
        from shared.kafka.broker import answers_metadata

        ok = answers_metadata(k.bootstrap_servers)
        click.echo(f"{k.bootstrap_servers}: {'running' if ok else 'not answering'}")
    else:
        broker = _local_broker()
        state = broker.status()
        click.echo(f"{broker.bootstrap}: {state} (pid {broker.pid()}, log {broker.log_file})")
        ok = state == "running"
    sys.exit(0 if ok else 1)


@main.group()
def topics() -> None:
    """Manage the platform's topics (declared once in shared/topics.py)."""


@topics.command("create")
def topics_create() -> None:
    """Create every declared topic that is missing (idempotent)."""
    from shared.kafka.admin import create_topics
    from shared.topics import TOPICS

    prefix = KafkaSettings().topic_prefix
    created = create_topics(_bootstrap(), prefix)
    for t in TOPICS:
        state = "created" if t.name(prefix) in created else "exists"
        click.echo(
            f"{t.name(prefix):<28} {state:<8} partitions={t.partitions} cleanup={t.cleanup_policy}"
        )


@topics.command("list")
def topics_list() -> None:
    """Print the declared topics with their contracts."""
    from shared.topics import TOPICS

    for t in TOPICS:
        click.echo(
            f"{t.base_name:<20} {t.partitions:>2}p {t.cleanup_policy:<8} key={t.key:<14} "
            f"value={t.value_model.__name__}  {t.description}"
        )


@main.group()
def schemas() -> None:
    """Event contracts as JSON Schema."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema file per event model into DIRECTORY."""
    from shared.schemas import export_schemas

    for path in export_schemas(directory):
        click.echo(str(path))


@main.command("run")
@click.argument("service", type=click.Choice(["ingestion", "embedding", "inference"]))
def run(service: str) -> None:
    """Run one service until interrupted (creates missing topics first).

    ingestion and embedding are faust workers; inference is the HTTP API (with the embedded
    vector store it also runs the embedding agent, since one process owns that store).
    """
    from shared.kafka.admin import create_topics
    from shared.worker import run_worker

    bootstrap = _bootstrap()
    create_topics(bootstrap, KafkaSettings().topic_prefix)
    loglevel = PlatformSettings().log_level
    if service == "inference":
        from services.inference.server import serve
        from services.inference.settings import inference_settings

        serve(inference_settings(), bootstrap, loglevel=loglevel)
    elif service == "ingestion":
        from services.ingestion.agent import build_app
        from services.ingestion.settings import ingestion_settings

        run_worker(build_app(ingestion_settings(), bootstrap), loglevel=loglevel)
    else:
        from services.embedding.agent import build_app as build_embedding
        from services.embedding.settings import embedding_settings

        run_worker(build_embedding(embedding_settings(), bootstrap), loglevel=loglevel)


@main.command("ingest")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", default="default", show_default=True, help="Tenant of the files.")
@click.option("--acl", multiple=True, help="Group allowed to read the files (repeatable).")
@click.option(
    "--delete",
    "deletes",
    multiple=True,
    metavar="TENANT/DOC_ID",
    help="Publish a delete for this document (repeatable).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def ingest(
    paths: tuple[Path, ...],
    tenant: str,
    acl: tuple[str, ...],
    deletes: tuple[str, ...],
    no_progress: bool,
) -> None:
    """Publish files and folders (.txt, .md, .html, .jsonl of DocumentEvents) to ingestion.

    A folder's doc ids are paths relative to it; each publish gets a new version.
    """
    from shared.upstream import InputError, delete_event, events_from_paths, publish_documents

    if not paths and not deletes:
        raise click.UsageError("give PATHS to publish or --delete TENANT/DOC_ID")
    try:
        items = [delete_event(d) for d in deletes]
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--delete") from exc
    try:
        items += list(events_from_paths(paths, tenant, list(acl)))
    except InputError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = publish_documents(
        items,
        _bootstrap(),
        KafkaSettings().topic_prefix,
        progress=not no_progress,
        total=len(items),
    )
    for err in summary.errors:
        click.echo(f"failed: {err}", err=True)
    click.echo(f"sent {summary.sent}, failed {summary.failed}, {summary.bytes} bytes")
    sys.exit(1 if summary.failed else 0)


def _open_store():  # type: ignore[no-untyped-def]
    from shared.settings import QdrantSettings
    from shared.vector_store import StoreLocked, VectorStore

    try:
        return VectorStore.open(QdrantSettings(), PlatformSettings(), KafkaSettings().topic_prefix)
    except StoreLocked as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("reindex")
@click.option(
    "--model",
    default=None,
    help="Embedding model: the packaged all-MiniLM-L6-v2 "
    "(default: EMBEDDING_MODEL) or a local sentence-transformers folder.",
)
@click.option("--drop-old", is_flag=True, help="Delete the previous collection after the swap.")
def reindex_cmd(model: str | None, drop_old: bool) -> None:
    """Build a new collection by replaying docs.chunks, then swap the alias to it.

    Readers use the alias throughout, so they keep being served by the old collection until
    the swap. With the embedded store, stop the embedding service first (one process only).
    """
    from services.embedding.reindex import reindex
    from services.embedding.settings import embedding_settings
    from shared.embedder import Embedder

    settings = embedding_settings()
    store = _open_store()
    try:
        res = reindex(
            store,
            Embedder(model or settings.model),
            _bootstrap(),
            settings.kafka.topic_prefix,
            settings.batch_size,
            keep_old=not drop_old,
            progress=True,
        )
    finally:
        store.close()
    click.echo(
        f"alias {store.alias} -> {res.collection} ({res.points} points from "
        f"{res.records} records; previous: {res.previous}"
        f"{', dropped' if drop_old and res.previous else ''})"
    )


@main.group()
def index() -> None:
    """Inspect the vector store."""


@index.command("stats")
def index_stats() -> None:
    """Points per tenant, the model, and the last indexed time of the active collection."""
    store = _open_store()
    try:
        st = store.stats()
    finally:
        store.close()
    if st["collection"] is None:
        click.echo(f"alias {st['alias']} points at no collection yet (nothing indexed)")
        return
    click.echo(f"alias {st['alias']} -> {st['collection']}")
    click.echo(
        f"model {st['model']} ({st['dim']} dims), {st['points']} points, "
        f"last indexed {st['last_indexed']}"
    )
    for tenant, n in st["per_tenant"].items():
        click.echo(f"  {tenant:<24} {n:>8} points")


@main.group()
def keys() -> None:
    """API keys for the inference API (stored as SHA-256 hashes)."""


@keys.command("create")
@click.option("--id", "key_id", required=True, help="Name of the key (shows in traces).")
@click.option("--tenant", required=True, help="Tenant the key reads.")
@click.option("--group", "groups", multiple=True, help="Group of the caller (repeatable).")
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path),
    default=None,
    help="Append the hashed record to this JSON keys file.",
)
def keys_create(key_id: str, tenant: str, groups: tuple[str, ...], file: Path | None) -> None:
    """Make a new key: prints the key once, and stores only its hash."""
    import json

    from services.inference.auth import new_key

    key, record = new_key(key_id, tenant, list(groups))
    if file:
        existing = json.loads(file.read_text()) if file.exists() else []
        existing.append(record.model_dump())
        file.write_text(json.dumps(existing, indent=2))
        click.echo(f"added {key_id} to {file}", err=True)
    else:
        click.echo(record.model_dump_json(), err=True)
    click.echo(key)


@main.command("ask")
@click.argument("question")
@click.option("--url", default=None, help="API base URL (default: INFERENCE_HOST/PORT).")
@click.option(
    "--key",
    envvar="LLMOPS_API_KEY",
    default=None,
    help="API key (LLMOPS_API_KEY; default: the dev key `make run` wrote).",
)
@click.option("--top-k", type=int, default=None, help="Chunks to retrieve.")
def ask(question: str, url: str | None, key: str | None, top_k: int | None) -> None:
    """Ask a question from the terminal; the answer streams, then its sources."""
    import json

    import httpx

    from services.inference.settings import inference_settings

    s = inference_settings()
    url = url or f"http://{s.host}:{s.port}"
    key_file = s.platform.data_dir / "dev_api_key"
    key = key or (key_file.read_text().strip() if key_file.exists() else None)
    if not key:
        raise click.UsageError("no API key: set LLMOPS_API_KEY or run `make run` first")
    body = {"question": question, "stream": True, **({"top_k": top_k} if top_k else {})}
    event = None
    try:
        with httpx.stream(
            "POST",
            f"{url}/v1/query",
            json=body,
            timeout=300,
            headers={"Authorization": f"Bearer {key}"},
        ) as r:
            if r.status_code != 200:
                r.read()
                raise click.ClickException(f"HTTP {r.status_code}: {r.text}")
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if event == "token":
                        click.echo(data["text"], nl=False)
                    elif event == "done":
                        click.echo("\n")
                        for c in data["citations"]:
                            click.echo(
                                f"[{c['n']}] {c['title']} ({c['doc_id']}, score {c['score']:.2f})"
                            )
                        click.echo(
                            f"trace {data['trace_id']}, prompt "
                            f"{data['prompt']['name']}/{data['prompt']['version']}"
                        )
                    elif event == "error":
                        raise click.ClickException(f"{data['status']}: {data['detail']}")
    except httpx.ConnectError as exc:
        raise click.ClickException(f"cannot reach {url}: is `make run` running?") from exc


@main.command("dev")
@click.argument("corpus", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", default="default", show_default=True, help="Tenant of the corpus.")
def dev(corpus: tuple[Path, ...], tenant: str) -> None:
    """Dev mode (`make run`): start the broker and the services, ingest CORPUS, keep serving."""
    from services.dev import run_dev

    run_dev(list(corpus), tenant)


if __name__ == "__main__":
    main()
