"""Online scores and feedback as OpenTelemetry ``gen_ai.evaluation.result`` events.

Each lands in the trace of the request it judges, as a child of the request's span (the
``otel_traceparent`` its Kafka trace carries): one ``evaluation`` span per batch of results
for a trace, one event per score or per piece of feedback. Comments are redacted as on Kafka
(they come from the feedback event, redacted by the API). A trace exported without
OpenTelemetry has no parent to join: its evaluations are not exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind

from shared.contracts.events import FeedbackEvent, Label, Metric, Score, Thumbs
from shared.otel import Tracing, parent_of

EVENT = "gen_ai.evaluation.result"


def feedback_attributes(feedback: FeedbackEvent) -> dict[str, Any]:
    """The event's attributes for a piece of feedback: its name, score and label."""
    value = feedback.value
    out: dict[str, Any] = {
        "gen_ai.evaluation.name": feedback.name,
        "llmops.feedback.source": feedback.source.value,
        "llmops.feedback.author": feedback.author,
        "llmops.feedback_id": feedback.event_id,
    }
    if isinstance(value, Thumbs):
        out["gen_ai.evaluation.score.label"] = value.thumbs
        out["gen_ai.evaluation.score.value"] = 1.0 if value.thumbs == "up" else 0.0
    elif isinstance(value, Score):
        out["gen_ai.evaluation.score.value"] = value.score
    elif isinstance(value, Label):
        out["gen_ai.evaluation.score.label"] = value.label
    if feedback.comment:
        out["gen_ai.evaluation.explanation"] = feedback.comment
    return out


def metric_attributes(name: str, metric: Metric) -> dict[str, Any]:
    """The event's attributes for an online score (or why it is missing)."""
    out: dict[str, Any] = {"gen_ai.evaluation.name": name, "llmops.evaluator": "online"}
    if metric.value is not None:
        out["gen_ai.evaluation.score.value"] = metric.value
    else:
        out["gen_ai.evaluation.explanation"] = metric.missing or "missing"
    return out


@dataclass
class Evaluations:
    """Exports the evaluations of answers under their requests' spans."""

    tracing: Tracing

    def export(
        self,
        trace_id: str,
        tenant: str,
        traceparent: str | None,
        metrics: Mapping[str, Metric] | None = None,
        feedback: FeedbackEvent | None = None,
    ) -> bool:
        """Export the new ``metrics`` and ``feedback`` of the trace ``trace_id`` under its
        request's span (``traceparent``); False when it has none to hang them under."""
        parent = parent_of(traceparent)
        if parent is None or not (metrics or feedback):
            return False
        span = self.tracing.tracer("llmops.feedback").start_span(
            "evaluation",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={"llmops.trace_id": trace_id, "llmops.tenant": tenant},
        )
        for name, metric in sorted((metrics or {}).items()):
            span.add_event(EVENT, metric_attributes(name, metric))
        if feedback is not None:
            span.add_event(EVENT, feedback_attributes(feedback))
        span.end()
        return True
