"""The embedding model: sentence-transformers, loaded from site-packages, never downloaded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from shared.models.files import DEFAULT_MODEL, model_dir  # sets HF_HUB_OFFLINE first
from shared.settings import PlatformSettings

T = TypeVar("T")
_here = threading.local()  # .model is True on MODEL_THREAD
MODEL_THREAD = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="model", initializer=lambda: setattr(_here, "model", True)
)


@dataclass
class Embedder:
    """Encodes texts into normalised vectors; counts its calls so tests can prove a skip.

    Every encode, of every embedder in the process, runs on one thread (``MODEL_THREAD``),
    whichever thread calls. Torch's OpenMP (and ONNX Runtime's pool) keeps a team of threads
    per calling thread, and on a machine this small a second team (say the API's queries
    beside the embedding agent's batches) slows every encode by about a quarter, even while
    it sits idle. One thread also means one encode at a time; the model uses every core.
    """

    name: str = DEFAULT_MODEL
    device: str = "cpu"
    # torch, onnx or onnx-int8 (LLMOPS_EMBEDDING_BACKEND): the same for every embedder of
    # the platform, since an index and its queries must come from one backend
    backend: str = field(default_factory=lambda: PlatformSettings().embedding_backend)
    calls: int = 0
    texts_encoded: int = 0
    _model: Any = field(default=None, repr=False)

    @staticmethod
    def _on_thread(fn: Callable[[], T]) -> T:
        if getattr(_here, "model", False):  # already there: waiting on itself would hang
            return fn()
        return MODEL_THREAD.submit(fn).result()

    def _load(self) -> Any:
        if self._model is None:
            if self.backend == "torch":
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    str(model_dir(self.name)), device=self.device, local_files_only=True
                )
            else:
                from shared.models.onnx_encoder import QUANTIZED, OnnxEncoder

                self._model = OnnxEncoder.load(
                    self.name, PlatformSettings().cache_dir, self.backend == QUANTIZED
                )
        return self._model

    @property
    def dim(self) -> int:
        """Vector size."""
        dim = self._on_thread(self._load).get_embedding_dimension()
        assert dim is not None
        return int(dim)

    def encode(self, texts: list[str], batch_size: int = 64) -> list[list[float]]:
        """Unit-length vectors for ``texts``; blocking, so call it from a worker thread."""
        if not texts:
            return []

        def run() -> list[list[float]]:
            vectors = self._load().encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self.calls += 1
            self.texts_encoded += len(texts)
            return [v.tolist() for v in vectors]

        return self._on_thread(run)


def get_embedder(name: str = DEFAULT_MODEL) -> Embedder:
    """One shared Embedder per model in this process (a model is loaded once)."""
    return _shared(name)  # one cache key, whether the name was given or defaulted


@lru_cache(maxsize=4)
def _shared(name: str) -> Embedder:
    return Embedder(name)
