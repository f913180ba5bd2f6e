"""The join of feedback and traces, as pure state transitions (no Kafka here).

A trace's state holds what its evaluation needs: the trace's summary, its metrics, the latest
feedback per (name, author) with the history of what it replaced, the feedback event ids
already counted (so a redelivered event is not counted twice), and feedback that came before
the trace, waiting for it. The agent keeps one state per trace in a faust table (its
changelog makes it survive a restart) and publishes what each transition returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.feedback.scores import EVALUATOR_VERSION, cited_docs, not_scored
from shared.contracts.events import (
    EvalCase,
    EvalResult,
    FeedbackEvent,
    InferenceTrace,
    JoinedFeedback,
    Metric,
)

# Feedback event ids remembered per trace, to drop redeliveries (more than any trace gets).
SEEN_LIMIT = 1000
# Superseded feedback kept per trace.
HISTORY_LIMIT = 50


class TraceInfo(BaseModel):
    """What a trace's evaluation keeps of it (the context is not kept: it is scored once)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    tenant: str
    question: str
    answer: str
    prompt_name: str
    prompt_version: str
    model: str
    llm_mode: str
    status: str
    endpoint: str
    event_time: datetime
    cited_docs: list[str]
    groups: list[str]
    # the request's OpenTelemetry span: evaluations are exported under it
    otel_traceparent: str | None = None


class Waiting(BaseModel):
    """Feedback that came before its trace, with where it was read (for a dead letter)."""

    model_config = ConfigDict(extra="forbid")

    feedback: FeedbackEvent
    topic: str
    partition: int
    offset: int
    raw: bytes
    arrived: float


class State(BaseModel):
    """One trace's evaluation state."""

    model_config = ConfigDict(extra="forbid")

    partition: int
    trace: TraceInfo | None = None
    metrics: dict[str, Metric] = Field(default_factory=dict)
    # the correction correction_similarity was computed from
    scored_correction: str | None = None
    latest: dict[str, JoinedFeedback] = Field(default_factory=dict)
    history: list[JoinedFeedback] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    waiting: list[Waiting] = Field(default_factory=list)
    touched: float = 0.0
    # a case was published for this trace: take it back (a tombstone) if none is due any more
    has_case: bool = False

    def to_bytes(self) -> bytes:
        """The table's value."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> State:
        """Read a table value."""
        return cls.model_validate_json(raw)

    def correction(self) -> str | None:
        """The latest correction any author gave."""
        given = [f for f in self.latest.values() if f.correction]
        return max(given, key=lambda f: f.given_at).correction if given else None


@dataclass
class Letter:
    """Waiting feedback that must be dead-lettered, and why."""

    waiting: Waiting
    error_type: str
    message: str


@dataclass
class Outcome:
    """What a transition changed: publish the result (and the case) when ``changed``.
    ``refused``: the record itself must be dead-lettered with this error, the state is as
    it was."""

    state: State | None
    changed: bool = False
    letters: list[Letter] = field(default_factory=list)
    refused: Refused | None = None


class Refused(Exception):
    """A record the join will not take; it is dead-lettered with ``code`` and the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def verify(
    record: InferenceTrace | FeedbackEvent,
    issued_to: Callable[[str, str], bool],
    personal: Callable[[str], list[str]],
) -> None:
    """Raise Refused for a record that no join may take: a trace whose id was not issued to
    the tenant it claims (a forged one could take over another tenant's trace), and feedback
    whose author holds personal data (authors are kept and published in eval.results).
    Feedback naming another tenant's trace is refused at the join (TenantMismatch)."""
    if isinstance(record, InferenceTrace) and not issued_to(record.trace_id, record.tenant):
        raise Refused(
            "ForgedTraceId",
            f"trace id {record.trace_id} was not issued to tenant {record.tenant!r} (its "
            "signature does not match; the API and this service must share "
            "LLMOPS_TRACE_SECRET)",
        )
    if isinstance(record, FeedbackEvent):
        found = personal(record.author)
        if found:
            raise Refused(
                "PersonalIdentifier",
                f"the feedback's author holds personal data ({', '.join(found)}): pass an "
                "opaque user id",
            )


def sampled(trace_id: str, rate: float) -> bool:
    """Whether a trace is scored on arrival: the same answer on every replica and restart."""
    if rate >= 1:
        return True
    digest = int.from_bytes(hashlib.sha256(trace_id.encode()).digest()[:8], "big")
    return digest / 2**64 < rate


def scorable(trace: InferenceTrace) -> str | None:
    """None when a trace is scored; else why not."""
    if not trace.answered:
        return f"a {trace.endpoint} trace has no answer to score"
    if trace.status != "ok":
        return f"the trace's status is {trace.status}"
    return None


def feedback_key(fb: FeedbackEvent | JoinedFeedback) -> str:
    """One score per (name, author) of a trace."""
    return f"{fb.name}\x1f{fb.author}"


def joined(fb: FeedbackEvent) -> JoinedFeedback:
    """Feedback as a result carries it."""
    return JoinedFeedback(
        feedback_id=fb.event_id,
        author=fb.author,
        source=fb.source,
        name=fb.name,
        value=fb.value,
        comment=fb.comment,
        correction=fb.correction,
        given_at=fb.event_time,
    )


def info_of(trace: InferenceTrace) -> TraceInfo:
    """The summary of a trace that its state keeps."""
    return TraceInfo(
        event_id=trace.event_id,
        tenant=trace.tenant,
        question=trace.question,
        answer=trace.answer,
        prompt_name=trace.prompt_name,
        prompt_version=trace.prompt_version,
        model=trace.model,
        llm_mode=trace.llm_mode,
        status=trace.status,
        endpoint=trace.endpoint,
        event_time=trace.event_time,
        cited_docs=cited_docs(trace.answer, [c.doc_id for c in trace.retrieved]),
        groups=trace.groups,
        otel_traceparent=trace.otel_traceparent,
    )


def _join(state: State, fb: FeedbackEvent) -> None:
    key = feedback_key(fb)
    old = state.latest.get(key)
    if old is not None:
        if old.given_at > fb.event_time:  # an older value arriving late: history only
            state.history = (state.history + [joined(fb)])[-HISTORY_LIMIT:]
            return
        state.history = (state.history + [old])[-HISTORY_LIMIT:]
    state.latest[key] = joined(fb)


def _remember(state: State, event_id: str) -> None:
    state.seen = (state.seen + [event_id])[-SEEN_LIMIT:]


def _mismatch(trace: TraceInfo, fb: FeedbackEvent) -> str:
    return f"feedback of tenant {fb.tenant!r} on trace {fb.trace_id} of another tenant"


def on_trace(
    state: State | None,
    trace: InferenceTrace,
    partition: int,
    metrics: dict[str, Metric] | None,
    now: float,
) -> Outcome:
    """A trace arrived, scored (``metrics``) or not (None: why is derived). Waiting feedback
    joins it, or is dead-lettered when its tenant differs."""
    state = state or State(partition=partition)
    if state.trace is not None and state.trace.event_id == trace.event_id:
        return Outcome(state, changed=True)  # redelivered: publish the same result again
    if state.trace is not None and state.trace.tenant != trace.tenant:
        # a trace id belongs to one tenant for good: a second trace may not move it
        return Outcome(
            state,
            refused=Refused(
                "TenantMismatch",
                f"trace {trace.trace_id} of tenant {state.trace.tenant!r} cannot be replaced "
                f"by one of tenant {trace.tenant!r}",
            ),
        )
    state.trace = info_of(trace)
    state.touched = now
    if metrics is None:
        reason = scorable(trace) or "not sampled (FEEDBACK_SAMPLE_RATE)"
        metrics = not_scored(reason)
    state.metrics = dict(metrics)
    letters = []
    for w in state.waiting:
        if w.feedback.tenant != trace.tenant:
            letters.append(Letter(w, "TenantMismatch", _mismatch(state.trace, w.feedback)))
        else:
            _join(state, w.feedback)
            _remember(state, w.feedback.event_id)
    state.waiting = []
    # a trace is published when it was scored, or when feedback joined it
    changed = scorable(trace) is None or bool(state.latest)
    return Outcome(state, changed=changed, letters=letters)


def on_feedback(
    state: State | None,
    fb: FeedbackEvent,
    where: Waiting,
    now: float,
    max_waiting: int,
) -> Outcome:
    """Feedback arrived: it joins its trace, waits for it, or (another tenant's, or too many
    waiting) is dead-lettered. The same event twice counts once."""
    state = state or State(partition=where.partition)
    if fb.event_id in state.seen or any(w.feedback.event_id == fb.event_id for w in state.waiting):
        return Outcome(state, changed=state.trace is not None)
    if state.trace is None:
        if len(state.waiting) >= max_waiting:
            return Outcome(
                state,
                letters=[
                    Letter(
                        where,
                        "TooMuchWaiting",
                        f"{max_waiting} feedback events already wait for trace {fb.trace_id}",
                    )
                ],
            )
        state.waiting.append(where.model_copy(update={"arrived": now}))
        state.touched = now
        return Outcome(state)
    if fb.tenant != state.trace.tenant:
        return Outcome(state, letters=[Letter(where, "TenantMismatch", _mismatch(state.trace, fb))])
    _join(state, fb)
    _remember(state, fb.event_id)
    state.touched = now
    return Outcome(state, changed=True)


def expire(state: State, now: float, join_wait_s: float, ttl_s: float) -> Outcome:
    """Dead-letter feedback that waited too long for its trace; drop a state past its TTL
    (``Outcome.state`` None: delete it)."""
    late = [w for w in state.waiting if now - w.arrived >= join_wait_s]
    letters = [
        Letter(
            w,
            "TraceNotFound",
            f"no trace {w.feedback.trace_id} arrived within {join_wait_s:.0f} s "
            "(FEEDBACK_JOIN_WAIT_S), or it was older than the service keeps (FEEDBACK_TTL_S)",
        )
        for w in late
    ]
    if late:
        state.waiting = [w for w in state.waiting if w not in late]
    if state.trace is None and not state.waiting:
        return Outcome(None, letters=letters)
    if state.trace is not None and now - state.touched >= ttl_s and not state.waiting:
        return Outcome(None, letters=letters)
    return Outcome(state, letters=letters)


def result_of(state: State, trace_id: str) -> EvalResult:
    """The evaluation result a state stands for (its trace must have arrived)."""
    trace = state.trace
    assert trace is not None
    return EvalResult(
        trace_id=trace_id,
        tenant=trace.tenant,
        prompt_name=trace.prompt_name,
        prompt_version=trace.prompt_version,
        model=trace.model,
        llm_mode=trace.llm_mode,
        trace_status=trace.status,
        trace_time=trace.event_time,
        metrics=state.metrics,
        feedback=sorted(state.latest.values(), key=lambda f: (f.given_at, f.feedback_id)),
        history=state.history,
        evaluator_version=EVALUATOR_VERSION,
    )


def case_of(state: State, trace_id: str) -> EvalCase | None:
    """The regression case a trace's feedback makes: a correction, or a thumbs-down (marked
    for review, no expected answer). None when no feedback asks for one (any more)."""
    trace = state.trace
    assert trace is not None
    behind = [
        f
        for f in state.latest.values()
        if f.correction or (f.value.type == "thumbs" and f.value.thumbs == "down")
    ]
    if not behind or not trace.question:
        return None
    expected = state.correction()
    return EvalCase(
        tenant=trace.tenant,
        case_id=trace_id,
        question=trace.question,
        expected_answer=expected,
        expected_docs=trace.cited_docs,
        groups=trace.groups,
        needs_review=expected is None,
        source_trace_id=trace_id,
        feedback_ids=sorted(f.feedback_id for f in behind),
    )
