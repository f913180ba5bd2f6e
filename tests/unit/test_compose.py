"""docker-compose.yml runs the official Kafka image in KRaft mode and one container per service."""

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
