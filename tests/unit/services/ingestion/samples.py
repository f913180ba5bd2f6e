"""Documents and the ingestor the ingestion tests share."""

from __future__ import annotations

import json

from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import ContentType, DocumentEvent

ING = Ingestor.from_settings(IngestionSettings(chunk_tokens=64, chunk_overlap=8))
METADATA_LIMITS = {
    "max_metadata_bytes": ING.max_metadata_bytes,
    "max_metadata_depth": ING.max_metadata_depth,
}


def raw(**fields: object) -> tuple[bytes, bytes]:
    base: dict[str, object] = {"tenant": "acme", "doc_id": "d1", "version": 1, "content": "hi"}
    base.update(fields)
    return json.dumps(base).encode(), f"{base['tenant']}/{base['doc_id']}".encode()


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


# chunks of at most 40 tokens: a guide in MD * 3 spans several, each under a heading
NARROW = Ingestor.from_settings(IngestionSettings(chunk_tokens=40, chunk_overlap=0))


def guide(
    title: str, content: str = MD * 3, ctype: ContentType = ContentType.MARKDOWN
) -> DocumentEvent:
    """A Markdown guide titled ``title``."""
    return DocumentEvent(
        tenant="acme", doc_id="guide", version=1, title=title, content=content, content_type=ctype
    )
