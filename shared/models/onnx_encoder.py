"""The embedding model on ONNX Runtime: exported once from the packaged model into the cache,
optionally quantised to int8, then run without torch.

sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, which requires
transformers < 4.58 (this platform runs transformers 5); so the export is torch's own
(``torch.onnx.export``), and the pooling that the model's sentence-transformers modules
declare (mean over the tokens, then unit length) is done here in numpy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.models.files import max_seq_length, model_dir

log = logging.getLogger(__name__)
OPSET = 17
QUANTIZED = "onnx-int8"


class OnnxUnsupported(RuntimeError):
    """A model whose pooling this encoder does not reproduce."""


def _check_modules(folder: Path) -> None:
    modules = json.loads((folder / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    if kinds != ["Transformer", "Pooling", "Normalize"] or not pooling.get(
        "pooling_mode_mean_tokens"
    ):
        raise OnnxUnsupported(
            f"{folder}: the onnx backend reproduces Transformer + mean Pooling + Normalize "
            f"only, not {kinds}; use LLMOPS_EMBEDDING_BACKEND=torch"
        )


def cache_key(folder: Path) -> str:
    """The exported files' name: the weights' hash, so a new model version exports again."""
    h = hashlib.sha256()
    with (folder / "model.safetensors").open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{folder.parent.name}-{h.hexdigest()[:16]}-opset{OPSET}"


def exported(name: str, cache_dir: Path, quantized: bool) -> Path:
    """The model's ONNX file in the cache, exported (and quantised) on first use; one process
    exports while the others wait on a lock."""
    folder = model_dir(name)
    _check_modules(folder)
    out = cache_dir / "onnx" / cache_key(folder)
    fp32, int8 = out / "model.onnx", out / "model-int8.onnx"
    want = int8 if quantized else fp32
    if want.exists():
        return want
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fp32.exists():
            log.info("exporting %s to ONNX into %s (once)", name, out)
            _export(folder, fp32)
        if quantized and not int8.exists():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = int8.with_suffix(".tmp")
            quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8)
            os.replace(tmp, int8)
    return want


def _export(folder: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()

    class Tokens(torch.nn.Module):
        """The model's token vectors, with its inputs by position (as ONNX names them)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            out = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return out.last_hidden_state

    model = Tokens().eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # traced with padding in the batch, as it will run
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    tmp = target.with_suffix(".tmp")
    # the tracer's warnings are about data-dependent branches of code paths this model does
    # not take; a user starting `make run` for the first time cannot act on them
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask, torch.zeros_like(ids)),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "tokens"}},
            opset_version=OPSET,
            dynamo=False,
        )
    os.replace(tmp, target)


@dataclass
class OnnxEncoder:
    """What the Embedder needs of a model: ``encode`` and ``get_embedding_dimension``."""

    session: Any
    tokenizer: Any
    dim: int

    @classmethod
    def load(cls, name: str, cache_dir: Path, quantized: bool) -> OnnxEncoder:
        """Export if needed, then open an ONNX Runtime session on every core."""
        import onnxruntime as ort

        from shared.models.files import load_tokenizer

        path = exported(name, cache_dir, quantized)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        # Its threads would spin between calls, taking the cores from the API's event loop
        # and the stream agents for nothing.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        shared = load_tokenizer(name)  # a copy of it: padding and truncation are ours alone
        tok = shared.__class__.from_str(shared.to_str())
        tok.enable_truncation(max_seq_length(name))
        tok.enable_padding()
        config = json.loads((model_dir(name) / "config.json").read_text())
        return cls(session, tok, int(config["hidden_size"]))

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        """Unit-length sentence vectors: mean of the token vectors under the attention mask."""
        # longest first, as sentence-transformers does: batches of like lengths pad little
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.tokenizer.encode_batch([texts[i] for i in order[start : start + batch_size]])
            ids = np.asarray([e.ids for e in enc], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
            types = np.asarray([e.type_ids for e in enc], dtype=np.int64)
            (hidden,) = self.session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out.append(pooled)
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        vectors[order] = np.concatenate(out)
        return vectors
