"""What every benchmark needs: a broker of its own (or KAFKA_BOOTSTRAP_SERVERS), fresh topics,
and the environment for service processes bound to them."""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from shared.contracts.events import DocumentIndexed
from shared.contracts.trace_ids import TraceIds
from shared.kafka.admin import create_topics
from shared.kafka.broker import LocalBroker, free_port, local_broker
from shared.kafka.reader import wait_for_events
from shared.settings import PlatformSettings

# what the services started by a bench sign and check trace ids with
BENCH_TRACE_SECRET = "bench-trace-secret"


@dataclass
class BenchKafka:
    """A broker, a topic prefix and a scratch folder for one benchmark run."""

    bootstrap: str
    prefix: str
    tmp: Path
    broker: LocalBroker | None

    @classmethod
    def start(cls, name: str) -> BenchKafka:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        broker = None
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            broker = local_broker(
                tmp / "broker", PlatformSettings().cache_dir, free_port(), free_port()
            )
            broker.start()
            bootstrap = broker.bootstrap
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        create_topics(bootstrap, prefix)
        return cls(bootstrap, prefix, tmp, broker)

    @staticmethod
    def trace_ids() -> TraceIds:
        """How a bench signs the trace ids it makes (services check them)."""
        return TraceIds(BENCH_TRACE_SECRET.encode())

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a service process on this broker and these topics."""
        return dict(
            os.environ,
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            KAFKA_TOPIC_PREFIX=self.prefix,
            LLMOPS_DATA_DIR=str(self.tmp / "data"),
            LLMOPS_LOG_LEVEL="warning",
            LLMOPS_TRACE_SECRET=BENCH_TRACE_SECRET,
            **extra,
        )

    def stop(self) -> None:
        """Stop the broker this run started."""
        if self.broker:
            self.broker.stop()


def wait_for(
    bootstrap: str, topic: str, want: dict[str, int], timeout_s: float = 900
) -> dict[str, DocumentIndexed]:
    """DocumentIndexed records for the wanted (key, version)s, once all have arrived."""
    got = wait_for_events(bootstrap, topic, DocumentIndexed, None, want, timeout_s)
    if len(got) < len(want):
        raise SystemExit(f"only {len(got)} of {len(want)} documents were indexed")
    return got
