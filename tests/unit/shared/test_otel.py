"""Unit tests of ``shared.otel``: export is off without an endpoint, a failing collector is
counted, traceparents go both ways."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.otel import parent_of, traceparent_of, tracing


class Refusing(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionRefusedError("the collector is down")


def test_export_is_off_unless_an_endpoint_is_set() -> None:
    assert tracing("svc", env={}) is None
    on = tracing("svc", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert on is not None
    on.shutdown()


def test_a_collector_that_is_down_costs_a_counter() -> None:
    t = tracing("svc", exporter=Refusing())
    assert t is not None
    for _ in range(3):
        t.tracer("x").start_span("s").end()
    t.flush()
    assert (t.exporter.exported, t.exporter.failed) == (0, 3)
    t.shutdown()


def test_a_traceparent_names_the_span_and_back() -> None:
    memory = InMemorySpanExporter()
    t = tracing("svc", exporter=memory)
    assert t is not None
    span = t.tracer("x").start_span("s")
    parent = traceparent_of(span)
    span.end()
    version, trace_id, span_id, flags = parent.split("-")
    assert version == "00" and int(flags, 16) & 1, "sampled"
    assert int(trace_id, 16) == span.get_span_context().trace_id
    child = t.tracer("x").start_span("c", context=parent_of(parent))
    child.end()
    t.flush()
    (_, exported_child) = memory.get_finished_spans()
    assert exported_child.parent is not None
    assert exported_child.parent.span_id == int(span_id, 16)
    assert parent_of(None) is None and parent_of("garbage") is None
    t.shutdown()
