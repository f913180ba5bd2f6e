"""Heading paths: which section of a Markdown (or HTML, made Markdown-like) document a chunk
is in. Chunking cuts a section's title off its text; the path puts it back into what is
embedded and indexed, never into what is cited."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
SEPARATOR = " › "
# A path longer than this is cut from the front: the nearest headings say the most.
MAX_PATH_CHARS = 160


@dataclass(frozen=True)
class Headings:
    """Every heading of a text: where its section starts, and the path that holds there."""

    starts: list[int]
    paths: list[str]

    def at(self, offset: int) -> str:
        """The heading path of the section that ``offset`` is in ("" before any heading)."""
        i = bisect_right(self.starts, offset) - 1
        return self.paths[i] if i >= 0 else ""


def _fenced(text: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks, where a '#' line is a comment, not a heading."""
    marks = [m.start() for m in _FENCE.finditer(text)]
    return [(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]


def headings(text: str) -> Headings:
    """The ATX headings (``# Title`` to ``###### Title``) of a normalised text."""
    fences = _fenced(text)
    stack: list[tuple[int, str]] = []
    starts: list[int] = []
    paths: list[str] = []
    for m in _ATX.finditer(text):
        if any(a <= m.start() < b for a, b in fences):
            continue
        level = len(m.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, m.group(2).strip()))
        path = SEPARATOR.join(t for _, t in stack)
        if len(path) > MAX_PATH_CHARS:
            path = "…" + path[-(MAX_PATH_CHARS - 1) :]
        starts.append(m.start())
        paths.append(path)
    return Headings(starts, paths)
