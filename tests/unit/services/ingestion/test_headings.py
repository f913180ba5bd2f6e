"""Unit tests of ``services.ingestion.headings``: heading paths of Markdown and HTML."""

from __future__ import annotations

from services.ingestion.headings import headings
from services.ingestion.normalize import normalize
from shared.contracts.events import ContentType
from tests.unit.services.ingestion.samples import MD


def test_heading_paths_nest_pop_and_skip_code_fences() -> None:
    marks = headings(MD)
    assert marks.at(0) == "Install"
    assert marks.at(MD.index("Linux steps")) == "Install › Linux"
    assert marks.at(MD.index("apt-get")) == "Install › Linux"  # the comment is no heading
    assert marks.at(MD.index("Debian steps")) == "Install › Linux › Debian"
    assert marks.at(MD.index("Mac steps")) == "Install › macOS"
    assert headings("no headings here").at(5) == ""


def test_html_headings_become_markdown_headings() -> None:
    text = normalize(
        "<h1>Guide</h1><p>Intro.</p><h2>Setup <b>now</b></h2><p>Steps.</p>", ContentType.HTML
    )
    assert headings(text).at(text.index("Steps")) == "Guide › Setup now"
