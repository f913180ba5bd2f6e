"""What every service's commands share: the command context (settings built once per
command) and the platform's own commands (the local broker, topics, schemas)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click

from shared.kafka.broker import configured_broker, ensure_kafka
from shared.settings import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    ConnectSettings,
    KafkaSettings,
    PlatformSettings,
    QdrantSettings,
)

S = TypeVar("S")


class Context:
    """Settings and the broker address of one command, each built at most once."""

    def __init__(self) -> None:
        self._services: dict[Callable[..., Any], Any] = {}
        self._created_topics: list[str] | None = None

    @cached_property
    def kafka(self) -> KafkaSettings:
        """Kafka settings (KAFKA_*)."""
        return KafkaSettings()

    @cached_property
    def platform(self) -> PlatformSettings:
        """Paths and log level (LLMOPS_*)."""
        return PlatformSettings()

    @cached_property
    def connect(self) -> ConnectSettings:
        """The Kafka Connect worker (CONNECT_*)."""
        return ConnectSettings()

    @cached_property
    def qdrant(self) -> QdrantSettings:
        """The vector store (QDRANT_*)."""
        return QdrantSettings()

    @cached_property
    def bootstrap(self) -> str:
        """The cluster to use: KAFKA_BOOTSTRAP_SERVERS, else the local broker (started)."""
        return ensure_kafka(self.kafka, self.platform)

    def ensure_topics(self) -> list[str]:
        """Create the declared topics that are missing, once per command; the names created.
        Existing topics that differ from their declaration stop the command with what
        differs and how to fix it."""
        if self._created_topics is None:
            from shared.kafka.admin import ReplicationError, TopicMismatch, create_topics

            try:
                self._created_topics = create_topics(
                    self.bootstrap,
                    self.prefix,
                    max_message_bytes=self.kafka.max_message_bytes,
                    factor=self.kafka.replication_factor,
                    min_insync=self.kafka.min_insync_replicas,
                )
            except (TopicMismatch, ReplicationError) as exc:  # what differs, not a traceback
                raise click.ClickException(str(exc)) from exc
        return self._created_topics

    @property
    def prefix(self) -> str:
        """Topic and consumer-group prefix."""
        return self.kafka.topic_prefix

    def shared(self) -> dict[str, object]:
        """The nested settings, to build a service's settings without reading them again."""
        return {"kafka": self.kafka, "platform": self.platform, "qdrant": self.qdrant}

    def settings(self, build: Callable[..., S]) -> S:
        """A service's settings (``build`` is its ``*_settings`` function), built once per
        command with the shared settings nested in."""
        if build not in self._services:
            self._services[build] = build(**self.shared())
        return self._services[build]  # type: ignore[no-any-return]


pass_context = click.make_pass_decorator(Context, ensure=True)

# The key `make run` writes for the CLI's own calls to the API, under LLMOPS_DATA_DIR.
DEV_KEY_FILE = "dev_api_key"


def api_url(given: str | None) -> str:
    """The inference API: ``given``, else LLMOPS_API_URL, else INFERENCE_HOST/PORT."""
    if given:
        return given.rstrip("/")
    if os.environ.get("LLMOPS_API_URL"):
        return os.environ["LLMOPS_API_URL"].rstrip("/")
    host = os.environ.get("INFERENCE_HOST", DEFAULT_API_HOST)
    return f"http://{host}:{os.environ.get('INFERENCE_PORT', DEFAULT_API_PORT)}"


def api_key(ctx: Context, given: str | None) -> str:
    """The API key to call with: ``given`` (LLMOPS_API_KEY), else the dev key `make run`
    wrote; a usage error that says so when there is none."""
    key_file = ctx.platform.data_dir / DEV_KEY_FILE
    key = given or (key_file.read_text().strip() if key_file.exists() else None)
    if not key:
        raise click.UsageError("no API key: set LLMOPS_API_KEY or run `make run` first")
    return key


@click.group()
def platform() -> None:
    """The platform's own commands."""


@platform.group()
def kafka() -> None:
    """Run the local Kafka broker, or a local cluster (KRaft, from Maven Central jars)."""


@kafka.command("start")
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="Nodes of the local cluster, on loopback ports two apart from KAFKA_LOCAL_PORT "
    "(default: KAFKA_LOCAL_BROKERS, 1). Topics then get min(3, brokers) replicas.",
)
@pass_context
def kafka_start(ctx: Context, brokers: int | None) -> None:
    """Start the local broker (or cluster) in the background; storage is formatted on the
    first start.

    Reuses one that already answers. Does nothing when KAFKA_BOOTSTRAP_SERVERS is set.
    Services find every node from the first's address (KAFKA_LOCAL_PORT).
    """
    if ctx.kafka.bootstrap_servers:
        click.echo(f"KAFKA_BOOTSTRAP_SERVERS is set; using {ctx.kafka.bootstrap_servers}")
        return
    try:
        broker = configured_broker(ctx.kafka, ctx.platform, brokers)
    except ValueError as exc:  # replication the cluster cannot have
        raise click.UsageError(str(exc)) from exc
    started = broker.start()
    what = "broker" if brokers in (None, 1) and ctx.kafka.local_brokers == 1 else "cluster"
    click.echo(
        f"{what} {'started' if started else 'already running'} on {broker.bootstrap} "
        f"(log: {broker.log_file})"
    )


@kafka.command("stop")
@pass_context
def kafka_stop(ctx: Context) -> None:
    """Stop the local broker, and the local cluster's nodes, cleanly."""
    stopped = configured_broker(ctx.kafka, ctx.platform, 1).stop()
    nodes = len(list((ctx.platform.data_dir / "kafka-cluster").glob("node-*")))
    if nodes > 1:
        stopped = configured_broker(ctx.kafka, ctx.platform, nodes).stop() or stopped
    click.echo("broker stopped" if stopped else "no local broker was running")


@kafka.command("status")
@pass_context
def kafka_status(ctx: Context) -> None:
    """Say whether the broker answers; exit 1 when it does not."""
    if ctx.kafka.bootstrap_servers:
        from shared.kafka.broker import answers_metadata

        ok = answers_metadata(ctx.kafka.bootstrap_servers)
        click.echo(f"{ctx.kafka.bootstrap_servers}: {'running' if ok else 'not answering'}")
    else:
        broker = configured_broker(ctx.kafka, ctx.platform)
        state = broker.status()
        click.echo(f"{broker.bootstrap}: {state} (pid {broker.pid()}, log {broker.log_file})")
        ok = state == "running"
    sys.exit(0 if ok else 1)


@platform.group()
def connect() -> None:
    """Run a local Kafka Connect worker with the Debezium PostgreSQL connector, and add
    connectors to it (or to the cluster at CONNECT_URL)."""


@connect.command("start")
@pass_context
def connect_start(ctx: Context) -> None:
    """Start the local worker in the background (distributed mode, on CONNECT_LOCAL_PORT),
    and the local broker if none runs; the jars are fetched with Maven on the first start.

    Reuses one that already answers. Does nothing when CONNECT_URL is set.
    """
    from shared.kafka.connect import ConnectError, local_connect

    if ctx.connect.url:
        click.echo(f"CONNECT_URL is set; using {ctx.connect.url}")
        return
    worker = local_connect(ctx.connect, ctx.kafka, ctx.platform, ctx.bootstrap)
    try:
        started = worker.start()
    except ConnectError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Kafka Connect {'started' if started else 'already running'} on {worker.url} "
        f"(log: {worker.log_file})"
    )


@connect.command("stop")
@pass_context
def connect_stop(ctx: Context) -> None:
    """Stop the local worker cleanly (its connectors resume from their offsets on the next
    start)."""
    from shared.kafka.connect import local_connect

    # stopping needs no broker: the worker is found by its pid file
    worker = local_connect(ctx.connect, ctx.kafka, ctx.platform, bootstrap="")
    click.echo("Kafka Connect stopped" if worker.stop() else "no local worker was running")


@connect.command("status")
@pass_context
def connect_status(ctx: Context) -> None:
    """Each connector's state and its tasks'; exit 1 when the worker does not answer or a
    connector or task has failed."""
    from shared.kafka.connect import ConnectError, connector_states

    url = ctx.connect.rest_url()
    try:
        states = connector_states(url)
    except ConnectError as exc:
        click.echo(f"{url}: not answering ({exc})")
        sys.exit(1)
    click.echo(f"{url}: running, {len(states)} connector(s)")
    failed = False
    for name, state in sorted(states.items()):
        tasks = ", ".join(f"task {t['id']} {t['state']}" for t in state.get("tasks", []))
        click.echo(f"  {name}: {state['connector']['state']}; {tasks or 'no task yet'}")
        for part in [state["connector"], *state.get("tasks", [])]:
            if part["state"] == "FAILED":
                failed = True
                first = (part.get("trace") or "").strip().splitlines()
                click.echo(f"    {first[0] if first else 'failed, no trace'}")
    sys.exit(1 if failed else 0)


@connect.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def connect_add(ctx: Context, file: Path) -> None:
    """Add (or update) the connector FILE describes: JSON with "name" and "config", as
    Connect's REST API takes it; ${VAR} and ${VAR:-default} come from the environment.
    Example: infra/connect/postgres.json."""
    from shared.kafka.connect import ConnectError, add_connector, connector_from_file

    try:
        name, config = connector_from_file(file)
        add_connector(ctx.connect.rest_url(), name, config)
    except ConnectError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"connector {name} added to {ctx.connect.rest_url()}")


@platform.group()
def topics() -> None:
    """Manage the platform's topics (declared once in shared/contracts/topics.py)."""


@topics.command("create")
@pass_context
def topics_create(ctx: Context) -> None:
    """Create every declared topic that is missing (idempotent)."""
    from shared.contracts.topics import TOPICS

    created = ctx.ensure_topics()
    for t in TOPICS:
        state = "created" if t.name(ctx.prefix) in created else "exists"
        click.echo(
            f"{t.name(ctx.prefix):<28} {state:<8} partitions={t.partitions} "
            f"cleanup={t.cleanup_policy}"
        )


@topics.command("check")
@click.option(
    "--fix",
    is_flag=True,
    help="Set every topic configuration that differs (cleanup, retention, record size, min "
    "ISR); partition counts and replica sets are only reported.",
)
@pass_context
def topics_check(ctx: Context, fix: bool) -> None:
    """Every declared topic against the cluster: partitions, replication, min ISR, cleanup,
    retention, max.message.bytes, partitions out of sync. Exit 1 when anything differs (after
    --fix: when anything is left)."""
    from shared.kafka.admin import ReplicationError, check_topics, fix_topics

    def check() -> list[Any]:
        try:
            replication, reports = check_topics(
                ctx.bootstrap,
                ctx.prefix,
                max_message_bytes=ctx.kafka.max_message_bytes,
                factor=ctx.kafka.replication_factor,
                min_insync=ctx.kafka.min_insync_replicas,
            )
        except ReplicationError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"{ctx.bootstrap}: replication {replication.factor}, "
            f"min.insync.replicas {replication.min_insync}"
        )
        for r in reports:
            if r.missing:
                state = "missing (`llmops topics create` makes it)"
            else:
                state = "; ".join(map(str, r.differences)) or "ok"
                if r.under_replicated:
                    state += f"; {r.under_replicated} partition(s) under-replicated"
            click.echo(f"  {r.name:<28} {state}")
        return reports

    reports = check()
    if fix and any(d.configurable for r in reports for d in r.differences):
        for line in fix_topics(ctx.bootstrap, reports):
            click.echo(f"set {line}")
        reports = check()
    left = [r for r in reports if not r.ok]
    if any(d.key == "replication" for r in left for d in r.differences):
        click.echo(
            "A replica count changes by moving data: kafka-reassign-partitions.sh, or a new "
            "topic replayed into (docs.chunks replays with `llmops reindex`).",
            err=True,
        )
    sys.exit(1 if left else 0)


@topics.command("list")
def topics_list() -> None:
    """Print the declared topics with their contracts."""
    from shared.contracts.topics import TOPICS

    for t in TOPICS:
        click.echo(
            f"{t.base_name:<20} {t.partitions:>2}p {t.cleanup_policy:<8} key={t.key:<14} "
            f"value={t.value_model.__name__}  {t.description}"
        )


@platform.group()
def schemas() -> None:
    """Event contracts: JSON Schemas and the AsyncAPI document of every topic."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema file per event model into DIRECTORY, and asyncapi.json: every
    topic as an AsyncAPI 3 channel (key, partitions, cleanup, retention, message schema,
    who sends and who receives it)."""
    from importlib.metadata import version

    from shared.contracts.asyncapi import export_asyncapi
    from shared.contracts.schemas import export_schemas

    for path in export_schemas(directory):
        click.echo(str(path))
    click.echo(str(export_asyncapi(directory, version("llmops"))))
