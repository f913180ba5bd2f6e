"""Unit tests of ``shared.store.client``.

Embedding's pure planning: what to encode, reuse and delete for a document version.
"""

from __future__ import annotations


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
