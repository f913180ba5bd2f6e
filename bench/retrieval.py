"""Retrieval quality on a labelled set anyone can rebuild from this machine, and what it costs.

The set: Debian's package descriptions (``/var/lib/dpkg/status``, on every Debian machine).
Each package is a document (title: the package name, text: its long description); its
one-line synopsis is the question, and the package is the one right answer. Descriptions
that two packages share, and synopses that two share, are left out: their answer is
ambiguous.

One run:
  1. the raw model on whole documents (the long description, then title + description),
     ranked by cosine in numpy: the baseline;
  2. the documents published through Kafka, ingested, chunked, embedded and indexed by the
     services (``llmops run ingestion embedding inference``, the embedded store): indexing
     chunks/s from the first publish to the last docs.indexed;
  3. every question through ``/v1/retrieve`` (top 10 documents) in each mode, dense, sparse
     and hybrid: recall@1, recall@5, MRR@10, and p50/p95 of the request;
  4. with the API stopped, the same store in this process: each fusion (rrf, dbsf), with and
     without the score threshold, and the raw encode + search time.

    python bench/retrieval.py [--docs 0 (all)] [--status /var/lib/dpkg/status]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._env import BenchKafka, wait_for  # noqa: E402
from services.inference.auth import new_key  # noqa: E402
from services.inference.client import connect  # noqa: E402
from services.inference.settings import InferenceSettings  # noqa: E402
from shared.contracts.events import DocumentEvent  # noqa: E402
from shared.contracts.topics import DOCS_INDEXED  # noqa: E402
from shared.contracts.upstream import publish_documents  # noqa: E402
from shared.http import wait_ok  # noqa: E402
from shared.kafka.broker import free_port  # noqa: E402
from shared.models.embedder import Embedder, get_embedder  # noqa: E402
from shared.settings import PlatformSettings, QdrantSettings  # noqa: E402
from shared.store.base import Fusion, SearchMode  # noqa: E402
from shared.store.open import open_store
from shared.store.retrieval import retrieve  # noqa: E402
from tests.kafka_helpers import ServiceProcess  # noqa: E402

TENANT = "bench"
K = 10


@dataclass(frozen=True)
class Case:
    """A document and the question whose one right answer it is."""

    doc_id: str
    title: str
    question: str
    text: str


def _paragraphs(path: Path) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    last = ""
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif line[0] in " \t" and last:
            fields[last] += "\n" + line[1:]
        elif ":" in line:
            last, _, value = line.partition(":")
            fields[last] = value.strip()
    if fields:
        yield fields


def debian_packages(path: Path, limit: int = 0) -> list[Case]:
    """The labelled set: synopsis -> package, for descriptions of 20 words or more."""
    cases: list[Case] = []
    for p in _paragraphs(path):
        synopsis, _, body = p.get("Description", "").partition("\n")
        # " ." lines are blank lines of the long description
        text = "\n".join("" if ln.strip() == "." else ln.strip() for ln in body.splitlines())
        if synopsis and len(text.split()) >= 20 and "Package" in p:
            cases.append(Case(p["Package"], p["Package"], synopsis.strip(), text.strip()))
    count_q: dict[str, int] = {}
    count_t: dict[str, int] = {}
    for c in cases:
        count_q[c.question.lower()] = count_q.get(c.question.lower(), 0) + 1
        count_t[c.text] = count_t.get(c.text, 0) + 1
    unique = [c for c in cases if count_q[c.question.lower()] == 1 and count_t[c.text] == 1]
    unique.sort(key=lambda c: c.doc_id)
    return unique[:limit] if limit else unique


@dataclass
class Scores:
    """Recall@1, recall@5 and MRR@10 over a set of ranked answers."""

    ranks: list[int | None]

    def recall(self, k: int) -> float:
        return sum(1 for r in self.ranks if r is not None and r < k) / len(self.ranks)

    def mrr(self) -> float:
        return sum(1 / (r + 1) for r in self.ranks if r is not None and r < K) / len(self.ranks)

    def row(self, name: str, extra: str = "") -> str:
        return (
            f"{name:<40} {self.recall(1):>8.3f} {self.recall(5):>8.3f} {self.mrr():>8.3f}  {extra}"
        )


def rank_of(found: list[str], right: str) -> int | None:
    return found.index(right) if right in found else None


def per_doc(doc_ids: list[str]) -> list[str]:
    """Document ids in order, each once (the first chunk of a document ranks it)."""
    return list(dict.fromkeys(doc_ids))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def baseline(cases: list[Case], with_title: bool, embedder: Embedder | None = None) -> Scores:
    """The raw model on whole documents: cosine of question and document, in numpy."""
    e = embedder or get_embedder()
    docs = [f"{c.title}\n{c.text}" if with_title else c.text for c in cases]
    d = np.asarray(e.encode(docs))
    q = np.asarray(e.encode([c.question for c in cases]))
    order = np.argsort(-(q @ d.T), axis=1)[:, :K]
    return Scores(
        [
            rank_of([cases[j].doc_id for j in row], c.doc_id)
            for row, c in zip(order, cases, strict=True)
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=0, help="documents to use (default 0: all)")
    ap.add_argument("--status", type=Path, default=Path("/var/lib/dpkg/status"))
    args = ap.parse_args()
    cases = debian_packages(args.status, args.docs)
    print(f"labelled set: {len(cases)} Debian packages from {args.status}")
    header = f"{'':<40} {'R@1':>8} {'R@5':>8} {'MRR@10':>8}"
    rows = [header]
    base = baseline(cases, with_title=False)
    rows.append(base.row("raw model, whole document (baseline)"))
    rows.append(baseline(cases, with_title=True).row("raw model, title + whole document"))

    kafka = BenchKafka.start("retrieval")
    key, record = new_key("bench", TENANT, [])
    port = free_port()
    defaults = InferenceSettings()
    env = kafka.env(
        INFERENCE_PORT=str(port),
        INFERENCE_API_KEYS=json.dumps([record.model_dump()]),
        INFERENCE_RATE_LIMIT_PER_MIN=str(10**9),
    )
    server = ServiceProcess("ingestion embedding inference", env, kafka.tmp / "services.log")
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_ok(f"{url}/readyz", 240):
            raise SystemExit(f"the services did not get ready; see {server.log_path}")
        events = [
            DocumentEvent(tenant=TENANT, doc_id=c.doc_id, version=1, title=c.title, content=c.text)
            for c in cases
        ]
        t0 = time.perf_counter()
        publish_documents(events, kafka.bootstrap, kafka.prefix)
        got = wait_for(kafka.bootstrap, DOCS_INDEXED.name(kafka.prefix), {e.key: 1 for e in events})
        took = time.perf_counter() - t0
        chunks = sum(d.chunk_count for d in got.values())
        print(f"indexed {len(got)} documents, {chunks} chunks, in {took:.1f} s through Kafka")
        latency: dict[SearchMode, list[float]] = {}
        with connect(url, key, timeout_s=60) as c:
            c.post("/v1/retrieve", json={"question": "warm up"}).raise_for_status()
            for mode in SearchMode:
                ranks, ms = [], []
                for case in cases:
                    t = time.perf_counter()
                    r = c.post(
                        "/v1/retrieve",
                        json={"question": case.question, "top_k": K, "mode": mode.value},
                    )
                    ms.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    found = [ch["doc_id"] for ch in r.json()["chunks"]]
                    ranks.append(rank_of(found, case.doc_id))
                latency[mode] = ms
                extra = f"p50 {pct(ms, 0.5):.1f} ms, p95 {pct(ms, 0.95):.1f} ms"
                rows.append(Scores(ranks).row(f"/v1/retrieve {mode.value}", extra))
    finally:
        server.stop()

    # The same store in this process (the API has let it go): fusions, and no threshold.
    store = open_store(
        QdrantSettings(), PlatformSettings(data_dir=kafka.tmp / "data"), kafka.prefix
    )
    embedder = get_embedder()
    vectors = dict(
        zip(
            [c.question for c in cases],
            embedder.encode([c.question for c in cases]),
            strict=True,
        )
    )

    def search(case: Case, **kw: object) -> list[str]:
        hits = retrieve(
            store,
            case.question,
            TENANT,
            [],
            top_k=K * 3,
            embedder_for=lambda _: _Cached(vectors),  # type: ignore[arg-type, return-value]
            **kw,  # type: ignore[arg-type]
        )
        return per_doc([h.doc_id for h in hits])[:K]

    threshold = defaults.score_threshold
    variants: list[tuple[str, Callable[[Case], list[str]]]] = []
    for t in (threshold, None):
        for mode, fusion in (
            (SearchMode.DENSE, Fusion.RRF),
            (SearchMode.SPARSE, Fusion.RRF),
            (SearchMode.HYBRID, Fusion.RRF),
            (SearchMode.HYBRID, Fusion.DBSF),
        ):
            name = f"in process {mode.value}" + (f" {fusion.value}" if mode == "hybrid" else "")
            name += f", threshold {t}" if t is not None else ", no threshold"
            variants.append(
                (
                    name,
                    lambda c, m=mode, f=fusion, t=t: search(c, mode=m, fusion=f, score_threshold=t),
                )
            )
    for name, fn in variants:
        rows.append(Scores([rank_of(fn(c), c.doc_id) for c in cases]).row(name))

    # encode + search, in this process, as the API's retrieval stage does it
    raw: list[float] = []
    stage: list[float] = []
    for case in cases:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        retrieve(store, case.question, TENANT, [], K * 3, None, threshold, timings=timings)
        raw.append((time.perf_counter() - t) * 1000)
        stage.append(timings["retrieve"])
    store.close()
    kafka.stop()

    print("\n".join(rows))
    hybrid = statistics.median(latency[SearchMode.HYBRID])
    print(
        f"\nindexing: {chunks / took:.1f} chunks/s through Kafka and the services\n"
        f"raw encode + hybrid search p50 {statistics.median(raw):.1f} ms (search alone "
        f"{statistics.median(stage):.2f} ms); /v1/retrieve hybrid p50 {hybrid:.1f} ms: "
        f"ratio {hybrid / statistics.median(raw):.2f}"
    )


class _Cached:
    """The query vectors, encoded once for every variant (the variants differ in the store)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str], batch_size: int = 64) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


if __name__ == "__main__":
    main()
