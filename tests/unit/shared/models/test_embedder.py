"""Unit tests of ``shared.models.embedder``: every encode of every embedder runs on one torch
thread; the shared embedder is one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

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
