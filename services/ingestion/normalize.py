"""Normalisation: HTML to text, Unicode NFC, tidy whitespace."""

from __future__ import annotations

import re
import unicodedata

from bs4 import BeautifulSoup

from shared.events import ContentType

_NOT_CONTENT = ("script", "style", "noscript", "template", "head", "svg")
# Blocks become paragraphs (so chunking can split between them); inline tags join their text.
_BLOCKS = (
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
_HSPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def html_to_text(html: str) -> str:
    """Visible text of an HTML document, one block per line."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_NOT_CONTENT):
        tag.decompose()
    for tag in soup(_BLOCKS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    for level in range(1, 7):  # headings as Markdown's, so both give heading paths
        for h in soup(f"h{level}"):
            h.insert(0, "#" * level + " ")
    for br in soup("br"):
        br.replace_with("\n")
    for cell in soup(["td", "th"]):
        cell.insert_after(" ")
    return soup.get_text()


def normalize(content: str, content_type: ContentType) -> str:
    """Plain, NFC-normalised text with single spaces and at most one blank line in a row."""
    if content_type is ContentType.HTML:
        content = html_to_text(content)
    text = unicodedata.normalize("NFC", content.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = (_HSPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
