"""Every request as an OpenTelemetry trace, with the GenAI semantic conventions.

One trace per request: a server span for the route, and under it the retrieval (the query,
the chunks' ids and scores; their text only with LLMOPS_OTEL_CAPTURE_CONTENT), the embedding
of the question, and the generation (``gen_ai.operation.name``, ``gen_ai.request.model``,
``gen_ai.usage.*``, the first token as an event). The spans are made from the request's own
trace, the one published to Kafka, once the request is over: what is exported is exactly
what Kafka gets, redacted the same way, and nothing of it sits in the answering path. A
``traceparent`` the caller sent is the parent (its trace goes on through us); the platform's
``trace_id`` is an attribute, and the request span's ``traceparent`` goes into the Kafka
trace, so that the feedback service can hang evaluations under it.
"""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.contracts.events import InferenceTrace
from shared.otel import W3C, Tracing, traceparent_of


@dataclass(frozen=True)
class Arrival:
    """When a request arrived (wall clock, ns) and the caller's trace context, if any."""

    at_ns: int
    parent: Context | None


ARRIVAL: ContextVar[Arrival | None] = ContextVar("llmops_request_arrival", default=None)


class ArrivalMiddleware:
    """Notes each request's arrival and ``traceparent`` for its spans (plain ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            parent = W3C.extract(headers) if "traceparent" in headers else None
            token = ARRIVAL.set(Arrival(time.time_ns(), parent or None))
            try:
                await self.app(scope, receive, send)
            finally:
                ARRIVAL.reset(token)
            return
        await self.app(scope, receive, send)


ROUTES = {
    "query": "/v1/query",
    "chat.completions": "/v1/chat/completions",
    "retrieve": "/v1/retrieve",
}


def _ns(ms: float) -> int:
    return int(ms * 1_000_000)


@dataclass
class RequestSpans:
    """Turns a request's trace into its spans."""

    tracing: Tracing
    embedding_model: str

    def __post_init__(self) -> None:
        self.tracer = self.tracing.tracer("llmops.inference")

    def export(self, trace: InferenceTrace, arrival: Arrival | None) -> str:
        """Export ``trace``'s spans; returns the request span's ``traceparent``."""
        tracer = self.tracer
        t = trace.timings_ms
        total = t.get("total") or sum(t.get(k, 0.0) for k in ("embed", "retrieve", "generate"))
        start = arrival.at_ns if arrival else time.time_ns() - _ns(total)
        end = start + _ns(total)
        route = ROUTES.get(trace.endpoint, trace.endpoint)
        root = tracer.start_span(
            f"POST {route}",
            context=arrival.parent if arrival else None,
            kind=SpanKind.SERVER,
            start_time=start,
            attributes={
                "http.request.method": "POST",
                "http.route": route,
                "llmops.trace_id": trace.trace_id,
                "llmops.tenant": trace.tenant,
                "llmops.api_key_id": trace.api_key_id,
                "llmops.status": trace.status,
                **({"enduser.id": trace.user} if trace.user else {}),
            },
        )
        if trace.status not in ("ok", "cancelled"):
            root.set_status(Status(StatusCode.ERROR, trace.error or trace.status))
        inside = set_span_in_context(root)
        at = start
        if "embed" in t or "retrieve" in t:
            at = self._retrieval(trace, inside, at)
        if trace.answered and "generate" in t:
            self._generation(trace, inside, end - _ns(t["generate"]), end)
        root.end(end_time=end)
        return traceparent_of(root)

    def _retrieval(self, trace: InferenceTrace, parent: Context, start: int) -> int:
        tracer = self.tracer
        t = trace.timings_ms
        end = start + _ns(t.get("embed", 0.0) + t.get("retrieve", 0.0))
        documents: list[dict[str, Any]] = [
            {"id": c.chunk_id, "doc_id": c.doc_id, "score": round(c.score, 4)}
            for c in trace.retrieved
        ]
        if self.tracing.capture_content and trace.context:
            for doc, text in zip(documents, trace.context, strict=False):
                doc["content"] = text
        span = tracer.start_span(
            "retrieval",
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes={
                "gen_ai.operation.name": "retrieval",
                "gen_ai.retrieval.query.text": trace.question,
                "gen_ai.retrieval.documents": json.dumps(documents),
                "gen_ai.retrieval.document_ids": [c.chunk_id for c in trace.retrieved],
                "gen_ai.retrieval.scores": [c.score for c in trace.retrieved],
            },
        )
        if "embed" in t:
            embed_end = start + _ns(t["embed"])
            tracer.start_span(
                f"embeddings {self.embedding_model}",
                context=set_span_in_context(span),
                kind=SpanKind.CLIENT,
                start_time=start,
                attributes={
                    "gen_ai.operation.name": "embeddings",
                    "gen_ai.request.model": self.embedding_model,
                },
            ).end(end_time=embed_end)
        span.end(end_time=end)
        return end

    def _generation(self, trace: InferenceTrace, parent: Context, start: int, end: int) -> None:
        tracer = self.tracer
        operation = "chat" if trace.llm_mode == "chat" else "text_completion"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": trace.model,
            "gen_ai.response.model": trace.model,
            "gen_ai.usage.input_tokens": trace.prompt_tokens,
            "gen_ai.usage.output_tokens": trace.completion_tokens,
            "llmops.prompt": f"{trace.prompt_name}/{trace.prompt_version}",
        }
        if "first_token" in trace.timings_ms:
            attributes["gen_ai.response.time_to_first_chunk"] = (
                trace.timings_ms["first_token"] / 1000
            )
        if self.tracing.capture_content and trace.answer:
            attributes["gen_ai.output.messages"] = json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": trace.answer}]}]
            )
        span = tracer.start_span(
            f"{operation} {trace.model}",
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes=attributes,
        )
        if "first_token" in trace.timings_ms:
            span.add_event(
                "gen_ai.first_token", timestamp=start + _ns(trace.timings_ms["first_token"])
            )
        if trace.status == "error":
            span.set_status(Status(StatusCode.ERROR, trace.error or "error"))
        span.end(end_time=end)
