"""docker-compose.yml runs the official Kafka image in KRaft mode and one container per service;
the image holds what the services read."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_has_kafka_kraft_and_every_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    built = {p.name for p in (ROOT / "services").iterdir() if (p / "agent.py").exists()}
    for name in built:
        assert services[name]["command"] == ["run", name]


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
