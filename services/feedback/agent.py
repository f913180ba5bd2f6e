"""The feedback agent: traces and feedback in (co-partitioned by trace id), results out.

Thin: decode, score a batch in one model call, apply the pure transitions of ``logic``, keep
each trace's state in a faust table (its changelog makes it survive a restart), publish.
An input is acknowledged only once what it produced is on the broker (``Deliveries``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import faust
from faust.types import EventT
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
from shared.delivery import Deliveries
from shared.embedder import Embedder
from shared.events import DeadLetter, DeadLetterValue, FeedbackEvent, InferenceTrace, Metric
from shared.faust_app import faust_topic, handle_isolating, make_app
from shared.kafka.dlq import dead_letter, dlq_headers
from shared.redact import DETECTORS, Redactor
from shared.topics import (
    EVAL_CASES,
    EVAL_RESULTS,
    FEEDBACK_DLQ,
    FEEDBACK_EVENTS,
    INFERENCE_COMPLETED,
)

log = logging.getLogger(__name__)


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

    def __init__(self, embedder: Embedder, threshold: float) -> None:
        self.embedder, self.threshold = embedder, threshold

    def traces(self, answers: dict[str, Answered]) -> dict[str, dict[str, Metric]]:
        """Metrics per trace id (blocking: call it off the event loop)."""
        try:
            vectors = encode_all(
                (t for a in answers.values() for t in texts_of(a)), self.embedder.encode
            )
            return {tid: score(a, vectors, self.threshold) for tid, a in answers.items()}
        except Exception as exc:  # noqa: BLE001 - say why on each trace instead
            log.exception("scoring failed")
            reason = f"scoring failed: {type(exc).__name__}: {exc}"[:300]
            return {tid: not_scored(reason) for tid in answers}

    def corrections(self, pairs: dict[str, tuple[str, str]]) -> dict[str, Metric]:
        """correction_similarity per trace id, from (answer, correction) pairs."""
        try:
            texts = [without_citations(t) for pair in pairs.values() for t in pair]
            vectors = encode_all([t for t in texts if t], self.embedder.encode)
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


def build_app(
    settings: FeedbackSettings, bootstrap: str, embedder: Embedder | None = None
) -> faust.App:
    """The feedback faust app; ``embedder`` may be shared with other services of the
    process."""
    app = make_app("feedback", settings.kafka, settings.platform, bootstrap)
    prefix = settings.kafka.topic_prefix
    traces_topic = INFERENCE_COMPLETED.name(prefix)
    feedback_topic = FEEDBACK_EVENTS.name(prefix)
    # one stream over both: a trace and its feedback land on the same partition number
    source = app.topic(traces_topic, feedback_topic, key_type=bytes, value_type=bytes)
    results = faust_topic(app, EVAL_RESULTS, prefix)
    cases = faust_topic(app, EVAL_CASES, prefix)
    dlq = faust_topic(app, FEEDBACK_DLQ, prefix)
    table = app.Table(
        "traces",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=INFERENCE_COMPLETED.partitions,
        help="Evaluation state per trace id: scores, feedback, feedback waiting for its trace.",
    )
    out = Deliveries(
        dlq,
        "feedback",
        settings.kafka.max_message_bytes,
        letter_values=settings.platform.dlq_values,
    )
    scorer = Scorer(embedder or Embedder(settings.model), settings.support_threshold)
    trace_ids = settings.platform.trace_ids()
    if settings.platform.trace_secret is None:
        log.info(
            "feedback: LLMOPS_TRACE_SECRET is unset; trace ids are checked with the secret kept "
            "in %s, so traces from an API that does not share that folder are dead-lettered "
            "(ForgedTraceId)",
            settings.platform.data_dir,
        )
    redactor = Redactor.named(DETECTORS)
    # the agent and the sweep both change states; each takes its turn whole
    lock = asyncio.Lock()
    deadlines: dict[bytes, float] = {}
    # where the batch in hand is, and since when: the sweep warns about one that is stuck
    busy: dict[str, Any] = {"stage": None, "since": 0.0}

    def at(stage: str | None) -> None:
        busy["stage"], busy["since"] = stage, time.monotonic()

    def load(key: bytes) -> State | None:
        raw = table.data.get(key)
        return None if raw is None else State.from_bytes(raw)

    changelog = table.changelog_topic

    def keep(key: bytes, state: State | None) -> bytes | None:
        """Change the table in memory; the changelog record to write (None: a tombstone)."""
        if state is None:
            if key in table.data:
                del table.data[key]
            deadlines.pop(key, None)
            return None
        raw = state.to_bytes()
        table.data[key] = raw
        deadlines[key] = deadline(state, settings)
        return raw

    async def save(key: bytes, state: State | None, events: list[EventT[Any]]) -> None:
        # The changelog record is an output like any other: its inputs are acknowledged only
        # once it is on the broker (faust's own table writes go through a buffer that its
        # commit does not always wait for, and a kill then lost the state). It goes to the
        # partition of its events: a batch holds several, so faust's "current event" would
        # name the wrong one.
        partition = events[0].message.partition
        await out.send(events, changelog, key, keep(key, state), partition=partition)

    async def off_loop(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def handle(events: list[EventT[Any]]) -> None:
        now = time.time()
        decoded: list[tuple[EventT[Any], InferenceTrace | FeedbackEvent]] = []
        for ev in events:
            raw = ev.message.value or b""
            try:
                model = InferenceTrace if ev.message.topic == traces_topic else FeedbackEvent
                record = model.from_bytes(raw)
            except ValidationError as exc:  # can never succeed
                await out.dead_letter(ev, "feedback.decode", exc)
                continue
            try:
                verify(record, trace_ids.issued_to, redactor.finds)
            except Refused as exc:
                await out.dead_letter(ev, "feedback.verify", exc)
                continue
            decoded.append((ev, record))
        # each trace's state, read once for the batch; updated as its events are applied
        states = {obj.trace_id: load(obj.trace_id.encode()) for _, obj in decoded}

        def scored_before(trace: InferenceTrace) -> bool:
            state = states[trace.trace_id]
            return bool(state and state.trace and state.trace.event_id == trace.event_id)

        # every new, sampled, answerable trace of the batch in one model call
        new = {
            t.trace_id: answered(t)
            for _, t in decoded
            if isinstance(t, InferenceTrace)
            and scorable(t) is None
            and sampled(t.trace_id, settings.sample_rate)
            and not scored_before(t)
        }
        at("scoring")
        metrics = await off_loop(scorer.traces, new) if new else {}
        at("joining")
        sources: dict[str, list[EventT[Any]]] = defaultdict(list)
        changed: set[str] = set()
        letters: list[tuple[Letter, EventT[Any]]] = []
        for ev, obj in decoded:
            tid = obj.trace_id
            state = states[tid]
            msg = ev.message
            if isinstance(obj, InferenceTrace):
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
                outcome = on_feedback(state, obj, where, now, settings.max_waiting)
            if outcome.refused is not None:
                await out.dead_letter(ev, "feedback.join", outcome.refused)
                continue
            states[tid] = outcome.state
            sources[tid].append(ev)
            if outcome.changed:
                changed.add(tid)
            letters += [(letter, ev) for letter in outcome.letters]
        at("scoring corrections")
        await correct(states, changed)
        at("sending")
        for letter, ev in letters:
            await out.forward(letter_of(letter, settings.platform.dlq_values), [ev])
        for tid in states:
            if sources.get(tid):  # not a trace whose only record was refused
                await publish(tid, states[tid], sources[tid], tid in changed)
        at(None)

    async def correct(states: dict[str, State | None], changed: set[str]) -> None:
        """correction_similarity for traces whose latest correction is new."""
        pairs = {}
        for tid in changed:
            state = states[tid]
            if state is None or state.trace is None or state.trace.status != "ok":
                continue
            fix = state.correction()
            if fix and fix != state.scored_correction:
                pairs[tid] = (state.trace.answer, fix)
        for tid, metric in (await off_loop(scorer.corrections, pairs) if pairs else {}).items():
            state = states[tid]
            assert state is not None
            state.metrics = {**state.metrics, "correction_similarity": metric}
            state.scored_correction = pairs[tid][1]

    async def publish(
        tid: str, state: State | None, events: list[EventT[Any]], changed: bool
    ) -> None:
        key = tid.encode()
        if changed and state is not None and state.trace is not None:
            await out.send(events, results, key, result_of(state, tid).to_bytes())
            case = case_of(state, tid)
            case_key = f"{state.trace.tenant}/{tid}".encode()
            if case is not None:
                await out.send(events, cases, case_key, case.to_bytes())
                state.has_case = True
            elif state.has_case:  # the feedback that made it was changed: take it back
                await out.send(events, cases, case_key, None)
                state.has_case = False
        await save(key, state, events)

    @app.agent(source, name="evaluate")
    async def evaluate(stream: faust.StreamT[Any]) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_size, within=settings.batch_wait_s
        )
        async for events in batches:
            at("waiting for the sweep")
            async with lock:
                at("decoding")
                # a record the logic chokes on is dead-lettered alone; the rest go on
                await handle_isolating(list(events), handle, out, "feedback")

    @app.timer(settings.sweep_interval_s)  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        stuck = time.monotonic() - busy["since"]
        if busy["stage"] is not None and stuck > 60:
            log.warning("a batch has been %s for %.0f s", busy["stage"], stuck)
        if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return
        async with lock:
            await sweep_once()

    async def sweep_once() -> None:
        mine = {tp.partition for tp in app.consumer.assignment() if tp.topic == feedback_topic}
        if len(deadlines) != len(table.data):  # after a recovery: index what came back
            deadlines.clear()
            for key, raw in list(table.data.items()):
                deadlines[key] = deadline(State.from_bytes(raw), settings)
        now = time.time()
        for key in [k for k, due in deadlines.items() if due <= now]:
            state = load(key)
            if state is None or state.partition not in mine:
                continue
            outcome = expire(state, now, settings.join_wait_s, settings.ttl_s)
            for letter in outcome.letters:
                # the letter must be on the broker before the state that held it goes
                dl = letter_of(letter, settings.platform.dlq_values)
                sent = await dlq.send(
                    key=dl.key.encode() if dl.key else None,
                    value=dl.to_bytes(),
                    headers=dlq_headers(dl),
                )
                await sent
            raw = keep(key, outcome.state)
            await (await changelog.send(key=key, value=raw, partition=state.partition))

    @app.task  # type: ignore[untyped-decorator]
    async def warm() -> None:
        await off_loop(scorer.traces, {"warm": Answered("warm-up", "warm-up.", ["warm-up."], [])})

    return app
