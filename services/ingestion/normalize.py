"""Normalisation: HTML to text, Unicode NFC, tidy whitespace."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from html.parser import HTMLParser

from shared.contracts.events import ContentType

_NOT_CONTENT = frozenset(("script", "style", "noscript", "template", "head", "svg"))
# Blocks become paragraphs (so chunking can split between them); inline tags join their text.
_BLOCKS = frozenset(
    (
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "aside",
        "nav",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "table",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "figure",
        "figcaption",
        "hr",
        "form",
        "fieldset",
    )
)
_HSPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class _Text(HTMLParser):
    """One pass over the parser's events, appending to a list: linear in the document, however
    its blocks are laid out (editing a parsed tree in place, one insertion per block, was
    quadratic: 60,000 paragraphs took 14 minutes)."""

    def __init__(self, deadline: Callable[[], None] | None) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0  # inside script, style, head...: nothing shows
        self.deadline = deadline
        self.events = 0

    def _tick(self) -> None:
        self.events += 1
        if self.deadline is not None and self.events % 1024 == 0:
            self.deadline()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tick()
        if tag in _NOT_CONTENT:
            self.hidden += 1
        elif self.hidden:
            return
        elif tag in _BLOCKS:
            self.out.append("\n\n")
            if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
                # headings as Markdown's, so both give heading paths
                self.out.append("#" * int(tag[1]) + " ")
        elif tag == "br":
            self.out.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tick()
        if self.hidden or tag in _NOT_CONTENT:
            return
        if tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag == "br":
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        self._tick()
        if tag in _NOT_CONTENT:
            self.hidden = max(0, self.hidden - 1)
        elif self.hidden:
            return
        elif tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_data(self, data: str) -> None:
        self._tick()
        if not self.hidden:
            self.out.append(data)


def html_to_text(html: str, deadline: Callable[[], None] | None = None) -> str:
    """Visible text of an HTML document, one block per paragraph, headings as Markdown's.
    ``deadline`` is called every so often and may raise to stop a conversion that takes too
    long."""
    parser = _Text(deadline)
    parser.feed(html)
    parser.close()
    return "".join(parser.out)


def normalize(
    content: str, content_type: ContentType, deadline: Callable[[], None] | None = None
) -> str:
    """Plain, NFC-normalised text with single spaces and at most one blank line in a row."""
    if content_type is ContentType.HTML:
        content = html_to_text(content, deadline)
    text = unicodedata.normalize("NFC", content.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = (_HSPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
