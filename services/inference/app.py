"""The inference application: the FastAPI app over a runtime, and the server that runs it."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from services.inference.answering import Answering, OverLimit
from services.inference.auth import RateLimiter, load_keys
from services.inference.deps import Runtime, identify
from services.inference.llm import LLM
from services.inference.middleware import BodyLimit
from services.inference.openai import refusal as openai_refusal
from services.inference.openai import router as openai_router
from services.inference.otel import ArrivalMiddleware, RequestSpans
from services.inference.prompts import load_prompts
from services.inference.routes import router
from services.inference.schemas import ErrorBody, FieldError
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from shared.contracts.topics import FEEDBACK_EVENTS, INFERENCE_COMPLETED
from shared.models.files import DEFAULT_MODEL
from shared.otel import tracing
from shared.store.base import VectorStore


def create_app(rt: Runtime) -> FastAPI:
    """The FastAPI application over a runtime. Its pages (/docs, /redoc) load their scripts
    and styles from this server, never from a CDN: they work without internet."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.answering.start()
        await rt.feedback.start()
        yield
        await rt.feedback.stop()
        await rt.answering.stop()
        if rt.answering.spans is not None:  # what is queued goes out, within its timeout
            rt.answering.spans.tracing.shutdown()

    app = FastAPIOffline(
        title="LLMOps inference",
        version="1.0",
        lifespan=lifespan,
        description="Retrieval-augmented answers over your organisation's documents.",
    )
    app.state.rt = rt
    app.add_exception_handler(RequestValidationError, invalid_body)  # type: ignore[arg-type]
    app.add_exception_handler(OverLimit, over_limit)  # type: ignore[arg-type]
    app.add_middleware(
        BodyLimit,
        limit=rt.answering.settings.max_body_bytes,
        check_caller=functools.partial(identify, rt.keys),
        refusal=openai_refusal,
    )
    if rt.answering.spans is not None:  # each request's arrival and traceparent
        app.add_middleware(ArrivalMiddleware)
    app.include_router(router)
    app.include_router(openai_router)
    return app


def _printable(value: object) -> str | int:
    if isinstance(value, int):
        return value
    # a lone surrogate from a JSON escape cannot be encoded into the response
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with what is wrong and where. FastAPI's own handler echoes the input back, which
    fails (a 500) on input JSON cannot carry (infinity, lone surrogates) and repeats whatever
    personal data the caller sent."""
    errors = [
        FieldError(
            type=e["type"],
            loc=[_printable(p) for p in e["loc"]],
            msg=str(_printable(e["msg"])),
        )
        for e in exc.errors()
    ]
    return JSONResponse(ErrorBody(detail=errors).model_dump(), status_code=422)


async def over_limit(request: Request, exc: OverLimit) -> JSONResponse:
    """422 naming a field over the server's limit, shaped like any malformed body's."""
    error = FieldError(type="less_than_equal", loc=["body", exc.field], msg=str(exc))
    return JSONResponse(ErrorBody(detail=[error]).model_dump(), status_code=422)


def build_runtime(
    settings: InferenceSettings,
    store: VectorStore,
    llm: LLM | None,
    publisher: TracePublisher,
    feedback: TracePublisher | None = None,
) -> Runtime:
    """Runtime from settings (keys and prompts are read here, once). Feedback goes to
    feedback.events on the traces' cluster unless ``feedback`` says otherwise."""
    traced = tracing("inference", settings.platform.otel_capture_content)
    answering = Answering(
        settings,
        store,
        llm,
        publisher,
        load_prompts(settings.prompts_dir),
        trace_ids=settings.platform.trace_ids(),
        spans=RequestSpans(traced, DEFAULT_MODEL) if traced else None,
    )
    return Runtime(
        answering=answering,
        keys=load_keys(settings.api_keys_file, settings.api_keys),
        limiter=RateLimiter(settings.rate_limit_per_min),
        feedback=feedback
        or TracePublisher(
            publisher.bootstrap,
            FEEDBACK_EVENTS.name(settings.kafka.topic_prefix),
            linger_ms=0,
            drain_s=settings.trace_drain_s,
        ),
    )


def trace_publisher(settings: InferenceSettings, bootstrap: str) -> TracePublisher:
    """The publisher of the API's traces as the server runs it: bounded by
    ``INFERENCE_TRACE_BUFFER``, gathering traces (and building their OpenTelemetry spans) for
    ``INFERENCE_TRACE_LINGER_MS``."""
    return TracePublisher(
        bootstrap,
        INFERENCE_COMPLETED.name(settings.kafka.topic_prefix),
        settings.trace_buffer,
        settings.trace_linger_ms,
        drain_s=settings.trace_drain_s,
    )


def build_server(
    settings: InferenceSettings,
    store: VectorStore,
    llm: LLM | None,
    bootstrap: str,
    loglevel: str = "info",
) -> uvicorn.Server:
    """The API server over ``store`` and ``llm``, tracing to ``bootstrap``; ``run()`` serves."""
    app = create_app(build_runtime(settings, store, llm, trace_publisher(settings, bootstrap)))
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=loglevel,
            access_log=False,
            # a stream still open at a stop is cut after this long (its trace says cancelled)
            timeout_graceful_shutdown=2,
        )
    )
