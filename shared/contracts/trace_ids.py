"""Trace ids that carry their tenant: what the API issues and every consumer can check.

A trace id is a random part and an HMAC of it with the tenant, under a secret the API and
the feedback service share (LLMOPS_TRACE_SECRET). Any holder of the secret can tell,
without state, whether an id was issued to a tenant: the API answers feedback on another
tenant's trace with 404, and the feedback service dead-letters a trace whose id was not
issued to the tenant it claims.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE = "trace_secret"


@dataclass(frozen=True)
class TraceIds:
    """Issues and checks trace ids under one secret."""

    secret: bytes

    def _tag(self, random_part: str, tenant: str) -> str:
        mac = hmac.new(self.secret, f"{random_part}/{tenant}".encode(), hashlib.sha256)
        return mac.hexdigest()[:16]

    def new(self, tenant: str) -> str:
        """A fresh trace id for ``tenant`` (48 hex characters)."""
        return self.of(uuid.uuid4().hex, tenant)

    def of(self, random_part: str, tenant: str) -> str:
        """The trace id of a given 32-character random part for ``tenant`` (tests and
        producers that make their own ids)."""
        if len(random_part) != 32:
            raise ValueError("the random part of a trace id has 32 characters")
        return random_part + self._tag(random_part, tenant)

    def issued_to(self, trace_id: str, tenant: str) -> bool:
        """Whether ``trace_id`` was issued to ``tenant`` (constant time)."""
        if len(trace_id) != 48:
            return False
        return hmac.compare_digest(trace_id[32:], self._tag(trace_id[:32], tenant))


def trace_secret(given: str | None, data_dir: Path) -> bytes:
    """The given secret, else a random one kept in the data folder: processes that share
    that folder (``make run``) agree; separate ones (replicas, containers) must be given it."""
    if given:
        return given.encode()
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()
