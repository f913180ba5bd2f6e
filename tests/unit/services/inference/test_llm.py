"""Unit tests of ``services.inference.llm``: how each model is driven (chat or completion), and
on which threads generations run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.inference.answering import generate
from services.inference.llm import Sampling, piece_of, resolve_mode


@pytest.mark.parametrize(
    ("setting", "has_template", "chat_format", "mode"),
    [
        ("auto", True, None, "chat"),  # SmolLM2-Instruct: a template in its GGUF
        ("auto", False, None, "completion"),  # the packaged Gemma: a base model, no template
        ("auto", False, "gemma", "chat"),  # a template configured for it
        ("completion", True, None, "completion"),
        ("chat", False, "gemma", "chat"),
    ],
)
def test_the_mode_follows_the_models_chat_template(
    setting: str, has_template: bool, chat_format: str | None, mode: str
) -> None:
    assert resolve_mode(setting, has_template, chat_format) == mode


def test_chat_without_a_template_and_unknown_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="no chat template"):
        resolve_mode("chat", False, None)
    with pytest.raises(ValueError, match="auto, chat or completion"):
        resolve_mode("instruct", True, None)


def test_streamed_pieces_are_read_from_chat_and_completion_chunks() -> None:
    assert piece_of({"choices": [{"delta": {"content": "Paris"}}]}) == "Paris"
    assert piece_of({"choices": [{"delta": {"role": "assistant"}}]}) is None
    assert piece_of({"choices": [{"text": " 35 days"}]}) == " 35 days"


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
