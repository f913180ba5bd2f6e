"""Unit tests of ``services.inference.client``: the API client's Server-Sent Events parser."""

from __future__ import annotations

from services.inference.client import Event, parse_sse
from services.inference.routes import sse
from services.inference.schemas import StreamError


def test_parses_what_the_routes_send() -> None:
    wire = (
        sse("token", {"text": "Hel"})
        + sse("token", {"text": "lo"})
        + sse("error", StreamError(status=503, detail="down", trace_id="t1"))
    ).decode()
    assert list(parse_sse(wire.split("\n"))) == [
        Event("token", {"text": "Hel"}),
        Event("token", {"text": "lo"}),
        Event("error", {"status": 503, "detail": "down", "trace_id": "t1"}),
    ]


def test_multi_line_data_and_a_missing_final_blank_line() -> None:
    lines = ["event: done", 'data: {"a":', "data: 1}"]
    assert list(parse_sse(lines)) == [Event("done", {"a": 1})]
    assert list(parse_sse(["", ": comment", ""])) == []
