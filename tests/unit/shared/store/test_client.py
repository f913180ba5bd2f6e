"""Unit tests of ``shared.store.client``: the qdrant-client backend (on its local mode, the
same code that talks to a server), which must run without the embedded engine installed."""

from __future__ import annotations

from tests.unit.isolated import python


def test_store_outages_are_retried_but_bad_requests_are_not() -> None:
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    from shared.store.client import ClientStore

    is_transient = ClientStore.local(":memory:", "chunks").transient

    def response(code: int) -> UnexpectedResponse:
        return UnexpectedResponse(status_code=code, reason_phrase="x", content=b"", headers=None)  # type: ignore[arg-type]

    assert is_transient(ResponseHandlingException(ConnectionError("refused")))
    assert is_transient(ConnectionRefusedError())
    assert is_transient(response(503)) and is_transient(response(429))
    assert not is_transient(response(400))
    assert not is_transient(ValueError("bad vector size"))


def test_the_client_backend_runs_without_qdrant_edge() -> None:
    """Opening, collections, aliases and dense search need no qdrant_edge; what needs its BM25
    tokenizer (writing points, keyword and hybrid search) says so by name."""
    out = python(
        """
import sys
from shared.store.base import Point, Search, SearchMode
from shared.store.bm25 import Bm25Unavailable
from shared.store.client import ClientStore
from shared.store.open import open_store
store = ClientStore.local(":memory:", "chunks")
store.ensure_collection("c1", "m", 3)
store.activate("c1")
print("active", store.active())
print("dense", store.search("c1", Search([1.0, 0.0, 0.0], "q", [], 3, SearchMode.DENSE)))
point = Point("00000000-0000-0000-0000-000000000001", [1.0, 0.0, 0.0], "some text", {})
for name, call in [
    ("upsert", lambda: store.upsert("c1", [point])),
    ("hybrid", lambda: store.search("c1", Search([1.0, 0.0, 0.0], "q", [], 3))),
]:
    try:
        call()
    except Bm25Unavailable as exc:
        print(name, "Bm25Unavailable", "qdrant-edge-py" in str(exc))
print("edge loaded", "qdrant_edge" in sys.modules)
""",
        blocked=("qdrant_edge",),
    )
    assert out.splitlines() == [
        "active c1",
        "dense []",
        "upsert Bm25Unavailable True",
        "hybrid Bm25Unavailable True",
        "edge loaded False",
    ]
