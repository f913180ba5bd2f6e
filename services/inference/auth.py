"""API keys (stored as SHA-256 hashes) mapped to a tenant, its groups and allowed actions,
and a per-key token-bucket rate limit."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, TypeAdapter

from shared.events import GROUP_PATTERN, TENANT_PATTERN


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


@dataclass(frozen=True)
class TraceIds:
    """Trace ids that carry their tenant: a random part and an HMAC of it with the tenant.

    Any replica holding the secret can tell, without state, whether a trace id was issued to
    a tenant; feedback on another tenant's trace (or on an id never issued) is a 404, which
    says nothing about whether the trace exists.
    """

    secret: bytes

    def _tag(self, random_part: str, tenant: str) -> str:
        mac = hmac.new(self.secret, f"{random_part}/{tenant}".encode(), hashlib.sha256)
        return mac.hexdigest()[:16]

    def new(self, tenant: str) -> str:
        """A fresh trace id for ``tenant`` (48 hex characters)."""
        random_part = uuid.uuid4().hex
        return random_part + self._tag(random_part, tenant)

    def issued_to(self, trace_id: str, tenant: str) -> bool:
        """Whether ``trace_id`` was issued to ``tenant`` (constant time)."""
        if len(trace_id) != 48:
            return False
        return hmac.compare_digest(trace_id[32:], self._tag(trace_id[:32], tenant))


def trace_secret(given: str | None, data_dir: Path) -> bytes:
    """INFERENCE_TRACE_SECRET, else a random one kept in the data folder (replicas that share
    traces must share the secret: set it)."""
    if given:
        return given.encode()
    path = data_dir / "trace_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()
