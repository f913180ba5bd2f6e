"""Unit tests of ``shared.contracts.topics``: topics are declared once: unique, the compacted
ones compacted."""

from __future__ import annotations

from shared.contracts.topics import DOCS_CHUNKS, TOPICS


def test_topics_are_unique_and_chunks_compacted() -> None:
    assert len({t.base_name for t in TOPICS}) == len(TOPICS)
    assert DOCS_CHUNKS.config()["cleanup.policy"] == "compact"
    assert DOCS_CHUNKS.name("p.") == "p.docs.chunks"
