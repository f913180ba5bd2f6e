"""Embedding's commands: rebuild the index, inspect the vector store."""

from __future__ import annotations

import click

from shared.cli import Context, pass_context
from shared.store.base import VectorStore
from shared.store.open import open_store


@click.group()
def commands() -> None:
    """Embedding and the vector store."""


def _open_store(ctx: Context, convert_legacy: bool = False) -> VectorStore:
    from shared.store.base import StoreError

    try:
        return open_store(ctx.qdrant, ctx.platform, ctx.prefix, convert_legacy)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@commands.command("reindex")
@click.option(
    "--model",
    default=None,
    help="Embedding model: the packaged all-MiniLM-L6-v2 "
    "(default: EMBEDDING_MODEL) or a local sentence-transformers folder.",
)
@click.option("--drop-old", is_flag=True, help="Delete the previous collection after the swap.")
@pass_context
def reindex_cmd(ctx: Context, model: str | None, drop_old: bool) -> None:
    """Build a new collection by replaying docs.chunks, then swap the alias to it.

    Readers use the alias throughout, so they keep being served by the old collection until
    the swap. With the embedded store, stop the embedding service first (one process only).
    An embedded store an older version wrote (qdrant-client's local mode) is converted: it is
    moved aside and the new store (Qdrant Edge) is built from docs.chunks.
    """
    from services.embedding.reindex import reindex
    from services.embedding.settings import embedding_settings
    from shared.models.embedder import Embedder

    settings = ctx.settings(embedding_settings)
    store = _open_store(ctx, convert_legacy=True)
    for old in getattr(store, "moved_aside", []):
        click.echo(f"the old store (qdrant-client local mode) is now at {old}: delete it when done")
    try:
        res = reindex(
            store,
            Embedder(model or settings.model),
            ctx.bootstrap,
            ctx.prefix,
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


@commands.group()
def index() -> None:
    """Inspect the vector store."""


@index.command("stats")
@pass_context
def index_stats(ctx: Context) -> None:
    """Points per tenant, the model, and the last indexed time of the active collection."""
    store = _open_store(ctx)
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
