"""Unit tests of ``shared.contracts.asyncapi``: the document `llmops schemas export` writes is
valid for the official AsyncAPI parser (``@asyncapi/parser`` from npm, run with the machine's
Node.js; `make test` installs it) and describes every declared topic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from services.cli import main
from services.monitoring.observe import watched
from shared.contracts.asyncapi import asyncapi_document, channel_id
from shared.contracts.topics import TOPICS

VALIDATE = Path(__file__).resolve().parents[4] / "infra" / "asyncapi" / "validate.mjs"


def parse(document: Path) -> subprocess.CompletedProcess[str]:
    """The official parser on ``document``: exit 0 and the channels' addresses when valid."""
    parser = Path(os.environ.get("LLMOPS_ASYNCAPI", ""))
    # never a skip: `make test` installs it, and a test run without it has failed to set up
    assert (parser / ".complete").exists(), f"no AsyncAPI parser at {parser}: run make test"
    script = parser / "validate.mjs"  # beside its node_modules, where node resolves imports
    shutil.copyfile(VALIDATE, script)
    return subprocess.run(
        ["node", str(script), str(document)], capture_output=True, text=True, timeout=120
    )


def test_the_exported_document_is_valid_asyncapi_with_every_topic(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["schemas", "export", str(tmp_path)])
    assert out.exit_code == 0, out.output
    document = tmp_path / "asyncapi.json"
    assert str(document) in out.output
    result = parse(document)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(summary["channels"]) == sorted(t.base_name for t in TOPICS)
    assert not [line for line in result.stdout.splitlines() if '"severity"' in line], (
        "no diagnostics, not even a warning"
    )


def test_the_parser_refuses_a_broken_document(tmp_path: Path) -> None:
    # the check can fail: a channel pointing at a message that does not exist
    doc = asyncapi_document("1.0")
    first = next(iter(doc["channels"].values()))
    first["messages"] = {"Nope": {"$ref": "#/components/messages/Nope"}}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    assert parse(broken).returncode != 0


def test_each_channel_carries_its_topics_contract() -> None:
    doc = asyncapi_document("1.0", prefix="p.")
    for topic in TOPICS:
        channel = doc["channels"][channel_id(topic)]
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == kafka["topic"] == topic.name("p.")
        assert kafka["partitions"] == topic.partitions
        config = kafka["topicConfiguration"]
        assert config["cleanup.policy"] == [topic.cleanup_policy]
        assert config["retention.ms"] == topic.retention_ms
        assert channel["x-kafka-key"] == topic.key
        (message,) = channel["messages"]
        assert message == topic.value_model.__name__
        payload = doc["components"]["messages"][message]["payload"]["$ref"]
        assert payload == f"#/components/schemas/{message}"
        ops = [
            o
            for o in doc["operations"].values()
            if o["channel"]["$ref"].endswith(channel_id(topic))
        ]
        assert {o["x-llmops-party"] for o in ops if o["action"] == "send"} == set(topic.senders)
        assert {o["x-llmops-party"] for o in ops if o["action"] == "receive"} == set(
            topic.receivers
        )


def test_who_receives_a_topic_matches_what_the_services_read() -> None:
    # monitoring's readers are code; the topics' declarations must say the same
    declared = {t.base_name for t in TOPICS if "monitoring" in t.receivers}
    assert declared == {t.base_name for t in watched()}
