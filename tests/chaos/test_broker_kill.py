"""SIGKILL the broker while documents are being published and indexed, then start it again:
every document whose publish was acknowledged is indexed, and no point is doubled."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from shared.contracts.events import DocumentEvent, DocumentIndexed
from shared.contracts.topics import DOCS_INDEXED
from shared.kafka.admin import create_topics
from shared.kafka.broker import free_port, local_broker
from shared.settings import PlatformSettings
from tests.kafka_helpers import ServiceProcess, consume, publish_through_a_kill, stored_points

pytestmark = pytest.mark.chaos
N = 400


def test_a_broker_killed_mid_publish_and_mid_indexing_loses_nothing(tmp_path: Path) -> None:
    # a broker of its own: the session's is shared by every other test
    broker = local_broker(
        tmp_path / "broker", PlatformSettings().cache_dir, free_port(), free_port()
    )
    broker.start()
    prefix, data = "kill.", tmp_path / "data"
    service = ServiceProcess(
        "ingestion embedding",
        dict(
            os.environ,
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
            KAFKA_TOPIC_PREFIX=prefix,
            LLMOPS_DATA_DIR=str(data),
            LLMOPS_LOG_LEVEL="warning",
        ),
        tmp_path / "services.log",
    )
    try:
        create_topics(broker.bootstrap, prefix)
        service.start()
        docs = [
            DocumentEvent(
                tenant="acme",
                doc_id=f"k-{i:03d}",
                version=1,
                content=" ".join(f"Line {j} of document {i}." for j in range(30)),
            )
            for i in range(N)
        ]

        def kill() -> None:
            pid = broker.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

        def restart() -> None:
            time.sleep(2)
            broker.start()  # same ports, same data

        acked = publish_through_a_kill(broker.bootstrap, prefix, docs, kill, restart, 5000)
        assert len(acked) >= N // 2, "the first half was acknowledged before the kill"

        t0 = time.monotonic()
        indexed: dict[str, DocumentIndexed] = {}
        while time.monotonic() - t0 < 240 and not acked <= set(indexed):
            for rec in consume(broker.bootstrap, DOCS_INDEXED.name(prefix), idle_s=1):
                ev = DocumentIndexed.from_bytes(rec.value)
                indexed[ev.key] = ev
        print(f"{len(acked)} of {N} acknowledged; all indexed {time.monotonic() - t0:.1f} s after")
        assert acked <= set(indexed), (sorted(acked - set(indexed))[:5], service.log()[-3000:])
        assert service.alive(), service.log()[-3000:]
    finally:
        service.stop()
        broker.stop()
    # the service's own store
    points = stored_points(data, prefix)
    for key in acked:
        assert points[key] == indexed[key].chunk_count, key  # none missing, none doubled
