"""The API's routes: HTTP in and out, nothing else (the logic is in ``answering``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from services.inference.answering import (
    Answering,
    Generation,
    GenerationFailed,
    ModelNotLoaded,
    Overloaded,
    QuestionTooLong,
)
from services.inference.auth import ApiKey
from services.inference.deps import (
    AnsweringDep,
    FeedbackKey,
    FeedbackPublisherDep,
    QueryKey,
    RetrieveKey,
)
from services.inference.prompts import PromptNotFound
from services.inference.schemas import (
    ErrorBody,
    FeedbackAccepted,
    FeedbackRequest,
    Health,
    QueryRequest,
    QueryResponse,
    Readiness,
    RetrieveRequest,
    RetrieveResponse,
    StreamError,
)
from services.inference.traces import PublishFailed
from shared.contracts.events import FeedbackEvent

router = APIRouter()
# How often a non-streaming answer checks that its caller is still there.
DISCONNECT_POLL_S = 0.25


def _errors(**codes: str) -> dict[int | str, dict[str, Any]]:
    return {int(code[1:]): {"model": ErrorBody, "description": why} for code, why in codes.items()}


_AUTH = _errors(
    e400="The body is not UTF-8 JSON.",
    e401="Missing or unknown API key.",
    e403="The key may not do this.",
    e413="Body or question too large.",
    e422="Malformed body, a field over the server's limit (top_k), (query) no such prompt, "
    "or (feedback) a user id that holds personal data.",
    e429="Over the key's rate limit; see Retry-After.",
)

_SSE = {
    "text/event-stream": {
        # the schema of one event
        "schema": {
            "type": "object",
            "description": "With `stream: true`: `token` events, then one `done` event or one "
            "`error` event.",
            "properties": {
                "event": {"type": "string", "enum": ["token", "done", "error"]},
                "data": {
                    "type": "string",
                    "description": "JSON: {text} for a token, a QueryResponse for done, a "
                    "StreamError for error.",
                },
            },
            "required": ["event", "data"],
        }
    }
}


def _status(exc: GenerationFailed) -> int:
    return 503 if exc.unavailable else 502


@router.get("/healthz", response_model=Health, summary="Alive", tags=["health"])
async def healthz() -> Health:
    """Alive."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: see which check failed."}},
    summary="Ready to serve",
    tags=["health"],
)
async def readyz(answering: AnsweringDep) -> JSONResponse:
    """Ready when the broker, the vector store and the model are."""
    checks = await run_in_threadpool(answering.checks)
    ok = all(checks.values())
    q = answering.queue
    body = Readiness(
        ready=ok,
        checks=checks,
        generations={
            "in_flight": q.in_flight,
            "limit": q.concurrency + q.max_queued,
            "refused": q.refused,
        },
        telemetry=None
        if answering.spans is None
        else {
            "exported": answering.spans.tracing.exporter.exported,
            "failed": answering.spans.tracing.exporter.failed,
        },
    )
    return JSONResponse(body.model_dump(), 200 if ok else 503)


@router.post(
    "/v1/retrieve",
    response_model=RetrieveResponse,
    responses=_AUTH,
    summary="Retrieve chunks",
    tags=["rag"],
)
async def retrieve_route(
    req: RetrieveRequest, key: RetrieveKey, answering: AnsweringDep
) -> RetrieveResponse:
    """Retrieval only: the chunks the key's tenant and groups may read."""
    try:
        return await answering.retrieve(req, key)
    except QuestionTooLong as exc:
        raise HTTPException(413, str(exc)) from exc


@router.post(
    "/v1/query",
    response_model=QueryResponse,
    responses={
        200: {"content": _SSE, "description": "The answer, as JSON or as a stream of events."},
        **_AUTH,
        **_errors(
            e502="The language model failed.",
            e503="The language model is down, not loaded or timed out.",
        ),
    },
    summary="Answer a question",
    tags=["rag"],
)
async def query_route(
    req: QueryRequest, key: QueryKey, answering: AnsweringDep, request: Request
) -> Any:
    """Answer with citations; ``stream: true`` sends Server-Sent Events.

    A question the model cannot take in time is refused at once (503 with Retry-After) rather
    than left to time out; a caller who goes away stops the generation.
    """
    try:
        gen = await answering.prepare(req, key)
    except QuestionTooLong as exc:
        raise HTTPException(413, str(exc)) from exc
    except ModelNotLoaded as exc:
        raise HTTPException(503, str(exc)) from exc
    except PromptNotFound as exc:
        raise HTTPException(422, str(exc)) from exc
    except Overloaded as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from exc
    if req.stream:
        return GenerationStream(gen)
    try:
        if not await generate_while_connected(request, gen):
            return Response(status_code=499)  # nobody is listening any more
        return gen.finish()
    except GenerationFailed as exc:
        raise HTTPException(_status(exc), exc.reason) from exc
    finally:
        gen.abandon()  # a no-op once the answer is traced


@router.post(
    "/v1/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    responses={
        **_AUTH,
        **_errors(
            e404="No such trace for the key's tenant.",
            e503="The broker did not store the feedback in time; send it again.",
        ),
    },
    summary="Rate an answer",
    tags=["feedback"],
)
async def feedback_route(
    req: FeedbackRequest,
    key: FeedbackKey,
    answering: AnsweringDep,
    publisher: FeedbackPublisherDep,
) -> FeedbackAccepted:
    """Feedback on an answer of the key's tenant, named by its ``trace_id``. The same
    (trace, name, author) again replaces the earlier value; the history is kept."""
    event = feedback_event(req, key, answering)
    try:
        await publisher.publish(event, answering.settings.feedback_timeout_s)
    except PublishFailed as exc:
        raise HTTPException(
            503, f"feedback not stored: {exc}", headers={"Retry-After": "5"}
        ) from exc
    return FeedbackAccepted(feedback_id=event.event_id, trace_id=req.trace_id, author=event.author)


def feedback_event(req: FeedbackRequest, key: ApiKey, answering: Answering) -> FeedbackEvent:
    """The event for a feedback request; 404 for a trace not issued to the key's tenant.
    Free text is redacted before it is published, like everything the platform stores."""
    if not answering.trace_ids.issued_to(req.trace_id, key.tenant):
        raise HTTPException(404, f"no trace {req.trace_id} for this key's tenant")
    found = answering.redactor.finds(req.user) if req.user else []
    if found:  # authors are kept and published: an e-mail there could never be taken back
        raise HTTPException(
            422, f"user holds personal data ({', '.join(found)}): pass an opaque user id"
        )
    redact = answering.redactor.redact
    return FeedbackEvent(
        trace_id=req.trace_id,
        tenant=key.tenant,
        author=f"{key.id}/{req.user}" if req.user else key.id,
        source=req.source,
        name=req.name,
        value=req.value,
        comment=redact(req.comment)[0] if req.comment else None,
        correction=redact(req.correction)[0] if req.correction else None,
    )


async def generate_while_connected(request: Request, gen: Generation) -> bool:
    """Generate the whole answer; False (generation stopped) if the caller disconnects."""

    async def drain() -> None:
        async for _ in gen.pieces():
            pass

    task = asyncio.ensure_future(drain())
    while not task.done():
        await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
        if not task.done() and await request.is_disconnected():
            # Stop the model first: on Python 3.11 wait_for can swallow a cancellation that
            # meets a piece arriving, and the generation would then run to its end.
            gen.abandon()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
    await task  # raises what generation raised
    return True


class GenerationStream(StreamingResponse):
    """The answer as Server-Sent Events (``events``: the platform's own by default). However
    the response ends (done, failed, or the caller gone before or during the stream), the
    generation is traced and its slot freed."""

    def __init__(self, gen: Generation, events: AsyncIterator[bytes] | None = None) -> None:
        super().__init__(
            _events(gen) if events is None else events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Trace-Id": gen.trace_id},
        )
        self.gen = gen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.gen.abandon()


def sse(event: str, data: BaseModel | dict[str, Any]) -> bytes:
    """One Server-Sent Event."""
    body = data.model_dump_json() if isinstance(data, BaseModel) else json.dumps(data)
    return f"event: {event}\ndata: {body}\n\n".encode()


async def _events(gen: Generation) -> AsyncIterator[bytes]:
    try:
        async for piece in gen.pieces():
            yield sse("token", {"text": piece})
        yield sse("done", gen.finish())
    except GenerationFailed as exc:
        yield sse(
            "error", StreamError(status=_status(exc), detail=exc.reason, trace_id=gen.trace_id)
        )
    # (GenerationStream traces and frees an abandoned generation, however the stream ends)
