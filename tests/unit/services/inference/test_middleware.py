"""Unit tests of ``services.inference.middleware``: a body over the limit is refused before the
app reads it, declared or chunked, and a caller without a known key before its body is read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from services.inference.middleware import BodyLimit

LIMIT = 100


def client(seen: list[int]) -> TestClient:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    @app.get("/free")
    async def free() -> dict[str, bool]:
        return {"ok": True}

    def check(headers: Mapping[str, str]) -> None:
        if headers.get("x-api-key") != "good":
            raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})

    app.add_middleware(BodyLimit, limit=LIMIT, check_caller=check)
    return TestClient(app)


def chunks(total: int, size: int = 30) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def test_bodies_up_to_the_limit_reach_the_app_whole() -> None:
    seen: list[int] = []
    c = client(seen)
    good = {"X-API-Key": "good"}
    assert c.post("/echo", content=b"x" * LIMIT, headers=good).json() == {"bytes": LIMIT}
    assert c.post("/echo", content=chunks(LIMIT), headers=good).json() == {"bytes": LIMIT}
    assert seen == [LIMIT, LIMIT]


def test_a_body_over_the_limit_is_a_413_before_the_app_sees_it() -> None:
    seen: list[int] = []
    c = client(seen)
    good = {"X-API-Key": "good"}
    declared = c.post("/echo", content=b"x" * (LIMIT + 1), headers=good)
    chunked = c.post("/echo", content=chunks(LIMIT + 1), headers=good)
    assert [declared.status_code, chunked.status_code] == [413, 413]
    assert declared.json()["detail"] == f"body over {LIMIT} bytes"
    assert seen == []


def test_an_unknown_caller_is_refused_before_its_body_and_reads_need_no_key() -> None:
    seen: list[int] = []
    c = client(seen)
    r = c.post("/echo", content=b"x" * (LIMIT * 10))
    assert (r.status_code, r.json()["detail"]) == (401, "unknown API key")
    assert r.headers["www-authenticate"] == "Bearer" and seen == []
    assert c.get("/free").json() == {"ok": True}
