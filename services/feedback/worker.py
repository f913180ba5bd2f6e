"""The feedback join: traces and feedback in (co-partitioned by trace id), results out, as one
object that owns the per-trace states, so its orchestration (the batch, the join's dedupe,
the sweep) is driven and tested without a broker.

Decode, score a batch in one model call, apply the pure transitions of ``logic``, keep each
trace's state in a table (``data``; faust's in the service, its changelog written by the
join itself), publish. An input is acknowledged only once what it produced is on the broker
(``Deliveries``); the sweep writes through the same port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from faust.types import EventT, TopicT
from pydantic import ValidationError

from services.feedback.logic import (
    Letter,
    Refused,
    State,
    Waiting,
    case_of,
    expire,
    on_feedback,
    on_trace,
    result_of,
    sampled,
    scorable,
    verify,
)
from services.feedback.otel import Evaluations
from services.feedback.scores import (
    Answered,
    correction_similarity,
    encode_all,
    missing,
    not_scored,
    score,
    texts_of,
    without_citations,
)
from services.feedback.settings import FeedbackSettings
from shared.contracts.events import (
    DeadLetter,
    DeadLetterValue,
    FeedbackEvent,
    InferenceTrace,
    Metric,
)
from shared.contracts.trace_ids import TraceIds
from shared.kafka.delivery import Deliveries
from shared.kafka.dlq import dead_letter
from shared.kafka.faust_app import handle_isolating
from shared.redact import DETECTORS, Redactor

log = logging.getLogger(__name__)

Encode = Callable[[list[str]], Any]
# a batch stuck in one stage longer than this is logged by the sweep
STUCK_S = 60.0


def answered(trace: InferenceTrace) -> Answered:
    """What scoring needs of a trace (a v1 trace recorded no context)."""
    return Answered(
        question=trace.question,
        answer=trace.answer,
        context=trace.context if trace.schema_version >= 2 else None,
        scores=[c.score for c in trace.retrieved],
    )


class Scorer:
    """Online metrics for many answers with one model call; a failure is recorded as the
    reason the metrics are missing, never as a lost event."""

    def __init__(self, encode: Encode, threshold: float) -> None:
        self.encode, self.threshold = encode, threshold

    def traces(self, answers: dict[str, Answered]) -> dict[str, dict[str, Metric]]:
        """Metrics per trace id (blocking: call it off the event loop)."""
        try:
            vectors = encode_all((t for a in answers.values() for t in texts_of(a)), self.encode)
            return {tid: score(a, vectors, self.threshold) for tid, a in answers.items()}
        except Exception as exc:  # noqa: BLE001 - say why on each trace instead
            log.exception("scoring failed")
            reason = f"scoring failed: {type(exc).__name__}: {exc}"[:300]
            return {tid: not_scored(reason) for tid in answers}

    def corrections(self, pairs: dict[str, tuple[str, str]]) -> dict[str, Metric]:
        """correction_similarity per trace id, from (answer, correction) pairs."""
        try:
            texts = [without_citations(t) for pair in pairs.values() for t in pair]
            vectors = encode_all([t for t in texts if t], self.encode)
            return {
                tid: correction_similarity(answer, fix, vectors)
                for tid, (answer, fix) in pairs.items()
            }
        except Exception as exc:  # noqa: BLE001
            log.exception("scoring corrections failed")
            return {tid: missing(f"scoring failed: {exc}"[:300]) for tid in pairs}


def letter_of(letter: Letter, values: DeadLetterValue) -> DeadLetter:
    """The dead letter of feedback the service had kept waiting."""
    w = letter.waiting
    return dead_letter(
        topic=w.topic,
        partition=w.partition,
        offset=w.offset,
        key=w.feedback.trace_id.encode(),
        value=w.raw,
        stage="feedback.join",
        error_type=letter.error_type,
        error_message=letter.message,
        values=values,
    )


def deadline(state: State, settings: FeedbackSettings) -> float:
    """When ``expire`` next has something to do for a state."""
    if state.waiting:
        return min(w.arrived for w in state.waiting) + settings.join_wait_s
    return state.touched + (settings.ttl_s if state.trace is not None else 0.0)


@dataclass(frozen=True)
class Outputs:
    """Where the join writes: results, cases, and the table's changelog."""

    results: TopicT
    cases: TopicT
    changelog: TopicT


@dataclass
class Batch:
    """One batch in hand: each trace's state (read once, updated as events apply), the
    events each state is made from, the traces whose result changed, the letters to send."""

    states: dict[str, State | None]
    sources: dict[str, list[EventT[Any]]]
    changed: set[str]
    letters: list[tuple[Letter, EventT[Any]]]


class FeedbackJoin:
    """Joins feedback to its trace, scores, and keeps the per-trace state.

    ``traces_topic`` is the full name of inference.completed (every other input is
    feedback); ``owned`` gives the partitions of feedback.events this worker holds now;
    ``clock`` and ``monotonic`` are the clocks (tests pass their own).
    """

    def __init__(
        self,
        settings: FeedbackSettings,
        scorer: Scorer,
        out: Deliveries,
        outputs: Outputs,
        data: MutableMapping[bytes, bytes],
        traces_topic: str,
        owned: Callable[[], set[int]],
        trace_ids: TraceIds,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        evaluations: Evaluations | None = None,
    ) -> None:
        self.settings, self.scorer, self.out, self.outputs = settings, scorer, out, outputs
        self.data, self.traces_topic, self.owned = data, traces_topic, owned
        self.trace_ids, self.clock, self.monotonic = trace_ids, clock, monotonic
        # OpenTelemetry export of scores and feedback, when it is on
        self.evaluations = evaluations
        self.redactor = Redactor.named(DETECTORS)
        # the agent and the sweep both change states; each takes its turn whole
        self.lock = asyncio.Lock()
        self.deadlines: dict[bytes, float] = {}
        # where the batch in hand is, and since when: the sweep warns about one that is stuck
        self.stage: str | None = None
        self.since = 0.0

    def at(self, stage: str | None) -> None:
        self.stage, self.since = stage, self.monotonic()

    # the table -------------------------------------------------------------------------
    def load(self, key: bytes) -> State | None:
        raw = self.data.get(key)
        return None if raw is None else State.from_bytes(raw)

    def keep(self, key: bytes, state: State | None) -> bytes | None:
        """Change the table in memory; the changelog record to write (None: a tombstone)."""
        if state is None:
            self.data.pop(key, None)
            self.deadlines.pop(key, None)
            return None
        raw = state.to_bytes()
        self.data[key] = raw
        self.deadlines[key] = deadline(state, self.settings)
        return raw

    async def save(self, key: bytes, state: State | None, events: list[EventT[Any]]) -> None:
        # The changelog record is an output like any other: its inputs are acknowledged only
        # once it is on the broker (faust's own table writes go through a buffer that its
        # commit does not always wait for, and a kill then lost the state). It goes to the
        # partition of its events: a batch holds several, so faust's "current event" would
        # name the wrong one.
        partition = events[0].message.partition
        raw = self.keep(key, state)
        await self.out.send(events, self.outputs.changelog, key, raw, partition=partition)

    # batches ---------------------------------------------------------------------------
    async def take(self, events: list[EventT[Any]]) -> None:
        """One batch from the stream, after any sweep in progress; a record the logic chokes
        on is dead-lettered alone and the rest go on."""
        self.at("waiting for the sweep")
        async with self.lock:
            self.at("decoding")
            await handle_isolating(events, self.handle, self.out, "feedback")

    async def decode(
        self, events: list[EventT[Any]]
    ) -> list[tuple[EventT[Any], InferenceTrace | FeedbackEvent]]:
        """The events that are a valid, genuine trace or feedback; the rest dead-lettered."""
        decoded: list[tuple[EventT[Any], InferenceTrace | FeedbackEvent]] = []
        for ev in events:
            raw = ev.message.value or b""
            try:
                model = InferenceTrace if ev.message.topic == self.traces_topic else FeedbackEvent
                record = model.from_bytes(raw)
            except ValidationError as exc:  # can never succeed
                await self.out.dead_letter(ev, "feedback.decode", exc)
                continue
            try:
                verify(record, self.trace_ids.issued_to, self.redactor.finds)
            except Refused as exc:
                await self.out.dead_letter(ev, "feedback.verify", exc)
                continue
            decoded.append((ev, record))
        return decoded

    def new_answers(
        self,
        decoded: list[tuple[EventT[Any], InferenceTrace | FeedbackEvent]],
        states: dict[str, State | None],
    ) -> dict[str, Answered]:
        """Every new, sampled, answerable trace of the batch (not one already scored)."""

        def scored_before(trace: InferenceTrace) -> bool:
            state = states[trace.trace_id]
            return bool(state and state.trace and state.trace.event_id == trace.event_id)

        return {
            t.trace_id: answered(t)
            for _, t in decoded
            if isinstance(t, InferenceTrace)
            and scorable(t) is None
            and sampled(t.trace_id, self.settings.sample_rate)
            and not scored_before(t)
        }

    async def handle(self, events: list[EventT[Any]]) -> None:
        now = self.clock()
        decoded = await self.decode(events)
        states = {obj.trace_id: self.load(obj.trace_id.encode()) for _, obj in decoded}
        new = self.new_answers(decoded, states)
        self.at("scoring")
        metrics = await _off_loop(self.scorer.traces, new) if new else {}
        self.at("joining")
        batch = Batch(states, defaultdict(list), set(), [])
        for ev, obj in decoded:
            await self.apply(batch, ev, obj, metrics, now)
        self.at("scoring corrections")
        await self.correct(batch.states, batch.changed)
        self.at("sending")
        for letter, ev in batch.letters:
            await self.out.forward(letter_of(letter, self.settings.platform.dlq_values), [ev])
        for tid, state in batch.states.items():
            if batch.sources.get(tid):  # not a trace whose only record was refused
                await self.publish(tid, state, batch.sources[tid], tid in batch.changed)
        self.at(None)

    async def apply(
        self,
        batch: Batch,
        ev: EventT[Any],
        obj: InferenceTrace | FeedbackEvent,
        metrics: dict[str, dict[str, Metric]],
        now: float,
    ) -> None:
        """One trace or feedback onto its trace's state in ``batch``."""
        tid = obj.trace_id
        state = batch.states[tid]
        msg = ev.message
        if isinstance(obj, InferenceTrace):
            waited = [w.feedback for w in state.waiting] if state is not None else []
            outcome = on_trace(state, obj, msg.partition, metrics.get(tid), now)
        else:
            where = Waiting(
                feedback=obj,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                raw=msg.value or b"",
                arrived=now,
            )
            outcome = on_feedback(state, obj, where, now, self.settings.max_waiting)
        if outcome.refused is not None:
            await self.out.dead_letter(ev, "feedback.join", outcome.refused)
            return
        batch.states[tid] = outcome.state
        batch.sources[tid].append(ev)
        if outcome.changed:
            batch.changed.add(tid)
            if isinstance(obj, InferenceTrace):  # with the feedback that waited for it
                lettered = {letter.waiting.feedback.event_id for letter in outcome.letters}
                joined = [f for f in waited if f.event_id not in lettered]
                self.exported(outcome.state, obj, metrics.get(tid), joined)
            else:
                self.exported(outcome.state, obj, None)
        batch.letters += [(letter, ev) for letter in outcome.letters]

    def exported(
        self,
        state: State | None,
        obj: InferenceTrace | FeedbackEvent,
        metrics: dict[str, Metric] | None,
        joined: list[FeedbackEvent] | None = None,
    ) -> None:
        """A new trace's online scores and the feedback that waited for it, or a new piece
        of feedback, to OpenTelemetry."""
        if self.evaluations is None or state is None or state.trace is None:
            return
        t = state.trace
        try:
            if isinstance(obj, InferenceTrace):
                self.evaluations.export(obj.trace_id, t.tenant, t.otel_traceparent, metrics)
            for feedback in [obj] if isinstance(obj, FeedbackEvent) else joined or []:
                self.evaluations.export(
                    obj.trace_id, t.tenant, t.otel_traceparent, feedback=feedback
                )
        except Exception:  # noqa: BLE001 - export never stops the join
            log.exception("could not export the evaluation of %s", obj.trace_id)

    async def correct(self, states: dict[str, State | None], changed: set[str]) -> None:
        """correction_similarity for traces whose latest correction is new."""
        pairs = {}
        for tid in changed:
            state = states[tid]
            if state is None or state.trace is None or state.trace.status != "ok":
                continue
            fix = state.correction()
            if fix and fix != state.scored_correction:
                pairs[tid] = (state.trace.answer, fix)
        scored = await _off_loop(self.scorer.corrections, pairs) if pairs else {}
        for tid, metric in scored.items():
            state = states[tid]
            assert state is not None
            state.metrics = {**state.metrics, "correction_similarity": metric}
            state.scored_correction = pairs[tid][1]

    async def publish(
        self, tid: str, state: State | None, events: list[EventT[Any]], changed: bool
    ) -> None:
        key = tid.encode()
        if changed and state is not None and state.trace is not None:
            out, outputs = self.out, self.outputs
            await out.send(events, outputs.results, key, result_of(state, tid).to_bytes())
            case = case_of(state, tid)
            case_key = f"{state.trace.tenant}/{tid}".encode()
            if case is not None:
                await out.send(events, outputs.cases, case_key, case.to_bytes())
                state.has_case = True
            elif state.has_case:  # the feedback that made it was changed: take it back
                await out.send(events, outputs.cases, case_key, None)
                state.has_case = False
        await self.save(key, state, events)

    # the sweep -------------------------------------------------------------------------
    async def sweep(self, recovered: bool = True) -> None:
        """The timer: warn about a stuck batch; once the table is back, expire what is due."""
        stuck = self.monotonic() - self.since
        if self.stage is not None and stuck > STUCK_S:
            log.warning("a batch has been %s for %.0f s", self.stage, stuck)
        if not recovered:
            return
        async with self.lock:
            await self.sweep_once()

    async def sweep_once(self) -> None:
        """Dead-letter feedback that waited too long for its trace, and forget traces past
        their time to live, on the partitions this worker owns."""
        mine = self.owned()
        if len(self.deadlines) != len(self.data):  # after a recovery: index what came back
            self.deadlines.clear()
            for key, raw in list(self.data.items()):
                self.deadlines[key] = deadline(State.from_bytes(raw), self.settings)
        now = self.clock()
        for key in [k for k, due in self.deadlines.items() if due <= now]:
            state = self.load(key)
            if state is None or state.partition not in mine:
                continue
            outcome = expire(state, now, self.settings.join_wait_s, self.settings.ttl_s)
            for letter in outcome.letters:
                # the letter must be on the broker before the state that held it goes
                await self.out.deliver_letter(letter_of(letter, self.settings.platform.dlq_values))
            kept = self.keep(key, outcome.state)
            await self.out.deliver(self.outputs.changelog, key, kept, partition=state.partition)

    async def warm(self) -> None:
        """Load the model before the first batch arrives."""
        await _off_loop(
            self.scorer.traces, {"warm": Answered("warm-up", "warm-up.", ["warm-up."], [])}
        )


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
