"""SIGKILL the API process (inference beside embedding, which holds the embedded store) while
it streams an answer, then start it again: it answers over the same store, everything it had
acknowledged before the kill is on the broker, and the time to answer again is printed."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from services.inference.auth import new_key
from services.inference.client import parse_sse
from shared.contracts.events import DocumentEvent, FeedbackEvent, InferenceTrace
from shared.contracts.topics import FEEDBACK_EVENTS, INFERENCE_COMPLETED
from shared.contracts.upstream import publish_documents
from shared.http import wait_ok
from shared.kafka.broker import free_port
from shared.kafka.reader import read_to_end

pytestmark = pytest.mark.chaos
N_DOCS = 12


def doc(i: int) -> DocumentEvent:
    return DocumentEvent(
        tenant="acme",
        doc_id=f"kb/room-{i}.md",
        version=1,
        title=f"Room {i}",
        content=f"Meeting room {i} is on floor {i + 2} and seats {10 + i} people.",
    )


def cites(url: str, headers: dict[str, str], i: int) -> bool:
    r = httpx.post(
        f"{url}/v1/retrieve",
        json={"question": f"Which floor is meeting room {i} on?"},
        headers=headers,
        timeout=30,
    )
    return r.status_code == 200 and f"kb/room-{i}.md" in {c["doc_id"] for c in r.json()["chunks"]}


def until(pred: Any, timeout_s: float = 180) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def test_a_killed_api_answers_again_over_the_same_store(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    key, record = new_key("chaos", "acme", ["eng"])

    def traced() -> set[str]:
        return {
            InferenceTrace.from_bytes(rec.value).trace_id
            for rec in read_to_end(b, INFERENCE_COMPLETED.name(p))
            if rec.value is not None
        }

    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "INFERENCE_PORT": str(port),
        "INFERENCE_API_KEYS": json.dumps([record.model_dump()]),
        "INFERENCE_MAX_NEW_TOKENS": "200",  # long enough for the kill to land mid-stream
        "INFERENCE_TEMPERATURE": "0",
        # token for token, so that the kill lands mid-stream (a redacted stream holds the end
        # of a short answer back until it is whole)
        "INFERENCE_REDACT_ANSWERS": "false",
    }
    start_service("ingestion")
    api = start_service("inference embedding", **env)
    assert publish_documents([doc(i) for i in range(N_DOCS)], b, p).sent == N_DOCS
    assert wait_ok(f"{url}/readyz", 180), api.log()[-3000:]
    assert until(lambda: all(cites(url, headers, i) for i in range(N_DOCS))), api.log()[-3000:]

    # an answer, and feedback on it that the API acknowledged
    answered = httpx.post(
        f"{url}/v1/query", json={"question": "Where is room 3?"}, headers=headers, timeout=120
    )
    assert answered.status_code == 200, answered.text
    trace_id = answered.json()["trace_id"]
    rated = httpx.post(
        f"{url}/v1/feedback",
        json={"trace_id": trace_id, "value": {"type": "thumbs", "thumbs": "up"}},
        headers=headers,
        timeout=30,
    )
    assert rated.status_code == 202, rated.text

    # a trace is not acknowledged to the caller, and waits up to INFERENCE_TRACE_LINGER_MS to
    # be batched: only once it is out does the kill below say nothing about it
    assert until(lambda: trace_id in traced(), 30), "the first answer is traced"

    # a streamed answer under way when the process dies: the client sees the stream break
    with httpx.stream(
        "POST",
        f"{url}/v1/query",
        json={"question": "Describe every meeting room in detail.", "stream": True},
        headers=headers,
        timeout=60,
    ) as stream:
        events = parse_sse(stream.iter_lines())
        next(events)
        api.kill()
        with pytest.raises(httpx.HTTPError):
            for _ in events:
                pass
    restarted_at = time.monotonic()
    again = start_service("inference embedding", **env)
    assert wait_ok(f"{url}/readyz", 180), again.log()[-3000:]
    r = httpx.post(
        f"{url}/v1/query", json={"question": "Where is room 5?"}, headers=headers, timeout=120
    )
    assert r.status_code == 200, r.text
    print(f"inference: answering {time.monotonic() - restarted_at:.1f} s after its restart")
    # the store it reopened holds every document, and the new answer cites from it
    assert all(cites(url, headers, i) for i in range(N_DOCS))
    assert r.json()["citations"], r.json()

    # what was acknowledged before the kill is on the broker
    feedback = [
        FeedbackEvent.from_bytes(rec.value)
        for rec in read_to_end(b, FEEDBACK_EVENTS.name(p))
        if rec.value is not None
    ]
    assert [f.event_id for f in feedback] == [rated.json()["feedback_id"]]

    after = r.json()["trace_id"]
    assert until(lambda: {trace_id, after} <= traced(), 30), "answers after the kill are traced"
