"""What the Connect helpers read and write without a worker: connector files, the worker's
configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.kafka.connect import ConnectError, LocalConnect, connector_from_file

ROOT = Path(__file__).resolve().parents[4]


def test_a_connector_file_takes_its_variables_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"name": "db", "config": {"host": "${H:-localhost}", "pw": "${PW}", "n": 3}})
    )
    assert connector_from_file(path, {"PW": "s3cret"}) == (
        "db",
        {"host": "localhost", "pw": "s3cret", "n": "3"},
    )
    assert connector_from_file(path, {"PW": "x", "H": "db.internal"})[1]["host"] == "db.internal"
    with pytest.raises(ConnectError, match=r"\$\{PW\} is not set"):
        connector_from_file(path, {})


@pytest.mark.parametrize("text", ["{", '{"config": {}}', '{"name": "x", "config": [1]}'])
def test_a_file_that_is_not_a_connector_says_so(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConnectError, match="c.json"):
        connector_from_file(path, {})


def test_the_example_connector_is_debezium_postgres_over_pgoutput() -> None:
    name, config = connector_from_file(
        ROOT / "infra" / "connect" / "postgres.json", {"PGPASSWORD": "x"}
    )
    assert name == "llmops-postgres"
    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert config["plugin.name"] == "pgoutput" and config["database.password"] == "x"


def test_the_worker_keeps_its_state_in_topics_named_after_its_group(tmp_path: Path) -> None:
    worker = LocalConnect(tmp_path, 8083, "127.0.0.1:9092", tmp_path, group_id="g", replication=3)
    tmp_path.mkdir(exist_ok=True)
    lines = dict(
        line.split("=", 1)
        for line in worker._write_config(tmp_path / "plugins").read_text().splitlines()
    )
    assert lines["offset.storage.topic"] == "g.offsets" and lines["group.id"] == "g"
    assert lines["offset.storage.replication.factor"] == "3"
    assert lines["plugin.path"] == str(tmp_path / "plugins")
    assert lines["producer.acks"] == "all"
