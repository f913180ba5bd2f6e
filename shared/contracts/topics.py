"""Every topic of the platform, declared once: name, partitions, cleanup, retention, schema.

Services refer to topics through ``TOPICS`` (or the constants below) and resolve the
physical name with ``Topic.name(prefix)``; the prefix isolates tests and shared clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.contracts.events import (
    Alert,
    ChunkBatch,
    DeadLetter,
    DocumentEvent,
    DocumentIndexed,
    EvalCase,
    EvalResult,
    Event,
    FeedbackEvent,
    InferenceTrace,
    MetricPoint,
    SyncRecord,
)

DAY_MS = 24 * 3600 * 1000
# The record size every topic accepts by default (KAFKA_MAX_MESSAGE_BYTES overrides it).
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Topic:
    """A topic's contract."""

    base_name: str
    partitions: int
    value_model: type[Event]
    key: str
    description: str
    cleanup_policy: str = "delete"
    retention_ms: int = 7 * DAY_MS
    extra_config: dict[str, str] = field(default_factory=dict)
    # who writes and who reads it: services by name, and the platform's edges (upstream
    # systems, `llmops` commands, on-call tools); the AsyncAPI document says it
    senders: tuple[str, ...] = ()
    receivers: tuple[str, ...] = ()

    def name(self, prefix: str = "") -> str:
        """Physical topic name under a prefix."""
        return f"{prefix}{self.base_name}"

    def config(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, str]:
        """Broker-side topic configuration."""
        cfg = {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(max_message_bytes),
        }
        cfg.update(self.extra_config)
        return cfg


INGEST_DOCUMENTS = Topic(
    base_name="ingest.documents",
    partitions=4,
    value_model=DocumentEvent,
    key="tenant/doc_id",
    description="Document upserts and deletes from upstream systems.",
    senders=("upstream systems", "llmops sync", "llmops ingest"),
    receivers=("ingestion", "monitoring"),
)
DOCS_CHUNKS = Topic(
    base_name="docs.chunks",
    partitions=4,
    value_model=ChunkBatch,
    key="tenant/doc_id",
    description="One chunked batch per document version, or a delete. Compacted: the latest "
    "version of every document can be replayed into a new index.",
    cleanup_policy="compact",
    retention_ms=-1,
    extra_config={"min.compaction.lag.ms": str(60 * 60 * 1000)},
    senders=("ingestion",),
    receivers=("embedding", "monitoring", "llmops reindex"),
)
INGEST_DLQ = Topic(
    base_name="ingest.dlq",
    partitions=1,
    value_model=DeadLetter,
    key="original key",
    description="Document events ingestion could not process, with the reason and offset.",
    retention_ms=30 * DAY_MS,
    senders=("ingestion",),
    receivers=("monitoring", "operators"),
)
INGEST_SYNC = Topic(
    base_name="ingest.sync",
    partitions=1,
    value_model=SyncRecord,
    key="source|path",
    description="What `llmops sync` last published for each file of each source (a "
    "tombstone once deleted). Compacted: any machine can resume a source's sync from it.",
    cleanup_policy="compact",
    retention_ms=-1,
    senders=("llmops sync",),
    receivers=("llmops sync",),
)

DOCS_INDEXED = Topic(
    base_name="docs.indexed",
    partitions=4,
    value_model=DocumentIndexed,
    key="tenant/doc_id",
    description="One record per document version written to (or removed from) the vector "
    "store, with the times that measure freshness.",
    senders=("embedding",),
    receivers=("monitoring",),
)
EMBEDDING_DLQ = Topic(
    base_name="embedding.dlq",
    partitions=1,
    value_model=DeadLetter,
    key="original key",
    description="Chunk batches the embedding service can never index, with the reason.",
    retention_ms=30 * DAY_MS,
    senders=("embedding",),
    receivers=("monitoring", "operators"),
)

INFERENCE_COMPLETED = Topic(
    base_name="inference.completed",
    partitions=4,
    value_model=InferenceTrace,
    key="trace_id",
    description="A trace of every inference request: question, chunks, prompt, answer, "
    "tokens, timings, status.",
    retention_ms=14 * DAY_MS,
    senders=("inference",),
    receivers=("feedback", "monitoring"),
)

FEEDBACK_EVENTS = Topic(
    base_name="feedback.events",
    partitions=INFERENCE_COMPLETED.partitions,  # co-partitioned: they join without a shuffle
    value_model=FeedbackEvent,
    key="trace_id",
    description="Feedback on answers (thumbs, scores, labels, corrections), from the API, "
    "apps and people.",
    retention_ms=30 * DAY_MS,
    senders=("inference", "apps"),
    receivers=("feedback", "monitoring"),
)
FEEDBACK_DLQ = Topic(
    base_name="feedback.dlq",
    partitions=1,
    value_model=DeadLetter,
    key="original key",
    description="Feedback that cannot join its trace (none came in time, another tenant's) "
    "and records the feedback service cannot read, with the reason.",
    retention_ms=30 * DAY_MS,
    senders=("feedback",),
    receivers=("monitoring", "operators"),
)
EVAL_RESULTS = Topic(
    base_name="eval.results",
    partitions=INFERENCE_COMPLETED.partitions,
    value_model=EvalResult,
    key="trace_id",
    description="Online evaluation of each answer, with the feedback joined so far; the "
    "latest record of a trace is its state.",
    retention_ms=30 * DAY_MS,
    senders=("feedback",),
    receivers=("monitoring", "llmops eval"),
)
EVAL_CASES = Topic(
    base_name="eval.cases",
    partitions=1,
    value_model=EvalCase,
    key="tenant/case_id",
    description="Regression cases from corrections and thumbs-down. Compacted: the latest "
    "version of every case is kept; a deleted case is a tombstone.",
    cleanup_policy="compact",
    retention_ms=-1,
    senders=("feedback",),
    receivers=("llmops eval",),
)
MONITORING_METRICS = Topic(
    base_name="monitoring.metrics",
    partitions=1,
    value_model=MetricPoint,
    key="series (name and labels)",
    description="Windowed metrics of every topic above, one record per series and closed "
    "event-time window.",
    retention_ms=30 * DAY_MS,
    senders=("monitoring",),
    receivers=("on-call tools",),
)
MONITORING_ALERTS = Topic(
    base_name="monitoring.alerts",
    partitions=1,
    value_model=Alert,
    key="fingerprint",
    description="Alert transitions (firing, resolved, and repeats of long-firing alerts) as "
    "the alert rules decide them at each window's close.",
    retention_ms=90 * DAY_MS,
    senders=("monitoring",),
    receivers=("on-call tools",),
)
MONITORING_DLQ = Topic(
    base_name="monitoring.dlq",
    partitions=1,
    value_model=DeadLetter,
    key="original key",
    description="Records the monitoring service cannot read, with the reason and offset.",
    retention_ms=30 * DAY_MS,
    senders=("monitoring",),
    receivers=("monitoring", "operators"),
)

TOPICS: tuple[Topic, ...] = (
    INGEST_DOCUMENTS,
    DOCS_CHUNKS,
    INGEST_DLQ,
    INGEST_SYNC,
    DOCS_INDEXED,
    EMBEDDING_DLQ,
    INFERENCE_COMPLETED,
    FEEDBACK_EVENTS,
    FEEDBACK_DLQ,
    EVAL_RESULTS,
    EVAL_CASES,
    MONITORING_METRICS,
    MONITORING_ALERTS,
    MONITORING_DLQ,
)
