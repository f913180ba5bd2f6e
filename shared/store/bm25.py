"""The BM25 sparse vectors both backends store and search with: one tokenizer (Qdrant's own
English BM25, lower case, stop words dropped, Snowball stems), so a collection means the same
on either engine.

The tokenizer ships in qdrant-edge-py (Rust, the same code as the Qdrant server's bm25
inference); it is imported when first used, so a process that only searches densely (or only
imports the store's types) runs without the embedded engine installed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


class Bm25Unavailable(RuntimeError):
    """Keyword and hybrid search need the BM25 tokenizer, which qdrant-edge-py ships."""


@lru_cache(maxsize=1)
def _bm25() -> Any:
    try:
        import qdrant_edge
    except ImportError as exc:
        raise Bm25Unavailable(
            "BM25 (QDRANT_SEARCH_MODE hybrid or keyword) needs qdrant-edge-py's tokenizer: "
            "install qdrant-edge-py, or search densely only"
        ) from exc

    # English: lower case, stop words dropped, Snowball stems. Chunks are about 200 words.
    return qdrant_edge.Bm25(qdrant_edge.Bm25Config(language="english", avg_len=160.0))


def bm25_document(text: str) -> tuple[list[int], list[float]]:
    """The BM25 sparse vector of an indexed text: term frequencies (the engine adds IDF).
    Both backends use this one tokenizer, so a collection means the same on either."""
    v = _bm25().embed_document(text)
    return list(v.indices), list(v.values)


def bm25_query(text: str) -> tuple[list[int], list[float]]:
    """The BM25 sparse vector of a question: each distinct term once."""
    v = _bm25().embed_query(text)
    return list(v.indices), list(v.values)
