"""Unit tests of ``services.inference.deps``: the API key a request presents, what it may do,
and its rate limit, through FastAPI's own dependency injection on a one-route app."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.inference.auth import ApiKey, RateLimiter, hash_key
from services.inference.deps import QueryKey, Runtime


def client(*keys: ApiKey) -> TestClient:
    app = FastAPI()
    app.state.rt = Runtime(
        answering=None,  # type: ignore[arg-type]
        keys={k.sha256: k for k in keys},
        limiter=RateLimiter(60),
        feedback=None,  # type: ignore[arg-type]
    )

    @app.get("/q")
    async def q(key: QueryKey) -> dict[str, Any]:
        return {"id": key.id, "tenant": key.tenant}

    return TestClient(app)


def key(secret: str, **kw: Any) -> ApiKey:
    return ApiKey(id=f"id-{secret}", sha256=hash_key(secret), tenant="acme", **kw)


def test_a_known_key_is_taken_from_either_header() -> None:
    c = client(key("s1"))
    assert c.get("/q", headers={"Authorization": "Bearer s1"}).json() == {
        "id": "id-s1",
        "tenant": "acme",
    }
    assert c.get("/q", headers={"X-API-Key": "s1"}).json()["id"] == "id-s1"


def test_no_key_or_an_unknown_one_is_a_401_that_says_how_to_authenticate() -> None:
    c = client(key("s1"))
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic s1"}):
        r = c.get("/q", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", headers
    assert "missing API key" in client().get("/q").json()["detail"]


def test_a_key_without_the_action_is_a_403_and_one_over_its_limit_a_429() -> None:
    c = client(key("ro", actions=["retrieve"]), key("slow", rate_limit_per_min=2))
    r = c.get("/q", headers={"X-API-Key": "ro"})
    assert (r.status_code, r.json()["detail"]) == (403, "this key may not query")
    codes = [c.get("/q", headers={"X-API-Key": "slow"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    late = c.get("/q", headers={"X-API-Key": "slow"})
    assert int(late.headers["retry-after"]) >= 1
