"""Small HTTP helpers shared by the CLI, benchmarks and tests."""

from __future__ import annotations

import time

import httpx


def wait_ok(url: str, timeout_s: float) -> bool:
    """Poll ``url`` until it answers 200; False when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
