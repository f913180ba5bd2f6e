"""Event contracts. Producer and consumer import the same class; nothing else defines them.

Every event carries ``schema_version``, ``event_id`` and ``event_time``. Bump a model's
``SCHEMA_VERSION`` on an incompatible change; consumers reject versions they do not know.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Identifiers end up in Kafka keys, Qdrant payload filters and file names: keep them boring.
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DOC_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,254}$"
GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
# The characters of trace and case ids, declared once: a case made from feedback takes its
# trace's id, so every trace id must be a valid case id (a test checks it).
_ID_CHARS = "A-Za-z0-9_-"
TRACE_ID_PATTERN = rf"^[{_ID_CHARS}]{{8,128}}$"
CASE_ID_PATTERN = rf"^[{_ID_CHARS}][.{_ID_CHARS}]{{0,127}}$"
FEEDBACK_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
_GROUP_RE = re.compile(GROUP_PATTERN)
# Versions and filterable integers are stored as 64-bit signed integers (Qdrant's payload);
# a larger one would lock a document forever (nothing could be newer) or fail in the store.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Fixed namespace: chunk (point) ids must be the same on every machine and every run.
CHUNK_NAMESPACE = uuid.UUID("6f1c7f5e-3b9a-4c1e-9a57-2d0c4b8e9d11")


def chunk_id(tenant: str, doc_id: str, index: int) -> str:
    """The id of a document's chunk, and of its point in the vector store: a UUID from the
    tenant, the doc id and the chunk's index, derived by whoever needs it, never trusted
    from a record (one tenant's batch must not be able to name another tenant's point)."""
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{tenant}/{doc_id}#{index}"))


def check_groups(groups: list[str]) -> list[str]:
    """Sorted, distinct, valid group names; ValueError naming the first invalid one."""
    for g in groups:
        if not _GROUP_RE.match(g):
            raise ValueError(f"invalid group name {g!r} (expected {GROUP_PATTERN})")
    return sorted(set(groups))


def utcnow() -> datetime:
    """Timezone-aware now, the only clock events use."""
    return datetime.now(UTC)


def new_event_id() -> str:
    """A fresh event id."""
    return uuid.uuid4().hex


def record_key(event: Event) -> bytes:
    """The Kafka key an event is published under: its own ``key`` (``tenant/doc_id`` for a
    document, ``trace_id`` for a trace or feedback)."""
    return str(getattr(event, "key")).encode()  # noqa: B009 - every published event has one


def doc_key(tenant: str, doc_id: str) -> str:
    """Kafka key of every event about one document: its order matters, so one partition."""
    return f"{tenant}/{doc_id}"


class Event(BaseModel):
    """Base of every event on the bus."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SCHEMA_VERSION: ClassVar[int] = 1
    # Older versions a consumer still reads (their new fields take defaults).
    ALSO_READS: ClassVar[frozenset[int]] = frozenset()

    schema_version: int = Field(default=1, description="Version of this event's schema.")
    event_id: str = Field(default_factory=new_event_id, description="Unique id of this event.")
    event_time: datetime = Field(
        default_factory=utcnow, description="When the event happened at its source (UTC)."
    )

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != cls.SCHEMA_VERSION and v not in cls.ALSO_READS:
            raise ValueError(f"unsupported schema_version {v}, expected {cls.SCHEMA_VERSION}")
        return v

    @field_validator("event_time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    def to_bytes(self) -> bytes:
        """The wire form: UTF-8 JSON."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Self:
        """Parse the wire form; raises ``pydantic.ValidationError`` on anything else."""
        return cls.model_validate_json(raw)


class Op(StrEnum):
    """What a document event does."""

    UPSERT = "upsert"
    DELETE = "delete"


class ContentType(StrEnum):
    """Content types ingestion understands: three text types, carried as ``content``, and
    documents carried as bytes (``content_base64`` or ``content_uri``), converted to text by
    ingestion."""

    TEXT = "text/plain"
    MARKDOWN = "text/markdown"
    HTML = "text/html"
    PDF = "application/pdf"
    DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    PNG = "image/png"
    JPEG = "image/jpeg"
    TIFF = "image/tiff"

    @property
    def is_text(self) -> bool:
        """Whether the body is text (it may still come as bytes: UTF-8 is then required)."""
        return self in TEXT_TYPES


TEXT_TYPES = frozenset({ContentType.TEXT, ContentType.MARKDOWN, ContentType.HTML})
SHA256_PATTERN = r"^[0-9a-f]{64}$"


Tenant = Annotated[str, Field(pattern=TENANT_PATTERN, description="Tenant the data belongs to.")]
DocId = Annotated[
    str, Field(pattern=DOC_ID_PATTERN, description="Document id, unique within its tenant.")
]
Version = Annotated[
    int,
    Field(
        ge=0,
        le=INT64_MAX,
        description="Monotonic per document; an older version than one seen is dropped. "
        "At most 2**63-1 (a 64-bit integer).",
    ),
]
TraceId = Annotated[
    str, Field(pattern=TRACE_ID_PATTERN, description="Id of a trace (the API issues them).")
]


class DocumentEvent(Event):
    """An upstream system's document, or the deletion of one. Topic ``ingest.documents``.

    An upsert's body is exactly one of ``content`` (text), ``content_base64`` (bytes inline,
    within the event's size limit) or ``content_uri`` (bytes by reference, the claim check:
    ingestion fetches them and checks ``content_sha256``). Version 2 added the last three;
    version 1 events (text only) still read.
    """

    SCHEMA_VERSION: ClassVar[int] = 2
    ALSO_READS: ClassVar[frozenset[int]] = frozenset({1})

    schema_version: int = Field(default=2, description="Version of this event's schema.")
    op: Op = Field(default=Op.UPSERT, description="upsert or delete.")
    tenant: Tenant
    doc_id: DocId
    version: Version
    source: str = Field(default="", max_length=2048, description="Where the document came from.")
    title: str = Field(default="", max_length=1024, description="Human title, used in citations.")
    content: str = Field(default="", description="The body; required for an upsert.")
    content_type: ContentType = Field(
        default=ContentType.TEXT, description="How to read the body, whichever field holds it."
    )
    content_base64: str = Field(
        default="",
        description="The body as base64 (standard alphabet, padded): a PDF, an Office file, an "
        "image, or text in UTF-8. Counts toward the event's size limit.",
    )
    content_uri: str = Field(
        default="",
        max_length=4096,
        description="Where ingestion fetches the body (file://, http://, https://), for bodies "
        "too large to carry inline; only the schemes, folders and hosts its settings allow.",
    )
    content_sha256: str = Field(
        default="",
        description="SHA-256 of the body's bytes, hex. Required with content_uri; checked "
        "after the fetch (or the decoding), and a mismatch is dead-lettered.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form attributes, filterable at retrieval."
    )
    acl: list[str] = Field(
        default_factory=list,
        description="Groups that may read the document; empty means every group of the tenant.",
    )

    @field_validator("doc_id")
    @classmethod
    def _no_dot_segments(cls, v: str) -> str:
        # ids become paths in citations, file names and URLs: "a/../b" must not walk anywhere
        if any(part in (".", "..") for part in v.split("/")):
            raise ValueError(f"doc_id {v!r} has a '.' or '..' path segment")
        return v

    @field_validator("acl")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        return check_groups(v)

    @field_validator("content_sha256")
    @classmethod
    def _hex_digest(cls, v: str) -> str:
        if v and not re.match(SHA256_PATTERN, v):
            raise ValueError("content_sha256 must be 64 lowercase hex digits")
        return v

    @model_validator(mode="after")
    def _one_body(self) -> Self:
        bodies = [n for n in ("content", "content_base64", "content_uri") if getattr(self, n)]
        if len(bodies) > 1:
            raise ValueError(f"an event carries one body, got {' and '.join(bodies)}")
        if self.op is Op.DELETE:
            return self
        if not self.content_type.is_text and not (self.content_base64 or self.content_uri):
            raise ValueError(
                f"content_type {self.content_type.value} is bytes: send content_base64 or "
                "content_uri, not content"
            )
        if self.content_uri and not self.content_sha256:
            raise ValueError("content_uri needs content_sha256 (the fetched bytes are checked)")
        return self

    @property
    def by_reference(self) -> bool:
        """Whether ingestion must fetch the body."""
        return bool(self.content_uri)

    @property
    def key(self) -> str:
        """Kafka key: ``tenant/doc_id``."""
        return doc_key(self.tenant, self.doc_id)


class Chunk(BaseModel):
    """One piece of a document, sized for the embedding model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_id: str = Field(description="Deterministic id from tenant, doc_id and index (UUID form).")
    index: int = Field(ge=0, description="Position in the document, from 0.")
    text: str = Field(description="The chunk's text after normalisation and redaction.")
    content_hash: str = Field(description="SHA-256 of the text, hex.")
    token_count: int = Field(ge=0, description="Tokens by the embedding model's tokenizer.")
    char_start: int = Field(ge=0, description="Start offset in the normalised document text.")
    char_end: int = Field(ge=0, description="End offset (exclusive) in the normalised text.")
    heading: str = Field(
        default="",
        description="Heading path of the section the chunk starts in (Markdown, HTML and "
        "converted documents), e.g. 'Install › Linux'; indexed with the chunk, not cited.",
    )
    page: int | str | None = Field(
        default=None,
        description="Where in its document the chunk is: the page (PDF, TIFF) or slide (PPTX) "
        "number from 1, or the sheet's name (XLSX); null for text without pages. A chunk "
        "never spans two pages.",
    )


class ChunkBatch(Event):
    """One document version, chunked; or its deletion. Topic ``docs.chunks`` (compacted).

    Version 2 added each chunk's ``heading``; version 1 batches (the compacted topic keeps
    them) still read, their chunks indexed behind the title alone. Version 3 added each
    chunk's ``page``; older batches read with none.
    """

    SCHEMA_VERSION: ClassVar[int] = 3
    ALSO_READS: ClassVar[frozenset[int]] = frozenset({1, 2})

    schema_version: int = Field(default=3, description="Version of this event's schema.")

    op: Op
    tenant: Tenant
    doc_id: DocId
    version: Version
    source: str = ""
    title: str = ""
    content_type: ContentType = ContentType.TEXT
    metadata: dict[str, Any] = Field(default_factory=dict)
    acl: list[str] = Field(default_factory=list)
    chunks: list[Chunk] = Field(
        default_factory=list,
        description="Ordered; empty for a delete. Their indexes are 0, 1, 2, ... in order.",
    )
    redactions: dict[str, int] = Field(
        default_factory=dict, description="Personal data found and replaced, by detector."
    )
    source_event_id: str = Field(description="event_id of the DocumentEvent this came from.")
    source_event_time: datetime = Field(description="event_time of that DocumentEvent.")
    tokenizer: str = Field(default="", description="Tokenizer that counted the tokens.")

    @field_validator("acl")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        return check_groups(v)

    @model_validator(mode="after")
    def _indexes_in_order(self) -> Self:
        # a chunk's point id comes from its index: two chunks with one index would be one point
        bad = [c.index for i, c in enumerate(self.chunks) if c.index != i]
        if bad:
            raise ValueError(f"chunk indexes must be 0..{len(self.chunks) - 1} in order")
        return self

    @property
    def key(self) -> str:
        """Kafka key: ``tenant/doc_id``."""
        return doc_key(self.tenant, self.doc_id)


class DocumentIndexed(Event):
    """One document version is in the vector store (or gone from it). Topic ``docs.indexed``.

    ``event_time`` is when indexing finished; with ``source_event_time`` (upstream) and
    ``ingested_at`` (ingestion) it measures freshness end to end.
    """

    tenant: Tenant
    doc_id: DocId
    version: Version
    op: Op
    status: str = Field(
        description="indexed, unchanged (already stored exactly), deleted, stale (older than "
        "the stored version) or superseded (a newer version came in the same batch)."
    )
    chunk_count: int = Field(ge=0, description="Points the document has now.")
    chunks_encoded: int = Field(ge=0, description="Chunks that went through the model.")
    chunks_reused: int = Field(ge=0, description="Chunks whose stored vector was kept.")
    points_deleted: int = Field(ge=0, description="Points removed (stale chunks or a delete).")
    model: str = Field(description="Embedding model.")
    collection: str = Field(description="Qdrant collection written.")
    source_event_time: datetime = Field(description="event_time of the upstream DocumentEvent.")
    ingested_at: datetime = Field(description="When ingestion published the ChunkBatch.")

    @property
    def key(self) -> str:
        """Kafka key: ``tenant/doc_id``."""
        return doc_key(self.tenant, self.doc_id)


class RetrievedChunk(BaseModel):
    """A chunk an answer was grounded on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_id: str
    doc_id: str
    score: float = Field(
        description="Cosine similarity of the chunk to the question, whatever the ranking."
    )


# The endpoints whose traces hold an answer (the same answering path behind both).
ANSWERING_ENDPOINTS = ("query", "chat.completions")


class InferenceTrace(Event):
    """Everything about one answered (or failed) request. Topic ``inference.completed``.

    Version 2 added ``context`` (what the model was given) and ``groups``; version 3 the
    caller's ``user`` and ``otel_traceparent``. Versions 1 and 2 still read, with those empty.
    """

    SCHEMA_VERSION: ClassVar[int] = 3
    ALSO_READS: ClassVar[frozenset[int]] = frozenset({1, 2})

    schema_version: int = Field(default=3, description="Version of this event's schema.")
    trace_id: TraceId = Field(description="Id returned to the caller; the Kafka key.")
    tenant: Tenant
    api_key_id: str = Field(description="Which key asked (its id, never the key).")
    question: str = Field(description="The question after redaction of personal data.")
    retrieved: list[RetrievedChunk] = Field(default_factory=list)
    prompt_name: str = ""
    prompt_version: str = ""
    llm_mode: str = Field(
        default="", description="chat or completion: how the model was driven ('' before)."
    )
    model: str = ""
    answer: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings_ms: dict[str, float] = Field(
        default_factory=dict, description="embed, retrieve, generate, total."
    )
    status: str = Field(
        description="ok; error (the model failed, see error); cancelled (the caller went away "
        "and generation stopped); refused (the generation queue was full)."
    )
    error: str | None = None
    endpoint: str = Field(
        default="query",
        description="query, chat.completions (the OpenAI-compatible route) or retrieve.",
    )
    user: str | None = Field(
        default=None,
        description="The caller's own id of its end user (OpenAI's `user`), when it gave one; "
        "never personal data (refused with 400).",
    )
    otel_traceparent: str | None = Field(
        default=None,
        description="W3C traceparent of the request's OpenTelemetry span, when export is on: "
        "evaluations of the answer are exported under it.",
    )
    context: list[str] = Field(
        default_factory=list,
        description="The passages the model was given, in order: context[i] is what the answer "
        "cites as [i+1] and is retrieved[i]. Redacted at ingestion. Empty for retrieve.",
    )
    groups: list[str] = Field(
        default_factory=list, description="The asking key's groups (what it may read)."
    )

    @property
    def key(self) -> str:
        """Kafka key: ``trace_id``."""
        return self.trace_id

    @property
    def answered(self) -> bool:
        """A request that asked the model (``/v1/query`` or ``/v1/chat/completions``), not
        retrieval alone."""
        return self.endpoint in ANSWERING_ENDPOINTS


class FeedbackSource(StrEnum):
    """Who gave a piece of feedback."""

    USER = "user"
    ANNOTATOR = "annotator"
    APP = "app"
    CODE = "code"


class Thumbs(BaseModel):
    """Thumbs up or down."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["thumbs"] = "thumbs"
    thumbs: Literal["up", "down"]


class Score(BaseModel):
    """A number in a declared range, e.g. 4 of 1..5."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["score"] = "score"
    score: float = Field(allow_inf_nan=False)
    min: float = Field(default=0.0, allow_inf_nan=False, description="Lowest possible score.")
    max: float = Field(default=1.0, allow_inf_nan=False, description="Highest possible score.")

    @model_validator(mode="after")
    def _in_range(self) -> Self:
        if not self.min < self.max:
            raise ValueError(f"empty range: min {self.min} is not below max {self.max}")
        if not self.min <= self.score <= self.max:
            raise ValueError(f"score {self.score} is outside its range [{self.min}, {self.max}]")
        return self


class Label(BaseModel):
    """One label from a declared set, e.g. ``wrong_document`` of three."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["label"] = "label"
    label: str = Field(min_length=1, max_length=64)
    allowed: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=100, description="Every label this feedback name may take."
    )

    @model_validator(mode="after")
    def _declared(self) -> Self:
        if self.label not in self.allowed:
            raise ValueError(f"label {self.label!r} is not one of {self.allowed}")
        return self


FeedbackValue = Annotated[Thumbs | Score | Label, Field(discriminator="type")]


class FeedbackEvent(Event):
    """A person's (or a program's) judgement of one answer. Topic ``feedback.events``, keyed
    by ``trace_id`` like ``inference.completed``, so the two join partition by partition.

    One score per (trace, name, author): a later event for the same three replaces it.
    """

    trace_id: TraceId = Field(description="The trace it judges.")
    tenant: Tenant
    author: str = Field(
        min_length=1,
        max_length=256,
        description="Who: the API key's id, or key id/user id when an app passes its user.",
    )
    source: FeedbackSource = Field(default=FeedbackSource.USER, description="Kind of author.")
    name: str = Field(
        default="helpful", pattern=FEEDBACK_NAME_PATTERN, description="What is judged."
    )
    value: FeedbackValue
    comment: str | None = Field(default=None, max_length=4000, description="Free text.")
    correction: str | None = Field(
        default=None, max_length=20000, description="The answer that should have been given."
    )

    @property
    def key(self) -> str:
        """Kafka key: ``trace_id``."""
        return self.trace_id

    @property
    def down(self) -> bool | None:
        """True for a thumbs-down, False for a thumbs-up, None for other kinds."""
        return self.value.thumbs == "down" if isinstance(self.value, Thumbs) else None


class Metric(BaseModel):
    """One online metric: a value, or the reason it could not be computed (never a NaN)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None = Field(default=None, allow_inf_nan=False)
    missing: str | None = Field(default=None, description="Why there is no value.")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.value is None) == (self.missing is None):
            raise ValueError("a metric has either a value or a reason it is missing")
        return self


class JoinedFeedback(BaseModel):
    """Feedback as an evaluation result carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feedback_id: str = Field(description="event_id of the FeedbackEvent.")
    author: str
    source: FeedbackSource
    name: str
    value: FeedbackValue
    comment: str | None = None
    correction: str | None = None
    given_at: datetime = Field(description="event_time of the FeedbackEvent.")


class EvalResult(Event):
    """The online evaluation of one trace, with the feedback joined so far. Topic
    ``eval.results``, keyed by ``trace_id``: the latest record of a trace is its state."""

    trace_id: str
    tenant: Tenant
    prompt_name: str = ""
    prompt_version: str = ""
    model: str = ""
    llm_mode: str = ""
    trace_status: str = Field(description="The trace's status (ok, error, cancelled, refused).")
    trace_time: datetime = Field(description="event_time of the trace.")
    metrics: dict[str, Metric] = Field(
        default_factory=dict, description="Every online metric: its value or why it is missing."
    )
    feedback: list[JoinedFeedback] = Field(
        default_factory=list, description="The latest feedback per (name, author)."
    )
    history: list[JoinedFeedback] = Field(
        default_factory=list,
        description="Feedback that a later one of the same name and author replaced, oldest first.",
    )
    evaluator_version: str = Field(description="Version of the metrics' code.")

    @property
    def key(self) -> str:
        """Kafka key: ``trace_id``."""
        return self.trace_id


class EvalCase(Event):
    """A question worth keeping, with what the answer should have been. Topic ``eval.cases``
    (compacted), keyed by ``tenant/case_id``; the same JSON, one per line, is a cases file."""

    tenant: Tenant
    case_id: str = Field(
        pattern=CASE_ID_PATTERN,
        description="Unique within the tenant (a case from feedback takes its trace id).",
    )
    question: str = Field(min_length=1)
    expected_answer: str | None = Field(
        default=None, description="The answer that should be given (a correction)."
    )
    expected_docs: list[str] = Field(
        default_factory=list, description="Documents an answer should cite."
    )
    groups: list[str] = Field(default_factory=list, description="Groups the question is asked as.")
    needs_review: bool = Field(
        default=False, description="No expected answer yet: a person should write one."
    )
    source_trace_id: TraceId | None = Field(default=None, description="The trace it came from.")
    feedback_ids: list[str] = Field(default_factory=list, description="The feedback behind it.")

    @property
    def key(self) -> str:
        """Kafka key: ``tenant/case_id``."""
        return f"{self.tenant}/{self.case_id}"


DeadLetterValue = Literal["raw", "redacted", "omitted"]


class SyncRecord(Event):
    """What ``llmops sync`` last published for one file of a source. Topic ``ingest.sync``
    (compacted, keyed ``source|path``; a file gone from its source is a tombstone), so a
    sync from another machine, or after its local state is lost, knows what the index holds
    without publishing everything again or missing a delete."""

    source: str = Field(max_length=2048, description="The source's id (its URI by default).")
    path: str = Field(max_length=4096, description="The file's path in the source, with '/'.")
    tenant: Tenant
    doc_id: DocId
    acl: list[str] = Field(default_factory=list)
    version: Version
    sha256: str = Field(pattern=SHA256_PATTERN, description="SHA-256 of the file published.")
    size: int = Field(ge=0, description="Its size in bytes then: the cheap first check.")
    mtime_ns: int = Field(description="Its modification time then, in nanoseconds.")

    @property
    def key(self) -> str:
        """Kafka key: ``source|path``."""
        return sync_key(self.source, self.path)


def sync_key(source: str, path: str) -> str:
    """The key of a file's SyncRecord (a source id holds no '|' of its own meaning)."""
    return f"{source}|{path}"


class DeadLetter(Event):
    """An input that a stage could not process, with where it came from and why.

    Version 2 added ``value_form``: a letter's value is redacted by default
    (LLMOPS_DLQ_VALUES), since a dead-letter topic keeps what nobody processed, personal data
    included. Version 1 letters (raw values) still read.
    """

    SCHEMA_VERSION: ClassVar[int] = 2
    ALSO_READS: ClassVar[frozenset[int]] = frozenset({1})

    schema_version: int = Field(default=2, description="Version of this event's schema.")
    topic: str = Field(description="Topic the original record was read from.")
    partition: int = Field(description="Its partition.")
    offset: int = Field(description="Its offset.")
    key: str | None = Field(description="Its key, UTF-8 decoded with replacement.")
    value_b64: str = Field(
        description="Its value, base64: byte for byte (raw), with personal data replaced "
        "(redacted), or empty (omitted); read it whole at its offset while the topic keeps it."
    )
    value_form: DeadLetterValue = Field(
        default="raw", description="What value_b64 holds: raw, redacted or omitted."
    )
    stage: str = Field(description="Service and step that failed, e.g. ingestion.validate.")
    error_type: str = Field(description="Machine-readable reason, e.g. InvalidJSON, TooLarge.")
    error_message: str = Field(description="Human-readable reason (personal data redacted).")
    failed_at: datetime = Field(default_factory=utcnow, description="When the stage gave up.")


METRIC_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,99}$"
LABEL_NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,63}$"


class MetricKind(StrEnum):
    """What a metric point's figures mean."""

    COUNTER = "counter"  # count: how many in the window
    DISTRIBUTION = "distribution"  # count, sum, min, max and quantiles of observed values
    RATIO = "ratio"  # value = sum / count: the share of the window's events that matched
    GAUGE = "gauge"  # value: a level sampled in the window (the last one)


def series_key(name: str, labels: dict[str, str]) -> str:
    """One series of a metric: its name and its labels in order, as Prometheus writes it."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


class MetricPoint(Event):
    """One metric of one series over one closed event-time window. Topic
    ``monitoring.metrics``, keyed by the series (name and labels)."""

    name: str = Field(pattern=METRIC_NAME_PATTERN, description="e.g. inference_latency_ms.")
    kind: MetricKind
    labels: dict[str, str] = Field(
        default_factory=dict, description="tenant, endpoint, stage, status, ... as they apply."
    )
    window_start: datetime = Field(description="Start of the window (event time, inclusive).")
    window_end: datetime = Field(description="End of the window (event time, exclusive).")
    count: int = Field(ge=0, description="Events (or observations) in the window.")
    value: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="The figure rules read by default: count for a counter, sum/count for a "
        "ratio, the level for a gauge, the mean for a distribution.",
    )
    sum: float | None = Field(default=None, allow_inf_nan=False)
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)
    p50: float | None = Field(default=None, allow_inf_nan=False)
    p95: float | None = Field(default=None, allow_inf_nan=False)
    p99: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not re.match(LABEL_NAME_PATTERN, k)]
        if bad:
            raise ValueError(f"label names must match {LABEL_NAME_PATTERN}: {bad}")
        return v

    @property
    def key(self) -> str:
        """Kafka key: the series, e.g. ``inference_requests{endpoint="query",tenant="acme"}``."""
        return series_key(self.name, self.labels)


class AlertState(StrEnum):
    """What an alert record says; pending alerts are not published."""

    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(Event):
    """A transition of one alert (a rule and the labels of one series). Topic
    ``monitoring.alerts``, keyed by fingerprint; ``event_time`` is the event time of the window
    that caused it, so a replay gives the same records."""

    fingerprint: str = Field(description="Hash of the rule name and the alert's labels.")
    rule: str
    state: AlertState
    severity: str
    labels: dict[str, str] = Field(description="The series' labels, the rule's, alertname.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="summary, description and runbook_url, rendered."
    )
    value: float | None = Field(
        default=None, allow_inf_nan=False, description="The value that last matched, if any."
    )
    starts_at: datetime = Field(description="When it started firing (event time).")
    ends_at: datetime | None = Field(default=None, description="When it resolved.")

    @property
    def key(self) -> str:
        """Kafka key: the fingerprint."""
        return self.fingerprint


EVENT_MODELS: dict[str, type[Event]] = {
    m.__name__: m
    for m in (
        DocumentEvent,
        ChunkBatch,
        DocumentIndexed,
        InferenceTrace,
        FeedbackEvent,
        EvalResult,
        EvalCase,
        DeadLetter,
        MetricPoint,
        Alert,
        SyncRecord,
    )
}
