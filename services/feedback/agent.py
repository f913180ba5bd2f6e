"""The feedback agent: traces and feedback in (co-partitioned by trace id), results out.

Thin: it wires faust's topics, table and timers to the ``FeedbackJoin`` (see ``worker``),
which decodes, scores, joins and publishes, acknowledging an input only once what it
produced is on the broker.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from services.feedback.otel import Evaluations
from services.feedback.settings import FeedbackSettings
from services.feedback.worker import FeedbackJoin, Outputs, Scorer
from shared.contracts.topics import (
    EVAL_CASES,
    EVAL_RESULTS,
    FEEDBACK_DLQ,
    FEEDBACK_EVENTS,
    INFERENCE_COMPLETED,
)
from shared.kafka.faust_app import dead_letters, faust_topic, make_app
from shared.models.embedder import Embedder
from shared.otel import tracing

log = logging.getLogger(__name__)


def say_which_secret(settings: FeedbackSettings) -> None:
    """Log, at start, that trace ids are checked with a secret of this service's own folder."""
    if settings.platform.trace_secret is None:
        log.info(
            "feedback: LLMOPS_TRACE_SECRET is unset; trace ids are checked with the secret kept "
            "in %s, so traces from an API that does not share that folder are dead-lettered "
            "(ForgedTraceId)",
            settings.platform.data_dir,
        )


def build_app(
    settings: FeedbackSettings, bootstrap: str, embedder: Embedder | None = None
) -> faust.App:
    """The feedback faust app; ``embedder`` may be shared with other services of the
    process."""
    app = make_app("feedback", settings.kafka, settings.platform, bootstrap)
    prefix = settings.kafka.topic_prefix
    traces_topic = INFERENCE_COMPLETED.name(prefix)
    feedback_topic = FEEDBACK_EVENTS.name(prefix)
    table = app.Table(
        "traces",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=INFERENCE_COMPLETED.partitions,
        help="Evaluation state per trace id: scores, feedback, feedback waiting for its trace.",
    )
    out = dead_letters(app, FEEDBACK_DLQ, "feedback", settings.kafka, settings.platform)
    outputs = Outputs(
        results=faust_topic(app, EVAL_RESULTS, prefix),
        cases=faust_topic(app, EVAL_CASES, prefix),
        changelog=table.changelog_topic,
    )
    model = embedder or Embedder(settings.model)
    say_which_secret(settings)
    traced = tracing("feedback", settings.platform.otel_capture_content)
    join = FeedbackJoin(
        settings,
        Scorer(model.encode, settings.support_threshold),
        out,
        outputs,
        table.data,
        traces_topic,
        owned=lambda: {
            tp.partition for tp in app.consumer.assignment() if tp.topic == feedback_topic
        },
        trace_ids=settings.platform.trace_ids(),
        evaluations=Evaluations(traced) if traced else None,
    )
    # one stream over both: a trace and its feedback land on the same partition number
    source = app.topic(traces_topic, feedback_topic, key_type=bytes, value_type=bytes)

    @app.agent(source, name="evaluate")
    async def evaluate(stream: faust.StreamT[Any]) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_size, within=settings.batch_wait_s
        )
        async for events in batches:
            await join.take(list(events))

    @app.timer(settings.sweep_interval_s)  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        await join.sweep(recovered=app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]

    app.task(join.warm)
    return app
