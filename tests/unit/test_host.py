"""The service host: which services run together, and the command line around it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from services import host
from services.cli import main


def test_all_means_every_service_in_registry_order() -> None:
    assert host.plan(["all"], embedded_store=True) == list(host.SERVICES)
    assert host.plan(["inference", "embedding", "inference"], embedded_store=True) == [
        "embedding",
        "inference",
    ]


def test_a_store_reader_without_the_writer_is_refused_with_what_to_run() -> None:
    with pytest.raises(host.PlanError) as err:
        host.plan(["inference"], embedded_store=True)
    message = str(err.value)
    assert "`llmops run inference embedding`" in message and "QDRANT_URL" in message
    with pytest.raises(host.PlanError, match="llmops run ingestion inference embedding"):
        host.plan(["ingestion", "inference"], embedded_store=True)


def test_with_a_store_server_every_service_runs_alone() -> None:
    for name in host.SERVICES:
        assert host.plan([name], embedded_store=False) == [name]
    assert host.plan(["embedding"], embedded_store=True) == ["embedding"]


def test_unknown_and_missing_names_are_refused() -> None:
    with pytest.raises(host.PlanError, match="no service named 'feedbak'"):
        host.plan(["feedbak"], embedded_store=False)
    with pytest.raises(host.PlanError, match="name a service"):
        host.plan([], embedded_store=False)


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


def test_run_help_lists_every_service() -> None:
    out = CliRunner().invoke(main, ["run", "--help"])
    assert out.exit_code == 0
    for name, service in host.SERVICES.items():
        assert name in out.output and service.summary in out.output


def test_cli_has_each_service_command_once() -> None:
    names = set(main.commands)
    expected = {"kafka", "topics", "schemas", "run", "dev", "ingest", "reindex", "index"}
    assert expected | {"keys", "ask"} <= names


def test_a_command_builds_each_settings_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.inference.settings import inference_settings
    from shared.cli import Context

    ctx, built = Context(), []

    def counting(**kw: object) -> object:
        built.append(kw)
        return inference_settings(**kw)  # type: ignore[arg-type]

    first = ctx.settings(counting)
    assert ctx.settings(counting) is first and len(built) == 1
    # the service's settings nest the command's shared ones: read once, not per service
    assert first.kafka is ctx.kafka and first.platform is ctx.platform  # type: ignore[attr-defined]
