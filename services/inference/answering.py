"""Answering a question, with no HTTP in it: retrieve, pack, generate, trace.

The routes turn what this module returns and raises into HTTP; everything else (which chunks,
which prompt, how generation runs beside the event loop, what each trace holds) is here.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from services.inference.auth import ApiKey
from services.inference.llm import LLM, LLMFailed, LLMUnavailable, Sampling
from services.inference.logic import citations, dedupe, pack
from services.inference.prompts import Prompt, choose, parse_split
from services.inference.schemas import (
    Citation,
    PromptRef,
    QueryRequest,
    QueryResponse,
    RetrievedChunk,
    RetrieveRequest,
    RetrieveResponse,
    Usage,
)
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from shared.events import InferenceTrace
from shared.events import RetrievedChunk as TracedChunk
from shared.redact import DETECTORS, Redactor
from shared.retrieval import Hit, query_embedder, retrieve
from shared.vector_store import VectorStore


class QuestionTooLong(ValueError):
    """The question is over the configured length."""


class ModelNotLoaded(RuntimeError):
    """This process serves retrieval only: no language model is loaded."""


class GenerationFailed(RuntimeError):
    """The model failed or timed out; an error trace has been published."""

    def __init__(self, reason: str, unavailable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        # unavailable: the backend is down, not loaded or too slow (a retry may work);
        # otherwise it answered with an error
        self.unavailable = unavailable


def failure_of(exc: BaseException) -> GenerationFailed:
    """What a generation error means for the caller."""
    if isinstance(exc, TimeoutError):
        return GenerationFailed("the language model timed out", unavailable=True)
    return GenerationFailed(str(exc), unavailable=isinstance(exc, LLMUnavailable))


@dataclass
class Answering:
    """Everything a request needs, built once per process."""

    settings: InferenceSettings
    store: VectorStore
    llm: LLM | None
    publisher: TracePublisher
    prompts: dict[str, dict[str, Prompt]]
    redactor: Redactor = field(default_factory=lambda: Redactor.named(DETECTORS))

    def __post_init__(self) -> None:
        self.split = parse_split(self.settings.prompt_split)
        # The query model and the store both block and take one call at a time: one thread.
        self._retrieval = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrieval")

    async def start(self) -> None:
        """Load the query model and run it once, so that ready means ready; start tracing."""
        await asyncio.get_running_loop().run_in_executor(self._retrieval, self._warm_up)
        await self.publisher.start()

    async def stop(self) -> None:
        """Let queued traces go out, then stop."""
        await self.publisher.stop()
        self._retrieval.shutdown(wait=False, cancel_futures=True)

    def _warm_up(self) -> None:
        query_embedder(self.store, self.store.active()).encode(["warm-up"])

    def checks(self) -> dict[str, bool]:
        """Readiness of each part (blocking: asks the store)."""
        checks = {"broker": self.publisher.connected, "model": self.llm is not None}
        try:
            checks["vector_store"] = self.store.active() is not None
        except Exception:  # noqa: BLE001 - a store that cannot answer is not ready
            checks["vector_store"] = False
        return checks

    def _top_k(self, requested: int | None) -> int:
        return min(requested or self.settings.top_k, self.settings.max_top_k)

    async def _search(
        self, req: RetrieveRequest, key: ApiKey, timings: dict[str, float]
    ) -> list[Hit]:
        if len(req.question) > self.settings.max_question_chars:
            raise QuestionTooLong(f"question over {self.settings.max_question_chars} characters")
        return await asyncio.get_running_loop().run_in_executor(
            self._retrieval,
            functools.partial(
                retrieve,
                self.store,
                req.question,
                key.tenant,
                key.groups,
                self._top_k(req.top_k) * 2,
                req.filters,
                self.settings.score_threshold,
                timings=timings,
            ),
        )

    def trace(self, trace_id: str, key: ApiKey, question: str, endpoint: str, **kw: Any) -> None:
        """Publish a trace without waiting for Kafka. Its free text (the question, the answer)
        is redacted: a model can repeat what the caller typed, or make personal data up."""
        if kw.get("answer"):
            kw["answer"], _ = self.redactor.redact(kw["answer"])
        self.publisher.submit(
            InferenceTrace(
                trace_id=trace_id,
                tenant=key.tenant,
                api_key_id=key.id,
                question=self.redactor.redact(question)[0],
                endpoint=endpoint,
                **kw,
            )
        )

    async def retrieve(self, req: RetrieveRequest, key: ApiKey) -> RetrieveResponse:
        """The chunks the key may read, best first, traced."""
        trace_id, t0, timings = uuid.uuid4().hex, time.perf_counter(), dict[str, float]()
        hits = dedupe(await self._search(req, key, timings))[: self._top_k(req.top_k)]
        timings["total"] = (time.perf_counter() - t0) * 1000
        self.trace(
            trace_id,
            key,
            req.question,
            "retrieve",
            status="ok",
            timings_ms=timings,
            retrieved=[
                TracedChunk(chunk_id=h.chunk_id, doc_id=h.doc_id, score=h.score) for h in hits
            ],
        )
        return RetrieveResponse(
            trace_id=trace_id,
            timings_ms=timings,
            chunks=[
                RetrievedChunk(**c.model_dump(), text=h.text)
                for c, h in zip(citations(hits), hits, strict=True)
            ],
        )

    async def prepare(self, req: QueryRequest, key: ApiKey) -> Generation:
        """Retrieve and pack the context; the returned generation has not started yet.

        Raises QuestionTooLong, ModelNotLoaded, or PromptNotFound (a name or version that does
        not exist).
        """
        if self.llm is None:
            raise ModelNotLoaded("the language model is not loaded")
        llm, s = self.llm, self.settings
        prompt = choose(self.prompts, req.prompt, s.prompt, self.split, key.id)
        trace_id, t0, timings = uuid.uuid4().hex, time.perf_counter(), dict[str, float]()
        hits = dedupe(await self._search(req, key, timings))
        budget = (
            llm.context_window
            - s.max_new_tokens
            - llm.count_tokens(prompt.render("", req.question))
            - 16
        )
        context, used = pack(hits, max(budget, 0), llm.count_tokens)
        text = prompt.render(context or "(no matching documents)", req.question)
        return Generation(self, key, req.question, trace_id, t0, timings, prompt, llm, text, used)


@dataclass
class Generation:
    """One answer being generated: its pieces, then a response or a failure, each traced."""

    owner: Answering
    key: ApiKey
    question: str
    trace_id: str
    t0: float
    timings: dict[str, float]
    prompt: Prompt
    llm: LLM
    text: str
    used: list[Hit]
    answer: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.prompt_tokens = self.llm.count_tokens(self.text)
        self.citations: list[Citation] = citations(self.used)

    def _trace(self, **kw: Any) -> None:
        self.owner.trace(
            self.trace_id,
            self.key,
            self.question,
            "query",
            timings_ms=self.timings,
            retrieved=[
                TracedChunk(chunk_id=h.chunk_id, doc_id=h.doc_id, score=h.score) for h in self.used
            ],
            prompt_name=self.prompt.name,
            prompt_version=self.prompt.version,
            model=self.llm.name,
            prompt_tokens=self.prompt_tokens,
            **kw,
        )

    async def pieces(self) -> AsyncIterator[str]:
        """The answer as it is generated; a failure is traced and raised as GenerationFailed."""
        s = self.owner.settings
        try:
            async for piece in generate(
                self.llm,
                self.text,
                Sampling.from_settings(s),
                self.stop,
                s.llm_timeout_s,
                self.timings,
            ):
                self.answer.append(piece)
                yield piece
        except (LLMUnavailable, LLMFailed, TimeoutError) as exc:
            failure = failure_of(exc)
            self._trace(status="error", error=failure.reason, answer="".join(self.answer))
            raise failure from exc
        finally:
            self.stop.set()

    def finish(self) -> QueryResponse:
        """The response once every piece is in; its trace is published."""
        self.timings["total"] = (time.perf_counter() - self.t0) * 1000
        answer = "".join(self.answer).strip()
        self._trace(status="ok", answer=answer, completion_tokens=len(self.answer))
        return QueryResponse(
            answer=answer,
            citations=self.citations,
            trace_id=self.trace_id,
            prompt=PromptRef(name=self.prompt.name, version=self.prompt.version),
            model=self.llm.name,
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=len(self.answer)),
            timings_ms=self.timings,
        )


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
