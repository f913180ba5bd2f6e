"""The HTTP API (FastAPI): /v1/query, /v1/retrieve, /healthz, /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from services.inference.auth import ApiKey, RateLimiter, hash_key, load_keys
from services.inference.llm import LLM, LLMFailed, LLMUnavailable, Sampling
from services.inference.logic import citations, dedupe, pack
from services.inference.prompts import Prompt, PromptNotFound, choose, load_prompts, parse_split
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from shared.events import InferenceTrace, RetrievedChunk
from shared.redact import DETECTORS, Redactor
from shared.retrieval import Hit, query_embedder, retrieve
from shared.vector_store import VectorStore

FilterKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]
FilterScalar = str | int | float | bool
FilterValue = FilterScalar | list[str] | list[int]


class RetrieveRequest(BaseModel):
    """Retrieval only. Tenant and groups come from the API key, never from the body."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="What to search for.")
    top_k: int | None = Field(default=None, ge=1, description="Chunks to return.")
    filters: dict[FilterKey, FilterValue] | None = Field(
        default=None, description="Equality filters on document metadata fields."
    )


class QueryRequest(RetrieveRequest):
    """A question to answer with retrieval-augmented generation."""

    prompt: str | None = Field(
        default=None, description="Prompt name, name/version, or a version of the default."
    )
    stream: bool = Field(
        default=False, description="Server-Sent Events: tokens, then a final event."
    )


@dataclass
class Runtime:
    """What the routes use; built once per process."""

    settings: InferenceSettings
    store: VectorStore
    llm: LLM | None
    publisher: TracePublisher
    keys: dict[str, ApiKey]
    prompts: dict[str, dict[str, Prompt]]
    limiter: RateLimiter
    redactor: Redactor = field(default_factory=lambda: Redactor.named(DETECTORS))


def _auth(action: str):  # type: ignore[no-untyped-def]
    # async: FastAPI would run a plain function in its thread pool, a hop per request
    async def dep(request: Request) -> ApiKey:
        rt: Runtime = request.app.state.rt
        header = request.headers.get("authorization", "")
        key = (
            header[7:].strip()
            if header.lower().startswith("bearer ")
            else request.headers.get("x-api-key", "")
        )
        if not key:
            raise HTTPException(
                401,
                "missing API key (Authorization: Bearer KEY)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        record = rt.keys.get(hash_key(key))
        if record is None:
            raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        if action not in record.actions:
            raise HTTPException(403, f"this key may not {action}")
        wait = rt.limiter.take(record.id, record.rate_limit_per_min)
        if wait > 0:
            raise HTTPException(
                429, "rate limit exceeded", headers={"Retry-After": str(math.ceil(wait))}
            )
        return record

    return dep


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for bodies over ``limit`` bytes: by Content-Length up front, else while reading.

    A plain ASGI middleware: Starlette's function middlewares add a task per request.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = JSONResponse({"detail": f"body over {self.limit} bytes"}, 413)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await too_large(scope, receive, send)
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await too_large(scope, receive, send)


QueryKey = Annotated[ApiKey, Depends(_auth("query"))]
RetrieveKey = Annotated[ApiKey, Depends(_auth("retrieve"))]


def create_app(rt: Runtime) -> FastAPI:
    """The FastAPI application over a runtime."""
    s = rt.settings
    split = parse_split(s.prompt_split)
    retrieval_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrieval")

    def warm_up() -> None:
        # Load the query model and run it once before serving, so
        # that /readyz means ready and no caller pays for the load.
        query_embedder(rt.store, rt.store.active()).encode(["warm-up"])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(retrieval_thread, warm_up)
        await rt.publisher.start()
        yield
        await rt.publisher.stop()
        retrieval_thread.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="LLMOps inference",
        version="1.0",
        lifespan=lifespan,
        description="Retrieval-augmented answers over your organisation's documents.",
    )
    app.state.rt = rt

    app.add_middleware(BodyLimit, limit=s.max_body_bytes)

    def check_question(q: str) -> None:
        if len(q) > s.max_question_chars:
            raise HTTPException(413, f"question over {s.max_question_chars} characters")

    async def search(req: RetrieveRequest, key: ApiKey, timings: dict[str, float]) -> list[Hit]:
        top_k = min(req.top_k or s.top_k, s.max_top_k)
        # Off the loop: the model and the store both block, and take one call at a time.
        return await asyncio.get_running_loop().run_in_executor(
            retrieval_thread,
            functools.partial(
                retrieve,
                rt.store,
                req.question,
                key.tenant,
                key.groups,
                top_k * 2,
                req.filters,
                s.score_threshold,
                timings=timings,
            ),
        )

    def trace(trace_id: str, key: ApiKey, question: str, endpoint: str, **kw: Any) -> None:
        redacted, _ = rt.redactor.redact(question)
        rt.publisher.submit(
            InferenceTrace(
                trace_id=trace_id,
                tenant=key.tenant,
                api_key_id=key.id,
                question=redacted,
                endpoint=endpoint,
                **kw,
            )
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready when the broker, the vector store and the model are."""
        checks = {"broker": rt.publisher.connected, "model": rt.llm is not None}
        try:
            checks["vector_store"] = await run_in_threadpool(rt.store.active) is not None
        except Exception:  # noqa: BLE001
            checks["vector_store"] = False
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, 200 if ok else 503)

    @app.post("/v1/retrieve")
    async def retrieve_route(req: RetrieveRequest, key: RetrieveKey) -> dict[str, Any]:
        """Retrieval only: the chunks the key's tenant and groups may read."""
        check_question(req.question)
        trace_id, t0, timings = uuid.uuid4().hex, time.perf_counter(), {}
        hits = dedupe(await search(req, key, timings))[: min(req.top_k or s.top_k, s.max_top_k)]
        timings["total"] = (time.perf_counter() - t0) * 1000
        trace(
            trace_id,
            key,
            req.question,
            "retrieve",
            status="ok",
            timings_ms=timings,
            retrieved=[
                RetrievedChunk(chunk_id=h.chunk_id, doc_id=h.doc_id, score=h.score) for h in hits
            ],
        )
        return {
            "trace_id": trace_id,
            "timings_ms": timings,
            "chunks": [
                asdict(c) | {"text": h.text} for c, h in zip(citations(hits), hits, strict=True)
            ],
        }

    @app.post("/v1/query", response_model=None)
    async def query_route(req: QueryRequest, key: QueryKey) -> Any:
        """Answer with citations; ``stream: true`` sends Server-Sent Events."""
        check_question(req.question)
        if rt.llm is None:
            raise HTTPException(503, "the language model is not loaded")
        llm = rt.llm
        try:
            prompt = choose(rt.prompts, req.prompt, s.prompt, split, key.id)
        except PromptNotFound as exc:
            raise HTTPException(422, str(exc)) from exc
        trace_id, t0, timings = uuid.uuid4().hex, time.perf_counter(), {}
        hits = dedupe(await search(req, key, timings))
        budget = (
            llm.context_window
            - s.max_new_tokens
            - llm.count_tokens(prompt.render("", req.question))
            - 16
        )
        context, used = pack(hits, max(budget, 0), llm.count_tokens)
        text = prompt.render(context or "(no matching documents)", req.question)
        prompt_tokens = llm.count_tokens(text)
        cites = citations(used)
        base: dict[str, Any] = dict(
            retrieved=[
                RetrievedChunk(chunk_id=h.chunk_id, doc_id=h.doc_id, score=h.score) for h in used
            ],
            prompt_name=prompt.name,
            prompt_version=prompt.version,
            model=llm.name,
            prompt_tokens=prompt_tokens,
        )

        def final(answer: str, n_tokens: int) -> dict[str, Any]:
            timings["total"] = (time.perf_counter() - t0) * 1000
            return {
                "answer": answer,
                "citations": [asdict(c) for c in cites],
                "trace_id": trace_id,
                "prompt": {"name": prompt.name, "version": prompt.version},
                "model": llm.name,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens},
                "timings_ms": timings,
            }

        def finished(answer: list[str]) -> dict[str, Any]:
            body = final("".join(answer).strip(), len(answer))
            trace(
                trace_id,
                key,
                req.question,
                "query",
                status="ok",
                answer=body["answer"],
                completion_tokens=len(answer),
                timings_ms=timings,
                **base,
            )
            return body

        def failed(exc: BaseException, answer: list[str]) -> tuple[int, str]:
            code, reason = error_status(exc)
            trace(
                trace_id,
                key,
                req.question,
                "query",
                status="error",
                error=reason,
                answer="".join(answer),
                timings_ms=timings,
                **base,
            )
            return code, reason

        stop = threading.Event()
        pieces = generate(llm, text, Sampling.from_settings(s), stop, s.llm_timeout_s, timings)

        if not req.stream:
            answer: list[str] = []
            try:
                async for piece in pieces:
                    answer.append(piece)
            except (LLMUnavailable, LLMFailed, TimeoutError) as exc:
                code, reason = failed(exc, answer)
                raise HTTPException(code, reason) from exc
            return finished(answer)

        async def sse() -> AsyncIterator[bytes]:
            answer: list[str] = []
            try:
                async for piece in pieces:
                    answer.append(piece)
                    yield f"event: token\ndata: {json.dumps({'text': piece})}\n\n".encode()
                body = finished(answer)
                yield f"event: done\ndata: {json.dumps(body)}\n\n".encode()
            except (LLMUnavailable, LLMFailed, TimeoutError) as exc:
                code, reason = failed(exc, answer)
                err = {"status": code, "detail": reason, "trace_id": trace_id}
                yield f"event: error\ndata: {json.dumps(err)}\n\n".encode()
            finally:
                stop.set()

        return StreamingResponse(
            sse(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Trace-Id": trace_id},
        )

    return app


def error_status(exc: BaseException) -> tuple[int, str]:
    """HTTP status and reason for a generation failure."""
    if isinstance(exc, TimeoutError):
        return 503, "the language model timed out"
    if isinstance(exc, LLMUnavailable):
        return 503, str(exc)
    return 502, str(exc)


async def generate(
    llm: LLM,
    prompt: str,
    sampling: Sampling,
    stop: threading.Event,
    timeout_s: float,
    timings: dict[str, float],
) -> AsyncIterator[str]:
    """Run the blocking generator on the backend's own threads; yield its pieces on the event
    loop. Time spent waiting for a free thread counts towards the timeout."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def work() -> None:
        if stop.is_set():  # gave up while queued: do not evaluate the prompt
            return
        try:
            for piece in llm.stream(prompt, sampling, stop):
                loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the request
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    t0 = time.perf_counter()
    deadline = t0 + timeout_s
    llm.threads.submit(work)
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError
            try:
                kind, value = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                raise TimeoutError from None
            if kind == "piece":
                if "first_token" not in timings:
                    timings["first_token"] = (time.perf_counter() - t0) * 1000
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()
        timings["generate"] = (time.perf_counter() - t0) * 1000


def build_runtime(
    settings: InferenceSettings, store: VectorStore, llm: LLM | None, publisher: TracePublisher
) -> Runtime:
    """Runtime from settings (keys and prompts are read here, once)."""
    return Runtime(
        settings=settings,
        store=store,
        llm=llm,
        publisher=publisher,
        keys=load_keys(settings.api_keys_file, settings.api_keys),
        prompts=load_prompts(settings.prompts_dir),
        limiter=RateLimiter(settings.rate_limit_per_min),
    )
