"""What each platform record says for monitoring: pure, no Kafka.

``observe(topic, raw)`` parses a record of one of the platform's topics and returns its event
time and its observations. A record that does not parse raises ``pydantic.ValidationError``
(the agent dead-letters it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.monitoring.windows import Observation, labels_of
from shared.contracts.events import (
    ChunkBatch,
    DeadLetter,
    DocumentEvent,
    DocumentIndexed,
    EvalResult,
    Event,
    FeedbackEvent,
    InferenceTrace,
    MetricKind,
    MetricPoint,
    Op,
)
from shared.contracts.topics import (
    DOCS_CHUNKS,
    DOCS_INDEXED,
    EVAL_RESULTS,
    FEEDBACK_EVENTS,
    INFERENCE_COMPLETED,
    INGEST_DOCUMENTS,
    TOPICS,
    Topic,
)

C, D, R = MetricKind.COUNTER, MetricKind.DISTRIBUTION, MetricKind.RATIO
# the stages of a request whose latency is watched (timings_ms keys)
STAGES = ("retrieve", "first_token", "generate", "total")


@dataclass(frozen=True)
class Observed:
    """A record's event time and what it says; an answered question also gives its text and
    its best chunk's score, for drift."""

    at: datetime
    observations: list[Observation]
    question: tuple[str, str] | None = None  # (trace id, question)
    top_score: float | None = None


def _o(name: str, kind: MetricKind, labels: dict[str, str], value: float = 1.0) -> Observation:
    return Observation(name, kind, labels_of(labels), value)


def trace(t: InferenceTrace, threshold: float) -> list[Observation]:
    """Requests, errors, latency per stage, tokens and retrieval quality of one request."""
    base = {"tenant": t.tenant, "endpoint": t.endpoint}
    gen = {**base, "prompt_version": f"{t.prompt_name}/{t.prompt_version}", "model": t.model}
    out = [
        _o("inference_requests", C, {**base, "status": t.status}),
        _o("inference_error_rate", R, base, 0.0 if t.status == "ok" else 1.0),
        _o("inference_refused_rate", R, base, 1.0 if t.status == "refused" else 0.0),
    ]
    for stage in STAGES:
        if stage in t.timings_ms:
            out.append(_o("inference_latency_ms", D, {**base, "stage": stage}, t.timings_ms[stage]))
    if t.answered and t.status == "ok":
        out.append(_o("inference_prompt_tokens", D, gen, t.prompt_tokens))
        out.append(_o("inference_completion_tokens", D, gen, t.completion_tokens))
    if t.status == "ok":
        top = max((c.score for c in t.retrieved), default=None)
        if top is not None:
            out.append(_o("retrieval_top1_score", D, base, top))
        out.append(
            _o("retrieval_empty_rate", R, base, 1.0 if top is None or top < threshold else 0)
        )
    return out


def document(e: DocumentEvent) -> list[Observation]:
    return [_o("ingest_documents", C, {"tenant": e.tenant, "op": e.op.value})]


def chunks(b: ChunkBatch) -> list[Observation]:
    out = [_o("ingest_chunk_batches", C, {"tenant": b.tenant, "op": b.op.value})]
    if b.op is Op.UPSERT:
        out.append(_o("ingest_chunks", D, {"tenant": b.tenant}, len(b.chunks)))
    return out


def indexed(e: DocumentIndexed) -> list[Observation]:
    labels = {"tenant": e.tenant, "status": e.status}
    out = [_o("index_documents", C, labels)]
    if e.status in ("indexed", "deleted"):
        fresh = (e.event_time - e.source_event_time).total_seconds()
        out.append(_o("index_freshness_s", D, {"tenant": e.tenant}, max(fresh, 0.0)))
    return out


def feedback(f: FeedbackEvent) -> list[Observation]:
    labels = {"tenant": f.tenant, "name": f.name}
    out = [_o("feedback_events", C, {**labels, "source": f.source.value})]
    if f.down is not None:
        out.append(_o("feedback_thumbs_down_rate", R, labels, 1.0 if f.down else 0.0))
    return out


def evaluation(r: EvalResult) -> list[Observation]:
    labels = {"tenant": r.tenant, "prompt_version": f"{r.prompt_name}/{r.prompt_version}"}
    return [
        _o("eval_metric", D, {**labels, "metric": name}, m.value)
        for name, m in sorted(r.metrics.items())
        if m.value is not None
    ]


def dead_letter(d: DeadLetter) -> list[Observation]:
    return [_o("dead_letters", C, {"stage": d.stage, "error_type": d.error_type})]


Reader = tuple[type[Event], Callable[[Any, float], list[Observation]]]

READERS: dict[str, Reader] = {
    INGEST_DOCUMENTS.base_name: (DocumentEvent, lambda e, _: document(e)),
    DOCS_CHUNKS.base_name: (ChunkBatch, lambda e, _: chunks(e)),
    DOCS_INDEXED.base_name: (DocumentIndexed, lambda e, _: indexed(e)),
    INFERENCE_COMPLETED.base_name: (InferenceTrace, trace),
    FEEDBACK_EVENTS.base_name: (FeedbackEvent, lambda e, _: feedback(e)),
    EVAL_RESULTS.base_name: (EvalResult, lambda e, _: evaluation(e)),
    **{
        t.base_name: (DeadLetter, lambda e, _: dead_letter(e))
        for t in TOPICS
        if t.value_model is DeadLetter
    },
}


def watched() -> list[Topic]:
    """The topics the monitoring service reads: every platform topic it has a reader for."""
    return [t for t in TOPICS if t.base_name in READERS]


def observe(base_name: str, raw: bytes, retrieval_threshold: float) -> Observed:
    """Event time and observations of one record of the topic ``base_name``."""
    model, read = READERS[base_name]
    event = model.from_bytes(raw)
    seen = read(event, retrieval_threshold)
    if isinstance(event, InferenceTrace) and event.status == "ok" and event.answered:
        top = max((c.score for c in event.retrieved), default=None)
        return Observed(event.event_time, seen, (event.trace_id, event.question), top)
    return Observed(event.event_time, seen)


LAG = "consumer_lag"
# 1 for a window in which a poll (of consumer lag) failed, 0 when it worked: monitoring that
# cannot see is an alert of its own (MonitoringPollFailing), not a log line
POLL_FAILED = "monitoring_poll_failed"
# the metrics polled on the wall clock rather than counted in event time
POLLED = (LAG, POLL_FAILED)


def lag_points(lag: dict[str, dict[str, int]], now: datetime, window_s: float) -> list[MetricPoint]:
    """Consumer lag (polled, so on the wall clock) as gauge points of the window ending now,
    one per service group and topic."""
    start = now - timedelta(seconds=window_s)
    return [
        MetricPoint(
            event_id=f"{LAG}|{service}|{topic}|{now.isoformat()}",
            event_time=now,
            name=LAG,
            kind=MetricKind.GAUGE,
            labels={"service": service, "topic": topic},
            window_start=start,
            window_end=now,
            count=1,
            value=float(behind),
        )
        for service, topics in sorted(lag.items())
        for topic, behind in sorted(topics.items())
    ]


def poll_point(what: str, failed: bool, now: datetime, window_s: float) -> MetricPoint:
    """Whether polling ``what`` (consumer_lag) failed this window, as a gauge point."""
    return MetricPoint(
        event_id=f"{POLL_FAILED}|{what}|{now.isoformat()}",
        event_time=now,
        name=POLL_FAILED,
        kind=MetricKind.GAUGE,
        labels={"poll": what},
        window_start=now - timedelta(seconds=window_s),
        window_end=now,
        count=1,
        value=1.0 if failed else 0.0,
    )
