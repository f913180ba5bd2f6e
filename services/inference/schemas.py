"""The API's request and response bodies: typed, so the OpenAPI page documents every one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from shared.contracts.events import (
    FEEDBACK_NAME_PATTERN,
    INT64_MAX,
    INT64_MIN,
    TRACE_ID_PATTERN,
    FeedbackSource,
    FeedbackValue,
)
from shared.store.base import SearchMode

FilterKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]
# Strict: `0` is not `false`, and `"5"` is not `5`. No floats: the store matches exact
# keywords, integers and booleans only; integers are the store's, 64-bit signed.
FilterInt = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
FilterScalar = StrictStr | FilterInt | StrictBool
FilterValue = FilterScalar | list[StrictStr] | list[FilterInt]


class RetrieveRequest(BaseModel):
    """Retrieval only. Tenant and groups come from the API key, never from the body."""

    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(min_length=1, description="What to search for.")
    top_k: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Results: documents for /v1/retrieve (each its best chunk), chunks to "
        "choose the context from for /v1/query.",
    )
    filters: dict[FilterKey, FilterValue] | None = Field(
        default=None,
        description="Equality filters on document metadata fields: a string, an integer or a "
        "boolean, or a list of strings or of integers (any of them matches).",
    )
    mode: SearchMode | None = Field(
        default=None,
        description="Ranking: dense (the embedding), sparse (BM25 keywords) or hybrid (both, "
        "fused); unset: the server's INFERENCE_RETRIEVAL_MODE.",
    )


class QueryRequest(RetrieveRequest):
    """A question to answer with retrieval-augmented generation."""

    prompt: StrictStr | None = Field(
        default=None, description="Prompt name, name/version, or a version of the default."
    )
    stream: StrictBool = Field(
        default=False, description="Server-Sent Events: tokens, then a final event."
    )
    include_context: StrictBool = Field(
        default=False,
        description="Also return the passages the model was given, whole (offline evaluation "
        "scores answers against them).",
    )


class Citation(BaseModel):
    """A source of the answer, numbered as in the context the model saw."""

    n: int = Field(description="The number the answer cites it by, as [n].")
    doc_id: str = Field(description="Document it comes from.")
    title: str = Field(description="The document's title.")
    chunk_id: str = Field(description="The chunk's stable id.")
    page: int | str | None = Field(
        default=None,
        description="Where the chunk is in its document: the page (PDF, TIFF) or slide "
        "(PPTX) number from 1, or the sheet's name (XLSX); null for text without pages.",
    )
    rank_score: float = Field(
        description="The ranking's own score: cosine similarity (dense), BM25 (sparse) or the "
        "fused score (hybrid). Results are in its order, best first; it is not comparable "
        "across modes (a fused score of 2 is not twice as similar)."
    )
    similarity: float = Field(
        description="Cosine similarity of the chunk to the question, in every mode: what "
        "INFERENCE_SCORE_THRESHOLD applies to, what traces keep and monitoring reports."
    )
    snippet: str = Field(description="The chunk's first characters.")


class RetrievedChunk(Citation):
    """A retrieved chunk with its whole text."""

    text: str = Field(description="The chunk's text (already redacted at ingestion).")


Timings = dict[str, float]


class RetrieveResponse(BaseModel):
    """The chunks the key's tenant and groups may read, best first: one per document (its
    best chunk), so that top_k documents come back."""

    trace_id: str = Field(description="Id of this request's trace on inference.completed.")
    timings_ms: Timings = Field(description="Milliseconds per stage: embed, retrieve, total.")
    chunks: list[RetrievedChunk]


class PromptRef(BaseModel):
    """Which prompt template answered."""

    name: str
    version: str
    mode: Literal["chat", "completion"] = Field(
        description="How the model was driven: chat (its chat template) or completion."
    )


class Usage(BaseModel):
    """Tokens by the model's tokenizer."""

    prompt_tokens: int
    completion_tokens: int


class QueryResponse(BaseModel):
    """An answer with its citations; also the data of the final `done` event of a stream."""

    answer: str
    citations: list[Citation]
    trace_id: str = Field(description="Id of this request's trace on inference.completed.")
    prompt: PromptRef
    model: str = Field(description="The model that generated the answer.")
    usage: Usage
    timings_ms: Timings = Field(
        description="Milliseconds per stage: embed, retrieve, first_token, generate, total."
    )
    context: list[str] | None = Field(
        default=None,
        description="With include_context: the passages the model was given; context[i] is "
        "cited as [i+1].",
    )


class FeedbackRequest(BaseModel):
    """Feedback on an answer, named by the trace id the answer came with."""

    model_config = ConfigDict(extra="forbid")

    trace_id: StrictStr = Field(pattern=TRACE_ID_PATTERN, description="From /v1/query.")
    name: StrictStr = Field(
        default="helpful", pattern=FEEDBACK_NAME_PATTERN, description="What is judged."
    )
    value: FeedbackValue = Field(
        description='One typed value: {"type": "thumbs", "thumbs": "up"|"down"}, '
        '{"type": "score", "score": 4, "min": 1, "max": 5}, or '
        '{"type": "label", "label": "outdated", "allowed": ["outdated", "wrong_doc"]}.'
    )
    comment: StrictStr | None = Field(default=None, max_length=4000)
    correction: StrictStr | None = Field(
        default=None, max_length=20000, description="The answer that should have been given."
    )
    user: StrictStr | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._@:-]{1,128}$",
        description="The app's own user id, opaque (one that holds personal data, an e-mail "
        "address say, is refused with 422); the author becomes key id/user id.",
    )
    source: FeedbackSource = Field(
        default=FeedbackSource.USER, description="user, annotator, app or code."
    )


class FeedbackAccepted(BaseModel):
    """The feedback is stored on feedback.events."""

    feedback_id: str = Field(description="event_id of the FeedbackEvent.")
    trace_id: str
    author: str


class StreamError(BaseModel):
    """Data of the `error` event that ends a stream whose generation failed."""

    status: int = Field(description="The HTTP status the same failure gets without streaming.")
    detail: str
    trace_id: str


class FieldError(BaseModel):
    """One problem with a request body. The offending input is not echoed back."""

    type: str = Field(description="Kind of problem, e.g. missing, int_type, extra_forbidden.")
    loc: list[str | int] = Field(description="Where it is: body, then the field path.")
    msg: str = Field(description="What is wrong.")


class ErrorBody(BaseModel):
    """Every error: a reason, or for a malformed body the list of problems."""

    detail: str | list[FieldError]


class Health(BaseModel):
    """The process is alive."""

    status: str = "ok"


class Readiness(BaseModel):
    """Ready when the broker, the vector store and the model are."""

    ready: bool
    checks: dict[str, bool]
    generations: dict[str, int] = Field(
        description="The generation queue: in_flight (running or waiting), limit (more are "
        "refused with 503), refused (so far)."
    )
    telemetry: dict[str, int] | None = Field(
        default=None,
        description="OpenTelemetry export, when it is on: spans exported and spans the "
        "collector did not take (a collector that is down shows here, never in answers).",
    )
