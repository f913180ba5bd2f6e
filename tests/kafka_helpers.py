"""Test helpers around the real broker: consume a topic, run a service as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from shared.contracts.events import DocumentEvent
from shared.contracts.trace_ids import TraceIds

# The secret service processes of the tests sign and check trace ids with (service_env).
TEST_TRACE_SECRET = "tests-trace-secret"
_TEST_TRACE_IDS = TraceIds(TEST_TRACE_SECRET.encode())


def signed(random_part: str, tenant: str = "acme") -> str:
    """A trace id issued to ``tenant`` as the API would, from 32 characters of one's own."""
    return _TEST_TRACE_IDS.of(random_part.ljust(32, "0")[:32], tenant)


def consume(
    bootstrap: str,
    topic: str,
    until: int | None = None,
    timeout_s: float = 60.0,
    idle_s: float = 2.0,
) -> list:  # type: ignore[type-arg]
    """Records of ``topic`` from the beginning: until ``until`` arrived (or timeout), or, with
    ``until=None``, until nothing new came for ``idle_s``."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 30
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list = []  # type: ignore[type-arg]
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            for recs in batch.values():
                out.extend(recs)
                last_new = time.monotonic()
            if until is not None and len(out) >= until:
                break
            if until is None and time.monotonic() - last_new > idle_s:
                break
        return out
    finally:
        consumer.close()


@dataclass
class ServiceProcess:
    """``llmops run NAME...`` in its own process, as it runs in production (``name`` may
    list several services, space-separated, to run them in one process)."""

    name: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # another llmops command instead of `run NAME...` (`dev README.md docs`, say)
    command: tuple[str, ...] | None = None

    def start(self) -> None:
        """Start the service (it connects in the background)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.cli",
                    *(self.command or ("run", *self.name.split())),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[1],
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no flush, no commit."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop_timed(self, sig: int = signal.SIGINT, timeout_s: float = 60) -> float:
        """Send ``sig`` to the process group (as Ctrl-C does); seconds until it exited."""
        assert self.proc is not None
        t0 = time.monotonic()
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=timeout_s)
        return time.monotonic() - t0

    def log(self) -> str:
        """What the service printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None


def llmops(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    """``llmops ARGS`` in its own process (this environment, or ``env``), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def wait_for(check: Callable[[], Any], timeout_s: float = 90.0, every_s: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; its last value."""
    deadline = time.monotonic() + timeout_s
    got = check()
    while not got and time.monotonic() < deadline:
        time.sleep(every_s)
        got = check()
    return got


FAULTS = Path(__file__).resolve().parent / "faults"


def choke(targets: dict[str, str]) -> dict[str, str]:
    """Environment for a service process whose functions raise PlantedFailure on the records
    that mention a marker (``{"module:Qualified.name": "marker"}``; tests/faults)."""
    planted = ";".join(f"{target}={marker}" for target, marker in targets.items())
    path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "LLMOPS_TEST_CHOKE": planted}


def free_window(size: int) -> int:
    """A first port such that it and the ``size - 1`` after it are free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + size >= 65535:
            continue
        taken = False
        for port in range(base, base + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return base
    raise RuntimeError("no window of free ports")


def stored_points(data_dir: Path, prefix: str) -> Counter[str]:
    """Points per document (``tenant/doc_id``) in the embedded store under ``data_dir``, once
    the service that wrote it has stopped (one process owns it)."""
    from shared.settings import PlatformSettings, QdrantSettings
    from shared.store.open import open_store

    store = open_store(QdrantSettings(), PlatformSettings(data_dir=data_dir), prefix)
    try:
        collection = store.active()
        assert collection is not None, "no collection in the store"
        return Counter(str((p.payload or {})["doc_key"]) for p in store.all_payloads(collection))
    finally:
        store.close()


def publish_through_a_kill(
    bootstrap: str,
    prefix: str,
    docs: list[DocumentEvent],
    kill: Callable[[], None],
    after: Callable[[], None] | None = None,
    request_timeout_ms: int = 10_000,
) -> set[str]:
    """Publish the first half of ``docs`` to ingest.documents and, once indexing is under way
    (a first record on docs.indexed), the second half, calling ``kill`` a quarter into it;
    then ``after`` (a restart, say). The keys the broker acknowledged: the others are what a
    publisher knows to send again."""
    from shared.contracts.producer import make_producer
    from shared.contracts.topics import DOCS_INDEXED, INGEST_DOCUMENTS

    producer = make_producer(bootstrap, request_timeout_ms=request_timeout_ms)
    src, half = INGEST_DOCUMENTS.name(prefix), len(docs) // 2
    futures = {}
    for d in docs[:half]:
        futures[d.key] = producer.send(src, key=d.key.encode(), value=d.to_bytes())
    producer.flush()
    assert wait_for(lambda: consume(bootstrap, DOCS_INDEXED.name(prefix), idle_s=0.3), 180, 0.5), (
        "indexing never started"
    )
    for i, d in enumerate(docs[half:]):
        futures[d.key] = producer.send(src, key=d.key.encode(), value=d.to_bytes())
        if i == len(docs) // 4:
            kill()
    if after is not None:
        after()
    acked = set()
    for key, fut in futures.items():
        try:
            fut.get(timeout=120)
            acked.add(key)
        except Exception:  # noqa: BLE001 - not acknowledged: the publisher knows to resend
            pass
    producer.close()
    return acked
