"""Unit tests of ``services.ingestion.chunker``: the chunker: any text gives ordered chunks
within the token limit that cover it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingestion.chunker import chunk_text
from shared.models.files import load_tokenizer

TOK = load_tokenizer()


words = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12)


prose = st.lists(
    st.tuples(
        st.lists(words, min_size=1, max_size=30), st.sampled_from([". ", "! ", "\n", "\n\n", " "])
    ),
    max_size=40,
).map(lambda parts: "".join(" ".join(ws) + sep for ws, sep in parts))


any_text = st.one_of(st.text(max_size=3000), prose)


def check(text: str, max_tokens: int, overlap: int) -> None:
    spans = chunk_text(text, TOK, max_tokens, overlap)
    if not text:
        assert spans == []
        return
    assert spans[0].start == 0
    assert spans[-1].end == len(text)
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.start < b.start, "chunks are in order"
        assert b.start <= a.end, "no gap between chunks"
        assert a.end <= b.end
    for s in spans:
        assert s.text == text[s.start : s.end]
        recount = len(TOK.encode(s.text, add_special_tokens=True).ids)
        assert s.token_count == recount
        assert recount <= max_tokens, (recount, max_tokens)
    assert spans == chunk_text(text, TOK, max_tokens, overlap), "deterministic"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=any_text, max_tokens=st.sampled_from([8, 16, 48, 256]), overlap=st.sampled_from([0, 4, 32])
)
def test_any_text_is_chunked_within_limit_in_order_and_covered(
    text: str, max_tokens: int, overlap: int
) -> None:
    check(text, max_tokens, overlap)


def test_splits_prefer_paragraphs_then_sentences() -> None:
    para = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(12))
    text = "\n\n".join([para] * 6)
    spans = chunk_text(text, TOK, 128, 0)
    assert len(spans) > 3
    for s in spans[:-1]:
        # every cut falls after a sentence's full stop, never inside a word
        assert s.text.rstrip().endswith("."), s.text[-40:]


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    text = " ".join(f"word{i}" for i in range(3000))
    spans = chunk_text(text, TOK, 64, 16)
    for a, b in zip(spans, spans[1:], strict=False):
        assert b.start < a.end, "adjacent chunks share text"
        shared = TOK.encode(text[b.start : a.end], add_special_tokens=False).ids
        assert 8 <= len(shared) <= 16


def test_limit_counts_special_tokens() -> None:
    text = "alpha " * 1000
    spans = chunk_text(text, TOK, 256, 0)
    assert max(s.token_count for s in spans) == 256
