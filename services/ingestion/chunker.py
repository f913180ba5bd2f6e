"""Token-based chunking with the embedding model's own tokenizer.

A chunk holds at most ``max_tokens`` tokens *including* the special tokens the model adds,
so the model never silently truncates a chunk. Splits prefer paragraph, then sentence,
then word boundaries; a hard cut happens only inside a word longer than the budget.
Consecutive chunks share about ``overlap`` tokens. Chunk spans are contiguous: the first
starts at 0, the last ends at ``len(text)``, and each starts at or before the previous end,
so the chunks together cover the whole text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tokenizers import Tokenizer

_SENTENCE_END = frozenset(".!?。！？…;")


@dataclass(frozen=True)
class Span:
    """A chunk of a text: ``text == source[start:end]``."""

    start: int
    end: int
    text: str
    token_count: int


def _count(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=True).ids)


class _Tokens:
    """Where ``text`` may be split, from its tokens: paragraph, sentence and word boundaries
    between token ``i - 1`` and token ``i``."""

    def __init__(self, text: str, offsets: list[tuple[int, int]], tokens: list[str]) -> None:
        self.text, self.offsets, self.tokens, self.n = text, offsets, tokens, len(offsets)

    def clean(self, i: int) -> bool:
        """A split before token i cuts neither a character nor a word piece in two."""
        offsets = self.offsets
        return (
            0 < i < self.n
            and offsets[i][0] >= offsets[i - 1][1]
            and not self.tokens[i].startswith("##")
        )

    def gap(self, i: int) -> str:
        return self.text[self.offsets[i - 1][1] : self.offsets[i][0]]

    def is_paragraph(self, i: int) -> bool:
        return "\n\n" in self.gap(i)

    def is_sentence(self, i: int) -> bool:
        g = self.gap(i)
        return "\n" in g or (self.tokens[i - 1] in _SENTENCE_END and g != "")

    def is_word(self, i: int) -> bool:
        return self.gap(i) != "" or not self.tokens[i - 1].isalnum() or not self.tokens[i].isalnum()

    def char_start(self, i: int) -> int:
        return 0 if i == 0 else self.offsets[i][0]

    def char_end(self, i: int) -> int:
        return len(self.text) if i >= self.n else self.offsets[i][0]

    def best_end(self, s: int, budget: int) -> int:
        """The best token to end a chunk starting at token ``s`` before: the last paragraph
        boundary in the second half of the budget, else a sentence, else a word."""
        hi = min(self.n - 1, s + budget)
        lo = s + max(1, budget // 2)
        for level in (self.is_paragraph, self.is_sentence, self.is_word):
            for e in range(hi, lo - 1, -1):
                if self.clean(e) and level(e):
                    return e
        for e in range(hi, s, -1):
            if self.clean(e):
                return e
        return hi  # one word longer than the budget: a hard cut


def chunk_text(
    text: str,
    tokenizer: Tokenizer,
    max_tokens: int,
    overlap: int,
    deadline: Callable[[], None] | None = None,
) -> list[Span]:
    """Split ``text`` into ordered, overlapping spans of at most ``max_tokens`` tokens each.
    ``deadline`` is called once per chunk and may raise to stop."""
    specials = tokenizer.num_special_tokens_to_add(False)
    budget = max_tokens - specials
    if budget < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room beside {specials} special tokens")
    overlap = max(0, min(overlap, budget // 2))
    if not text:
        return []
    enc = tokenizer.encode(text, add_special_tokens=False)
    at = _Tokens(text, enc.offsets, enc.tokens)
    n = at.n
    if n == 0 or n <= budget and _count(tokenizer, text) <= max_tokens:
        return [Span(0, len(text), text, _count(tokenizer, text))]
    spans: list[Span] = []
    s = 0
    while True:
        if deadline is not None:
            deadline()
        e = n if n - s <= budget else at.best_end(s, budget)
        start = at.char_start(s)
        piece = text[start : at.char_end(e)]
        count = _count(tokenizer, piece)
        # Re-tokenising a slice can differ from the slice of the tokens (a cut inside a word);
        # shrink until the model would see it whole.
        while count > max_tokens and e > s + 1:
            e -= 1
            piece = text[start : at.char_end(e)]
            count = _count(tokenizer, piece)
        spans.append(Span(start, at.char_end(e), piece, count))
        if e >= n:
            return spans
        nxt = max(e - overlap, s + 1)
        while nxt < e and not at.clean(nxt):
            nxt += 1
        s = nxt
