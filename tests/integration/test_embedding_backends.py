"""The ONNX Runtime backend of the embedding model: exported once from the packaged model
into the cache (no hub), the same vectors as torch in fp32, close ones in int8."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shared.models.embedder import Embedder
from shared.models.files import model_dir
from shared.models.onnx_encoder import OnnxEncoder, OnnxUnsupported

pytestmark = pytest.mark.integration
TEXTS = [
    "Kafka keeps the document events in order per key.",
    "The canteen serves lunch from noon.",
    "short",
    " ".join(["a long chunk that the model truncates"] * 60),
]


def test_onnx_is_exported_once_and_encodes_like_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(tmp_path))
    torch_vectors = np.asarray(Embedder(backend="torch").encode(TEXTS))
    onnx = Embedder(backend="onnx")
    assert onnx.dim == 384
    fp32 = np.asarray(onnx.encode(TEXTS, batch_size=3))  # padded batches of unlike lengths
    assert np.allclose(np.linalg.norm(fp32, axis=1), 1.0, atol=1e-5)
    assert (fp32 * torch_vectors).sum(axis=1).min() > 0.9999
    (exported,) = tmp_path.glob("onnx/*/model.onnx")
    stamp = exported.stat().st_mtime_ns
    int8 = np.asarray(Embedder(backend="onnx-int8").encode(TEXTS))
    assert (int8 * torch_vectors).sum(axis=1).min() > 0.85
    assert exported.stat().st_mtime_ns == stamp  # reused, not exported again
    assert (exported.parent / "model-int8.onnx").exists()


def test_a_model_whose_pooling_onnx_does_not_reproduce_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cls-model"
    shutil.copytree(model_dir(), folder)
    cfg = json.loads((folder / "1_Pooling" / "config.json").read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(OnnxUnsupported, match="LLMOPS_EMBEDDING_BACKEND=torch"):
        OnnxEncoder.load(str(folder), tmp_path / "cache", quantized=False)
