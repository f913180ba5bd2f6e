"""Documents as they are, measured side by side in one run.

1. Pages per second through Kafka, the ingestion service (conversion in its child process)
   and the embedding service (two processes, as deployed), divided by the same work in this
   process on the same files: the conversion library called directly, then the pipeline's
   text path (chunking, embedding, the store). Target at least 0.8.
2. OCR: scanned pages per second (Tesseract on this machine), and OCR's share of the
   in-process time of a corpus where one page in ``--scan-every`` is a scan.
3. A no-change ``llmops sync`` of ``--files`` files, its wall time divided by a plain walk
   that stats every file (``os.scandir``) of the same tree. Target at most 2.
4. Retrieval quality on a labelled set of converted PDFs (each question's answer is on one
   known page): page-level recall@5, beside the same text indexed as plain text documents.

    python bench/documents.py [--pdfs 40] [--pages 5] [--files 10000]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._env import BenchKafka, wait_for  # noqa: E402
from services.embedding.indexer import Indexer  # noqa: E402
from services.ingestion.convert import Limits, convert  # noqa: E402
from services.ingestion.logic import Ingestor  # noqa: E402
from services.ingestion.settings import IngestionSettings  # noqa: E402
from services.ingestion.sync import Sync  # noqa: E402
from shared.contracts.events import ContentType, DocumentEvent  # noqa: E402
from shared.contracts.topics import DOCS_INDEXED  # noqa: E402
from shared.contracts.upstream import publish_documents  # noqa: E402
from shared.models.embedder import get_embedder  # noqa: E402
from shared.settings import PlatformSettings, QdrantSettings  # noqa: E402
from shared.store.open import open_store  # noqa: E402
from shared.store.retrieval import retrieve  # noqa: E402
from tests import documents as make  # noqa: E402
from tests.kafka_helpers import ServiceProcess, consume  # noqa: E402

WORDS = [
    "order",
    "invoice",
    "refund",
    "parcel",
    "warehouse",
    "customer",
    "contract",
    "renewal",
    "account",
    "balance",
    "payment",
    "schedule",
    "delivery",
    "region",
    "supplier",
    "audit",
    "policy",
    "holiday",
    "laptop",
    "travel",
]
PRODUCTS = [
    f"{a} {b}"
    for a in ("Alpine", "Harbor", "Quartz", "Meadow", "Falcon")
    for b in ("router", "kettle", "scanner", "drone", "heater", "monitor", "speaker", "printer")
]
ATTRIBUTES = [
    ("warranty period", "How long is the warranty period of the {p}?", "{n} months"),
    ("delivery time", "How long does delivery of the {p} take?", "{n} working days"),
    ("support phone line", "Which support line serves the {p}?", "line {n}"),
    ("return window", "How many days is the return window of the {p}?", "{n} days"),
    ("spare parts stock", "How many spare parts of the {p} are in stock?", "{n} units"),
]


def filler(rnd: random.Random, sentences: int) -> list[str]:
    return [
        " ".join(rnd.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(sentences)
    ]


def text_pdfs(n: int, pages: int, seed: int = 3) -> list[bytes]:
    rnd = random.Random(seed)
    return [
        make.pdf(
            [
                make.Page(
                    headings=[(1, f"Report {i}")] if p == 0 else [(2, f"Part {p}")],
                    paragraphs=[" ".join(filler(rnd, 6)) for _ in range(4)],
                )
                for p in range(pages)
            ]
        )
        for i in range(n)
    ]


def event(doc_id: str, data: bytes, ctype: ContentType = ContentType.PDF) -> DocumentEvent:
    return DocumentEvent(
        tenant="bench",
        doc_id=doc_id,
        version=1,
        content_type=ctype,
        content_base64=base64.b64encode(data).decode(),
    )


def in_process(
    ingestor: Ingestor, indexer: Indexer, events: list[DocumentEvent], timed: set[str] | None = None
) -> tuple[float, float]:
    """Seconds for conversion in this process, then chunking, embedding and the store in
    batches of 64 documents (the embedding service's); and the seconds of the ``timed``
    documents' conversions."""
    limits = Limits()
    t0 = time.perf_counter()
    part = 0.0
    batches = []
    for ev in events:
        c0 = time.perf_counter()
        body = convert(base64.b64decode(ev.content_base64), ev.content_type, limits)
        if timed and ev.doc_id in timed:
            part += time.perf_counter() - c0
        batches.append(ingestor.to_batch(ev, body=body))
        if len(batches) == 64:
            indexer.index(batches)
            batches = []
    if batches:
        indexer.index(batches)
    return time.perf_counter() - t0, part


def pipeline(kafka: BenchKafka, events: list[DocumentEvent], pages: int) -> float:
    """Pages per second through the two services, between the first and the last document
    indexed (broker timestamps), so start-up and group joins do not count."""
    publish_documents(events, kafka.bootstrap, kafka.prefix)
    procs = [
        ServiceProcess(name, kafka.env(), kafka.tmp / f"{name}.log")
        for name in ("ingestion", "embedding")
    ]
    for p in procs:
        p.start()
    try:
        wait_for(kafka.bootstrap, DOCS_INDEXED.name(kafka.prefix), {e.key: 1 for e in events})
        out = consume(kafka.bootstrap, DOCS_INDEXED.name(kafka.prefix), until=len(events))
    finally:
        for p in procs:
            p.stop()
    stamps = sorted(r.timestamp for r in out)
    return (len(out) - 1) * pages / ((stamps[-1] - stamps[0]) / 1000)


def plain_walk(root: Path) -> int:
    n = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                else:
                    e.stat()
                    n += 1
    return n


def sync_ratio(kafka: BenchKafka, files: int) -> tuple[float, float, int]:
    root = kafka.tmp / "tree"
    for i in range(files):
        d = root / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.md").write_text(f"# File {i}\n\nLine {i}.\n")
    job = Sync(root, "bench", [], kafka.bootstrap, kafka.prefix, kafka.tmp / "sync")
    first = job.run()
    assert first.added == files, first.line()
    walks, syncs = [], []
    for _ in range(7):
        t0 = time.perf_counter()
        plain_walk(root)
        walks.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        again = job.run()
        syncs.append(time.perf_counter() - t0)
        assert not again.published and again.unchanged == files, again.line()
    return statistics.median(syncs), statistics.median(walks), files


def labelled(
    rnd: random.Random,
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str, int, str]]]:
    """Documents (id, page texts) and questions (question, doc id, page, answer)."""
    docs, questions = [], []
    for d in range(len(PRODUCTS) // len(ATTRIBUTES)):
        pages = []
        for p, (name, q, a) in enumerate(ATTRIBUTES):
            product = PRODUCTS[d * len(ATTRIBUTES) + p]
            answer = a.format(n=rnd.randint(2, 90))
            pages.append(f"The {name} of the {product} is {answer}. " + " ".join(filler(rnd, 8)))
            questions.append((q.format(p=product), f"catalogue-{d}.pdf", p + 1, answer))
        docs.append((f"catalogue-{d}.pdf", pages))
    return docs, questions


def recall(kafka: BenchKafka, ingestor: Ingestor) -> tuple[float, float, float, int]:
    """Page-level recall@5 of the converted PDFs; the answer's recall@5 of the same PDFs
    and of the same text as plain documents (a hit holds the answer)."""
    docs, questions = labelled(random.Random(11))
    pdf_events = [
        event(d, make.pdf([make.Page(paragraphs=[t]) for t in pages])) for d, pages in docs
    ]
    text_events = [
        DocumentEvent(tenant="bench", doc_id=d, version=1, content="\n\n".join(pages))
        for d, pages in docs
    ]
    scores = []
    for name, events in (("pdf", pdf_events), ("text", text_events)):
        store = open_store(
            QdrantSettings(path=kafka.tmp / f"recall-{name}"), PlatformSettings(data_dir=kafka.tmp)
        )
        try:
            limits = Limits()
            batches = [
                ingestor.to_batch(
                    ev,
                    body=convert(base64.b64decode(ev.content_base64), ev.content_type, limits)
                    if ev.content_base64
                    else None,
                )
                for ev in events
            ]
            Indexer(store, get_embedder()).index(batches)
            page_hits = answer_hits = 0
            for q, doc, page, answer in questions:
                hits = retrieve(store, q, "bench", [], top_k=5)
                page_hits += any(h.doc_id == doc and h.page == page for h in hits)
                answer_hits += any(h.doc_id == doc and answer in h.text for h in hits)
            scores.append((page_hits / len(questions), answer_hits / len(questions)))
        finally:
            store.close()
    (pdf_page, pdf_answer), (_, text_answer) = scores
    return pdf_page, pdf_answer, text_answer, len(questions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pdfs", type=int, default=40)
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--scans", type=int, default=8, help="scanned single-page PDFs for OCR")
    ap.add_argument("--files", type=int, default=10_000)
    args = ap.parse_args()

    ingestor = Ingestor.from_settings(IngestionSettings())
    events = [
        event(f"report-{i:03d}.pdf", d) for i, d in enumerate(text_pdfs(args.pdfs, args.pages))
    ]
    rnd = random.Random(5)
    scans = [
        event(
            f"scan-{i}.pdf",
            make.pdf([make.Page(scanned=True, paragraphs=filler(rnd, 8))]),
        )
        for i in range(args.scans)
    ]
    kafka = BenchKafka.start("documents")
    try:
        store = open_store(
            QdrantSettings(path=kafka.tmp / "inproc"), PlatformSettings(data_dir=kafka.tmp)
        )
        indexer = Indexer(store, get_embedder())
        in_process(ingestor, indexer, events[:4])  # warm-up: model, tokenizer, libraries
        before, _ = in_process(ingestor, indexer, events)
        store.close()
        # a store of its own: in the first one these documents are stored already, and
        # re-indexing them would encode nothing
        store = open_store(
            QdrantSettings(path=kafka.tmp / "mixed"), PlatformSettings(data_dir=kafka.tmp)
        )
        mixed, ocr_s = in_process(
            ingestor, Indexer(store, get_embedder()), events + scans, {e.doc_id for e in scans}
        )
        store.close()
        service = pipeline(kafka, events, args.pages)
        store = open_store(
            QdrantSettings(path=kafka.tmp / "inproc2"), PlatformSettings(data_dir=kafka.tmp)
        )
        after, _ = in_process(ingestor, Indexer(store, get_embedder()), events)
        store.close()
        sync_s, walk_s, files = sync_ratio(kafka, args.files)
        page_r, answer_r, text_r, n_q = recall(kafka, ingestor)
    finally:
        kafka.stop()
    pages = args.pdfs * args.pages
    local = pages / ((before + after) / 2)  # the machine drifts: before and after, averaged
    print(f"corpus: {args.pdfs} text PDFs x {args.pages} pages = {pages} pages")
    print(f"in-process: pypdfium2 + chunk + embed + store     {local:8.1f} pages/s")
    print(f"through Kafka, ingestion and embedding services   {service:8.1f} pages/s")
    print(f"ratio services/in-process: {service / local:.2f}  (target >= 0.8)")
    print(
        f"OCR: {args.scans / ocr_s:.2f} scanned pages/s (Tesseract, 200 dpi); with 1 page in "
        f"{(pages + args.scans) // args.scans} a scan, OCR takes {100 * ocr_s / mixed:.0f}% of "
        "the in-process time"
    )
    print(
        f"no-change sync of {files} files: {1000 * sync_s:.0f} ms; a plain os.scandir walk "
        f"with a stat per file: {1000 * walk_s:.0f} ms; ratio {sync_s / walk_s:.2f} "
        "(target <= 2)"
    )
    print(
        f"retrieval, {n_q} questions, each answered on one page: page-level recall@5 "
        f"{page_r:.2f} (converted PDFs); answer in a top-5 chunk: {answer_r:.2f} (PDFs) vs "
        f"{text_r:.2f} (the same text as plain documents)"
    )


if __name__ == "__main__":
    main()
