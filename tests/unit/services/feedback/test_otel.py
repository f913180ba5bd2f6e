"""Unit tests of ``services.feedback.otel``: scores and feedback as gen_ai.evaluation.result
events under the request's span."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.feedback.otel import EVENT, Evaluations
from shared.contracts.events import Metric
from shared.otel import tracing
from tests.unit.services.feedback.samples import fb

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_scores_and_feedback_are_events_under_the_requests_span() -> None:
    memory = InMemorySpanExporter()
    t = tracing("feedback", exporter=memory)
    assert t is not None
    out = Evaluations(t)
    metrics = {"support": Metric(value=0.8), "relevance": Metric(missing="no passages")}
    assert out.export("t1", "acme", PARENT, metrics=metrics)
    assert out.export("t1", "acme", PARENT, feedback=fb(up=False, comment="Wrong office."))
    assert not out.export("t2", "acme", None, metrics=metrics), "no span to hang it under"
    t.flush()
    first, second = memory.get_finished_spans()
    assert first.parent is not None and first.parent.span_id == 0xB7AD6B7169203331
    assert first.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert [e.name for e in first.events] == [EVENT, EVENT]
    relevance, support = (dict(e.attributes) for e in first.events)
    assert relevance["gen_ai.evaluation.explanation"] == "no passages"
    assert support["gen_ai.evaluation.score.value"] == 0.8
    (thumbs,) = (dict(e.attributes) for e in second.events)
    assert thumbs["gen_ai.evaluation.name"] == "helpful"
    assert thumbs["gen_ai.evaluation.score.label"] == "down"
    assert thumbs["gen_ai.evaluation.explanation"] == "Wrong office."
    t.shutdown()
