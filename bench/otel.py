"""What OpenTelemetry export costs a request, measured side by side in one run.

Three copies of the API in this process, over one store, one LLM and one real broker: export
off; export on, to a real Jaeger (v1.75.0, `make test` builds it); export on, to a collector
that is down (a closed port). Blocks of requests go to each in turn, so all three see the same
machine. Prints /v1/retrieve and /v1/query p50 with export on (and with the collector down)
divided by export off (targets: 1.03 or less), and the errors each returned (target: none).

    python bench/otel.py [--requests 300] [--queries 12]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import make_docs  # noqa: E402
from bench.query import QUESTIONS  # noqa: E402
from services.embedding.indexer import Indexer  # noqa: E402
from services.inference.app import build_runtime, create_app  # noqa: E402
from services.inference.auth import new_key  # noqa: E402
from services.inference.llm import make_llm  # noqa: E402
from services.inference.settings import InferenceSettings  # noqa: E402
from services.inference.traces import TracePublisher  # noqa: E402
from services.ingestion.logic import Ingestor  # noqa: E402
from services.ingestion.settings import IngestionSettings  # noqa: E402
from shared.contracts.topics import FEEDBACK_EVENTS, INFERENCE_COMPLETED  # noqa: E402
from shared.kafka.admin import create_topics  # noqa: E402
from shared.kafka.broker import free_port, local_broker  # noqa: E402
from shared.models.embedder import get_embedder  # noqa: E402
from shared.settings import PlatformSettings, QdrantSettings  # noqa: E402
from shared.store.open import open_store  # noqa: E402
from tests.http_helpers import serving  # noqa: E402
from tests.jaeger import jaeger  # noqa: E402

SIDES = ("off", "on", "down")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="/v1/retrieve calls per side")
    ap.add_argument("--queries", type=int, default=12, help="/v1/query calls per side")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-otel-"))
    platform = PlatformSettings(data_dir=tmp)
    store = open_store(QdrantSettings(path=tmp / "q"), platform)
    ing = Ingestor.from_settings(IngestionSettings())
    Indexer(store, get_embedder()).index(
        [ing.to_batch(d.model_copy(update={"tenant": "acme"})) for d in make_docs(150, 300)]
    )
    key, record = new_key("bench", "acme", [])
    s = InferenceSettings(
        api_keys=json.dumps([record.model_dump()]),
        rate_limit_per_min=10**9,
        temperature=0.0,
        max_new_tokens=16,
        platform=platform,
    )
    llm = make_llm(s)
    broker = local_broker(tmp / "broker", platform.cache_dir, free_port(), free_port())
    broker.start()
    create_topics(broker.bootstrap, "")
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(jaeger(tmp))
        endpoints = {"on": receiver.otlp_endpoint, "down": f"http://127.0.0.1:{free_port()}"}
        urls: dict[str, str] = {}
        for side in SIDES:
            env = {}  # the SDK's defaults otherwise (a batch every 5 s), as a user gets them
            if side in endpoints:
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoints[side]
            os.environ.update(env)  # read when the runtime is built
            rt = build_runtime(
                s,
                store,
                llm,
                TracePublisher(broker.bootstrap, INFERENCE_COMPLETED.name("")),
                TracePublisher(broker.bootstrap, FEEDBACK_EVENTS.name(""), linger_ms=0),
            )
            for name in env:
                del os.environ[name]
            urls[side] = stack.enter_context(serving(create_app(rt)))
        clients = {
            side: stack.enter_context(
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            )
            for side, url in urls.items()
        }
        times: dict[tuple[str, str], list[float]] = {}
        errors = dict.fromkeys(SIDES, 0)

        def call(side: str, path: str, question: str) -> None:
            t0 = time.perf_counter()
            r = clients[side].post(path, json={"question": question})
            times.setdefault((side, path), []).append((time.perf_counter() - t0) * 1000)
            errors[side] += r.status_code != 200

        for side in SIDES:  # warm each: the model, the store, the exporter's connection
            for q in QUESTIONS:
                call(side, "/v1/retrieve", q)
            call(side, "/v1/query", QUESTIONS[0])
        times.clear()
        block = 10
        for n, start in enumerate(range(0, args.requests, block)):
            order = SIDES[n % 3 :] + SIDES[: n % 3]  # each side goes first in turn
            for side in order:
                for i in range(start, start + block):
                    call(side, "/v1/retrieve", QUESTIONS[i % len(QUESTIONS)])
        for i in range(args.queries):
            for side in SIDES[i % 3 :] + SIDES[: i % 3]:
                call(side, "/v1/query", QUESTIONS[i % len(QUESTIONS)])
        telemetry = {
            side: clients[side].get("/readyz").json().get("telemetry") for side in ("on", "down")
        }
    broker.stop()
    store.close()
    p50 = {k: statistics.median(v) for k, v in times.items()}
    for path in ("/v1/retrieve", "/v1/query"):
        off = p50[("off", path)]
        print(
            f"{path} p50: off {off:.1f} ms, to Jaeger {p50[('on', path)]:.1f} ms, collector "
            f"down {p50[('down', path)]:.1f} ms; ratio on/off {p50[('on', path)] / off:.3f}, "
            f"down/off {p50[('down', path)] / off:.3f} (targets <= 1.03)"
        )
    print(f"errors returned: {errors} (target: none); exporters: {telemetry}")


if __name__ == "__main__":
    main()
