"""Answering in this process, without the HTTP server: what offline evaluation runs cases
through (`llmops eval run` without --url), at temperature 0. Traces are not published."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from shared.cli import Context
from shared.store.open import open_store


class Case(Protocol):
    """What a question to answer carries (an EvalCase has it)."""

    question: str
    tenant: str
    groups: list[str]


@contextlib.contextmanager
def answerer(ctx: Context) -> Iterator[Callable[[Case, str], Awaitable[dict[str, Any]]]]:
    """An async function answering a case with a prompt (name/version); it returns what
    /v1/query would, with the context. The vector store is open (and the model loaded)
    while the context lasts."""
    from services.inference.answering import Answering
    from services.inference.auth import ApiKey
    from services.inference.llm import make_llm
    from services.inference.prompts import load_prompts
    from services.inference.schemas import QueryRequest
    from services.inference.settings import inference_settings
    from services.inference.traces import TracePublisher

    # temperature 0: two runs of the same prompt give the same answers, so a gate compares
    # prompts, not luck
    s = ctx.settings(inference_settings).model_copy(update={"temperature": 0.0})
    store = open_store(ctx.qdrant, ctx.platform, ctx.prefix)
    # never started: it drops (and counts) the traces, which are not what is measured
    unused = TracePublisher("unused:0", "unused")
    answering = Answering(s, store, make_llm(s), unused, load_prompts(s.prompts_dir))

    async def answer(case: Case, prompt: str) -> dict[str, Any]:
        key = ApiKey(id="eval", sha256="0" * 64, tenant=case.tenant, groups=case.groups)
        req = QueryRequest(question=case.question, prompt=prompt, include_context=True)
        gen = await answering.prepare(req, key)
        try:
            async for _ in gen.pieces():
                pass
            return gen.finish().model_dump(mode="json")
        finally:
            gen.close()

    try:
        yield answer
    finally:
        store.close()
