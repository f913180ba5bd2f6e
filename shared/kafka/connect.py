"""A Kafka Connect worker in distributed mode on this machine, from Maven Central jars at the
broker's version and Java 17, with the Debezium PostgreSQL connector on its plugin path; and
what every Connect cluster answers over REST (connectors added, their state).

The worker's jars come from ``infra/kafka/connect/pom.xml``, the connector's from
``debezium-pom.xml`` beside it, each resolved by Maven once and cached by the pom's content
outside the clone. Its state (configs, source offsets, status) lives in three topics of the
broker, so a worker killed and started again resumes where its connectors' offsets were.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.kafka.broker import (
    INFRA_DIR,
    BrokerError,
    JavaService,
    classpath_file,
    maven_classpath,
    maven_folder,
    pom_digest,
    port_open,
)
from shared.settings import ConnectSettings, KafkaSettings, PlatformSettings

CONNECT_DIR = INFRA_DIR / "connect"
# the plugin folder's name under the plugin path
DEBEZIUM_PLUGIN = "debezium-postgres"


class ConnectError(RuntimeError):
    """The Connect worker could not be fetched, started or asked; or refused a connector."""


CONNECT_POM, DEBEZIUM_POM = CONNECT_DIR / "pom.xml", CONNECT_DIR / "debezium-pom.xml"


def connect_classpath(cache_dir: Path) -> str:
    """The worker's classpath (Maven the first time, the cache after)."""
    return maven_classpath(CONNECT_POM, cache_dir / "connect", "Kafka Connect")


def _plugins(cache_dir: Path) -> Path:
    # the plugin path, one per version of the connector's pom
    return cache_dir / "connect" / f"plugins-{pom_digest(DEBEZIUM_POM)}"


def jars_present(cache_dir: Path) -> bool:
    """Whether the worker's and the connector's jars are fetched already."""
    plugin = _plugins(cache_dir) / DEBEZIUM_PLUGIN
    cp = classpath_file(CONNECT_POM, cache_dir / "connect")
    return (plugin / ".complete").exists() and cp.exists()


def plugin_path(cache_dir: Path) -> Path:
    """The worker's plugin.path: one folder per connector, here Debezium's PostgreSQL one."""
    top = _plugins(cache_dir)
    maven_folder(DEBEZIUM_POM, top / DEBEZIUM_PLUGIN, "the Debezium PostgreSQL connector")
    return top


@dataclass
class LocalConnect(JavaService):
    """One distributed-mode worker whose files live in ``run_dir``."""

    MAIN_CLASS = "org.apache.kafka.connect.cli.ConnectDistributed"
    run_dir: Path
    port: int
    bootstrap: str
    cache_dir: Path
    group_id: str = "llmops-connect"
    heap: str = "512m"
    # replicas of the worker's own topics; None: the broker's default
    replication: int | None = None
    start_timeout_s: float = 120.0
    _proc: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The REST API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "connect.pid"

    @property
    def config_file(self) -> Path:
        return (self.run_dir / "connect-distributed.properties").resolve()

    @property
    def log_file(self) -> Path:
        """The worker's own log."""
        return self.run_dir / "connect.log"

    def _write_config(self, plugins: Path) -> Path:
        replicas = -1 if self.replication is None else self.replication
        lines = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group_id,
            "listeners": self.url,
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.port),
            # records as plain JSON; the ingestion service also reads them with schemas
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": f"{self.group_id}.configs",
            "offset.storage.topic": f"{self.group_id}.offsets",
            "status.storage.topic": f"{self.group_id}.status",
            "config.storage.replication.factor": str(replicas),
            "offset.storage.replication.factor": str(replicas),
            "status.storage.replication.factor": str(replicas),
            # a source's position is saved every second: a killed worker redoes at most
            # that much, which the documents' versions make a no-op
            "offset.flush.interval.ms": "1000",
            "plugin.path": str(plugins),
            "producer.acks": "all",
            "producer.enable.idempotence": "true",
        }
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        return self.config_file

    def answers(self) -> bool:
        """Whether a worker's REST API answers on the port."""
        try:
            return httpx.get(f"{self.url}/connector-plugins", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def status(self) -> str:
        """``running`` (REST answers), ``starting`` (process alive) or ``stopped``."""
        if self.answers():
            return "running"
        return "starting" if self.pid() else "stopped"

    def start(self) -> bool:
        """Start the worker unless one already answers; return True if this call started it."""
        if self.answers():
            return False
        if self.pid() is None:
            if port_open("127.0.0.1", self.port):
                raise ConnectError(f"port {self.port} is taken by something that is not Connect")
            if shutil.which("java") is None:
                raise ConnectError("Java 17 or newer is needed to run Kafka Connect")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                classpath = connect_classpath(self.cache_dir)
                plugins = plugin_path(self.cache_dir)
            except BrokerError as exc:
                raise ConnectError(str(exc)) from exc
            config = self._write_config(plugins)
            self.spawn(classpath, self.heap, config, self.log_file)
        self.wait_ready()
        return True

    def wait_ready(self) -> None:
        """Block until the REST API answers, or raise with the log's tail."""
        if not self.wait_for(self.answers, self.start_timeout_s):
            raise ConnectError(f"Kafka Connect did not come up on {self.url}:\n{self.log_tail()}")


def local_connect(
    connect: ConnectSettings, kafka: KafkaSettings, platform: PlatformSettings, bootstrap: str
) -> LocalConnect:
    """The local worker these settings describe (not started), on the cluster ``bootstrap``."""
    return LocalConnect(
        run_dir=platform.data_dir / "connect",
        port=connect.local_port,
        bootstrap=bootstrap,
        cache_dir=platform.cache_dir,
        group_id=connect.group_id,
        heap=connect.local_heap,
        replication=kafka.replication_factor,
        start_timeout_s=connect.start_timeout_s,
    )


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def connector_from_file(
    path: Path, env: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """A connector's name and configuration from a JSON file (``{"name", "config"}``, as
    Connect's REST API takes them), ``${VAR}`` and ``${VAR:-default}`` taken from the
    environment (a password need not be written in the file)."""
    env = dict(os.environ) if env is None else env

    def value(m: re.Match[str]) -> str:
        if m.group(1) in env:
            return env[m.group(1)]
        if m.group(2) is not None:
            return m.group(2)
        raise ConnectError(f"{path}: ${{{m.group(1)}}} is not set in the environment")

    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConnectError(f"{path}: not a connector file: {exc}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("config"), dict)
        or not data.get("name")
    ):
        raise ConnectError(f'{path}: expected {{"name": ..., "config": {{...}}}}')
    config = {str(k): _VARIABLE.sub(value, str(v)) for k, v in data["config"].items()}
    return str(data["name"]), config


def add_connector(url: str, name: str, config: dict[str, str]) -> dict[str, Any]:
    """Create or update connector ``name`` (PUT is idempotent: adding it again with the same
    configuration changes nothing); Connect's refusal becomes a ConnectError with its reason."""
    try:
        r = httpx.put(f"{url}/connectors/{name}/config", json=config, timeout=60)
    except httpx.HTTPError as exc:
        raise ConnectError(f"Kafka Connect at {url} did not answer: {exc}") from None
    if r.status_code >= 400:
        try:
            reason = r.json().get("message", r.text)
        except ValueError:
            reason = r.text
        raise ConnectError(f"Kafka Connect refused connector {name}: {reason}")
    return r.json()  # type: ignore[no-any-return]


def connector_states(url: str) -> dict[str, dict[str, Any]]:
    """Each connector's state and its tasks' (``RUNNING``, ``FAILED`` with the trace...)."""
    try:
        r = httpx.get(f"{url}/connectors", params={"expand": "status"}, timeout=10)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConnectError(f"Kafka Connect at {url} did not answer: {exc}") from None
    return {name: item["status"] for name, item in r.json().items()}
