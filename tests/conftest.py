"""Shared fixtures: a real Kafka broker for the session, fresh topics per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.store.open import open_store
from tests.kafka_helpers import TEST_TRACE_SECRET, ServiceProcess

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker: KAFKA_BOOTSTRAP_SERVERS if set, else a local one on free ports.

    Never skips: when no broker can be had the tests that need one fail.
    """
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    from shared.kafka.broker import free_port, local_broker
    from shared.settings import PlatformSettings

    broker = local_broker(
        tmp_path_factory.mktemp("broker"),
        PlatformSettings().cache_dir,
        free_port(),
        free_port(),
    )
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> str:
    """A fresh prefix, with every declared topic created under it."""
    from shared.kafka.admin import create_topics

    prefix = f"t{uuid.uuid4().hex[:10]}."
    create_topics(kafka_bootstrap, prefix)
    return prefix


@pytest.fixture
def service_env(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a service subprocess bound to this test's broker and topics."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=topic_prefix,
        LLMOPS_DATA_DIR=str(tmp_path / "data"),
        LLMOPS_LOG_LEVEL="warning",
        # the API and the feedback service check trace ids with it; tests sign theirs too
        LLMOPS_TRACE_SECRET=TEST_TRACE_SECRET,
    )
    return env


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    """Start ``llmops run <service>`` subprocesses; all are stopped after the test."""
    procs: list[ServiceProcess] = []

    def start(name: str, **extra_env: str) -> ServiceProcess:
        from shared.kafka.broker import free_port

        # every process its own port for /metrics and /dashboard (two may run side by side)
        env = {**service_env, "MONITORING_PORT": str(free_port()), **extra_env}
        proc = ServiceProcess(name, env, tmp_path / f"{name.replace(' ', '+')}-{len(procs)}.log")
        proc.start()
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real S3-compatible server (SeaweedFS) for the session. Never skips: without the
    binary ``make test`` builds, the tests that need it fail saying so."""
    from tests.s3_server import S3Server, weed_binary

    binary = weed_binary()
    if binary is None:
        pytest.fail(
            "no SeaweedFS binary: run the tests through `make test` (it builds one once into "
            "the cache) or set LLMOPS_WEED to a `weed` binary"
        )
    server = S3Server(tmp_path_factory.mktemp("s3"), binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: object) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    from tests.s3_server import S3Server

    assert isinstance(s3_server, S3Server)
    name = f"b{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


# Every backend of the vector store. Qdrant Edge (the default) and qdrant-client (the server
# backend's code, on its local mode) run everywhere; the server itself where Docker exists.
STORE_BACKENDS = ["qdrant-edge", "qdrant-client-local", "qdrant-server"]


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """A real Qdrant server through testcontainers; skipped, saying why, without Docker."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable engine
        pytest.skip(
            "qdrant-server backend not run: no Docker engine here for testcontainers "
            f"({type(exc).__name__}); the same code ran on qdrant-client's local mode"
        )
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer("qdrant/qdrant:v1.16.0") as server:
        yield f"http://{server.rest_host_address}"


@pytest.fixture(params=STORE_BACKENDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A fresh, empty vector store on each backend in turn."""
    from shared.settings import PlatformSettings, QdrantSettings
    from shared.store.base import VectorStore
    from shared.store.client import ClientStore

    alias = f"c{uuid.uuid4().hex[:10]}"
    store: VectorStore
    if request.param == "qdrant-edge":
        store = open_store(QdrantSettings(alias=alias), PlatformSettings(data_dir=tmp_path))
    elif request.param == "qdrant-client-local":
        store = ClientStore.local(str(tmp_path / "local"), alias)
    else:
        url = request.getfixturevalue("qdrant_server_url")
        store = open_store(QdrantSettings(url=url, alias=alias), PlatformSettings())
    try:
        yield store
    finally:
        store.close()
