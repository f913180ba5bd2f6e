"""FastAPI dependencies: the process's runtime, and the API key allowed one action."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from services.inference.answering import Answering
from services.inference.auth import ApiKey, RateLimiter, hash_key
from services.inference.traces import TracePublisher


@dataclass
class Runtime:
    """What the routes use; built once per process."""

    answering: Answering
    keys: dict[str, ApiKey]
    limiter: RateLimiter
    feedback: TracePublisher


def get_runtime(request: Request) -> Runtime:
    """The runtime the app was created with."""
    rt: Runtime = request.app.state.rt
    return rt


# Dependencies are async on purpose: FastAPI runs a plain function in its thread pool, a
# thread hop per request that showed in the latency tail.
async def get_answering(request: Request) -> Answering:
    """The answering logic of this process."""
    return get_runtime(request).answering


def identify(keys: Mapping[str, ApiKey], headers: Mapping[str, str]) -> ApiKey:
    """The key a request presents (``Authorization: Bearer KEY`` or ``X-API-Key``); 401 when
    there is none or it is unknown."""
    header = headers.get("authorization", "")
    key = (
        header[7:].strip() if header.lower().startswith("bearer ") else headers.get("x-api-key", "")
    )
    if not key:
        raise HTTPException(
            401,
            "missing API key (Authorization: Bearer KEY)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    record = keys.get(hash_key(key))
    if record is None:
        raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return record


class Authorised:
    """The caller's key, which must exist, allow ``action`` and be under its rate limit."""

    def __init__(self, action: str) -> None:
        self.action = action

    async def __call__(self, request: Request) -> ApiKey:
        rt = get_runtime(request)
        record = identify(rt.keys, request.headers)
        if self.action not in record.actions:
            raise HTTPException(403, f"this key may not {self.action}")
        wait = rt.limiter.take(record.id, record.rate_limit_per_min)
        if wait > 0:
            raise HTTPException(
                429, "rate limit exceeded", headers={"Retry-After": str(math.ceil(wait))}
            )
        return record


QueryKey = Annotated[ApiKey, Depends(Authorised("query"))]
RetrieveKey = Annotated[ApiKey, Depends(Authorised("retrieve"))]
FeedbackKey = Annotated[ApiKey, Depends(Authorised("feedback"))]
AnsweringDep = Annotated[Answering, Depends(get_answering)]


async def get_feedback_publisher(request: Request) -> TracePublisher:
    """Where feedback goes (feedback.events)."""
    return get_runtime(request).feedback


FeedbackPublisherDep = Annotated[TracePublisher, Depends(get_feedback_publisher)]
