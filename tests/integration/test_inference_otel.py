"""OpenTelemetry export against a real OTLP receiver (Jaeger v2, its query API read back): a
request's spans with the GenAI conventions under the caller's traceparent, redacted as the
Kafka trace; the feedback service's evaluations under the request's span; a dead collector
costs nothing but a counter."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from services.inference.llm import make_llm
from shared.contracts.events import InferenceTrace
from shared.contracts.topics import INFERENCE_COMPLETED
from tests.integration.test_inference_api import served, traces_of, world
from tests.jaeger import Jaeger, jaeger
from tests.kafka_helpers import ServiceProcess, wait_for

pytestmark = pytest.mark.integration
__all__ = ["world"]  # the module's fixture, shared with the /v1/query tests


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    with jaeger(tmp_path_factory.mktemp("jaeger")) as j:
        yield j


@pytest.fixture(scope="module")
def api(world: dict[str, Any], receiver: Jaeger) -> Iterator[str]:
    """The API on a real server, exporting to Jaeger (the standard variables)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.otlp_endpoint)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        with served(world, make_llm(world["settings"])) as (url, _):
            yield url


def spans_by_name(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["operationName"]: s for s in trace["spans"]}


def test_a_query_is_one_trace_under_the_callers_span(
    world: dict[str, Any], api: str, receiver: Jaeger
) -> None:
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    r = httpx.post(
        f"{api}/v1/query",
        json={"question": "When is lunch served? Ask bob@example.com", "prompt": "rag/v3"},
        headers={
            "Authorization": f"Bearer {world['keys']['a']}",
            "traceparent": f"00-{caller_trace}-{caller_span}-01",
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    spans = spans_by_name(receiver.trace(caller_trace, spans=4))
    root = spans["POST /v1/query"]
    assert root["references"][0]["spanID"] == caller_span, "the caller's trace goes on"
    assert root["tagmap"]["llmops.trace_id"] == body["trace_id"]
    assert root["tagmap"]["llmops.status"] == "ok"
    retrieval = spans["retrieval"]
    assert retrieval["tagmap"]["gen_ai.operation.name"] == "retrieval"
    assert "[EMAIL]" in retrieval["tagmap"]["gen_ai.retrieval.query.text"]
    assert "bob@" not in str(spans), "redacted as on Kafka, everywhere"
    documents = retrieval["tagmap"]["gen_ai.retrieval.documents"]
    assert "lunch" in documents and "canteen" not in documents, "ids and scores, no text"
    (embed,) = [s for name, s in spans.items() if name.startswith("embeddings ")]
    assert embed["tagmap"]["gen_ai.operation.name"] == "embeddings"
    gen = spans["text_completion gemma3-270m"]
    assert gen["tagmap"]["gen_ai.request.model"] == "gemma3-270m"
    assert gen["tagmap"]["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"]
    assert gen["tagmap"]["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"]
    assert [e["event"] for e in gen["events"]] == ["gen_ai.first_token"]
    assert "gen_ai.output.messages" not in gen["tagmap"], "no answer text unless asked"


def test_a_chat_completion_is_traced_and_its_kafka_trace_names_the_span(
    world: dict[str, Any], api: str, receiver: Jaeger
) -> None:
    client = OpenAI(base_url=f"{api}/v1", api_key=world["keys"]["a"], max_retries=0)
    done = client.chat.completions.create(
        model="rag/gemma3-270m", messages=[{"role": "user", "content": "When is lunch served?"}]
    )
    trace_id = (done.model_extra or {})["llmops"]["trace_id"]
    topic = INFERENCE_COMPLETED.name(world["prefix"])
    kafka = traces_of(world, topic, {trace_id})[trace_id]
    assert kafka.otel_traceparent
    otel_trace = kafka.otel_traceparent.split("-")[1]
    spans = spans_by_name(receiver.trace(otel_trace, spans=4))
    assert spans["POST /v1/chat/completions"]["tagmap"]["llmops.trace_id"] == trace_id


def test_the_feedback_services_evaluations_join_the_requests_trace(
    world: dict[str, Any], api: str, receiver: Jaeger, tmp_path: Path
) -> None:
    h = {"Authorization": f"Bearer {world['keys']['a']}"}
    r = httpx.post(
        f"{api}/v1/query", json={"question": "When is lunch served?"}, headers=h, timeout=60
    )
    trace_id = r.json()["trace_id"]
    topic = INFERENCE_COMPLETED.name(world["prefix"])
    kafka: InferenceTrace = traces_of(world, topic, {trace_id})[trace_id]
    assert kafka.otel_traceparent
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=world["bootstrap"],
        KAFKA_TOPIC_PREFIX=world["prefix"],
        LLMOPS_DATA_DIR=str(world["settings"].platform.data_dir),  # the API's trace secret
        LLMOPS_LOG_LEVEL="warning",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.otlp_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        FEEDBACK_SAMPLE_RATE="1.0",
    )
    feedback = ServiceProcess("feedback", env, tmp_path / "feedback.log")
    feedback.start()
    try:
        given = world["client"].post(  # (the module's app publishes feedback under its prefix)
            "/v1/feedback",
            json={"trace_id": trace_id, "value": {"type": "thumbs", "thumbs": "down"}},
            headers=h,
        )
        assert given.status_code == 202, given.text
        otel_trace = kafka.otel_traceparent.split("-")[1]

        def evaluations() -> list[dict[str, Any]]:
            spans = receiver.trace(otel_trace, spans=4)["spans"]
            return [
                e
                for s in spans
                if s["operationName"] == "evaluation"
                for e in s["events"]
                if e.get("event") == "gen_ai.evaluation.result"
            ]

        assert wait_for(
            lambda: any(e.get("gen_ai.evaluation.score.label") == "down" for e in evaluations()),
            120,
            1,
        ), (evaluations(), feedback.log()[-2000:])
        names = {e["gen_ai.evaluation.name"] for e in evaluations()}
        assert "helpful" in names and len(names) > 1, "the feedback and the online scores"
        (span,) = {
            s["spanID"]: s
            for s in receiver.trace(otel_trace)["spans"]
            if s["operationName"] == "evaluation"
            and any(e.get("gen_ai.evaluation.name") == "helpful" for e in s["events"])
        }.values()
        root = spans_by_name(receiver.trace(otel_trace))["POST /v1/query"]
        assert span["references"][0]["spanID"] == root["spanID"], "under the request's span"
    finally:
        feedback.stop()


def test_a_dead_collector_costs_a_counter_and_nothing_else(
    world: dict[str, Any],
) -> None:
    from shared.kafka.broker import free_port

    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
        env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        with served(world, make_llm(world["settings"])) as (url, topic):
            h = {"Authorization": f"Bearer {world['keys']['a']}"}
            ids = set()
            for _ in range(3):
                r = httpx.post(
                    f"{url}/v1/retrieve", json={"question": "lunch"}, headers=h, timeout=30
                )
                assert r.status_code == 200
                ids.add(r.json()["trace_id"])
            # the traces still reach Kafka, each naming a span that could not be delivered
            assert all(t.otel_traceparent for t in traces_of(world, topic, ids).values())

            def telemetry() -> dict[str, int]:
                return httpx.get(f"{url}/readyz", timeout=10).json()["telemetry"]

            assert wait_for(lambda: telemetry()["failed"] > 0, 30, 0.5), telemetry()
            assert telemetry()["exported"] == 0
