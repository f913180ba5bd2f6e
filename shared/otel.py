"""OpenTelemetry tracing over OTLP/HTTP, written once for the services that export.

Off unless ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set;
the official SDK then reads the standard ``OTEL_*`` variables itself (headers, timeout,
service name, batch sizes). Spans go out on the SDK's own thread: nothing a request does
waits for the collector, a full queue drops spans, and a collector that is down costs failed
exports, counted here and logged, never an error to a caller.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

# Either turns export on (the traces' own endpoint first, as the SDK reads them).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
W3C = TraceContextTextMapPropagator()


class CountingExporter(SpanExporter):
    """The OTLP exporter, with the spans it could and could not deliver counted."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.exported = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - a dead collector must not stop the thread
            log.debug("OTLP export failed: %s", exc)
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.failed += len(spans)
            if self.failed == len(spans) or self.failed % 1000 < len(spans):
                log.warning("OTLP export failed: %d spans not delivered so far", self.failed)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


@dataclass
class Tracing:
    """A service's tracer and exporter; ``capture_content`` exports texts (documents, the
    answer) that are otherwise left out (LLMOPS_OTEL_CAPTURE_CONTENT)."""

    provider: TracerProvider
    exporter: CountingExporter
    capture_content: bool = False

    def tracer(self, name: str) -> Tracer:
        return self.provider.get_tracer(name)

    def flush(self, timeout_s: float = 5.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()


def tracing(
    service: str,
    capture_content: bool = False,
    env: Mapping[str, str] = os.environ,
    exporter: SpanExporter | None = None,
) -> Tracing | None:
    """The service's tracing when an OTLP endpoint is set, else None (off). ``exporter``
    replaces the OTLP one (tests)."""
    if exporter is None and not any(env.get(v) for v in ENDPOINT_VARIABLES):
        return None
    name = env.get("OTEL_SERVICE_NAME") or f"llmops-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    counting = CountingExporter(exporter or OTLPSpanExporter())
    provider.add_span_processor(BatchSpanProcessor(counting))
    return Tracing(provider, counting, capture_content)


def parent_of(traceparent: str | None) -> Context | None:
    """The context a W3C ``traceparent`` names (None when absent or malformed)."""
    if not traceparent:
        return None
    ctx = W3C.extract({"traceparent": traceparent})
    return ctx if ctx else None


def traceparent_of(span: Span) -> str:
    """The W3C ``traceparent`` of ``span``."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier, context=set_span_in_context(span))
    return carrier["traceparent"]
