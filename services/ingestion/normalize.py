"""Normalisation: HTML to text, Unicode NFC, tidy whitespace."""

from __future__ import annotations

import re
import unicodedata

from bs4 import BeautifulSoup

from shared.events import ContentType

_NOT_CONTENT = ("script", "style", "noscript", "template", "head", "svg")
_HSPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def html_to_text(html: str) -> str:
    """Visible text of an HTML document, one block per line."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_NOT_CONTENT):
        tag.decompose()
    return soup.get_text("\n")


def normalize(content: str, content_type: ContentType) -> str:
    """Plain, NFC-normalised text with single spaces and at most one blank line in a row."""
    if content_type is ContentType.HTML:
        content = html_to_text(content)
    text = unicodedata.normalize("NFC", content.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = (_HSPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
