"""Validation of raw document events, with a named reason for every rejection."""

from __future__ import annotations

import json

from pydantic import ValidationError

from shared.events import DocumentEvent

_ID_FIELDS = {"tenant", "doc_id", "acl"}


class IngestError(Exception):
    """An event that can never be processed; it goes to the DLQ with ``code`` and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _describe(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}" for e in err.errors()
    )


def parse_event(raw: bytes | None, key: bytes | None, max_bytes: int) -> DocumentEvent:
    """Decode and validate one record of ``ingest.documents``.

    Error codes: TooLarge, InvalidJSON, InvalidIdentifier, UnsupportedContentType,
    SchemaError, KeyMismatch.
    """
    if raw is None:
        raise IngestError("SchemaError", "record has no value (a tombstone is not an event)")
    if len(raw) > max_bytes:
        raise IngestError("TooLarge", f"event is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError("InvalidJSON", f"value is not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise IngestError("SchemaError", f"event must be a JSON object, got {type(obj).__name__}")
    try:
        event = DocumentEvent.model_validate(obj)
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        if fields & _ID_FIELDS:
            code = "InvalidIdentifier"
        elif "content_type" in fields:
            code = "UnsupportedContentType"
        else:
            code = "SchemaError"
        raise IngestError(code, _describe(exc)) from exc
    expected = event.key
    if key is None or key.decode("utf-8", "replace") != expected:
        # Ordering per document relies on the key; a wrong one could reorder versions.
        got = None if key is None else key.decode("utf-8", "replace")
        raise IngestError("KeyMismatch", f"record key {got!r} must be {expected!r}")
    return event
