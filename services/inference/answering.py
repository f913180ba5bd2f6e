"""Answering a question, with no HTTP in it: retrieve, pack, generate, trace.

The routes turn what this module returns and raises into HTTP; everything else (which chunks,
which prompt, how generation runs beside the event loop, what each trace holds) is here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from services.inference.auth import ApiKey
from services.inference.llm import LLM, LLMFailed, LLMUnavailable, Prompted, Sampling
from services.inference.logic import carried, citations, collapse, dedupe, pack, retrieved
from services.inference.otel import ARRIVAL, Arrival, RequestSpans
from services.inference.prompts import Prompt, check_split, choose, parse_split
from services.inference.schemas import (
    Citation,
    PromptRef,
    QueryRequest,
    QueryResponse,
    RetrieveRequest,
    RetrieveResponse,
    Usage,
)
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from shared.contracts.events import InferenceTrace
from shared.contracts.events import RetrievedChunk as TracedChunk
from shared.contracts.trace_ids import TraceIds
from shared.models.embedder import MODEL_THREAD
from shared.redact import DETECTORS, Redactor, StreamRedactor
from shared.store.base import VectorStore
from shared.store.retrieval import Hit, query_embedder, retrieve

log = logging.getLogger(__name__)


class QuestionTooLong(ValueError):
    """The question is over the configured length."""


class OverLimit(ValueError):
    """A request field over this server's limit (a 422 naming the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


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


class Overloaded(RuntimeError):
    """The generation queue cannot serve another question in time; try again later."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


@dataclass
class GenerationQueue:
    """Admission to the model: a question is refused at once, rather than answered with a
    slow failure, when the queue is full or its wait would outlast the timeout."""

    concurrency: int
    max_queued: int
    timeout_s: float
    in_flight: int = 0
    refused: int = 0
    mean_s: float | None = None  # moving average of a whole generation, once one finished

    def _ahead(self) -> int:
        """Generations that must finish before a new one starts (0: it starts at once)."""
        return max(0, self.in_flight - self.concurrency + 1)

    def retry_after_s(self) -> int:
        """A fair guess of when a slot frees up."""
        per = self.mean_s if self.mean_s is not None else 5.0
        return max(1, math.ceil(per * max(1, self._ahead()) / self.concurrency))

    def admit(self) -> None:
        """Take a slot, or raise Overloaded with a reason and a Retry-After."""
        reason = None
        if self.in_flight >= self.concurrency + self.max_queued:
            reason = f"the model is busy: {self.in_flight} questions ahead, the queue is full"
        elif self._ahead() and self.mean_s is not None:
            wait = self._ahead() / self.concurrency * self.mean_s
            if wait + self.mean_s > self.timeout_s:
                reason = (
                    f"the model is busy: a wait of about {wait:.0f} s would outlast the "
                    f"{self.timeout_s:.0f} s generation timeout"
                )
        if reason is not None:
            self.refused += 1
            raise Overloaded(reason, self.retry_after_s())
        self.in_flight += 1

    def release(self, seconds: float | None = None) -> None:
        """Give the slot back; ``seconds`` is how long a completed generation took."""
        self.in_flight -= 1
        if seconds is not None:
            self.mean_s = seconds if self.mean_s is None else 0.8 * self.mean_s + 0.2 * seconds


def traced(hits: list[Hit]) -> list[TracedChunk]:
    """What a trace keeps of the chunks: ids and similarities (cosine, whatever the ranking,
    so that monitoring's score metrics mean one thing), never their text."""
    return [TracedChunk(chunk_id=h.chunk_id, doc_id=h.doc_id, score=h.similarity) for h in hits]


def failure_of(exc: BaseException) -> GenerationFailed:
    """What a generation error means for the caller."""
    if isinstance(exc, TimeoutError):
        return GenerationFailed("the language model timed out", unavailable=True)
    return GenerationFailed(str(exc), unavailable=isinstance(exc, LLMUnavailable))


# Chunks fetched per result asked: same-document and near-duplicate chunks are collapsed.
CANDIDATES_PER_RESULT = 3

# The answer when no passage scores over INFERENCE_SCORE_THRESHOLD; the model is not asked.
NO_ANSWER = "I do not know: no document I may read answers this."


@dataclass(frozen=True)
class ChatTerms:
    """What a chat completion brings beside its question: the conversation's earlier turns
    as (role, text), the caller's sampling and stop sequences, the trace's endpoint and the
    caller's end-user id."""

    earlier: tuple[tuple[str, str], ...] = ()
    sampling: Sampling | None = None
    stop: tuple[str, ...] = ()
    endpoint: str = "query"
    user: str | None = None


@dataclass
class Answering:
    """Everything a request needs, built once per process."""

    settings: InferenceSettings
    store: VectorStore
    llm: LLM | None
    publisher: TracePublisher
    prompts: dict[str, dict[str, Prompt]]
    redactor: Redactor = field(default_factory=lambda: Redactor.named(DETECTORS))
    trace_ids: TraceIds = field(default_factory=lambda: TraceIds(secrets.token_bytes(32)))
    spans: RequestSpans | None = None  # OpenTelemetry export, when it is on

    def __post_init__(self) -> None:
        self.split = parse_split(self.settings.prompt_split)
        if self.llm is not None:
            check_split(self.prompts, self.settings.prompt, self.split, self.llm.mode)
        self.queue = GenerationQueue(
            concurrency=self.llm.concurrency if self.llm is not None else 1,
            max_queued=self.settings.max_queued,
            timeout_s=self.settings.llm_timeout_s,
        )
        # Retrieval runs on the model's own thread: the question is encoded there anyway, and
        # a thread of its own would add a hand-over per request (the store takes under 10 ms).
        self._retrieval = MODEL_THREAD

    async def start(self) -> None:
        """Load the query model and run it once, so that ready means ready; start tracing."""
        await asyncio.get_running_loop().run_in_executor(self._retrieval, self._warm_up)
        await self.publisher.start()

    async def stop(self) -> None:
        """Let queued traces go out, then stop."""
        await self.publisher.stop()

    def _warm_up(self) -> None:
        embedder = query_embedder(self.store, self.store.active())
        embedder.encode(["warm-up"])
        if self.spans is not None:
            self.spans.embedding_model = embedder.name

    def checks(self) -> dict[str, bool]:
        """Readiness of each part (blocking: asks the store)."""
        checks = {"broker": self.publisher.connected, "model": self.llm is not None}
        try:
            checks["vector_store"] = self.store.active() is not None
        except Exception:  # noqa: BLE001 - a store that cannot answer is not ready
            checks["vector_store"] = False
        return checks

    def _top_k(self, requested: int | None) -> int:
        """What the caller asked, or the default; OverLimit past INFERENCE_MAX_TOP_K (a
        silent cap would hand back fewer results than asked without saying so)."""
        if requested is not None and requested > self.settings.max_top_k:
            raise OverLimit(
                "top_k",
                f"top_k is over this server's limit of {self.settings.max_top_k} "
                "(INFERENCE_MAX_TOP_K)",
            )
        return requested or self.settings.top_k

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
                self._top_k(req.top_k) * CANDIDATES_PER_RESULT,
                req.filters,
                self.settings.score_threshold,
                timings=timings,
                mode=req.mode or self.settings.retrieval_mode,
                fusion=self.settings.fusion,
                rrf_k=self.settings.rrf_k,
            ),
        )

    def trace(self, trace_id: str, key: ApiKey, question: str, endpoint: str, **kw: Any) -> None:
        """Publish a trace without waiting for Kafka. Its free text (the question, the answer)
        is redacted: a model can repeat what the caller typed, or make personal data up."""
        if kw.get("answer"):
            kw["answer"], _ = self.redactor.redact(kw["answer"])
        event = InferenceTrace(
            trace_id=trace_id,
            tenant=key.tenant,
            api_key_id=key.id,
            groups=key.groups,
            question=self.redactor.redact(question)[0],
            endpoint=endpoint,
            **kw,
        )
        if self.spans is None:
            self.publisher.submit(event)
        else:  # the same trace as OpenTelemetry spans, built off the request's path
            self.publisher.submit(functools.partial(self._with_spans, event, ARRIVAL.get()))

    def _with_spans(self, event: InferenceTrace, arrival: Arrival | None) -> InferenceTrace:
        """Export ``event``'s spans (timed from ``arrival`` and its timings, whenever this
        runs); the event with the request span's ``traceparent``."""
        assert self.spans is not None
        try:
            parent = self.spans.export(event, arrival)
        except Exception:  # noqa: BLE001 - export never fails a trace
            log.exception("could not make the OpenTelemetry spans of %s", event.trace_id)
            return event
        return event.model_copy(update={"otel_traceparent": parent})

    async def retrieve(self, req: RetrieveRequest, key: ApiKey) -> RetrieveResponse:
        """The chunks the key may read, best first, traced."""
        trace_id, t0, timings = (
            self.trace_ids.new(key.tenant),
            time.perf_counter(),
            dict[str, float](),
        )
        hits = collapse(await self._search(req, key, timings))[: self._top_k(req.top_k)]
        timings["total"] = (time.perf_counter() - t0) * 1000
        self.trace(
            trace_id,
            key,
            req.question,
            "retrieve",
            status="ok",
            timings_ms=timings,
            retrieved=traced(hits),
        )
        return RetrieveResponse(
            trace_id=trace_id,
            timings_ms=timings,
            chunks=retrieved(hits),
        )

    async def prepare(
        self, req: QueryRequest, key: ApiKey, chat: ChatTerms | None = None
    ) -> Generation:
        """Retrieve and pack the context; the returned generation has not started yet.
        ``chat`` (the OpenAI-compatible route) brings earlier turns, sampling and stop
        sequences of the caller's own.

        Raises QuestionTooLong, ModelNotLoaded, PromptNotFound (a name or version that does
        not exist), or Overloaded (traced as refused). The generation holds a queue slot until
        its pieces are done or it is closed.
        """
        if self.llm is None:
            raise ModelNotLoaded("the language model is not loaded")
        llm, s = self.llm, self.settings
        chat = chat or ChatTerms()
        sampling = chat.sampling or Sampling.from_settings(s)
        prompt = choose(self.prompts, req.prompt, s.prompt, self.split, key.id, llm.mode)
        trace_id, t0, timings = (
            self.trace_ids.new(key.tenant),
            time.perf_counter(),
            dict[str, float](),
        )
        hits = dedupe(await self._search(req, key, timings))
        room = (
            llm.context_window
            - sampling.max_tokens
            - llm.count_tokens(prompt.render("", req.question))
            - 16
        )
        # Only what answers the question: every passage token is evaluated before the first
        # answer token, so the budget is what sets the time to first token.
        budget = max(min(room, s.context_tokens) if s.context_tokens else room, 0)
        # earlier turns of a conversation: the newest first, in up to half of it
        earlier = carried(chat.earlier, budget // 2, llm.count_tokens)
        spent = llm.count_tokens(earlier) if earlier else 0
        context, used = pack(hits, budget - spent, llm.count_tokens)
        if prompt.closed_book:  # the model sees no passage: none is cited or traced
            context, used = "", []
        context = context or "(no matching documents)"
        text = prompt.render(f"{context}\n\n{earlier}" if earlier else context, req.question)
        generation = Generation(
            self,
            key,
            req.question,
            trace_id,
            t0,
            timings,
            prompt,
            llm,
            text,
            used,
            include_context=req.include_context,
            sampling=sampling,
            stop_at=chat.stop,
            endpoint=chat.endpoint,
            user=chat.user,
        )
        try:
            self.queue.admit()
        except Overloaded as exc:
            generation._trace(status="refused", error=str(exc))
            raise
        return generation


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
    include_context: bool = False
    sampling: Sampling | None = None  # None: the settings'
    stop_at: tuple[str, ...] = ()  # the caller's own stop sequences
    endpoint: str = "query"
    user: str | None = None
    answer: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _released: bool = False
    _traced: bool = False

    def abandon(self) -> None:
        """The caller is gone: unless the outcome was traced already, trace it as cancelled;
        stop generating and give the slot back. Safe to call in any state, more than once."""
        if not self._traced:
            self._trace(status="cancelled", answer="".join(self.answer))
        self.close()

    def close(self, completed_s: float | None = None) -> None:
        """Stop generating and give the queue slot back (once)."""
        self.stop.set()
        if not self._released:
            self._released = True
            self.owner.queue.release(completed_s)

    def __post_init__(self) -> None:
        self.prompt_tokens = self.llm.count_tokens(self.text)
        self.citations: list[Citation] = citations(self.used)
        self.context = [h.text.strip() for h in self.used]

    def _trace(self, **kw: Any) -> None:
        self._traced = True
        self.owner.trace(
            self.trace_id,
            self.key,
            self.question,
            self.endpoint,
            timings_ms=self.timings,
            retrieved=traced(self.used),
            # what the model was given, so the answer can be scored without the store
            context=self.context,
            prompt_name=self.prompt.name,
            prompt_version=self.prompt.version,
            llm_mode=self.prompt.mode,
            model=self.llm.name,
            prompt_tokens=self.prompt_tokens,
            user=self.user,
            **kw,
        )

    async def pieces(self) -> AsyncIterator[str]:
        """The answer as it is generated; a failure is traced and raised as GenerationFailed.

        When the caller goes away (the task is cancelled, or this iterator is closed early)
        generation stops and the trace says cancelled.
        """
        s = self.owner.settings
        started, completed = time.perf_counter(), False
        try:
            if not self.used and not self.prompt.closed_book:
                # Nothing the key may read scores over the threshold: there is nothing to
                # answer from, and a small model asked anyway makes an answer up (it did for
                # 9 of 12 such questions in bench/answers.py).
                self.answer.append(NO_ANSWER)
                yield NO_ANSWER
                return
            # The caller gets the answer redacted too (s.redact_answers): a model can repeat
            # what the question held, or make personal data up.
            shown = StreamRedactor(self.owner.redactor) if s.redact_answers else None
            async for piece in generate(
                self.llm,
                Prompted(self.text, self.prompt.mode, self.stop_at + self.prompt.stop),
                self.sampling or Sampling.from_settings(s),
                self.stop,
                s.llm_timeout_s,
                self.timings,
            ):
                self.answer.append(piece)
                out = piece if shown is None else shown.feed(piece)
                if out:
                    yield out
            if shown is not None and (rest := shown.close()):
                yield rest
            completed = True
        except (LLMUnavailable, LLMFailed, TimeoutError) as exc:
            failure = failure_of(exc)
            self._trace(status="error", error=failure.reason, answer="".join(self.answer))
            raise failure from exc
        except (asyncio.CancelledError, GeneratorExit):
            self.abandon()
            raise
        finally:
            self.close(time.perf_counter() - started if completed else None)

    def finish(self) -> QueryResponse:
        """The response once every piece is in; its trace is published."""
        self.timings["total"] = (time.perf_counter() - self.t0) * 1000
        answer = "".join(self.answer).strip()
        self._trace(status="ok", answer=answer, completion_tokens=len(self.answer))
        if self.owner.settings.redact_answers:
            answer = self.owner.redactor.redact(answer)[0]
        return QueryResponse(
            answer=answer,
            citations=self.citations,
            trace_id=self.trace_id,
            prompt=PromptRef(
                name=self.prompt.name, version=self.prompt.version, mode=self.prompt.mode
            ),
            model=self.llm.name,
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=len(self.answer)),
            timings_ms=self.timings,
            context=self.context if self.include_context else None,
        )


async def generate(
    llm: LLM,
    prompt: Prompted,
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
