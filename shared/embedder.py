"""The embedding model: sentence-transformers, loaded from site-packages, never downloaded."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shared.model_files import DEFAULT_MODEL, model_dir  # sets HF_HUB_OFFLINE first


@dataclass
class Embedder:
    """Encodes texts into normalised vectors; counts its calls so tests can prove a skip."""

    name: str = DEFAULT_MODEL
    device: str = "cpu"
    calls: int = 0
    texts_encoded: int = 0
    _model: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                str(model_dir(self.name)), device=self.device, local_files_only=True
            )
        return self._model

    @property
    def dim(self) -> int:
        """Vector size."""
        dim = self._load().get_embedding_dimension()
        assert dim is not None
        return int(dim)

    def encode(self, texts: list[str], batch_size: int = 64) -> list[list[float]]:
        """Unit-length vectors for ``texts``; blocking, so call it from a worker thread."""
        if not texts:
            return []
        model = self._load()
        with self._lock:  # one encode at a time: torch already uses every core
            self.calls += 1
            self.texts_encoded += len(texts)
            vectors = model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [v.tolist() for v in vectors]


@lru_cache(maxsize=4)
def get_embedder(name: str = DEFAULT_MODEL) -> Embedder:
    """One shared Embedder per model in this process (a model is loaded once)."""
    return Embedder(name)
