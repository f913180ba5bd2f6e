"""Query latency and streaming speed through the inference API versus the raw parts, in one run.

  1. at each corpus size (1k, 10k, 50k chunks by default): /v1/retrieve p50 and p95 over HTTP,
     divided by the raw in-process encode + search on the same questions (aim: 1.3 or less),
     and the search stage alone (aim: under 10 ms at 50k chunks);
  2. streamed tokens per second through /v1/query (SSE) divided by raw llama-cpp tokens per
     second on the same prompt, greedy so both generate the same tokens (aim: 0.9 or more);
  3. the time to first token that the service adds;
  4. /v1/chat/completions streamed through the openai SDK over /v1/query streamed through
     SSE, on the same question: tokens per second (aim: 0.97 or more) and the time to first
     token it adds (aim: 10 ms or less).

The corpus is 150 real documents, indexed with the real model, topped up to each size with
filler chunks of the same tenant (random unit vectors and random words: what a search costs
depends on how many points it scans, not on what they say). The raw parts are measured in
this process; the API runs in its own process (`llmops run inference embedding`, as the host
co-locates them with the embedded store; traces to a real local broker). The embedded store
admits one process, so the raw side searches a copy of the same collection; it encodes
through the same Embedder (one hop to its torch thread, as for any caller). Blocks of raw and
API requests alternate, so both sides see the same machine: its speed drifts from minute to
minute. Both sides' medians per stage are printed, so a gap shows where it is.

    python bench/query.py [--requests 200] [--rounds 3] [--sizes 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openai import OpenAI  # noqa: E402

from bench.ingest import VOCAB, make_docs  # noqa: E402
from services.embedding.indexer import Indexer  # noqa: E402
from services.inference.answering import CANDIDATES_PER_RESULT  # noqa: E402
from services.inference.auth import new_key  # noqa: E402
from services.inference.client import connect, stream_query  # noqa: E402
from services.inference.llm import Prompted, Sampling, make_llm  # noqa: E402
from services.inference.logic import dedupe, pack  # noqa: E402
from services.inference.prompts import choose, load_prompts, parse_split  # noqa: E402
from services.inference.settings import InferenceSettings  # noqa: E402
from services.ingestion.logic import Ingestor  # noqa: E402
from services.ingestion.settings import IngestionSettings  # noqa: E402
from shared.http import wait_ok  # noqa: E402
from shared.kafka.broker import free_port, local_broker  # noqa: E402
from shared.models.embedder import get_embedder  # noqa: E402
from shared.settings import PlatformSettings, QdrantSettings  # noqa: E402
from shared.store.base import Point, VectorStore  # noqa: E402
from shared.store.open import open_store
from shared.store.payload import (
    PUBLIC,
    access_keys,  # noqa: E402
)
from shared.store.retrieval import retrieve  # noqa: E402
from tests.kafka_helpers import ServiceProcess  # noqa: E402

QUESTIONS = [
    f"What does the {w} report say about {v}?"
    for w, v in [
        ("quarterly", "revenue"),
        ("customer", "invoice"),
        ("kafka", "stream"),  # each question finds chunks over the score threshold
        ("tenant", "policy"),
        ("shipment", "contract"),
        ("vector", "index"),
    ]
]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def top_up(store: VectorStore, collection: str, have: int, want: int, dim: int) -> None:
    """Filler chunks of the bench tenant until the collection holds ``want`` points."""
    rng = np.random.default_rng(have)
    for start in range(have, want, 1000):
        n = min(1000, want - start)
        vectors = rng.normal(size=(n, dim))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        points = []
        for i, v in zip(range(start, start + n), vectors, strict=True):
            text = " ".join(rng.choice(VOCAB, 40))
            doc = f"filler-{i // 4:06d}"
            points.append(
                Point(
                    str(uuid.uuid5(uuid.NAMESPACE_URL, f"filler/{i}")),
                    v.tolist(),
                    text,
                    {
                        "doc_key": f"acme/{doc}",
                        "tenant": "acme",
                        "doc_id": doc,
                        "acl": [PUBLIC],
                        "access": access_keys("acme", []),
                        "text": text,
                        "chunk_index": i % 4,
                        "version": 1,
                    },
                )
            )
        store.upsert(collection, points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--requests", type=int, default=200, help="/v1/retrieve calls per size, and as many raw"
    )
    ap.add_argument("--rounds", type=int, default=3, help="streamed generations (default 3)")
    ap.add_argument(
        "--sizes", default="1000,10000,50000", help="corpus sizes in chunks (1000,10000,50000)"
    )
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench-query-"))
    platform = PlatformSettings(data_dir=tmp)
    store = open_store(QdrantSettings(path=tmp / "q"), platform)
    ing = Ingestor.from_settings(IngestionSettings())
    docs = make_docs(150, 300)
    Indexer(store, get_embedder()).index(
        [ing.to_batch(d.model_copy(update={"tenant": "acme"})) for d in docs]
    )
    key, record = new_key("bench", "acme", [])
    s = InferenceSettings(
        api_keys=json.dumps([record.model_dump()]),
        port=free_port(),
        rate_limit_per_min=10**9,
        temperature=0.0,
        max_new_tokens=96,
        platform=platform,
    )
    llm = make_llm(s)
    embedder = get_embedder()
    collection = store.active()
    assert collection
    have = store.info(collection).points
    if sizes[0] < have:
        raise SystemExit(f"the smallest size must hold the {have} chunks of the real documents")

    # the prompt the service picks for this model's mode, packed within the same budget
    question, warm_question = QUESTIONS[0], QUESTIONS[2]
    prompts = load_prompts(s.prompts_dir)
    prompt = choose(prompts, None, s.prompt, parse_split(s.prompt_split), "bench", llm.mode)

    def rendered(q: str) -> Prompted:
        hits = dedupe(retrieve(store, q, "acme", [], s.top_k * 2, None, s.score_threshold))
        assert hits, f"{q!r} must find chunks over the threshold, so that the model is asked"
        room = llm.context_window - s.max_new_tokens - llm.count_tokens(prompt.render("", q)) - 16
        context, _ = pack(hits, min(room, s.context_tokens or room), llm.count_tokens)
        return Prompted(prompt.render(context, q), prompt.mode, prompt.stop)

    text, warm = rendered(question), rendered(warm_question)
    sampling = Sampling.from_settings(s)
    model_name = llm.name

    def raw_gen() -> tuple[float, float, int]:
        # Both sides first answer another question through the same template: llama.cpp keeps
        # the prompt prefix it shares with the next one (the template's fixed head), and must
        # evaluate the rest (passages, question) anew. Each side starts exactly as cold. (The
        # service's warm-up used to be a question that found nothing, so its model was never
        # asked and kept the measured prompt whole: "added -524 ms".)
        list(llm.stream(warm, sampling, threading.Event()))
        t0 = time.perf_counter()
        stamps = [time.perf_counter() for _ in llm.stream(text, sampling, threading.Event())]
        return stamps[0] - t0, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)

    broker = local_broker(tmp / "broker", platform.cache_dir, free_port(), free_port())
    broker.start()
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        KAFKA_TOPIC_PREFIX="",  # this run's own broker; a prefix would also rename the alias
        LLMOPS_DATA_DIR=str(tmp),
        QDRANT_PATH=str(tmp / "q"),
        LLMOPS_LOG_LEVEL="warning",
        INFERENCE_PORT=str(s.port),
        INFERENCE_API_KEYS=s.api_keys or "",
        INFERENCE_RATE_LIMIT_PER_MIN=str(10**9),
        INFERENCE_TEMPERATURE="0",
        INFERENCE_MAX_NEW_TOKENS=str(s.max_new_tokens),
        # token for token, as the raw side: redacting the answer holds its last few dozen
        # characters back and sends them in fewer, larger pieces (a cost of its own)
        INFERENCE_REDACT_ANSWERS="false",
    )
    url = f"http://127.0.0.1:{s.port}"
    Timings = list[dict[str, float]]
    per_size: list[tuple[int, list[float], list[float], Timings, Timings]] = []
    raw_runs: list[tuple[float, float, int]] = []
    api_runs: list[tuple[float, float, int]] = []
    chat_runs: list[tuple[float, float, int]] = []
    for size in sizes:
        top_up(store, collection, have, size, embedder.dim)
        have = max(have, size)
        store.close()
        raw_dir = tmp / f"q-raw-{size}"
        shutil.copytree(tmp / "q", raw_dir)
        raw_store = open_store(QdrantSettings(path=raw_dir), platform)
        raw_parts: list[dict[str, float]] = []

        def raw_once(q: str) -> float:
            # what the API's retrieval stage does, in this process
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            retrieve(
                raw_store,  # noqa: B023 - called only within this size's loop
                q,
                "acme",
                [],
                s.top_k * CANDIDATES_PER_RESULT,
                None,
                s.score_threshold,
                timings=timings,
                mode=s.retrieval_mode,
                fusion=s.fusion,
                rrf_k=s.rrf_k,
            )
            raw_parts.append(timings)  # noqa: B023
            return (time.perf_counter() - t0) * 1000

        for q in QUESTIONS:
            raw_once(q)
        raw_parts.clear()
        # The API in its own process, as deployed: `llmops run inference embedding` on the store.
        server = ServiceProcess("inference embedding", env, tmp / f"inference-{size}.log")
        server.start()
        if not wait_ok(f"{url}/readyz", 180):
            raise SystemExit(f"the API did not get ready; see {server.log_path}")
        api: list[float] = []
        raw: list[float] = []
        served: list[dict[str, float]] = []  # the server's own timings of each request
        with connect(url, key, timeout_s=60) as c:

            def api_once(q: str) -> float:
                t0 = time.perf_counter()
                r = c.post("/v1/retrieve", json={"question": q})  # noqa: B023
                elapsed = (time.perf_counter() - t0) * 1000
                r.raise_for_status()
                assert r.json()["chunks"], "the API must search the same, filled collection"
                served.append(r.json()["timings_ms"])  # noqa: B023
                return elapsed

            for q in QUESTIONS:
                api_once(q)
            served.clear()
            # Blocks of ten on one side, then ten on the other. Each block starts after a
            # pause (the service's traces go out in it), and whichever side goes first meets a
            # machine fresh from idle, which is slower for a while: the sides take turns.
            block = 10
            for n, start in enumerate(range(0, args.requests, block)):
                qs = [QUESTIONS[i % len(QUESTIONS)] for i in range(start, start + block)]
                time.sleep(s.trace_linger_ms / 1000 + 0.2)
                for side, out in ((raw_once, raw), (api_once, api))[:: 1 if n % 2 else -1]:
                    out += [side(q) for q in qs]

            # 2. the same prompt, streamed through SSE (once, at the first size); rounds
            # alternate with the raw runs, since this machine's speed drifts
            def api_gen() -> tuple[float, float, int]:
                w = c.post("/v1/query", json={"question": warm_question, "prompt": prompt.ref})
                w.raise_for_status()
                assert w.json()["citations"], "the warm-up must go through the model"
                t0 = time.perf_counter()
                sse: list[float] = []
                for event in stream_query(c, question, prompt=prompt.ref):
                    if event.name == "token":
                        sse.append(time.perf_counter())
                    elif event.name == "done":
                        assert event.data["citations"], "the answer must cite chunks"
                return sse[0] - t0, (len(sse) - 1) / (sse[-1] - sse[0]), len(sse)

            # 4. the same question through the OpenAI-compatible route, with the openai SDK
            chat = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)  # noqa: B023
            model = chat.models.list().data[0].id

            def chat_gen() -> tuple[float, float, int]:
                warm_up = chat.chat.completions.create(  # noqa: B023
                    model=model,  # noqa: B023
                    messages=[{"role": "user", "content": warm_question}],
                )
                assert (warm_up.model_extra or {})["llmops"]["citations"]
                t0 = time.perf_counter()
                stamps: list[float] = []
                for chunk in chat.chat.completions.create(  # noqa: B023
                    model=model,  # noqa: B023
                    messages=[{"role": "user", "content": question}],
                    stream=True,
                ):
                    if chunk.choices and chunk.choices[0].delta.content:
                        stamps.append(time.perf_counter())
                return stamps[0] - t0, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)

            while len(raw_runs) < max(1, args.rounds):
                raw_runs.append(raw_gen())
                api_runs.append(api_gen())
                chat_runs.append(chat_gen())
        server.stop()
        raw_store.close()
        shutil.rmtree(raw_dir)
        store = open_store(QdrantSettings(path=tmp / "q"), platform)
        per_size.append((size, api, raw, served, raw_parts))
    broker.stop()
    store.close()
    raw_ttft = statistics.median(r[0] for r in raw_runs)
    raw_tps = statistics.median(r[1] for r in raw_runs)
    api_ttft = statistics.median(r[0] for r in api_runs)
    api_tps = statistics.median(r[1] for r in api_runs)
    n_raw, n_api = raw_runs[0][2], api_runs[0][2]
    print(
        f"corpus: {len(docs)} documents topped up to each size; {args.requests} requests per "
        f"size; retrieval {s.retrieval_mode.value} ({s.fusion.value}); model {model_name}"
    )
    for size, api, raw, served, raw_parts in per_size:
        print(f"-- {size} chunks")
        for label, xs in (("/v1/retrieve", api), ("raw encode+search", raw)):
            print(f"{label:<18}p50 {statistics.median(xs):7.1f} ms  p95 {pct(xs, 0.95):7.1f} ms")
        for label, parts in (("inside the service", served), ("raw", raw_parts)):
            medians = [f"{k} {statistics.median(t[k] for t in parts):.2f} ms" for k in parts[0]]
            print(f"  {label} p50: " + "  ".join(medians))
        print(
            f"ratio retrieve/raw: p50 {statistics.median(api) / statistics.median(raw):.2f}  "
            f"p95 {pct(api, 0.95) / pct(raw, 0.95):.2f}  (target <= 1.3); search stage alone "
            f"p50 {statistics.median(t['retrieve'] for t in raw_parts):.2f} ms (target < 10 ms)"
        )
    print(
        f"tokens/s (median of {len(api_runs)}): streamed {api_tps:.1f} ({n_api} tokens), "
        f"raw llama-cpp {raw_tps:.1f} ({n_raw} tokens)"
    )
    print(f"ratio streamed/raw: {api_tps / raw_tps:.2f}  (target >= 0.9)")
    chat_ttft = statistics.median(r[0] for r in chat_runs)
    chat_tps = statistics.median(r[1] for r in chat_runs)
    print(
        f"/v1/chat/completions (openai SDK, streamed) over /v1/query: tokens/s "
        f"{chat_tps:.1f} / {api_tps:.1f} = {chat_tps / api_tps:.2f} (target >= 0.97); time to "
        f"first token {chat_ttft * 1000:.0f} ms vs {api_ttft * 1000:.0f} ms: "
        f"{(chat_ttft - api_ttft) * 1000:+.0f} ms (target <= +10 ms)"
    )
    print(
        f"time to first token: service {api_ttft * 1000:.0f} ms, raw {raw_ttft * 1000:.0f} ms, "
        f"added by the service {(api_ttft - raw_ttft) * 1000:.0f} ms (retrieval included; both "
        "sides as cold; the answer's redaction, off here, holds back about 48 characters more)"
    )


if __name__ == "__main__":
    main()
