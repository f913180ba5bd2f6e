"""Unit tests of ``services.inference.auth``: aPI keys stored hashed, and the rate limiter."""

from __future__ import annotations

from pathlib import Path

from services.inference.auth import RateLimiter, hash_key, load_keys, new_key


def test_keys_are_stored_hashed_and_found_by_hash(tmp_path: Path) -> None:
    key, record = new_key("svc", "acme", ["eng"])
    assert key not in record.model_dump_json() and record.sha256 == hash_key(key)
    f = tmp_path / "keys.json"
    f.write_text("[" + record.model_dump_json() + "]")
    assert load_keys(f, None)[hash_key(key)].tenant == "acme"


def test_rate_limiter_allows_a_burst_then_says_when() -> None:
    rl = RateLimiter(per_min=3)
    assert [rl.take("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.take("k", now=0.0)
    assert 19 < wait <= 20
    assert rl.take("other", now=0.0) == 0.0, "limits are per key"
    assert rl.take("k", now=21.0) == 0.0, "tokens come back with time"
