"""Unit tests of ``shared.contracts``: an upstream team imports the event classes, the topic
map, the JSON Schemas and the publishing SDK with pydantic and kafka-python alone."""

from __future__ import annotations

import json

from tests.unit.isolated import python

HEAVY = ("torch", "faust", "mode", "aiokafka", "qdrant_client", "qdrant_edge", "onnxruntime")


def test_the_contracts_import_without_torch_faust_or_qdrant() -> None:
    loaded = python(
        "import json, sys\n"
        "import shared.contracts.events, shared.contracts.topics, shared.contracts.schemas\n"
        "import shared.contracts.upstream, shared.contracts.producer, shared.contracts.trace_ids\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    top = set(json.loads(loaded))
    assert {"shared", "pydantic", "kafka"} <= top, "the check saw the contracts load"
    assert top.isdisjoint(HEAVY), sorted(top & set(HEAVY))
    assert "sentence_transformers" not in top and "numpy" not in top


def test_the_contracts_work_with_the_heavy_packages_blocked() -> None:
    out = python(
        "from shared.contracts.events import DocumentEvent\n"
        "from shared.contracts.topics import INGEST_DOCUMENTS\n"
        "e = DocumentEvent(tenant='acme', doc_id='d1', version=1, content='hi')\n"
        "print(INGEST_DOCUMENTS.name(''), DocumentEvent.from_bytes(e.to_bytes()).key)\n",
        blocked=(*HEAVY, "numpy", "sentence_transformers"),
    )
    assert out.split() == ["ingest.documents", "acme/d1"]
