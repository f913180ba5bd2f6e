"""Unit tests of ``services.cli``: the command line: `llmops run` refuses before Kafka, lists
every service, one command each."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from services import host
from services.cli import main


def test_run_command_refuses_before_touching_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDRANT_URL", raising=False)
    # an unreachable cluster: the refusal must come first, without a connection attempt
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    out = CliRunner().invoke(main, ["run", "inference"])
    assert out.exit_code == 2, out.output
    assert "llmops run inference embedding" in out.output


def test_a_bad_rules_file_stops_the_start_with_its_line_before_kafka(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text("rules:\n  - name: A\n    metric: m\n    condition: 'above 3'\n")
    monkeypatch.setenv("MONITORING_RULES_FILE", str(rules))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    out = CliRunner().invoke(main, ["run", "monitoring"])
    assert out.exit_code == 1, out.output
    assert f"{rules}:2: condition:" in out.output and "'above 3'" in out.output


def test_a_bad_cdc_mapping_stops_the_ingestion_start_with_its_line_before_kafka(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("tables:\n  - topic: pg.public.t\n    tenant: {value: acme}\n")
    monkeypatch.setenv("INGESTION_CDC_MAPPING_FILE", str(mapping))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    out = CliRunner().invoke(main, ["run", "ingestion"])
    assert out.exit_code == 1, out.output
    assert f"{mapping}:2: doc_id: Field required" in out.output


def test_run_help_lists_every_service() -> None:
    out = CliRunner().invoke(main, ["run", "--help"])
    assert out.exit_code == 0
    for name, service in host.SERVICES.items():
        assert name in out.output and service.summary in out.output


def test_cli_has_each_service_command_once() -> None:
    names = set(main.commands)
    expected = {"kafka", "connect", "topics", "schemas", "run", "dev", "ingest", "reindex", "index"}
    assert expected | {"keys", "ask"} <= names
