"""Inference's pure parts: keys and rate limits, prompt versions and the A/B split,
deduplication and context packing by token counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from services.inference.auth import RateLimiter, hash_key, load_keys, new_key
from services.inference.logic import citations, collapse, dedupe, near_duplicate, pack, shingles
from services.inference.prompts import PromptNotFound, assign, choose, load_prompts, parse_split
from services.inference.settings import PROMPTS_DIR
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
        version=1,
        source="",
        metadata={},
    )


def test_keys_are_stored_hashed_and_found_by_hash(tmp_path: Path) -> None:
    key, record = new_key("svc", "acme", ["eng"])
    assert key not in record.model_dump_json() and record.sha256 == hash_key(key)
    f = tmp_path / "keys.json"
    f.write_text("[" + record.model_dump_json() + "]")
    assert load_keys(f, None)[hash_key(key)].tenant == "acme"


def test_rate_limiter_allows_a_burst_then_says_when() -> None:
    rl = RateLimiter(per_min=3)
    assert [rl.take("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.take("k", now=0.0)
    assert 19 < wait <= 20
    assert rl.take("other", now=0.0) == 0.0, "limits are per key"
    assert rl.take("k", now=21.0) == 0.0, "tokens come back with time"


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


def test_prompts_are_versioned_files_and_choice_is_explicit_or_split() -> None:
    prompts = load_prompts(PROMPTS_DIR)
    assert set(prompts["rag"]) >= {"v1", "v2"}
    split = parse_split("v1=0.5,v2=0.5")
    assert choose(prompts, "rag/v2", "rag", split, "x").version == "v2"
    assert choose(prompts, "v1", "rag", split, "x").version == "v1"
    with pytest.raises(PromptNotFound):
        choose(prompts, "rag/v9", "rag", split, "x")
    callers = [f"key-{i}" for i in range(2000)]
    counts = Counter(assign(split, c, "rag") for c in callers)
    assert 850 < counts["v1"] < 1150, counts
    assert all(assign(split, c, "rag") == assign(split, c, "rag") for c in callers[:50])
    assert {assign(parse_split("v1=1,v2=0"), c, "rag") for c in callers} == {"v1"}


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
