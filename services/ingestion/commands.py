"""Ingestion's commands: publish documents to it from the terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shared.cli import Context, pass_context


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
    """Publish files and folders (.txt, .md, .html, .jsonl of DocumentEvents) to ingestion.

    A folder's doc ids are paths relative to it; each publish gets a new version.
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
