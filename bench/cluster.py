"""What a replicated cluster costs and how fast it recovers, measured side by side in one run.

1. Documents per second through Kafka, ingestion and embedding (each its own process) on a
   local three-broker cluster with replication 3, min ISR 2 and acks=all, divided by the same
   on one broker (replication 1). Expect below 1: every write waits for a second copy.
2. Recovery: with a backlog flowing through the cluster, SIGKILL the broker that leads the
   most partitions; the time from the kill until the pipeline's throughput (documents indexed
   per second, over a sliding window) is back above 80% of what it was before.
3. Peak resident memory of each service process under this load (what the Helm chart's
   requests are sized from).

    python bench/cluster.py [--docs 1500] [--backlog 3000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka.errors import KafkaConnectionError  # noqa: E402

from shared.contracts.events import DocumentEvent  # noqa: E402
from shared.contracts.producer import make_producer  # noqa: E402
from shared.contracts.topics import DOCS_INDEXED, INGEST_DOCUMENTS, TOPICS  # noqa: E402
from shared.kafka.admin import create_topics  # noqa: E402
from shared.kafka.broker import LocalCluster, local_cluster  # noqa: E402
from shared.settings import PlatformSettings  # noqa: E402
from tests.kafka_helpers import ServiceProcess, consume, free_window  # noqa: E402

WINDOW_S = 3.0  # throughput is averaged over this long


def docs(n: int, tag: str) -> list[DocumentEvent]:
    return [
        DocumentEvent(
            tenant="acme",
            doc_id=f"{tag}-{i:05d}",
            version=1,
            content=f"Document {i} of {tag} carries the token {tag}{i}x. " * 4,
        )
        for i in range(n)
    ]


def indexed(bootstrap: str, topic: str) -> list:  # type: ignore[type-arg]
    """docs.indexed so far; asked again when kafka-python picks the killed broker (it raises
    instead of trying another)."""
    for _ in range(30):
        try:
            return consume(bootstrap, topic, idle_s=0.5)
        except KafkaConnectionError:
            time.sleep(1)
    raise SystemExit("the cluster did not answer for 30 s")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the converter), in MB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Pipeline:
    """A cluster of ``nodes`` and the services as processes, with peak memory sampled."""

    def __init__(self, nodes: int, tmp: Path) -> None:
        base = free_window(2 * nodes)
        ports = [(base + 2 * i, base + 1 + 2 * i) for i in range(nodes)]
        self.cluster = local_cluster(tmp / "kafka", PlatformSettings().cache_dir, ports)
        self.cluster.start()
        self.prefix = f"bc{uuid.uuid4().hex[:6]}."
        create_topics(self.cluster.bootstrap, self.prefix)
        env = dict(
            os.environ,
            KAFKA_BOOTSTRAP_SERVERS=self.cluster.bootstrap,
            KAFKA_TOPIC_PREFIX=self.prefix,
            LLMOPS_DATA_DIR=str(tmp / "data"),
            LLMOPS_LOG_LEVEL="warning",
        )
        self.services = [
            ServiceProcess(name, env, tmp / f"{name}.log")
            for name in ("ingestion", "embedding", "feedback", "monitoring")
        ]
        for s in self.services:
            s.start()
        self.peak: Counter[str] = Counter()
        self._sampling = True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self._sampling:
            for s in self.services:
                if s.proc is not None:
                    self.peak[s.name] = max(self.peak[s.name], int(rss_mb(s.proc.pid)))
            time.sleep(0.5)

    def publish(self, batch: list[DocumentEvent]) -> None:
        producer = make_producer(self.cluster.bootstrap)
        topic = INGEST_DOCUMENTS.name(self.prefix)
        for d in batch:
            producer.send(topic, key=d.key.encode(), value=d.to_bytes())
        producer.flush()
        producer.close()

    def indexed_times(self, keys: set[str], timeout_s: float = 900) -> list[float]:
        """Broker timestamps (s) of the docs.indexed records of ``keys``, once all are in."""
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not keys <= set(seen):
            for rec in indexed(self.cluster.bootstrap, DOCS_INDEXED.name(self.prefix)):
                key = rec.key.decode()
                if key in keys:
                    seen.setdefault(key, rec.timestamp / 1000)
        if not keys <= set(seen):
            raise SystemExit(f"only {len(seen)} of {len(keys)} documents were indexed")
        return sorted(seen.values())

    def warm(self) -> None:
        batch = docs(50, "warm")
        self.publish(batch)
        self.indexed_times({d.key for d in batch})

    def rate(self, n: int, tag: str) -> float:
        """Documents per second from the first publish to the last one indexed."""
        batch = docs(n, tag)
        t0 = time.time()
        self.publish(batch)
        times = self.indexed_times({d.key for d in batch})
        return n / (times[-1] - t0)

    def stop(self) -> None:
        self._sampling = False
        for s in self.services:
            s.stop()
        self.cluster.stop()


def recovery(p: Pipeline, backlog: int) -> tuple[float, float, float]:
    """(throughput before, the lowest after the kill, seconds from the kill until the
    throughput is above 80% of before and stays there while the backlog lasts)."""
    batch = docs(backlog, "rec")
    publisher = threading.Thread(target=p.publish, args=(batch,))
    publisher.start()
    # let a third of the backlog through, then kill the busiest broker
    keys = {d.key for d in batch}
    while True:
        got = indexed(p.cluster.bootstrap, DOCS_INDEXED.name(p.prefix))
        if sum(1 for r in got if r.key.decode() in keys) >= backlog // 3:
            break
        time.sleep(0.5)
    assert isinstance(p.cluster, LocalCluster)
    victim = p.cluster.busiest([t.name(p.prefix) for t in TOPICS])
    killed = time.time()
    victim.kill()
    publisher.join()
    times = p.indexed_times(keys)
    victim.launch()
    before = [t for t in times if killed - 2 * WINDOW_S <= t < killed]
    rate_before = len(before) / (2 * WINDOW_S)
    lowest, back, t = rate_before, 0.0, killed
    while t + WINDOW_S <= times[-1]:  # windows that the backlog fills
        rate = sum(1 for x in times if t <= x < t + WINDOW_S) / WINDOW_S
        lowest = min(lowest, rate)
        if rate < 0.8 * rate_before:
            back = t + WINDOW_S - killed
        t += 0.25
    return rate_before, lowest, back


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--backlog", type=int, default=3000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    rates, peaks = {}, {}
    for nodes in (1, 3):
        p = Pipeline(nodes, tmp / f"n{nodes}")
        try:
            p.warm()
            rates[nodes] = p.rate(args.docs, f"r{nodes}")
            if nodes == 3:
                before, lowest, back = recovery(p, args.backlog)
        finally:
            p.stop()
        peaks[nodes] = dict(p.peak)
        print(f"{nodes} broker(s): {rates[nodes]:.0f} documents/s through the pipeline")
    print(
        f"three brokers, replication 3, acks=all over one broker: {rates[3] / rates[1]:.2f} "
        "(expect below 1)"
    )
    print(
        f"broker SIGKILL (the busiest leader) with a backlog flowing at {before:.0f} docs/s "
        f"(lowest {WINDOW_S:.0f} s window after it: {lowest:.0f} docs/s): throughput above 80% "
        f"for good {back:.1f} s after the kill"
    )
    for name in ("ingestion", "embedding", "feedback", "monitoring"):
        print(
            f"peak resident memory of `llmops run {name}`: {max(peaks[1][name], peaks[3][name])} MB"
        )


if __name__ == "__main__":
    main()
