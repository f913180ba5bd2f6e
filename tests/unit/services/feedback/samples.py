"""The trace and feedback the feedback tests start from."""

from __future__ import annotations

from typing import Any

from shared.contracts.events import FeedbackEvent, InferenceTrace, RetrievedChunk

TID = "f" * 32


def a_trace(tenant: str = "acme", **kw: Any) -> InferenceTrace:
    """An answered trace of TID with two retrieved chunks; ``kw`` replaces its fields."""
    fields: dict[str, Any] = {
        "trace_id": TID,
        "tenant": tenant,
        "api_key_id": "k",
        "question": "When?",
        "answer": "[2] At 8:30.",
        "retrieved": [
            RetrievedChunk(chunk_id="c1", doc_id="d1", score=0.5),
            RetrievedChunk(chunk_id="c2", doc_id="d2", score=0.4),
        ],
        "context": ["a.", "b."],
        "status": "ok",
    }
    fields.update(kw)
    return InferenceTrace(**fields)


def fb(up: bool, tenant: str = "acme", author: str = "k", **kw: Any) -> FeedbackEvent:
    """A thumbs up or down on TID (``kw``: other fields, trace_id included)."""
    value = {"type": "thumbs", "thumbs": "up" if up else "down"}
    kw.setdefault("trace_id", TID)
    return FeedbackEvent(tenant=tenant, author=author, value=value, **kw)
