"""Answer quality and speed of the embedded models, per model, mode and prompt, in one run.

The sample corpus `make run` indexes (README.md and docs/) is chunked and indexed in-process
exactly as the services do it; each labelled question of ``bench/answers.jsonl`` (written by
hand: answerable ones with their key facts and the document that holds them, unanswerable
ones whose right answer is "I do not know") then goes through the service's own answering
path (retrieve with the tenant filter, dedupe, pack within the context budget, the prompt
of the model's mode, generate at temperature 0). Printed per configuration:

  facts      share of answerable questions whose answer holds every key fact
  cited      share of answerable questions whose answer names ([n]) a passage of the right
             document
  found      share of answerable questions whose context held the right document (retrieval,
             the same for every model; the ceiling of "cited")
  refused    share of unanswerable questions answered "I do not know"
  wrongly    share of answerable questions refused
  ttft       time to first token, p50 / p95, seconds (retrieval included)
  tok/s      generated tokens per second after the first

    python bench/answers.py                   # both models, both modes, the budget sweep
    python bench/answers.py --configs gemma3-270m:completion:v3 --budgets 512
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.store.open import open_store

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = Path(__file__).with_name("answers.jsonl")
CORPUS = [ROOT / "README.md", ROOT / "docs"]
TENANT = "bench"
DEFAULT_CONFIGS = (
    "gemma3-270m:completion:v3,gemma3-270m:chat:v4,gemma3-270m:chat:v1,"
    "smollm2-135m:chat:v4,smollm2-135m:completion:v3"
)

REFUSAL = re.compile(
    r"\b(i do not know|i don'?t know|i do not have|not (?:contain|mention|say|provide)|"
    r"no information|cannot answer|can'?t answer|unable to answer)\b",
    re.IGNORECASE,
)
CITE = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    doc: str | None = None
    facts: tuple[tuple[str, ...], ...] = ()

    @property
    def answerable(self) -> bool:
        return self.doc is not None


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            facts = tuple(tuple(alts) for alts in d.get("facts", []))
            out.append(Question(d["id"], d["question"], d.get("doc"), facts))
    return out


def refused(answer: str) -> bool:
    """The answer says it does not know (or that the passages do not say)."""
    return bool(REFUSAL.search(answer)) or not answer.strip()


def has_facts(answer: str, facts: tuple[tuple[str, ...], ...]) -> bool:
    """Every fact is in the answer (a fact is met by any of its spellings, case aside); a
    number must stand alone ("4" is not met by "14")."""
    low = answer.lower()

    def found(alt: str) -> bool:
        a = alt.lower()
        if a.isdigit():
            return re.search(rf"(?<![\d.]){re.escape(a)}(?![\d])", low) is not None
        return a in low

    return all(any(found(alt) for alt in alts) for alts in facts)


def cited_docs(answer: str, citations: list[tuple[int, str]]) -> set[str]:
    """Documents of the passages the answer names as [n]."""
    named = {int(n) for n in CITE.findall(answer)}
    return {doc for n, doc in citations if n in named}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))] if xs else float("nan")


@dataclass
class Outcome:
    q: Question
    answer: str
    docs_in_context: set[str]
    cited: set[str]
    ttft_s: float
    tokens: int
    gen_s: float


@dataclass
class Row:
    config: str
    budget: int
    outcomes: list[Outcome] = field(default_factory=list)

    def shares(self) -> dict[str, float]:
        ans = [o for o in self.outcomes if o.q.answerable]
        una = [o for o in self.outcomes if not o.q.answerable]

        def share(xs: list[Outcome], ok: Any) -> float:
            return sum(1 for o in xs if ok(o)) / len(xs) if xs else float("nan")

        rates = [(o.tokens - 1) / o.gen_s for o in self.outcomes if o.tokens > 1 and o.gen_s > 0]
        return {
            "facts": share(ans, lambda o: not refused(o.answer) and has_facts(o.answer, o.q.facts)),
            "cited": share(ans, lambda o: o.q.doc in o.cited),
            "found": share(ans, lambda o: o.q.doc in o.docs_in_context),
            "refused": share(una, lambda o: refused(o.answer)),
            "wrongly": share(ans, lambda o: refused(o.answer)),
            "ttft50": pct([o.ttft_s for o in self.outcomes], 0.5),
            "ttft95": pct([o.ttft_s for o in self.outcomes], 0.95),
            "tps": statistics.median(rates) if rates else float("nan"),
        }


def build_store(tmp: Path) -> Any:
    from services.embedding.indexer import Indexer
    from services.ingestion.logic import Ingestor
    from services.ingestion.settings import IngestionSettings
    from shared.contracts.events import DocumentEvent
    from shared.contracts.upstream import events_from_paths
    from shared.models.embedder import get_embedder
    from shared.settings import PlatformSettings, QdrantSettings

    store = open_store(QdrantSettings(path=tmp / "q"), PlatformSettings(data_dir=tmp))
    ing = Ingestor.from_settings(IngestionSettings())
    events = [e for e in events_from_paths(CORPUS, TENANT) if isinstance(e, DocumentEvent)]
    Indexer(store, get_embedder()).index([ing.to_batch(e) for e in events])
    print(f"corpus: {', '.join(sorted(e.doc_id for e in events))}", flush=True)
    return store


async def ask_all(answering: Any, key: Any, questions: list[Question], row: Row) -> None:
    from services.inference.schemas import QueryRequest

    for q in questions:
        t0 = time.perf_counter()
        gen = await answering.prepare(QueryRequest(question=q.question), key)
        first: float | None = None
        pieces = 0
        async for _ in gen.pieces():
            pieces += 1
            if first is None:
                first = time.perf_counter()
        done = time.perf_counter()
        resp = gen.finish()
        cits = [(c.n, c.doc_id) for c in resp.citations]
        row.outcomes.append(
            Outcome(
                q,
                resp.answer,
                {d for _, d in cits},
                cited_docs(resp.answer, cits),
                (first or done) - t0,
                resp.usage.completion_tokens,
                done - (first or done),
            )
        )


def run_config(store: Any, config: str, budget: int, questions: list[Question]) -> Row:
    from services.inference.answering import Answering
    from services.inference.auth import new_key
    from services.inference.llm import make_llm
    from services.inference.prompts import load_prompts
    from services.inference.settings import InferenceSettings
    from services.inference.traces import TracePublisher

    model, mode, version = config.split(":")
    s = InferenceSettings(
        llm_model=model,
        llm_mode=mode,
        # the base model has no template of its own: chat needs the one it was built for
        llm_chat_format="gemma" if mode == "chat" and model.startswith("gemma") else "",
        prompt_split=f"{version}=1",
        context_tokens=budget,
        temperature=0.0,
    )
    llm = make_llm(s)
    _, record = new_key("bench", TENANT, [])
    # traces are not what is measured: a publisher never started drops (and counts) them
    answering = Answering(
        s, store, llm, TracePublisher("unused:0", "unused"), load_prompts(s.prompts_dir)
    )
    row = Row(config, budget)
    asyncio.run(ask_all(answering, record, questions, row))
    return row


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'model:mode:prompt':34} {'budget':>6} {'facts':>6} {'cited':>6} {'found':>6} "
        f"{'refused':>8} {'wrongly':>8} {'ttft p50/p95 s':>15} {'tok/s':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        v = r.shares()
        budget = str(r.budget) if r.budget else "full"
        print(
            f"{r.config:34} {budget:>6} {v['facts']:6.2f} {v['cited']:6.2f} {v['found']:6.2f} "
            f"{v['refused']:8.2f} {v['wrongly']:8.2f} {v['ttft50']:7.2f}/{v['ttft95']:<7.2f} "
            f"{v['tps']:6.1f}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="comma-separated model:mode:prompt-version (default: both models, both modes)",
    )
    ap.add_argument(
        "--budgets",
        default="512",
        help="context token budgets for every config (0: as many as fit); default 512",
    )
    ap.add_argument(
        "--sweep",
        default="gemma3-270m:completion:v3=256,1024,0",
        help="config=budgets run in addition (the default model's budget sweep)",
    )
    ap.add_argument("--show", action="store_true", help="print every answer")
    args = ap.parse_args()
    questions = load_questions()
    n_ans = sum(q.answerable for q in questions)
    print(f"questions: {n_ans} answerable, {len(questions) - n_ans} unanswerable", flush=True)
    runs = [(c, int(b)) for c in args.configs.split(",") for b in args.budgets.split(",")]
    if args.sweep:
        config, _, budgets = args.sweep.partition("=")
        runs += [(config, int(b)) for b in budgets.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-answers-") as tmp:
        store = build_store(Path(tmp))
        rows = []
        for config, budget in runs:
            t0 = time.perf_counter()
            row = run_config(store, config, budget, questions)
            rows.append(row)
            print(
                f"  {config} budget {budget or 'full'}: {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            if args.show:
                for o in row.outcomes:
                    print(f"    {o.q.id} {o.q.question}\n      -> {o.answer!r}")
        store.close()
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
