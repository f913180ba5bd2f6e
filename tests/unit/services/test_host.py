"""Unit tests of ``services.host``: the service host: which services run together in one process."""

from __future__ import annotations

import pytest

from services import host


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
