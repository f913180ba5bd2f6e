"""docker-compose.yml runs the official Kafka image as a three-node KRaft cluster and one
container per service the host knows; the image holds what the services read."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services import host

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


BROKERS = ("kafka-1", "kafka-2", "kafka-3")
BOOTSTRAP = ",".join(f"{b}:9092" for b in BROKERS)


def test_compose_runs_a_three_node_kraft_cluster() -> None:
    services = compose()["services"]
    assert "kafka" not in services, "one broker loses the partitions it leads with it"
    nodes = [services[b] for b in BROKERS]
    voters = {n["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for n in nodes}
    assert voters == {",".join(f"{i}@{b}:9093" for i, b in enumerate(BROKERS, 1))}
    assert len({n["environment"]["CLUSTER_ID"] for n in nodes}) == 1, "one cluster"
    for i, (name, node) in enumerate(zip(BROKERS, nodes, strict=True), 1):
        env = node["environment"]
        assert node["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert int(env["KAFKA_NODE_ID"]) == i
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert node["volumes"] == [f"{name}-data:/var/lib/kafka/data"], "a volume each"
        # the broker's internal topics survive a lost broker, as the platform's do
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    waits = services["topics"]["depends_on"]
    assert {b: waits[b]["condition"] for b in BROKERS} == dict.fromkeys(BROKERS, "service_healthy")
    connect = services["connect"]["environment"]
    assert connect["BOOTSTRAP_SERVERS"] == BOOTSTRAP
    for topic in ("CONFIG", "OFFSET", "STATUS"):
        assert int(connect[f"CONNECT_{topic}_STORAGE_REPLICATION_FACTOR"]) == 3


@pytest.mark.parametrize("name", list(host.SERVICES))
def test_compose_runs_every_service_the_host_knows(name: str) -> None:
    from services.inference.settings import InferenceSettings

    service = compose()["services"].get(name)
    assert service is not None, f"{name} is missing from docker-compose.yml"
    assert service["command"] == ["run", name]
    env = service["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == BOOTSTRAP, "every broker, so any one may be down"
    # one container per service: only a server store can be shared between them
    assert env["QDRANT_URL"].startswith("http://qdrant:")
    if host.SERVICES[name].http:
        port = str(InferenceSettings().port)
        assert f"{port}:{port}" in service["ports"]
        assert env["INFERENCE_HOST"] == "0.0.0.0"
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])


def test_compose_file_is_valid_for_docker_compose() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed (make test installs Debian's)")
    out = subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_the_image_holds_what_the_services_read_at_run_time() -> None:
    from services.inference.settings import PROMPTS_DIR

    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("shared", "services", "infra", PROMPTS_DIR.name):
        assert f"COPY {folder} {folder}" in dockerfile, folder
    # installed (not editable) in the image, the package cannot find prompts beside itself
    assert f"INFERENCE_PROMPTS_DIR=/app/{PROMPTS_DIR.name}" in dockerfile
    # llama-cpp-python is compiled, without OpenMP, as in the Makefile
    assert 'CMAKE_ARGS="-DGGML_OPENMP=OFF"' in dockerfile
    assert "LLAMA_CMAKE_ARGS := -DGGML_OPENMP=OFF" in (ROOT / "Makefile").read_text()
