"""Dev mode: the broker, the topics and every service on this machine (through the host),
plus the sample corpus."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import click

from services import host
from shared.cli import Context, pass_context
from shared.contracts.events import ChunkBatch, DocumentIndexed
from shared.contracts.topics import DOCS_CHUNKS, DOCS_INDEXED
from shared.contracts.upstream import events_from_paths, publish_documents
from shared.http import wait_ok
from shared.kafka.reader import end_offsets, wait_for_events


@dataclass(frozen=True)
class Example:
    """A question `make run` (and the README) suggests, with what a right answer says: an
    end-to-end test asks each twice on the stack `make run` starts and checks both."""

    question: str
    facts: tuple[str, ...]  # each must be in the answer (case-insensitive)
    doc: str  # the document the answer must cite
    page: int | str | None = None  # and the page it must cite it by


ASK_EXAMPLE = Example(
    "What is done with a document version that is older than the newest one already seen?",
    ("dropped",),
    "architecture.md",
)
CURL_EXAMPLE = Example(
    "What header names the type of error of a record on ingest.dlq?",
    ("dlq.error_type",),
    "operations.md",
)
# answered from the scanned page of a PDF (docs/samples, made by tests/documents.py)
PDF_EXAMPLE = Example(
    "What is the daily meal allowance on business trips?",
    ("40 euros",),
    "samples/travel-handbook.pdf",
    2,
)
EXAMPLES = (ASK_EXAMPLE, CURL_EXAMPLE, PDF_EXAMPLE)


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
    _report_ingested(want, batches)
    click.secho("==> vector store", bold=True)
    indexed = wait_for_events(
        bootstrap, DOCS_INDEXED.name(prefix), DocumentIndexed, start_indexed, want, 300
    )
    _report_indexed(want, indexed)
    if not wait_ok(f"{url}/readyz", 300):
        click.echo(f"    the API at {url} is not ready yet")
    _say_how_to_ask(url, key)


def _report_ingested(want: dict[str, int], batches: dict[str, ChunkBatch]) -> None:
    for key_ in sorted(want):
        b = batches.get(key_)
        if b is None:
            click.echo(f"    {key_:<40} not ingested yet")
            continue
        tokens = sum(c.token_count for c in b.chunks)
        red = ", ".join(f"{k}={v}" for k, v in sorted(b.redactions.items())) or "none"
        click.echo(f"    {key_:<40} {len(b.chunks):>3} chunks {tokens:>6} tokens  redacted: {red}")


def _report_indexed(want: dict[str, int], indexed: dict[str, DocumentIndexed]) -> None:
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


def _say_how_to_ask(url: str, key: str) -> None:
    click.secho(
        f"==> ask at {url} (OpenAPI docs: {url}/docs); Ctrl-C stops everything but "
        "the broker (`llmops kafka stop`)",
        bold=True,
    )
    # examples the default stack answers right, with the right citation (tests/e2e/test_make_run.py)
    click.echo(f'    llmops ask "{ASK_EXAMPLE.question}"')
    click.echo(
        f'    llmops ask "{PDF_EXAMPLE.question}"   (from a scanned PDF page, cited with its page)'
    )
    click.echo(
        f"    curl -N {url}/v1/query -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' "
        f"""-d '{{"question": "{CURL_EXAMPLE.question}", "stream": true}}'"""
    )
    click.echo(
        "    rate an answer (ask prints its trace id): llmops feedback TRACE_ID --up|--down "
        "[--correction TEXT]"
    )
    click.echo(
        "    then: llmops eval compare --since 24h   (prompt versions by thumbs-up and "
        "online metrics; scores land on eval.results)"
    )


def run_dev(ctx: Context, corpus: list[Path], tenant: str = "default") -> None:
    """Every service in this process (``host.run(all)``), then the corpus is indexed; serves
    until Ctrl-C."""
    from services.inference.commands import dev_key
    from services.inference.settings import inference_settings
    from services.monitoring.settings import monitoring_settings

    click.secho("==> Kafka", bold=True)
    created = ctx.ensure_topics()  # host.run below does not ask the broker again
    click.echo(f"    broker on {ctx.bootstrap}; topics: {len(created)} created, the rest existed")
    key, keys_file = dev_key(ctx.platform.data_dir, tenant)
    os.environ.setdefault("INFERENCE_API_KEYS_FILE", str(keys_file))
    isettings = ctx.settings(inference_settings)
    url = f"http://{isettings.host}:{isettings.port}"

    def started(process: host.Process) -> None:
        click.secho(f"==> services in one process: {', '.join(host.SERVICES)}", bold=True)
        where = ctx.qdrant.url or ctx.qdrant.embedded_path(ctx.platform)
        click.echo(f"    vector store: {where}")
        click.echo(f"    LLM: {isettings.llm_backend}; API on {url}")
        m = ctx.settings(monitoring_settings)
        click.echo(
            f"    monitoring: dashboard on http://{m.host}:{m.port}/dashboard, Prometheus "
            f"metrics on /metrics; on-call: llmops status, llmops alerts tail"
        )
        threading.Thread(
            target=_load_corpus,
            daemon=True,
            name="corpus",
            args=(ctx.bootstrap, ctx.prefix, corpus, tenant, url, key),
        ).start()

    host.run([host.ALL], ctx, loglevel="warning", on_start=started)


@click.command("dev")
@click.argument("corpus", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", default="default", show_default=True, help="Tenant of the corpus.")
@pass_context
def dev_command(ctx: Context, corpus: tuple[Path, ...], tenant: str) -> None:
    """Dev mode (`make run`): start the broker and every service, ingest CORPUS, keep serving."""
    from shared.store.base import StoreError

    try:
        run_dev(ctx, list(corpus), tenant)
    except StoreError as exc:  # locked, or written by an older version: say what to do
        raise click.ClickException(str(exc)) from exc
