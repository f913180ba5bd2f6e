"""What OpenTelemetry export costs a request, measured side by side in one run.

Three copies of the API in this process, over one store, one LLM and one real broker: export
off; export on, to a real Jaeger (v1.75.0, `make test` builds it); export on, to a collector
that is down (a closed port). Each publishes its traces as the server does (gathered for
INFERENCE_TRACE_LINGER_MS, 500 ms, and their spans built then, off the requests' path). Blocks
of requests go to each in turn, so all three see the same machine. Prints /v1/retrieve and
/v1/query p50 with export on (and with the collector down) divided by export off (targets:
1.03 or less), the errors each returned (target: none), and the CPU the receiver took.

On a small machine the same ratio moves by several percent from run to run, so each is also
given paired: the ratio of the two sides' medians in each block (the blocks of one round run
back to back), the median of those ratios, and a 90% bootstrap interval over the blocks. A
target is met when the interval's upper end is under it, missed when its lower end is over it;
otherwise this run cannot tell (run more requests).

    python bench/otel.py [--requests 300] [--queries 12]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
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
from services.inference.app import build_runtime, create_app, trace_publisher  # noqa: E402
from services.inference.auth import new_key  # noqa: E402
from services.inference.llm import make_llm  # noqa: E402
from services.inference.settings import InferenceSettings  # noqa: E402
from services.ingestion.logic import Ingestor  # noqa: E402
from services.ingestion.settings import IngestionSettings  # noqa: E402
from shared.kafka.admin import create_topics  # noqa: E402
from shared.kafka.broker import free_port, local_broker  # noqa: E402
from shared.models.embedder import get_embedder  # noqa: E402
from shared.settings import PlatformSettings, QdrantSettings  # noqa: E402
from shared.store.open import open_store  # noqa: E402
from tests.http_helpers import serving  # noqa: E402
from tests.jaeger import jaeger  # noqa: E402

SIDES = ("off", "on", "down")
TARGET = 1.03
# /v1/query questions per cycle: prime to the three sides, so consecutive calls differ
QUERY_CYCLE = 5
RESAMPLES = 2000


def paired_ratio(
    side: list[float], off: list[float], block: int, seed: int = 0
) -> tuple[float, float, float]:
    """``side`` over ``off``, block by block (each list holds its side's blocks of ``block``
    calls in the order they ran): the median of the blocks' median ratios, and a 90% bootstrap
    interval of it over the blocks."""
    n = min(len(side), len(off)) // block
    if n == 0:
        raise ValueError("no complete block to compare")
    ratios = [
        statistics.median(side[k * block : (k + 1) * block])
        / statistics.median(off[k * block : (k + 1) * block])
        for k in range(n)
    ]
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=n)) for _ in range(RESAMPLES))
    return (
        statistics.median(ratios),
        medians[int(0.05 * RESAMPLES)],
        medians[int(0.95 * RESAMPLES) - 1],
    )


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used so far (Linux), None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def verdict(low: float, high: float, target: float = TARGET) -> str:
    """What an interval says of ``target``: met, missed, or cannot tell."""
    if high <= target:
        return "met"
    if low > target:
        return "missed"
    return "cannot tell"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="/v1/retrieve calls per side")
    ap.add_argument(
        "--queries", type=int, default=15, help="/v1/query calls per side (cycles of 5)"
    )
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
            # the traces' publisher (and its feedback one) as the server builds them
            rt = build_runtime(s, store, llm, trace_publisher(s, broker.bootstrap))
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
        # the receiver runs on this machine too: what it takes of the cores, the LLM lacks
        cpu0, t0 = cpu_seconds(receiver.proc.pid), time.perf_counter()
        # The sides share one LLM, which reuses what it computed of the prompt before: a side
        # asking the question the previous call asked answered up to twice as fast, so the
        # order of the sides decided the ratio. Here no call asks the previous call's
        # question, and in each cycle each side asks each question once.
        for cycle in range(max(1, args.queries // QUERY_CYCLE)):
            order = SIDES if cycle % 2 == 0 else SIDES[::-1]
            for j in range(len(SIDES) * QUERY_CYCLE):
                call(order[j % len(SIDES)], "/v1/query", QUESTIONS[j % QUERY_CYCLE])
        cpu1, elapsed = cpu_seconds(receiver.proc.pid), time.perf_counter() - t0
        telemetry = {
            side: clients[side].get("/readyz").json().get("telemetry") for side in ("on", "down")
        }
    broker.stop()
    store.close()
    p50 = {k: statistics.median(v) for k, v in times.items()}
    for path, size in (("/v1/retrieve", block), ("/v1/query", QUERY_CYCLE)):
        off = p50[("off", path)]
        print(
            f"{path} p50: off {off:.1f} ms, to Jaeger {p50[('on', path)]:.1f} ms, collector "
            f"down {p50[('down', path)]:.1f} ms; ratio on/off {p50[('on', path)] / off:.3f}, "
            f"down/off {p50[('down', path)] / off:.3f} (targets <= {TARGET})"
        )
        for side in ("on", "down"):
            mid, low, high = paired_ratio(times[(side, path)], times[("off", path)], size)
            print(
                f"  paired {side}/off: {mid:.3f}, 90% interval {low:.3f}-{high:.3f} over "
                f"{len(times[('off', path)]) // size} blocks of {size}: "
                f"{verdict(low, high)}"
            )
    if cpu0 is not None and cpu1 is not None:
        print(
            f"Jaeger, receiving on this machine, used {cpu1 - cpu0:.1f} s of CPU in the "
            f"{elapsed:.0f} s of /v1/query calls ({(cpu1 - cpu0) / elapsed:.1%} of one core)"
        )
    print(f"errors returned: {errors} (target: none); exporters: {telemetry}")


if __name__ == "__main__":
    main()
