"""A small client of the inference API: Server-Sent Events parsed once, for the CLI, the
benchmarks and the tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: ``token`` ({text}), ``done`` (the response) or ``error``."""

    name: str
    data: dict[str, Any]


class ApiError(RuntimeError):
    """The API refused the request (a status other than 200)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a stream (``event:`` then ``data:``; a blank line ends one)."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield Event(name, json.loads("\n".join(data)))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield Event(name, json.loads("\n".join(data)))


def stream_query(client: httpx.Client, question: str, **options: Any) -> Iterator[Event]:
    """POST /v1/query with ``stream: true`` on ``client`` (base URL and key set); the events
    as they arrive. Raises ApiError when the request is refused."""
    body = {"question": question, "stream": True, **options}
    with client.stream("POST", "/v1/query", json=body) as r:
        if r.status_code != 200:
            r.read()
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ApiError(r.status_code, str(detail))
        yield from parse_sse(r.iter_lines())


def connect(url: str, key: str, timeout_s: float = 300) -> httpx.Client:
    """An HTTP client for the API at ``url`` with ``key``."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s)
