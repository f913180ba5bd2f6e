"""ASGI middleware of the API."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WITH_BODY = {"POST", "PUT", "PATCH"}


def platform_refusal(path: str, exc: HTTPException) -> JSONResponse:
    """The platform's own error body."""
    return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)


class BodyLimit:
    """For requests with a body: 401 for a caller without a known key before the body is read
    (``check_caller``), then 413 for a body over ``limit`` bytes, by Content-Length up front,
    else (a chunked body) while reading it, before the app sees any of it.

    A plain ASGI middleware: Starlette's function middlewares add a task per request.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        check_caller: Callable[[Mapping[str, str]], object] | None = None,
        refusal: Callable[[str, HTTPException], JSONResponse] | None = None,
    ) -> None:
        self.app, self.limit, self.check_caller = app, limit, check_caller
        # the response to a refusal, by the request's path (the OpenAI-compatible routes
        # answer in OpenAI's shape)
        self.refusal = refusal or platform_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if self.check_caller is not None:
            try:
                self.check_caller(headers)
            except HTTPException as exc:
                return await self.refusal(scope["path"], exc)(scope, receive, send)
        too_large = self.refusal(scope["path"], HTTPException(413, f"body over {self.limit} bytes"))
        length = headers.get("content-length", "")
        if length.isdigit():
            # the server holds the body to its declared length
            if int(length) > self.limit:
                return await too_large(scope, receive, send)
            return await self.app(scope, receive, send)
        # Chunked: read it all here (at most the limit), then hand it on.
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await too_large(scope, receive, send)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
