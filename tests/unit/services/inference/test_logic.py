"""Unit tests of ``services.inference.logic``: inference's pure parts: deduplication, collapsing
by document, context packing by tokens."""

from __future__ import annotations

from services.inference.logic import (
    carried,
    citations,
    collapse,
    dedupe,
    near_duplicate,
    pack,
    shingles,
)
from shared.store.retrieval import Hit


def hit(doc: str, idx: int, score: float, text: str | None = None) -> Hit:
    return Hit(
        chunk_id=f"{doc}-{idx}",
        doc_id=doc,
        title=doc.upper(),
        text=text if text is not None else f"chunk {idx} of document {doc} says its own thing",
        score=score,
        similarity=score,
        chunk_index=idx,
        page=None,
        version=1,
        source="",
        metadata={},
    )


def test_near_duplicate_chunks_are_packed_once() -> None:
    page = "Nightly backups of the billing database are kept for 35 days in the Frankfurt bucket."
    hits = [
        hit("kb/backup.md", 0, 0.9, page),
        hit("kb/backup-copy.md", 0, 0.85, page.replace("Nightly", "nightly") + " "),
        hit("kb/backup-old.md", 0, 0.8, page.replace("35 days", "30 days")),
        hit("kb/other.md", 0, 0.7, "The office in Porto opens at 8 and closes at 18."),
    ]
    out = [h.doc_id for h in dedupe(hits)]
    # the copy repeats the best chunk word for word; the old version differs in its fact
    assert out == ["kb/backup.md", "kb/backup-old.md", "kb/other.md"]
    assert near_duplicate(shingles(page), shingles(page.upper()), 0.8)
    assert not near_duplicate(shingles("a b c d"), set(), 0.8)


def test_dedupe_merges_a_documents_chunks_in_reading_order() -> None:
    hits = [
        hit("a", 3, 0.9),
        hit("b", 0, 0.8),
        hit("a", 1, 0.7),
        hit("a", 3, 0.9),
        hit("a", 5, 0.6),
    ]
    out = dedupe(hits, per_doc=2)
    assert [(h.doc_id, h.chunk_index) for h in out] == [("a", 1), ("a", 3), ("b", 0)]


def test_collapse_keeps_each_documents_best_chunk_in_score_order() -> None:
    same_text = "the same words in two documents"
    hits = [
        hit("a", 3, 0.5),
        hit("b", 0, 0.8, same_text),
        hit("a", 1, 0.9),
        hit("c", 2, 0.7, same_text),  # a near twin of b's chunk: still its own document
        hit("b", 4, 0.6),
    ]
    out = collapse(hits)
    assert [(h.doc_id, h.chunk_index) for h in out] == [("a", 1), ("b", 0), ("c", 2)]
    assert [h.score for h in out] == sorted((h.score for h in out), reverse=True)


def test_pack_respects_the_token_budget() -> None:
    hits = [hit("a", 0, 0.9, "x " * 50), hit("b", 0, 0.8, "y " * 500), hit("c", 0, 0.7, "z")]
    count = lambda s: len(s.split())  # noqa: E731
    context, used = pack(hits, budget_tokens=100, count=count)
    assert [h.doc_id for h in used] == ["a", "c"]
    assert count(context) <= 100 and "[2] C" in context
    assert [c.n for c in citations(used)] == [1, 2]


def test_earlier_turns_are_carried_newest_first_within_the_budget() -> None:
    words = lambda text: len(text.split())  # noqa: E731 - a tokenizer by words
    turns = [("user", "first  question"), ("assistant", "first answer"), ("user", "second q")]
    assert carried(turns, 100, words) == (
        "Earlier in this conversation:\nUser: first question\nAssistant: first answer\n"
        "User: second q"
    )
    # room for the header and the last turn only: the oldest go first
    assert carried(turns, 4 + 3, words) == "Earlier in this conversation:\nUser: second q"
    assert carried(turns, 6, words) == "", "no turn fits: nothing, not a bare header"
    assert carried([("system", "Be brief.")], 100, words).endswith("Instructions: Be brief.")
