"""Unit tests of ``services.inference.otel``: a request's trace as spans (their names,
GenAI attributes, times, parent), the passages' and answer's text only when asked."""

from __future__ import annotations

import secrets

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.inference.otel import Arrival, RequestSpans
from shared.otel import W3C, Tracing, tracing
from tests.unit.services.feedback.samples import a_trace

TIMINGS = {"embed": 5.0, "retrieve": 3.0, "first_token": 40.0, "generate": 100.0, "total": 120.0}


def spans_of(capture: bool = False, **trace: object) -> tuple[str, dict[str, object]]:
    memory = InMemorySpanExporter()
    t = tracing("inference", capture_content=capture, exporter=memory)
    assert isinstance(t, Tracing)
    caller = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    arrival = Arrival(1_000_000_000_000, W3C.extract({"traceparent": caller}))
    fields = {"timings_ms": TIMINGS, "model": "m", "llm_mode": "completion"} | trace
    parent = RequestSpans(t, "all-MiniLM-L6-v2").export(a_trace(**fields), arrival)
    t.flush()
    spans = {s.name: s for s in memory.get_finished_spans()}
    t.shutdown()
    assert parent.split("-")[1] == caller.split("-")[1], "the caller's trace goes on"
    return caller, spans


def test_a_query_becomes_a_server_span_with_retrieval_embedding_and_generation() -> None:
    caller, spans = spans_of()
    assert set(spans) == {
        "POST /v1/query",
        "retrieval",
        "embeddings all-MiniLM-L6-v2",
        "text_completion m",
    }
    root = spans["POST /v1/query"]
    assert root.parent is not None and f"{root.parent.span_id:016x}" == caller.split("-")[2]
    assert root.attributes["llmops.trace_id"] == "f" * 32
    assert (root.start_time, root.end_time) == (1_000_000_000_000, 1_000_120_000_000)
    retrieval, gen = spans["retrieval"], spans["text_completion m"]
    assert retrieval.parent.span_id == root.context.span_id
    assert spans["embeddings all-MiniLM-L6-v2"].parent.span_id == retrieval.context.span_id
    assert tuple(retrieval.attributes["gen_ai.retrieval.document_ids"]) == ("c1", "c2")
    assert "content" not in retrieval.attributes["gen_ai.retrieval.documents"]
    assert gen.start_time == root.end_time - 100_000_000, "generation ends the request"
    assert gen.attributes["gen_ai.operation.name"] == "text_completion"
    assert gen.attributes["gen_ai.response.time_to_first_chunk"] == 0.04
    assert [e.name for e in gen.events] == ["gen_ai.first_token"]
    assert "gen_ai.output.messages" not in gen.attributes


def test_texts_go_out_only_when_asked() -> None:
    _, spans = spans_of(capture=True, llm_mode="chat")
    assert '"content": "a."' in spans["retrieval"].attributes["gen_ai.retrieval.documents"]
    assert "At 8:30" in spans["chat m"].attributes["gen_ai.output.messages"]


def test_retrieval_alone_has_no_generation_and_a_failure_is_an_error() -> None:
    _, spans = spans_of(endpoint="retrieve", timings_ms={"embed": 2.0, "retrieve": 1.0})
    assert set(spans) == {"POST /v1/retrieve", "retrieval", "embeddings all-MiniLM-L6-v2"}
    _, failed = spans_of(status="error", error="the language model timed out")
    assert failed["POST /v1/query"].status.description == "the language model timed out"
    assert not failed["POST /v1/query"].status.is_ok
