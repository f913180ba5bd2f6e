"""docker-compose.yml runs the official Kafka image in KRaft mode and one container per service
the host knows; the image holds what the services read."""

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


def test_compose_has_kafka_kraft() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.parametrize("name", list(host.SERVICES))
def test_compose_runs_every_service_the_host_knows(name: str) -> None:
    from services.inference.settings import InferenceSettings

    service = compose()["services"].get(name)
    assert service is not None, f"{name} is missing from docker-compose.yml"
    assert service["command"] == ["run", name]
    env = service["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
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
