"""The service host: every service by name, and how to run one or several in one process.

This is the one module (with the CLI and dev mode, which call it) that imports more than one
service package; the services themselves talk only through Kafka topics, and an import
contract (`lint-imports`) keeps it so. The host opens what services share once per process
(the vector store, the embedding model) and hands it in, and it alone decides co-location:

With the embedded vector store (QDRANT_URL unset) one process owns the store, so a service
that reads it (inference) must run in the process of the service that writes it (embedding).
Asked to run a reader without its writer, the host refuses and says what to run instead; it
never adds a service silently. With a Qdrant server every service can run on its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal, TypeVar

import click

from shared.cli import Context, pass_context
from shared.store.base import StoreError
from shared.store.open import open_store

if TYPE_CHECKING:
    import faust
    import uvicorn

    from shared.models.embedder import Embedder
    from shared.store.base import VectorStore

    Part = faust.App | uvicorn.Server

log = logging.getLogger(__name__)
S = TypeVar("S")


class Process:
    """What the services of one process share, each opened once, on first use."""

    def __init__(self, ctx: Context, loglevel: str) -> None:
        self.ctx, self.loglevel = ctx, loglevel
        self._opened_store = False

    @property
    def bootstrap(self) -> str:
        """The Kafka cluster."""
        return self.ctx.bootstrap

    def settings(self, build: Callable[..., S]) -> S:
        """A service's settings, built once per command."""
        return self.ctx.settings(build)

    @cached_property
    def store(self) -> VectorStore:
        """The vector store: embedded (one process owns it) or a Qdrant server."""

        store = open_store(self.ctx.qdrant, self.ctx.platform, self.ctx.prefix)
        self._opened_store = True
        return store

    def embedder(self, model: str) -> Embedder:
        """The process's one copy of an embedding model."""
        from shared.models.embedder import get_embedder

        return get_embedder(model)

    def close(self) -> None:
        """Release the store (the embedded one holds a file lock)."""
        if self._opened_store:
            self.store.close()


@dataclass(frozen=True)
class Service:
    """A service the host can run."""

    name: str
    summary: str
    build: Callable[[Process], Part]
    # How it uses the vector store: a reader needs the writer beside it when the store is
    # embedded (one process owns it).
    store: Literal["reads", "writes"] | None = None
    # Serves HTTP on INFERENCE_PORT-like settings, with /readyz.
    http: bool = False
    # Checks what the service reads at start (a rules file, say) before anything connects;
    # raises StartError with what is wrong.
    check: Callable[[Process], None] | None = None


def _ingestion(p: Process) -> faust.App:
    from services.ingestion.agent import build_app
    from services.ingestion.settings import ingestion_settings

    return build_app(p.settings(ingestion_settings), p.bootstrap)


def _check_ingestion(p: Process) -> None:
    from services.ingestion.cdc import MappingError, load_mapping
    from services.ingestion.settings import ingestion_settings

    path = p.settings(ingestion_settings).cdc_mapping_file
    if path is None:
        return
    try:
        load_mapping(path)
    except MappingError as exc:
        raise StartError(f"ingestion: {exc}") from exc


def _embedding(p: Process) -> faust.App:
    from services.embedding.agent import build_app
    from services.embedding.settings import embedding_settings

    s = p.settings(embedding_settings)
    return build_app(s, p.bootstrap, store=p.store, embedder=p.embedder(s.model))


def _inference(p: Process) -> uvicorn.Server:
    from services.inference.app import build_server
    from services.inference.llm import make_llm
    from services.inference.settings import inference_settings

    s = p.settings(inference_settings)
    log.info("inference: LLM %s, API on http://%s:%d", s.llm_backend, s.host, s.port)
    return build_server(s, p.store, make_llm(s), p.bootstrap, loglevel=p.loglevel)


def _feedback(p: Process) -> faust.App:
    from services.feedback.agent import build_app
    from services.feedback.settings import feedback_settings

    s = p.settings(feedback_settings)
    return build_app(s, p.bootstrap, embedder=p.embedder(s.model))


def _check_monitoring(p: Process) -> None:
    from services.monitoring.alerts import RulesError, load_rules
    from services.monitoring.settings import monitoring_settings

    try:
        load_rules(p.settings(monitoring_settings).rules_file)
    except RulesError as exc:
        raise StartError(f"monitoring: {exc}") from exc


def _monitoring(p: Process) -> faust.App:
    from services.monitoring.agent import build_app
    from services.monitoring.settings import monitoring_settings

    s = p.settings(monitoring_settings)
    return build_app(s, p.bootstrap, embedder=p.embedder(s.model))


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "ingestion",
            "validate, normalise, redact, chunk and hash documents (faust)",
            _ingestion,
            check=_check_ingestion,
        ),
        Service(
            "embedding",
            "encode chunks into the vector store, exactly (faust)",
            _embedding,
            store="writes",
        ),
        Service(
            "inference",
            "the HTTP API: retrieval-augmented answers with citations and traces",
            _inference,
            store="reads",
            http=True,
        ),
        Service(
            "feedback",
            "join feedback with traces, score every answer, build eval cases (faust)",
            _feedback,
        ),
        Service(
            "monitoring",
            "event-time metrics of every topic, alert rules with a lifecycle (faust)",
            _monitoring,
            check=_check_monitoring,
        ),
    )
}
ALL = "all"


class PlanError(ValueError):
    """The services asked for cannot run together like this; the message says what can."""


class StartError(ValueError):
    """A service's own files or settings cannot be used; the message says where and why."""


def plan(names: Iterable[str], embedded_store: bool) -> list[str]:
    """The services to run, in registry order; ``all`` means every one.

    Raises PlanError for an unknown name, or for a store reader without the store's writer
    while the store is embedded.
    """
    wanted = set()
    for name in names:
        if name == ALL:
            wanted |= set(SERVICES)
        elif name in SERVICES:
            wanted.add(name)
        else:
            raise PlanError(f"no service named {name!r}; have {', '.join(SERVICES)} or {ALL}")
    if not wanted:
        raise PlanError(f"name a service to run: {', '.join(SERVICES)} or {ALL}")
    chosen = [n for n in SERVICES if n in wanted]
    if embedded_store:
        writers = [n for n, s in SERVICES.items() if s.store == "writes"]
        readers = [n for n in chosen if SERVICES[n].store == "reads"]
        missing = [w for w in writers if w not in wanted]
        if readers and missing:
            together = " ".join([*chosen, *missing])
            raise PlanError(
                f"{', '.join(readers)} reads the embedded vector store, which one process owns, "
                f"so it must run beside {', '.join(missing)}, which writes it: run "
                f"`llmops run {together}` (or `llmops run all`), or set QDRANT_URL to use a "
                "Qdrant server"
            )
    return chosen


def serve(parts: Sequence[Part], loglevel: str) -> None:
    """Run faust apps and HTTP servers in this process until SIGTERM/SIGINT.

    Faust keeps the main thread (and its signal handling); each server gets its own loop in a
    thread, and is stopped when the worker stops. With no faust app the last server takes the
    main thread.
    """
    import faust

    from shared.kafka.worker import run_worker

    apps = [p for p in parts if isinstance(p, faust.App)]
    servers = [p for p in parts if not isinstance(p, faust.App)]
    main_server = servers.pop() if servers and not apps else None
    threads = [
        threading.Thread(target=s.run, name=f"http-{i}", daemon=True) for i, s in enumerate(servers)
    ]
    for t in threads:
        t.start()

    def stop_servers() -> None:
        for s in servers:
            s.should_exit = True

    try:
        if apps:
            run_worker(*apps, loglevel=loglevel, on_signal=(stop_servers,))
        elif main_server is not None:
            main_server.run()
    finally:
        stop_servers()
        for t in threads:
            t.join(timeout=10)


def run(
    names: Iterable[str],
    ctx: Context,
    loglevel: str | None = None,
    on_start: Callable[[Process], None] | None = None,
) -> None:
    """Run the named services in this process until interrupted (creates missing topics
    first). ``on_start`` is called once everything is built, before serving."""
    chosen = plan(names, embedded_store=not ctx.qdrant.url)
    process = Process(ctx, loglevel or ctx.platform.log_level)
    for name in chosen:  # before anything connects: a bad file stops the start at once
        check = SERVICES[name].check
        if check is not None:
            check(process)
    if any(SERVICES[name].store for name in chosen):
        process.store  # noqa: B018 - opened now: a locked or old store stops the start at once
    ctx.ensure_topics()
    try:
        parts = [SERVICES[name].build(process) for name in chosen]
        log.info("running %s in one process", ", ".join(chosen))
        if on_start is not None:
            on_start(process)
        serve(parts, process.loglevel)
    finally:
        process.close()  # release the embedded store's lock before the interpreter goes


def _run_help() -> str:
    width = max(map(len, SERVICES))
    services = [f"  {name:<{width}}  {s.summary}" for name, s in SERVICES.items()]
    return "\n\n".join(
        [
            "Run one or several services in this process until interrupted.",
            "Missing topics are created first. Each service keeps its own consumer group and "
            "talks to the others only through topics, whether or not they share a process.",
            "With the embedded vector store (QDRANT_URL unset) one process owns the store, so "
            "inference runs only beside embedding (`llmops run inference embedding`); with a "
            "Qdrant server each can run alone.",
            "\b\nServices:\n" + "\n".join([*services, f"  {ALL:<{width}}  every one of them"]),
        ]
    )


@click.command("run", help=_run_help())
@click.argument("services", nargs=-1, required=True, metavar="SERVICE... | all")
@pass_context
def run_command(ctx: Context, services: tuple[str, ...]) -> None:
    try:
        run(services, ctx)
    except PlanError as exc:
        raise click.UsageError(str(exc)) from exc
    except StartError as exc:
        raise click.ClickException(str(exc)) from exc
    except StoreError as exc:  # locked, or written by an older version
        raise click.ClickException(str(exc)) from exc
