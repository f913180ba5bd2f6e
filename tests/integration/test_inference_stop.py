"""A clean stop loses no trace: on SIGTERM the API sends the traces still lingering in its
buffer (here for a minute, INFERENCE_TRACE_LINGER_MS) and waits for the broker's
acknowledgement before the process exits."""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx

from services.inference.auth import new_key
from shared.contracts.events import InferenceTrace
from shared.contracts.topics import INFERENCE_COMPLETED
from shared.http import wait_ok
from shared.kafka.broker import free_port
from shared.kafka.reader import read_to_end

N = 5


def test_sigterm_publishes_every_lingering_trace_before_the_process_exits(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any
) -> None:
    key, record = new_key("stop", "acme", ["eng"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = start_service(
        "inference embedding",
        INFERENCE_PORT=str(port),
        INFERENCE_API_KEYS=json.dumps([record.model_dump()]),
        INFERENCE_TRACE_LINGER_MS="60000",  # longer than the test: only the stop sends them
    )
    assert wait_ok(f"{url}/readyz", 180), api.log()[-3000:]
    ids = []
    for i in range(N):
        # nothing is indexed: each is answered at once ("I do not know") and traced
        r = httpx.post(
            f"{url}/v1/query",
            json={"question": f"Which floor is room {i} on?"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        ids.append(r.json()["trace_id"])
    topic = INFERENCE_COMPLETED.name(topic_prefix)
    assert not list(read_to_end(kafka_bootstrap, topic)), "still lingering before the stop"

    seconds = api.stop_timed(signal.SIGTERM, timeout_s=30)
    traced = {
        InferenceTrace.from_bytes(rec.value).trace_id
        for rec in read_to_end(kafka_bootstrap, topic)
        if rec.value is not None
    }
    assert set(ids) <= traced, (sorted(set(ids) - traced), api.log()[-3000:])
    assert "not acknowledged" not in api.log()
    print(f"SIGTERM: {N} lingering traces on the broker, process gone in {seconds:.1f} s")
