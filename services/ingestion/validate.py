"""Validation of raw document events, with a named reason for every rejection."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.contracts.events import DocumentEvent

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


def depth(value: Any) -> int:
    """Nesting depth of JSON-like data: 0 for a scalar, 1 for a flat object or list."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def _bad_text(value: Any, path: str) -> str | None:
    """Where a string can not be encoded (a lone surrogate from a JSON escape), if anywhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{path} holds a lone surrogate at position {exc.start}"
        return None
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            found = _bad_text(str(k), f"{path} key") or _bad_text(v, f"{path}.{k}")
            if found:
                return found
    return None


def _read_object(raw: bytes) -> dict[str, Any]:
    """The record's value as a JSON object whose text is valid Unicode."""
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise IngestError(
                "SchemaError", f"event must be a JSON object, got {type(obj).__name__}"
            )
        bad = _bad_text(obj, "event")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError("InvalidJSON", f"value is not UTF-8 JSON: {exc}") from exc
    except RecursionError:
        # too deep for the reader or for the walk above
        raise IngestError("TooDeep", "value nests objects or lists too deeply to read") from None
    if bad:
        raise IngestError("InvalidText", f"not valid Unicode text: {bad}")
    return obj


def _check_metadata(metadata: Any, max_bytes: int, max_depth: int) -> None:
    """Refuse metadata nested deeper or larger (as JSON) than the limits."""
    if not isinstance(metadata, dict | list):
        return
    try:
        levels = depth(metadata)
    except RecursionError:
        raise IngestError("TooDeep", "value nests objects or lists too deeply to read") from None
    if levels > max_depth:
        raise IngestError(
            "MetadataTooDeep", f"metadata nests {levels} levels deep; the limit is {max_depth}"
        )
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > max_bytes:
        raise IngestError(
            "MetadataTooLarge", f"metadata is {size} bytes as JSON; the limit is {max_bytes}"
        )


def _schema_code(exc: ValidationError) -> str:
    """The error code of a document that fails its schema, by the fields that failed."""
    fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
    if fields & _ID_FIELDS:
        return "InvalidIdentifier"
    if fields == {"version"} and all(
        e["type"] in ("less_than_equal", "greater_than_equal") for e in exc.errors()
    ):
        return "VersionOutOfRange"
    if "content_type" in fields:
        return "UnsupportedContentType"
    return "SchemaError"


def parse_event(
    raw: bytes | None,
    key: bytes | None,
    max_bytes: int,
    *,
    max_metadata_bytes: int,
    max_metadata_depth: int,
) -> DocumentEvent:
    """Decode and validate one record of ``ingest.documents``.

    Error codes: TooLarge, InvalidJSON, TooDeep, InvalidText, InvalidIdentifier,
    VersionOutOfRange, UnsupportedContentType, SchemaError, MetadataTooLarge,
    MetadataTooDeep, KeyMismatch.
    """
    if raw is None:
        raise IngestError("SchemaError", "record has no value (a tombstone is not an event)")
    if len(raw) > max_bytes:
        raise IngestError("TooLarge", f"event is {len(raw)} bytes; the limit is {max_bytes}")
    obj = _read_object(raw)
    _check_metadata(obj.get("metadata"), max_metadata_bytes, max_metadata_depth)
    try:
        event = DocumentEvent.model_validate(obj)
    except ValidationError as exc:
        raise IngestError(_schema_code(exc), _describe(exc)) from exc
    expected = event.key
    if key is None or key.decode("utf-8", "replace") != expected:
        # Ordering per document relies on the key; a wrong one could reorder versions.
        got = None if key is None else key.decode("utf-8", "replace")
        raise IngestError("KeyMismatch", f"record key {got!r} must be {expected!r}")
    return event
