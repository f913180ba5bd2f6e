"""OpenAI's chat completions API over the platform's answering path.

``POST /v1/chat/completions`` and ``GET /v1/models``, so the ``openai`` SDKs, LangChain's
``ChatOpenAI``, LlamaIndex or Open WebUI connect without code of ours. Behind them is the
same path as ``/v1/query``: retrieval with the key's tenant and groups, the prompt split,
the generation queue and its 503s, the limits, the trace. What OpenAI's API has and this
one cannot do (tools, several choices, log probabilities...) is refused with OpenAI's error
body, never ignored. Citations and the trace id travel in the ``llmops`` field of the
response (and of the last chunk of a stream) and in the ``X-Trace-Id`` header, so feedback
can be given on such an answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.inference.answering import (
    Answering,
    ChatTerms,
    Generation,
    GenerationFailed,
    ModelNotLoaded,
    Overloaded,
    QuestionTooLong,
)
from services.inference.deps import AnsweringDep, QueryKey
from services.inference.llm import Sampling
from services.inference.middleware import platform_refusal
from services.inference.prompts import PromptNotFound
from services.inference.routes import GenerationStream, generate_while_connected
from services.inference.schemas import Citation, PromptRef, QueryRequest

# the routes of this module
PATHS = ("/v1/chat/completions", "/v1/models")  # the routes below, in this order
# OpenAI's own limit on stop sequences
MAX_STOP = 4
# the longest end-user id kept on a trace
MAX_USER_CHARS = 256

# Parameters of OpenAI's API this one cannot honour: each is refused with its reason when it
# asks for something (its neutral value passes, as SDKs and frameworks send it).
REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v not in (None, 1), "only one choice is generated (n must be 1)"),
    "tools": (bool, "tools are not supported: answers come from the documents"),
    "tool_choice": (lambda v: v not in (None, "none"), "tools are not supported"),
    "functions": (bool, "functions are not supported: answers come from the documents"),
    "function_call": (lambda v: v not in (None, "none"), "functions are not supported"),
    "parallel_tool_calls": (lambda v: False, ""),  # meaningless without tools
    "logprobs": (bool, "log probabilities are not returned"),
    "top_logprobs": (lambda v: v is not None, "log probabilities are not returned"),
    "logit_bias": (bool, "logit_bias is not supported"),
    "presence_penalty": (lambda v: v not in (None, 0, 0.0), "presence_penalty is not supported"),
    "frequency_penalty": (
        lambda v: v not in (None, 0, 0.0),
        "frequency_penalty is not supported",
    ),
    "seed": (lambda v: v is not None, "seed is not supported (temperature 0 is deterministic)"),
    "response_format": (
        lambda v: v not in (None, {"type": "text"}),
        "only text responses are generated (response_format type text)",
    ),
    "audio": (bool, "audio is not supported"),
    "modalities": (lambda v: v not in (None, ["text"]), "only the text modality is supported"),
}


class OpenAIError(Exception):
    """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.code, self.param, self.headers = code, param, headers

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers)


# what each status of the platform's own errors is called in OpenAI's terms
KINDS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    502: ("api_error", "model_failed"),
    503: ("server_error", "unavailable"),
}


def from_http(exc: StarletteHTTPException) -> OpenAIError:
    kind, code = KINDS.get(exc.status_code, ("api_error", "error"))
    return OpenAIError(
        exc.status_code, str(exc.detail), kind, code, headers=dict(exc.headers or {}) or None
    )


def from_validation(exc: RequestValidationError) -> OpenAIError:
    """A malformed body: 400, naming the first parameter at fault, as OpenAI does."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        where = first.get("loc", ("body", "?"))[-1]
        why = (first.get("ctx") or {}).get("error", "invalid")
        return OpenAIError(400, f"the body is not valid JSON: {why} at character {where}")
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    message = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in errors
    )
    return OpenAIError(400, message or "invalid body", param=".".join(loc) or None)


def refusal(path: str, exc: HTTPException) -> JSONResponse:
    """A refusal before the routes (the body limit, the key): in OpenAI's shape on these
    routes, the platform's elsewhere."""
    if path in PATHS:
        return from_http(exc).response()
    return platform_refusal(path, exc)


class OpenAIRoute(APIRoute):
    """Every error of these routes in OpenAI's shape, those of the shared dependencies (the
    key, its rate limit) and of body validation included: OpenAI's SDKs read it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenAIError as exc:
                return exc.response()
            except StarletteHTTPException as exc:  # FastAPI's own and the body parser's
                return from_http(exc).response()
            except RequestValidationError as exc:
                return from_validation(exc).response()

        return handle


class TextPart(BaseModel):
    """A part of a message's content; only text is read."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class Message(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; what this server cannot do is refused."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    user: str | None = Field(default=None, max_length=MAX_USER_CHARS)

    @model_validator(mode="before")
    @classmethod
    def refuse_what_cannot_be_honoured(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, (asks, why) in REFUSED.items():
            if name in data and asks(data[name]):
                raise OpenAIError(400, f"{name}: {why}", code="unsupported_parameter", param=name)
        known = set(cls.model_fields) | set(REFUSED)
        for name in data:
            if name not in known:
                raise OpenAIError(
                    400,
                    f"Unrecognized request argument supplied: {name}",
                    code="unsupported_parameter",
                    param=name,
                )
        return {k: v for k, v in data.items() if k not in REFUSED}

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP:
            raise OpenAIError(400, f"stop: at most {MAX_STOP} sequences", param="stop")
        return tuple(s for s in stops if s)

    def conversation(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The question (the last message, a user's) and the turns before it."""
        *earlier, last = self.messages
        if last.role != "user" or not last.text().strip():
            raise OpenAIError(
                400, "the last message must be the user's question, with text", param="messages"
            )
        for m in earlier:
            if m.role in ("tool", "function"):
                raise OpenAIError(400, f"{m.role} messages are not supported", param="messages")
        turns = tuple(
            ("system" if m.role == "developer" else m.role, m.text())
            for m in earlier
            if m.text().strip()
        )
        return last.text().strip(), turns


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Every error of these routes, as OpenAI's API gives them."""

    error: ErrorDetail


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"] = Field(
        description="length: the answer reached max_tokens (or the server's limit)."
    )
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmops"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Extension(BaseModel):
    """The platform's own part of a response (field ``llmops``)."""

    trace_id: str = Field(description="Give feedback on this answer with it (/v1/feedback).")
    citations: list[Citation]
    prompt: PromptRef


class ChatCompletion(BaseModel):
    """OpenAI's ``chat.completion``, with the platform's ``llmops`` field."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    llmops: Extension


def model_id(answering: Answering) -> str | None:
    """The model this server answers as: retrieval-augmented generation over its LLM."""
    return None if answering.llm is None else f"rag/{answering.llm.name}"


STARTED = int(time.time())


def _errors(**codes: str) -> dict[int | str, dict[str, Any]]:
    return {
        int(code[1:]): {"model": OpenAIErrorBody, "description": why} for code, why in codes.items()
    }


_KEY_ERRORS = _errors(
    e401="Missing or unknown API key.",
    e403="The key may not query.",
    e429="Over the key's rate limit; see Retry-After.",
)


router = APIRouter(route_class=OpenAIRoute, tags=["openai"])


@router.get(
    PATHS[1],
    response_model=ModelList,
    responses=_KEY_ERRORS,
    summary="Models (OpenAI-compatible)",
)
async def models(key: QueryKey, answering: AnsweringDep) -> ModelList:
    """What ``model`` may name in a chat completion."""
    name = model_id(answering)
    return ModelList(data=[ModelCard(id=name, created=STARTED)] if name else [])


@router.post(
    PATHS[0],
    summary="Answer a conversation (OpenAI-compatible)",
    response_model=ChatCompletion,
    responses={
        200: {
            "description": "A chat.completion, or (stream) chat.completion.chunk events.",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "`data: {chat.completion.chunk}` events, then "
                        "`data: [DONE]`.",
                    }
                }
            },
        },
        **_KEY_ERRORS,
        **_errors(
            e400="A parameter this server cannot honour, or a malformed body.",
            e404="No such model (see /v1/models).",
            e413="Body or question too large.",
            e502="The language model failed.",
            e503="The language model is down, not loaded, timed out or busy (Retry-After).",
        ),
    },
)
async def chat_completions(
    req: ChatCompletionRequest, key: QueryKey, answering: AnsweringDep, request: Request
) -> Any:
    """OpenAI's chat completions over the platform's answers: the last user message is the
    question, earlier turns are carried into the prompt within the context budget.
    ``stream: true`` sends ``chat.completion.chunk`` events ending with ``[DONE]``."""
    if answering.llm is None:
        raise OpenAIError(503, "the language model is not loaded", "server_error", "unavailable")
    name = model_id(answering)
    if req.model != name:
        raise OpenAIError(
            404,
            f"The model `{req.model}` does not exist: this server answers as `{name}`",
            code="model_not_found",
            param="model",
        )
    terms = chat_terms(req, answering)
    question, _ = req.conversation()
    try:
        gen = await answering.prepare(QueryRequest(question=question), key, terms)
    except QuestionTooLong as exc:
        raise OpenAIError(413, str(exc), code="request_too_large", param="messages") from exc
    except ModelNotLoaded as exc:
        raise OpenAIError(503, str(exc), "server_error", "unavailable") from exc
    except PromptNotFound as exc:
        raise OpenAIError(400, str(exc)) from exc
    except Overloaded as exc:
        raise OpenAIError(
            503,
            str(exc),
            "server_error",
            "overloaded",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc
    reply = Reply(gen, name or "", req)
    if req.stream:
        return GenerationStream(gen, reply.chunks())
    try:
        if not await generate_while_connected(request, gen):
            return Response(status_code=499)
        return JSONResponse(reply.completion(), headers={"X-Trace-Id": gen.trace_id})
    except GenerationFailed as exc:
        raise failed(exc) from exc
    finally:
        gen.abandon()


def chat_terms(req: ChatCompletionRequest, answering: Answering) -> ChatTerms:
    """What the request asks of the answering path beside its question; a parameter over
    this server's limits, or a user id that holds personal data, is refused."""
    s = answering.settings
    asked = req.max_completion_tokens or req.max_tokens
    if asked is not None and asked > s.max_new_tokens:
        param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise OpenAIError(
            400,
            f"{param} is over this server's limit of {s.max_new_tokens} (INFERENCE_MAX_NEW_TOKENS)",
            param=param,
        )
    if req.user and answering.redactor.finds(req.user):
        found = ", ".join(answering.redactor.finds(req.user))
        raise OpenAIError(
            400, f"user holds personal data ({found}): pass an opaque id", param="user"
        )
    _, earlier = req.conversation()
    return ChatTerms(
        earlier=earlier,
        sampling=Sampling(
            asked or s.max_new_tokens,
            s.temperature if req.temperature is None else req.temperature,
            s.top_p if req.top_p is None else req.top_p,
            s.repeat_penalty,
        ),
        stop=req.stops(),
        endpoint="chat.completions",
        user=req.user,
    )


def failed(exc: GenerationFailed) -> OpenAIError:
    if exc.unavailable:
        return OpenAIError(503, exc.reason, "server_error", "unavailable")
    return OpenAIError(502, exc.reason, "api_error", "model_failed")


class Reply:
    """One answer in OpenAI's shapes."""

    def __init__(self, gen: Generation, model: str, req: ChatCompletionRequest) -> None:
        self.gen, self.model, self.req = gen, model, req
        self.id = f"chatcmpl-{gen.trace_id}"
        self.created = int(time.time())
        self.limit = gen.sampling.max_tokens if gen.sampling else None

    def finish_reason(self, completion_tokens: int) -> Literal["stop", "length"]:
        return "length" if self.limit and completion_tokens >= self.limit else "stop"

    def extension(self) -> Extension:
        g = self.gen
        return Extension(
            trace_id=g.trace_id,
            citations=g.citations,
            prompt=PromptRef(name=g.prompt.name, version=g.prompt.version, mode=g.prompt.mode),
        )

    def usage(self, prompt: int, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def completion(self) -> dict[str, Any]:
        done = self.gen.finish()
        used = done.usage
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[
                Choice(
                    message=AssistantMessage(content=done.answer),
                    finish_reason=self.finish_reason(used.completion_tokens),
                )
            ],
            usage=CompletionUsage(**self.usage(used.prompt_tokens, used.completion_tokens)),
            llmops=self.extension(),
        ).model_dump()

    def chunk(self, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        """One ``chat.completion.chunk``; ``delta`` None: one with no choice (the usage)."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [] if delta is None else [choice],
            **extra,
        }
        return data(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The answer as OpenAI's stream: the role, the text as it comes, the finish (with
        the platform's extension), the usage when asked, then ``[DONE]``."""
        gen = self.gen
        try:
            yield self.chunk({"role": "assistant", "content": ""})
            async for piece in gen.pieces():
                yield self.chunk({"content": piece})
            done = gen.finish()
            used = done.usage
            yield self.chunk(
                {},
                self.finish_reason(used.completion_tokens),
                llmops=self.extension().model_dump(),
            )
            if self.req.stream_options and self.req.stream_options.include_usage:
                yield self.chunk(None, usage=self.usage(used.prompt_tokens, used.completion_tokens))
        except GenerationFailed as exc:
            yield data(failed(exc).body())
        yield b"data: [DONE]\n\n"


def data(body: dict[str, Any]) -> bytes:
    """One Server-Sent Event as OpenAI sends them (data only)."""
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()
