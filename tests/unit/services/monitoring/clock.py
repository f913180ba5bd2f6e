"""The event time the monitoring tests count from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    """``s`` seconds after T0."""
    return T0 + timedelta(seconds=s)
