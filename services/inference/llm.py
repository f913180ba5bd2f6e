"""LLM backends behind one interface: llama-cpp-python in-process (a packaged model, see
``models``, or any GGUF file) or any OpenAI-compatible server.

Each backend drives its model in one of two modes. ``chat``: the prompt is a user message,
wrapped in the model's chat template. ``completion``: the prompt is the model's input as it
is, and generation ends at the prompt's stop sequences. A base model (no chat template)
is driven by completion; chat through a template it never learned gives no answer at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.inference.models import packaged
from services.inference.prompts import Mode
from services.inference.settings import InferenceSettings

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


@dataclass(frozen=True)
class Prompted:
    """What to generate from: the rendered prompt, how to drive the model with it, and (in
    completion mode) where to stop."""

    text: str
    mode: Mode
    stop: tuple[str, ...] = ()


def resolve_mode(setting: str, has_template: bool, chat_format: str | None) -> Mode:
    """How to drive a model. ``auto``: chat when it has a chat template (in its GGUF metadata,
    or configured as a llama.cpp chat format), completion otherwise. ``chat`` on a model with
    no template is refused: its answers would be empty."""
    if setting == "completion":
        return "completion"
    if setting == "chat":
        if not (has_template or chat_format):
            raise ValueError(
                "INFERENCE_LLM_MODE=chat, but the model has no chat template in its metadata: "
                "set INFERENCE_LLM_CHAT_FORMAT (e.g. gemma) or use completion"
            )
        return "chat"
    if setting == "auto":
        return "chat" if has_template or chat_format else "completion"
    raise ValueError(f"unknown INFERENCE_LLM_MODE {setting!r}: auto, chat or completion")


class LLM(Protocol):
    """What inference needs from a model."""

    name: str
    mode: Mode
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

    def stream(self, prompt: Prompted, sampling: Sampling, stop: threading.Event) -> Iterator[str]:
        """Answer pieces as they are generated; stops early when ``stop`` is set."""
        ...


class LlamaCppLLM:
    """llama-cpp-python in this process.

    One generation at a time, all driven from one long-lived thread (``threads``): a thread
    per request would set up llama.cpp's compute threads again for every answer.
    """

    def __init__(
        self,
        path: Path,
        context_window: int,
        threads: int,
        mode: str = "auto",
        chat_format: str | None = None,
        name: str | None = None,
    ) -> None:
        from llama_cpp import Llama

        self.name = name or path.stem
        self.concurrency = 1
        self.context_window = context_window
        # Llama's default prompt cache: a prompt that starts like the last one (the
        # template's fixed head) has that part's tokens evaluated already, and skips them.
        self._llm = Llama(
            model_path=str(path),
            n_ctx=context_window,
            n_threads=threads,
            chat_format=chat_format or None,
            verbose=False,
        )
        has_template = "tokenizer.chat_template" in self._llm.metadata
        self.mode = resolve_mode(mode, has_template, chat_format)
        self._lock = threading.Lock()  # one generation at a time per loaded model
        self.threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, prompt: Prompted, sampling: Sampling, stop: threading.Event) -> Iterator[str]:
        common: dict[str, Any] = dict(
            stream=True,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            repeat_penalty=sampling.repeat_penalty,
            stop=list(prompt.stop) or None,
        )
        with self._lock:
            try:
                if prompt.mode == "chat":
                    chunks: Any = self._llm.create_chat_completion(
                        messages=[{"role": "user", "content": prompt.text}], **common
                    )
                else:
                    chunks = self._llm.create_completion(prompt.text, **common)
                for chunk in chunks:
                    if stop.is_set():
                        break
                    piece = piece_of(chunk)
                    if piece:
                        yield piece
            except Exception as exc:  # noqa: BLE001 - surfaced as 502 with the reason
                raise LLMFailed(f"llama.cpp generation failed: {exc}") from exc


def piece_of(chunk: Any) -> str | None:
    """The text of one streamed chunk, from a chat (``delta``) or a completion (``text``)."""
    choice = chunk["choices"][0]
    piece = choice["delta"].get("content") if "delta" in choice else choice.get("text")
    return piece if isinstance(piece, str) else None


class OpenAICompatLLM:
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, OpenAI)."""

    STREAMS = 64  # streams open to the server at once; it batches them

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float,
        context_window: int,
        mode: str = "auto",
    ) -> None:
        from openai import OpenAI

        self.name = model
        # a server's models are chat models unless told otherwise: completion uses
        # /v1/completions (for a base model served by vLLM or llama.cpp's server)
        self.mode: Mode = "completion" if mode == "completion" else "chat"
        self.concurrency = self.STREAMS
        self.context_window = context_window
        self._client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.threads = ThreadPoolExecutor(max_workers=self.STREAMS, thread_name_prefix="openai")

    def count_tokens(self, text: str) -> int:
        # The server's tokenizer is not reachable through the API; the embedding model's
        # WordPiece count is a close, slightly high estimate for English.
        from shared.models.files import load_tokenizer

        return len(load_tokenizer().encode(text, add_special_tokens=False).ids)

    def stream(self, prompt: Prompted, sampling: Sampling, stop: threading.Event) -> Iterator[str]:
        import openai

        common: dict[str, Any] = dict(
            model=self.name,
            stream=True,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            extra_body={"repeat_penalty": sampling.repeat_penalty},
        )
        if prompt.stop:
            common["stop"] = list(prompt.stop)[:4]  # the API takes four at most
        try:
            chunks: Any
            if prompt.mode == "chat":
                chunks = self._client.chat.completions.create(
                    messages=[{"role": "user", "content": prompt.text}], **common
                )
            else:
                chunks = self._client.completions.create(prompt=prompt.text, **common)
            for chunk in chunks:
                if stop.is_set():
                    chunks.close()
                    break
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                piece = choice.delta.content if prompt.mode == "chat" else choice.text
                if piece:
                    yield piece
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
            s.llm_mode,
        )
    if s.llm_backend == "llama_cpp":
        if s.llm_model_path is not None:
            path, name = s.llm_model_path, None
        else:
            path, name = packaged(s.llm_model).locate(s.platform.cache_dir), s.llm_model
        return LlamaCppLLM(
            path, s.llm_context, s.llm_threads, s.llm_mode, s.llm_chat_format or None, name
        )
    raise ValueError(f"unknown INFERENCE_LLM_BACKEND {s.llm_backend!r}: llama_cpp or openai")
