"""Inference's pure logic: tidy retrieved chunks, pack them into the context window, cite."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.inference.schemas import Citation, RetrievedChunk
from shared.store.retrieval import Hit


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    """The word ``n``-grams of ``text`` (lower case): what near-duplicate checks compare."""
    words = text.lower().split()
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def near_duplicate(a: set[tuple[str, ...]], b: set[tuple[str, ...]], threshold: float) -> bool:
    """Jaccard similarity of two shingle sets at or over ``threshold``."""
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= threshold


def dedupe(hits: Sequence[Hit], per_doc: int = 2, near: float = 0.8) -> list[Hit]:
    """Best first; the same chunk once, and a chunk that repeats a better one (the same text
    in two documents, or two versions of a page: ``near`` or more of its word 3-grams
    shared) not at all; at most ``per_doc`` chunks of one document, and a document's chunks
    in reading order next to each other."""
    seen: set[str] = set()
    kept: list[set[tuple[str, ...]]] = []
    by_doc: dict[str, list[Hit]] = {}
    order: list[str] = []
    for h in sorted(hits, key=lambda h: -h.score):
        if h.chunk_id in seen:
            continue
        seen.add(h.chunk_id)
        grams = shingles(h.text)
        if any(near_duplicate(grams, k, near) for k in kept):
            continue
        kept.append(grams)
        if h.doc_id not in by_doc:
            by_doc[h.doc_id] = []
            order.append(h.doc_id)
        if len(by_doc[h.doc_id]) < per_doc:
            by_doc[h.doc_id].append(h)
    return [h for d in order for h in sorted(by_doc[d], key=lambda h: h.chunk_index)]


def collapse(hits: Sequence[Hit]) -> list[Hit]:
    """One result per document, its best chunk, best first (what /v1/retrieve returns:
    documents, each shown by the chunk that matched best)."""
    best: dict[str, Hit] = {}
    for h in hits:
        if h.doc_id not in best or h.score > best[h.doc_id].score:
            best[h.doc_id] = h
    return sorted(best.values(), key=lambda h: -h.score)


def pack(
    hits: Sequence[Hit], budget_tokens: int, count: Callable[[str], int]
) -> tuple[str, list[Hit]]:
    """Numbered context that fits ``budget_tokens`` by real token counts, and the hits used."""
    parts: list[str] = []
    used: list[Hit] = []
    spent = 0
    for h in hits:
        block = f"[{len(used) + 1}] {h.title}\n{h.text.strip()}"
        cost = count(block)
        if spent + cost > budget_tokens:
            continue
        parts.append(block)
        used.append(h)
        spent += cost
    return "\n".join(parts), used


EARLIER = "Earlier in this conversation:"
ROLES = {"user": "User", "assistant": "Assistant", "system": "Instructions"}


def carried(
    turns: Sequence[tuple[str, str]], budget_tokens: int, count: Callable[[str], int]
) -> str:
    """The earlier turns of a conversation that fit ``budget_tokens``, newest first kept,
    shown oldest first ("" when none fits): what a follow-up question needs to be read."""
    kept: list[str] = []
    spent = count(EARLIER)
    for role, text in reversed(turns):
        line = f"{ROLES.get(role, role.title())}: {' '.join(text.split())}"
        cost = count(line)
        if spent + cost > budget_tokens:
            break
        kept.append(line)
        spent += cost
    return "\n".join([EARLIER, *reversed(kept)]) if kept else ""


def _cited(n: int, h: Hit, snippet_chars: int) -> dict[str, object]:
    return {
        "n": n,
        "doc_id": h.doc_id,
        "title": h.title,
        "chunk_id": h.chunk_id,
        "page": h.page,
        "rank_score": round(h.score, 4),
        "similarity": round(h.similarity, 4),
        # whitespace tidied in the part that can show, not in the whole chunk
        "snippet": " ".join(h.text[: snippet_chars * 2].split())[:snippet_chars],
    }


def citations(used: Sequence[Hit], snippet_chars: int = 240) -> list[Citation]:
    """Citations numbered as in the context."""
    return [Citation(**_cited(i + 1, h, snippet_chars)) for i, h in enumerate(used)]


def retrieved(hits: Sequence[Hit], snippet_chars: int = 240) -> list[RetrievedChunk]:
    """What /v1/retrieve returns of each hit: its citation, and its whole text."""
    return [
        RetrievedChunk(**_cited(i + 1, h, snippet_chars), text=h.text) for i, h in enumerate(hits)
    ]
