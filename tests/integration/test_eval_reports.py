"""`llmops eval agreement|compare|cases export` read the real topics: the latest record per key,
tombstones honoured, filters by time and tenant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from services.cli import main
from shared.contracts.events import EvalCase, EvalResult, Metric
from shared.contracts.topics import EVAL_CASES, EVAL_RESULTS
from tests.eval_results import eval_result

pytestmark = pytest.mark.integration


def result(i: int, version: str, down: bool, support: float, age: timedelta) -> EvalResult:
    when = datetime.now(UTC) - age
    return eval_result(i, version, down, support, when, refusal=Metric(missing="x"))


def cli(env: dict[str, str], *args: str) -> Any:
    res = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_reports_read_the_latest_result_per_trace_and_cases_honour_tombstones(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    rng = np.random.default_rng(5)
    producer = KafkaProducer(bootstrap_servers=b, acks="all")
    sent = []
    for i in range(80):
        version = "v3" if i % 2 else "v4"
        down = bool(rng.random() < (0.6 if version == "v3" else 0.1))
        support = float((0.3 if down else 0.8) + rng.normal(0, 0.1))
        sent.append(result(i, version, down, support, timedelta(hours=1)))
    # a first, superseded record of trace 0 says the opposite: only the latest counts
    stale = sent[0].model_copy(update={"feedback": [], "metrics": {}})
    old = [result(1000 + i, "v3", True, 0.9, timedelta(days=30)) for i in range(40)]
    for r in [stale, *sent, *old]:
        producer.send(EVAL_RESULTS.name(p), key=r.trace_id.encode(), value=r.to_bytes())
    cases = [
        EvalCase(tenant="acme", case_id="keep", question="q1?", expected_answer="a"),
        EvalCase(tenant="acme", case_id="gone", question="q2?", needs_review=True),
        EvalCase(tenant="globex", case_id="theirs", question="q3?"),
    ]
    for c in cases:
        producer.send(EVAL_CASES.name(p), key=c.key.encode(), value=c.to_bytes())
    producer.send(EVAL_CASES.name(p), key=b"acme/gone", value=None)  # taken back
    producer.flush()
    producer.close()
    env = {"KAFKA_BOOTSTRAP_SERVERS": b, "KAFKA_TOPIC_PREFIX": p}

    rows = {r["metric"]: r for r in json.loads(cli(env, "eval", "agreement", "--json").output)}
    # the old, contrary results are outside --since 7d; the stale record of trace 0 is replaced
    assert rows["support_mean"]["n"] == 80
    assert rows["support_mean"]["auroc"]["low"] > 0.8
    assert rows["support_mean"]["verdict"] == "agrees with users"
    assert rows["refusal"]["auroc"] is None
    everything = json.loads(cli(env, "eval", "agreement", "--json", "--since", "all").output)
    assert {r["metric"]: r for r in everything}["support_mean"]["n"] == 120

    out = cli(env, "eval", "compare", "--since", "24h", "--min-n", "20").output
    assert "rag/v3: 40 answers, 40 rated" in out and "rag/v4: 40 answers, 40 rated" in out
    assert "verdict: v4 is preferred" in out, out
    assert (
        "not enough data" in cli(env, "eval", "compare", "--since", "24h", "--min-n", "50").output
    )

    exported = cli(env, "eval", "cases", "export", "--tenant", "acme")
    got = [EvalCase.model_validate_json(line) for line in exported.stdout.splitlines()]
    assert [c.case_id for c in got] == ["keep"]
