"""Ingestion's commands: publish documents to it from the terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shared.cli import Context, pass_context

if TYPE_CHECKING:
    from services.ingestion.sync import Source


@click.group()
def commands() -> None:
    """Ingestion."""


@commands.command("ingest")
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
@pass_context
def ingest(
    ctx: Context,
    paths: tuple[Path, ...],
    tenant: str,
    acl: tuple[str, ...],
    deletes: tuple[str, ...],
    no_progress: bool,
) -> None:
    """Publish files and folders to ingestion: text (.txt, .md, .html), documents (.pdf,
    .docx, .pptx, .xlsx, .png, .jpg, .tif; converted by the service) and .jsonl files of
    DocumentEvents.

    A folder's doc ids are paths relative to it; each publish gets a new version. Documents
    up to 256 KiB travel inside the event; larger ones by reference (file://), which the
    service reads only under INGESTION_FETCH_ROOTS. To keep an index equal to a folder,
    deletes and edits included, use `llmops sync`.
    """
    from shared.contracts.events import DocumentEvent
    from shared.contracts.upstream import (
        InputError,
        delete_event,
        events_from_paths,
        publish_documents,
    )

    if not paths and not deletes:
        raise click.UsageError("give PATHS to publish or --delete TENANT/DOC_ID")
    try:
        items: list[DocumentEvent | InputError] = [delete_event(d) for d in deletes]
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--delete") from exc
    try:
        items += list(events_from_paths(paths, tenant, list(acl)))
    except InputError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = publish_documents(
        items,
        ctx.bootstrap,
        ctx.prefix,
        progress=not no_progress,
        total=len(items),
    )
    for err in summary.errors:
        click.echo(f"failed: {err}", err=True)
    click.echo(f"sent {summary.sent}, failed {summary.failed}, {summary.bytes} bytes")
    sys.exit(1 if summary.failed else 0)


@commands.command("sync")
@click.argument("source", metavar="SOURCE")
@click.option("--tenant", default="default", show_default=True, help="Tenant of the files.")
@click.option("--acl", multiple=True, help="Group allowed to read the files (repeatable).")
@click.option("--watch", is_flag=True, help="Keep running: sync again when files change.")
@click.option("--dry-run", is_flag=True, help="Print what would be published; publish nothing.")
@click.option(
    "--source-id",
    default=None,
    help="The source's name in the sync state (default: the folder's file:// URI, or the "
    "s3:// prefix). Give the same one on every machine that mounts the share at another path.",
)
@click.option(
    "--debounce-ms",
    default=1000,
    show_default=True,
    type=click.IntRange(50),
    help="With --watch: wait this long after a change for more before syncing.",
)
@click.option(
    "--poll-s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1),
    help="With --watch on s3://: list the prefix again this often (a bucket sends no change "
    "events to a client).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@pass_context
def sync(
    ctx: Context,
    source: str,
    tenant: str,
    acl: tuple[str, ...],
    watch: bool,
    dry_run: bool,
    source_id: str | None,
    debounce_ms: int,
    poll_s: float,
    no_progress: bool,
) -> None:
    """Make the index equal to SOURCE, a folder or an S3 prefix (s3://BUCKET/PREFIX, the
    store from the S3_* settings): new and changed files upserted, files gone deleted,
    unchanged files not published (same size and time, or same SHA-256).

    What was published per file is kept on the topic ingest.sync, so a sync from another
    machine (or after .llmops/sync is lost) resumes where the last one stopped. Exits 1 when
    any file failed.
    """
    from services.ingestion.sync import Sync, SyncBusy
    from shared.contracts.upstream import INLINE_MAX_BYTES

    src: Path | Source
    if source.lower().startswith("s3://"):
        src = _bucket(source)
    else:
        src = Path(source)
        if not src.is_dir():
            raise click.BadParameter(f"{source}: no such folder", param_hint="SOURCE")
    if not dry_run:
        ctx.ensure_topics()
    job = Sync(
        src,
        tenant,
        list(acl),
        ctx.bootstrap,
        ctx.prefix,
        ctx.platform.data_dir / "sync",
        source=source_id,
    )

    def once() -> int:
        try:
            summary = job.run(dry_run=dry_run, progress=not no_progress, echo=click.echo)
        except SyncBusy as exc:
            raise click.ClickException(str(exc)) from exc
        for err in summary.errors:
            click.echo(f"failed: {err}", err=True)
        if summary.by_reference:
            click.echo(
                f"{summary.by_reference} files were over {INLINE_MAX_BYTES // 1024} KiB and "
                "went as references: the ingestion service reads them only with "
                f"{job.src.by_reference} (else they are dead-lettered, FetchRefused)",
                err=True,
            )
        click.echo(summary.line() + (" (dry run: nothing published)" if dry_run else ""))
        return 1 if summary.failed else 0

    if not watch:
        sys.exit(once())
    import logging
    import signal
    import threading

    import watchfiles

    # Ctrl-C (or SIGTERM) stops after the pass in hand, never in the middle of publishing;
    # a second one stops at once
    stop = threading.Event()

    def halt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping after this pass (Ctrl-C again: at once)", err=True)

    signal.signal(signal.SIGINT, halt)
    signal.signal(signal.SIGTERM, halt)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # not a line per change batch
    once()
    if not isinstance(src, Path):
        click.echo(f"listing {source} every {poll_s:g} s (Ctrl-C stops)")
        while not stop.wait(poll_s):
            once()
        return
    click.echo(f"watching {source} (Ctrl-C stops)")
    for _ in watchfiles.watch(src, debounce=debounce_ms, stop_event=stop):
        if stop.is_set():
            break
        once()


def _bucket(uri: str) -> Source:
    """The bucket prefix ``uri`` names, on the store of the S3_* settings (checked now: a
    wrong endpoint, key or bucket is one clear error, not a failure per file)."""
    from services.ingestion import s3
    from services.ingestion.settings import S3Settings
    from services.ingestion.sync import Bucket

    try:
        bucket, prefix = s3.parse(uri)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="SOURCE") from exc
    client = s3.client(S3Settings())
    try:
        s3.check_bucket(client, bucket)
    except s3.S3Failure as exc:
        raise click.ClickException(f"{exc} (the store of S3_ENDPOINT_URL and S3_* keys)") from exc
    return Bucket(bucket, prefix, client)
