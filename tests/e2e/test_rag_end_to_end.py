"""The whole chain on the real broker: documents published upstream become answerable with
the right citation, and a deleted document stops being cited."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from services.inference.auth import new_key
from shared.contracts.events import DocumentEvent, EvalResult
from shared.contracts.topics import EVAL_RESULTS
from shared.contracts.upstream import delete_event, publish_documents
from shared.http import wait_ok
from shared.kafka.broker import free_port
from tests.kafka_helpers import consume, llmops

pytestmark = pytest.mark.e2e


def cited(url: str, key: str, question: str) -> set[str]:
    r = httpx.post(
        f"{url}/v1/retrieve",
        json={"question": question},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    r.raise_for_status()
    return {c["doc_id"] for c in r.json()["chunks"]}


def wait(pred, timeout_s: float = 180, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_published_documents_become_answerable_and_deletes_disappear(
    kafka_bootstrap: str, topic_prefix: str, start_service
) -> None:
    key, record = new_key("e2e", "acme", ["eng"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_service("ingestion")
    start_service("feedback")
    # the embedded store is owned by one process: inference runs beside embedding
    api = start_service(
        "inference embedding",
        INFERENCE_PORT=str(port),
        INFERENCE_API_KEYS=json.dumps([record.model_dump()]),
        INFERENCE_MAX_NEW_TOKENS="32",
        INFERENCE_TEMPERATURE="0",
    )
    docs = [
        DocumentEvent(
            tenant="acme",
            doc_id="kb/backup.md",
            version=1,
            title="Backups",
            content="# Backups\n\nNightly backups of the billing database are kept "
            "for 35 days in the Frankfurt bucket.",
            content_type="text/markdown",
        ),
        DocumentEvent(
            tenant="acme",
            doc_id="kb/parking.md",
            version=1,
            title="Parking",
            content="Visitors park in garage B, level minus two.",
        ),
    ]
    summary = publish_documents(docs, kafka_bootstrap, topic_prefix)
    assert summary.sent == 2
    assert wait_ok(f"{url}/readyz", 180), api.log()[-3000:]
    question = "How long are billing database backups kept?"
    wait(lambda: "kb/backup.md" in cited(url, key, question), what="the document to be cited")
    assert api.alive(), api.log()[-3000:]

    r = httpx.post(
        f"{url}/v1/query",
        json={"question": question},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["citations"][0]["doc_id"] == "kb/backup.md"
    # the default model, driven the way it was trained (a base model: completion), answers
    assert "35 days" in body["answer"], body
    assert body["prompt"]["mode"] == "completion" and body["model"] == "gemma3-270m"
    # and refuses what the documents do not say
    r = httpx.post(
        f"{url}/v1/query",
        json={"question": "Who is the chief executive of the company?"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert "i do not know" in r.json()["answer"].lower(), r.json()

    # the terminal client streams the answer, then lists its sources
    out = llmops("ask", question, "--url", url, "--key", key)
    assert out.returncode == 0, out.stderr
    assert "[1] Backups (kb/backup.md" in out.stdout and "trace " in out.stdout

    # rate it as `ask` says, and see the rating joined to the scored answer on eval.results
    (rate,) = [line for line in out.stdout.splitlines() if line.startswith("rate it: ")]
    trace_id = rate.split()[4]
    assert f"llmops feedback {trace_id} --up|--down" in rate and f"--url {url}" in rate
    rated = llmops(
        *["feedback", trace_id, "--down", "--correction", "35 days, in Frankfurt."],
        *["--url", url, "--key", key],
        timeout_s=60,
    )
    assert rated.returncode == 0 and "stored for trace" in rated.stdout, rated.stderr

    def joined() -> EvalResult | None:
        for rec in reversed(consume(kafka_bootstrap, EVAL_RESULTS.name(topic_prefix), idle_s=1)):
            result = EvalResult.from_bytes(rec.value)
            if result.trace_id == trace_id and result.feedback:
                return result
        return None

    wait(lambda: joined() is not None, what="the rated answer on eval.results")
    result = joined()
    assert result is not None and result.feedback[0].correction == "35 days, in Frankfurt."
    assert result.prompt_version and result.metrics["answer_relevance"].value is not None
    assert result.metrics["correction_similarity"].value is not None

    publish_documents([delete_event("acme/kb/backup.md")], kafka_bootstrap, topic_prefix)
    wait(lambda: "kb/backup.md" not in cited(url, key, question), what="the delete to land")
    assert "kb/parking.md" in cited(url, key, "where do visitors park")
