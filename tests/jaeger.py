"""A real OTLP receiver for the tests: Jaeger v2 (built by `make test` from the Go module
proxy) on free loopback ports, its spans read back through its query API."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shared.kafka.broker import free_port

CONFIG = Path(__file__).resolve().parents[1] / "infra" / "jaeger" / "config.yaml"


@dataclass
class Jaeger:
    otlp_port: int
    query_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def otlp_endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT says (the SDK adds /v1/traces)."""
        return f"http://127.0.0.1:{self.otlp_port}"

    def trace(self, trace_id: str, wait_s: float = 30, spans: int = 1) -> dict[str, Any]:
        """The trace ``trace_id`` (32 hex digits) once it has at least ``spans`` spans:
        Jaeger's JSON, with each span's tags and events' fields as dicts."""
        deadline = time.monotonic() + wait_s
        url = f"http://127.0.0.1:{self.query_port}/api/traces/{trace_id}"
        while True:
            r = httpx.get(url, timeout=5)
            if r.status_code == 200 and r.json().get("data"):
                data = r.json()["data"][0]
                if len(data["spans"]) >= spans or time.monotonic() > deadline:
                    for span in data["spans"]:
                        span["tagmap"] = {t["key"]: t["value"] for t in span.get("tags", [])}
                        span["events"] = [
                            {f["key"]: f["value"] for f in log["fields"]}
                            for log in span.get("logs", [])
                        ]
                    return data  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"Jaeger has no trace {trace_id}: {r.status_code} {r.text}")
            time.sleep(0.3)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@contextmanager
def jaeger(tmp: Path) -> Iterator[Jaeger]:
    binary = os.environ.get("LLMOPS_JAEGER", "")
    # never a skip: `make test` builds it, and a test run without it has failed to set up
    assert binary and Path(binary).exists(), f"no Jaeger at LLMOPS_JAEGER={binary!r}: run make test"
    ports = {name: free_port() for name in ("OTLP", "QUERY", "QUERY_GRPC", "HEALTH")}
    env = dict(os.environ, **{f"JAEGER_{k}_PORT": str(v) for k, v in ports.items()})
    log_path = tmp / "jaeger.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--config", str(CONFIG)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    j = Jaeger(ports["OTLP"], ports["QUERY"], proc, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{ports['HEALTH']}/status", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, j.log()
            time.sleep(0.3)
        yield j
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
