"""An ASGI app on a real uvicorn server in a thread, for tests and benchmarks that need a
socket (client disconnects, SDKs, side-by-side timings)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.http import wait_ok
from shared.kafka.broker import free_port


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port until the block ends; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ok(f"{url}/healthz", 60)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
