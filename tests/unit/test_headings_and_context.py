"""Context that chunking loses: heading paths (Markdown, HTML) and the title go into what is
embedded and indexed, never into what is cited; a new title re-embeds unchanged chunks."""

from __future__ import annotations

from services.embedding.logic import StoredPoint, index_hash, plan_document, source_text
from services.ingestion.headings import headings
from services.ingestion.logic import Ingestor
from services.ingestion.normalize import normalize
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import ContentType, DocumentEvent
from shared.store.payload import indexed_text

MD = """# Install

Intro words.

## Linux

```sh
# not a heading: a shell comment
apt-get install thing
```

Linux steps.

### Debian

Debian steps.

## macOS

Mac steps.
"""


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


def test_indexed_text_puts_title_and_path_in_front() -> None:
    assert indexed_text("Guide", "Install › Linux", "steps") == "Guide\nInstall › Linux\nsteps"
    assert indexed_text("", "", "steps") == "steps"


ING = Ingestor.from_settings(IngestionSettings(chunk_tokens=40, chunk_overlap=0))


def event(
    title: str, content: str = MD * 3, ctype: ContentType = ContentType.MARKDOWN
) -> DocumentEvent:
    return DocumentEvent(
        tenant="acme", doc_id="guide", version=1, title=title, content=content, content_type=ctype
    )


def test_chunks_carry_their_heading_and_fit_the_model_with_their_context() -> None:
    batch = ING.to_batch(event("The install guide"))
    marks = headings(normalize(MD * 3, ContentType.MARKDOWN))
    assert [c.heading for c in batch.chunks] == [marks.at(c.char_start) for c in batch.chunks]
    assert {"Install", "Install › Linux › Debian"} <= {c.heading for c in batch.chunks}
    for c in batch.chunks:
        assert "The install guide" not in c.text  # citations show the chunk alone
        with_context = source_text(batch, c)
        assert with_context.startswith("The install guide\n")
        assert len(ING.tokenizer.encode(with_context).ids) <= 40 + 2  # joined by one newline
    plain = ING.to_batch(event("t", "# not markdown\n\ntext", ContentType.TEXT))
    assert {c.heading for c in plain.chunks} == {""}


def test_a_new_title_re_embeds_chunks_whose_text_did_not_change() -> None:
    first = ING.to_batch(event("Old title"))
    stored = [StoredPoint(c.chunk_id, 1, index_hash(first, c), "m", [0.1]) for c in first.chunks]
    same = plan_document(first.model_copy(update={"version": 2}), stored, "m")
    assert same.encode == []
    renamed = ING.to_batch(event("New title")).model_copy(update={"version": 2})
    assert [c.text for c in renamed.chunks] == [c.text for c in first.chunks]
    assert len(plan_document(renamed, stored, "m").encode) == len(renamed.chunks)


def test_a_version_1_batch_without_headings_still_reads() -> None:
    import json

    from shared.contracts.events import ChunkBatch

    batch = ING.to_batch(event("Guide"))
    old = json.loads(batch.to_bytes())
    old["schema_version"] = 1  # what docs.chunks kept from before headings
    for c in old["chunks"]:
        del c["heading"]
    read = ChunkBatch.from_bytes(json.dumps(old).encode())
    assert batch.schema_version == 2 and {c.heading for c in read.chunks} == {""}
    assert source_text(read, read.chunks[0]).startswith("Guide\n")
