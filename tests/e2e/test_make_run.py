"""What a newcomer meets first: `make run` (`llmops dev README.md docs`, the same corpus and
settings), the examples it prints answered right twice in a row, the on-call screens, and
Ctrl-C; and every service stopping within seconds of a signal, with or without the broker,
acknowledging nothing it had not finished."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from services.dev import ASK_EXAMPLE, CURL_EXAMPLE, PDF_EXAMPLE, Example
from services.inference.client import connect, stream_query
from shared.contracts.events import DocumentEvent, DocumentIndexed
from shared.contracts.topics import DOCS_INDEXED
from shared.contracts.upstream import publish_documents
from shared.http import wait_ok
from shared.kafka.admin import create_topics
from shared.kafka.broker import free_port, local_broker
from shared.kafka.reader import read_to_end
from shared.settings import PlatformSettings
from tests.kafka_helpers import ServiceProcess, llmops, wait_for

pytestmark = pytest.mark.e2e
# the services of `make run` that consume, each in its own consumer group
GROUPS = ("ingestion", "embedding", "feedback", "monitoring")


def right(example: Example, answer: str, cited: list[str]) -> bool:
    return all(f.lower() in answer.lower() for f in example.facts) and example.doc in cited


def test_make_run_answers_its_examples_right_twice_and_stops_on_ctrl_c(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**service_env, "INFERENCE_PORT": str(port), "MONITORING_PORT": str(free_port())}
    env.pop("LLMOPS_LOG_LEVEL")  # as `make run` has it
    dev = ServiceProcess("dev", env, tmp_path / "dev.log", command=("dev", "README.md", "docs"))
    dev.start()
    try:
        assert wait_for(lambda: "==> ask at" in dev.log(), 480, 1), dev.log()[-4000:]
        printed = dev.log()
        assert "Traceback" not in printed, printed[-4000:]
        for example in (ASK_EXAMPLE, CURL_EXAMPLE, PDF_EXAMPLE):
            assert example.question in printed, "the example it prints is the one checked"
        url = f"http://127.0.0.1:{port}"
        cli_env = {**env, "LLMOPS_API_URL": url}

        # the ask examples, through `llmops ask` as printed; twice, the same right answer;
        # the PDF one from its scanned page, cited with that page
        for example in (ASK_EXAMPLE, PDF_EXAMPLE):
            answers = []
            for _ in range(2):
                out = llmops("ask", example.question, env=cli_env)
                assert out.returncode == 0, out.stderr
                assert "INFO" not in out.stdout + out.stderr, "library log lines in the way"
                answer, _, sources = out.stdout.partition("\n\n")
                found = re.findall(
                    r"\(([^,()]+)(?:, page ([^,()]+))?, similarity \d\.\d\d\)", sources
                )
                assert right(example, answer, [doc for doc, _ in found]), out.stdout
                if example.page is not None:
                    assert (example.doc, str(example.page)) in found, out.stdout
                answers.append(answer)
            assert answers[0] == answers[1]

        # the curl example, streamed as the printed curl asks it; twice, the same answer
        key = (Path(env["LLMOPS_DATA_DIR"]) / "dev_api_key").read_text().strip()
        answers = []
        with connect(url, key) as client:
            for _ in range(2):
                events = list(stream_query(client, CURL_EXAMPLE.question))
                done = events[-1].data
                cited = [c["doc_id"] for c in done["citations"]]
                assert right(CURL_EXAMPLE, done["answer"], cited), done
                answers.append(done["answer"])
        assert answers[0] == answers[1]

        # the on-call screen, and consumer lag for every running group on /metrics
        status = llmops("status", env=env)
        assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
        for group in GROUPS:
            assert re.search(rf"^  {group}\s+\d+", status.stdout, re.M), status.stdout
        metrics = f"http://127.0.0.1:{env['MONITORING_PORT']}/metrics"

        def lag_of_every_group() -> bool:
            text = httpx.get(metrics, timeout=10).text
            return all(f'llmops_consumer_lag{{service="{g}"' in text for g in GROUPS)

        # lag is polled once a window (60 s by default)
        assert wait_for(lag_of_every_group, 150, 2), httpx.get(metrics).text[-3000:]
        assert "llmops_monitoring_poll_failed" in httpx.get(metrics).text

        # Ctrl-C right after traffic: it used to wait for monitoring's held inputs (minutes)
        seconds = dev.stop_timed(signal.SIGINT)
        print(f"make run stopped {seconds:.1f} s after Ctrl-C")
        assert seconds < 5, dev.log()[-3000:]
    finally:
        dev.stop()


def test_a_signal_stops_every_service_in_seconds_with_or_without_the_broker(
    tmp_path: Path,
) -> None:
    settings = PlatformSettings()
    broker = local_broker(tmp_path / "broker", settings.cache_dir, free_port(), free_port())
    broker.start()
    prefix = "stop."
    create_topics(broker.bootstrap, prefix)
    port = free_port()
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        KAFKA_TOPIC_PREFIX=prefix,
        LLMOPS_DATA_DIR=str(tmp_path / "data"),
        LLMOPS_LOG_LEVEL="warning",
        INFERENCE_PORT=str(port),
        INFERENCE_API_KEYS="[]",
        MONITORING_PORT=str(free_port()),
    )
    procs: list[ServiceProcess] = []

    def start() -> ServiceProcess:
        proc = ServiceProcess("all", env, tmp_path / f"all-{len(procs)}.log")
        proc.start()
        procs.append(proc)
        assert wait_ok(f"http://127.0.0.1:{port}/readyz", 240), proc.log()[-3000:]
        return proc

    docs = [
        DocumentEvent(tenant="acme", doc_id=f"d{i}", version=1, content=f"Document number {i}.")
        for i in range(40)
    ]
    try:
        first = start()
        # documents published just before the signal: whatever is not finished when it
        # stops is not acknowledged, so the next start does it
        assert publish_documents(docs, broker.bootstrap, prefix).sent == len(docs)
        seconds = first.stop_timed(signal.SIGTERM)
        print(f"stopped {seconds:.1f} s after SIGTERM, broker up")
        assert seconds < 5, first.log()[-3000:]

        second = start()

        def all_indexed() -> bool:
            got = {
                DocumentIndexed.from_bytes(r.value).key
                for r in read_to_end(broker.bootstrap, DOCS_INDEXED.name(prefix))
            }
            return got >= {d.key for d in docs}

        assert wait_for(all_indexed, 180), second.log()[-3000:]
        broker_pid = broker.pid()
        assert broker_pid is not None
        os.kill(broker_pid, signal.SIGKILL)
        time.sleep(2)  # the services notice: their fetches and commits now fail
        seconds = second.stop_timed(signal.SIGINT)
        print(f"stopped {seconds:.1f} s after Ctrl-C, broker gone")
        assert seconds < 10, second.log()[-3000:]
    finally:
        for p in procs:
            p.stop()
        broker.stop()
