"""API keys (stored as SHA-256 hashes) mapped to a tenant, its groups and allowed actions,
and a per-key token-bucket rate limit."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, TypeAdapter

from shared.contracts.events import GROUP_PATTERN, TENANT_PATTERN


class ApiKey(BaseModel):
    """One key's rights. The key itself is never stored, only its hash."""

    id: str = Field(description="Name of the key, recorded in traces.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(pattern=TENANT_PATTERN)
    groups: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=lambda: ["query", "retrieve", "feedback"])
    rate_limit_per_min: int | None = None


_KEYS = TypeAdapter(list[ApiKey])


def hash_key(key: str) -> str:
    """SHA-256 of an API key, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(key_id: str, tenant: str, groups: list[str]) -> tuple[str, ApiKey]:
    """A fresh random key and its stored record."""
    import re

    for g in groups:
        if not re.match(GROUP_PATTERN, g):
            raise ValueError(f"invalid group {g!r}")
    key = "llm_" + secrets.token_urlsafe(24)
    return key, ApiKey(id=key_id, sha256=hash_key(key), tenant=tenant, groups=groups)


def load_keys(file: Path | None, inline: str | None) -> dict[str, ApiKey]:
    """Keys by hash, from a JSON file and/or an inline JSON list."""
    keys: list[ApiKey] = []
    if file is not None:
        keys += _KEYS.validate_json(file.read_text())
    if inline:
        keys += _KEYS.validate_json(inline)
    return {k.sha256: k for k in keys}


@dataclass
class RateLimiter:
    """Token bucket per key: ``per_min`` requests a minute, bursts up to the same number."""

    per_min: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key_id: str, per_min: int | None = None, now: float | None = None) -> float:
        """0 when allowed; else the seconds until a request would be allowed."""
        rate = (per_min or self.per_min) / 60.0
        cap = float(per_min or self.per_min)
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key_id, (cap, now))
            tokens = min(cap, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / rate


def dump_keys(keys: list[ApiKey]) -> str:
    """JSON for a keys file."""
    return json.dumps([k.model_dump() for k in keys], indent=2)
