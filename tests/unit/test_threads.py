"""Which threads drive the models: every encode on one torch thread, every llama
generation on the backend's own threads, and a generation given up while queued never starts.
(On a 2-core machine a second OpenMP team, or a thread per request, costs a tenth to a quarter
of the speed; see bench/query.py.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from services.inference.answering import generate
from services.inference.llm import Sampling
from shared.models.embedder import MODEL_THREAD, Embedder, get_embedder
from shared.models.files import DEFAULT_MODEL


class RecordingModel:
    def __init__(self) -> None:
        self.threads: list[str] = []

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return np.ones((len(texts), 3), dtype=np.float32)


def test_every_encode_of_every_embedder_runs_on_one_thread() -> None:
    model = RecordingModel()
    embedder, other = Embedder("recording", _model=model), Embedder("other", _model=model)
    with ThreadPoolExecutor(4) as callers:
        vectors = list(callers.map(lambda i: embedder.encode([f"text {i}"]), range(8)))
    embedder.encode(["from the main thread"])
    other.encode(["another model"])
    assert vectors[0] == [[1.0, 1.0, 1.0]]
    assert embedder.calls == 9 and embedder.texts_encoded == 9 and other.calls == 1
    assert len(set(model.threads)) == 1, model.threads
    assert model.threads[0].startswith("model"), model.threads


def test_an_encode_from_the_torch_thread_itself_runs_there() -> None:
    model = RecordingModel()
    embedder = Embedder("recording", _model=model)
    nested = MODEL_THREAD.submit(lambda: embedder.encode(["inside"])).result(timeout=10)
    assert nested == [[1.0, 1.0, 1.0]] and model.threads[0].startswith("model")


def test_the_shared_embedder_is_one_whether_the_name_is_given_or_not() -> None:
    assert get_embedder() is get_embedder(DEFAULT_MODEL)


class SlowLLM:
    """Yields ``pieces`` pieces, ``delay`` seconds apart, recording who called and when."""

    name = "slow"
    context_window = 512

    def __init__(self, pieces: int, delay: float) -> None:
        self.pieces, self.delay = pieces, delay
        self.threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self.calls: list[tuple[str, float, float]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt: str, sampling: Sampling, stop: threading.Event) -> Iterator[str]:
        t0 = time.monotonic()
        for i in range(self.pieces):
            if stop.is_set():
                break
            time.sleep(self.delay)
            yield f"{prompt}{i} "
        self.calls.append((threading.current_thread().name, t0, time.monotonic()))


SAMPLING = Sampling(max_tokens=8, temperature=0.0, top_p=1.0, repeat_penalty=1.0)


async def collect(llm: SlowLLM, prompt: str, timeout_s: float) -> list[str]:
    timings: dict[str, float] = {}
    pieces = [
        p async for p in generate(llm, prompt, SAMPLING, threading.Event(), timeout_s, timings)
    ]
    assert timings["first_token"] <= timings["generate"]
    return pieces


def test_generations_share_the_backends_thread_one_at_a_time() -> None:
    llm = SlowLLM(pieces=3, delay=0.02)

    async def both() -> list[list[str]]:
        return await asyncio.gather(collect(llm, "a", 10), collect(llm, "b", 10))

    a, b = asyncio.run(both())
    assert a == ["a0 ", "a1 ", "a2 "] and b == ["b0 ", "b1 ", "b2 "]
    assert {name for name, _, _ in llm.calls} == {"llama_0"}
    (_, s1, e1), (_, s2, _) = sorted(llm.calls, key=lambda c: c[1])
    assert s2 >= e1  # the second waited for the first


def test_a_generation_that_timed_out_in_the_queue_never_starts() -> None:
    llm = SlowLLM(pieces=5, delay=0.1)

    async def run() -> None:
        first = asyncio.ensure_future(collect(llm, "a", 10))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await collect(llm, "b", 0.1)  # still queued behind "a" when its time runs out
        assert len(await first) == 5

    asyncio.run(run())
    llm.threads.shutdown(wait=True)
    assert len(llm.calls) == 1, llm.calls  # "b" never evaluated its prompt
