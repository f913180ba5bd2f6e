"""The API's routes: HTTP in and out, nothing else (the logic is in ``answering``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from services.inference.answering import (
    Generation,
    GenerationFailed,
    ModelNotLoaded,
    QuestionTooLong,
)
from services.inference.deps import AnsweringDep, QueryKey, RetrieveKey
from services.inference.prompts import PromptNotFound
from services.inference.schemas import (
    ErrorBody,
    Health,
    QueryRequest,
    QueryResponse,
    Readiness,
    RetrieveRequest,
    RetrieveResponse,
    StreamError,
)

router = APIRouter()


def _errors(**codes: str) -> dict[int | str, dict[str, Any]]:
    return {int(code[1:]): {"model": ErrorBody, "description": why} for code, why in codes.items()}


_AUTH = _errors(
    e401="Missing or unknown API key.",
    e403="The key may not do this.",
    e413="Body or question too large.",
    e422="Malformed body, or (query) no such prompt.",
    e429="Over the key's rate limit; see Retry-After.",
)

_SSE = {
    "text/event-stream": {
        "schema": {
            "type": "string",
            "description": "With `stream: true`: `token` events ({text}), then one `done` event "
            "(a QueryResponse) or one `error` event (a StreamError).",
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
    return JSONResponse(Readiness(ready=ok, checks=checks).model_dump(), 200 if ok else 503)


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
async def query_route(req: QueryRequest, key: QueryKey, answering: AnsweringDep) -> Any:
    """Answer with citations; ``stream: true`` sends Server-Sent Events."""
    try:
        gen = await answering.prepare(req, key)
    except QuestionTooLong as exc:
        raise HTTPException(413, str(exc)) from exc
    except ModelNotLoaded as exc:
        raise HTTPException(503, str(exc)) from exc
    except PromptNotFound as exc:
        raise HTTPException(422, str(exc)) from exc
    if not req.stream:
        try:
            async for _ in gen.pieces():
                pass
        except GenerationFailed as exc:
            raise HTTPException(_status(exc), exc.reason) from exc
        return gen.finish()
    return StreamingResponse(
        _events(gen),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Trace-Id": gen.trace_id},
    )


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
    finally:
        gen.stop.set()
