"""`llmops eval run`: the regression gate, in-process with the real store and the real model.

It passes an identical candidate, fails a seeded regression (a closed-book prompt that never
sees the passages), and fails a cases file with a duplicate or a case that cannot run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from services.cli import main
from services.embedding.indexer import Indexer
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import DocumentEvent, EvalCase
from shared.models.embedder import get_embedder
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.open import open_store

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

DOCS = {
    "canteen": "The canteen serves lunch from noon until two every weekday.",
    "vpn": "To connect to the VPN, open the client and choose the Berlin gateway.",
    "parking": "Visitors park in the garage on Rua Augusta, level -2.",
}
CASES = [
    ("lunch", "When does the canteen serve lunch?", "From noon until two.", "canteen"),
    ("vpn", "Which gateway does the VPN use?", "The Berlin gateway.", "vpn"),
    ("park", "Where do visitors park?", "In the garage on Rua Augusta.", "parking"),
]
CLOSED_BOOK = '''mode = "completion"
stop = ["\\n"]
template = """Answer from memory, in a few words.
Question: What is the capital of France?
Answer: Paris.
Question: {question}
Answer:"""
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("gate")
    store = open_store(QdrantSettings(path=tmp / "q"), PlatformSettings(data_dir=tmp))
    ing = Ingestor.from_settings(IngestionSettings())
    Indexer(store, get_embedder()).index(
        [
            ing.to_batch(DocumentEvent(tenant="acme", doc_id=d, version=1, title=d, content=c))
            for d, c in DOCS.items()
        ]
    )
    store.close()  # the command opens it (one process at a time)
    prompts = tmp / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    (prompts / "rag" / "v9.toml").write_text(CLOSED_BOOK)
    cases = tmp / "cases.jsonl"
    cases.write_text(
        "".join(
            EvalCase(
                tenant="acme", case_id=i, question=q, expected_answer=a, expected_docs=[d]
            ).model_dump_json()
            + "\n"
            for i, q, a, d in CASES
        )
    )
    env = {
        "LLMOPS_DATA_DIR": str(tmp),
        "QDRANT_PATH": str(tmp / "q"),
        "INFERENCE_PROMPTS_DIR": str(prompts),
        "INFERENCE_MAX_NEW_TOKENS": "48",
    }
    yield {"tmp": tmp, "cases": cases, "env": env}


def gate(setup: dict[str, Any], *args: str, cases: Path | None = None) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    out = setup["tmp"] / "result.json"
    res = CliRunner().invoke(
        main,
        ["eval", "run", "--cases", str(cases or setup["cases"]), "--json", str(out), *args],
        env=setup["env"],
        catch_exceptions=False,
    )
    return res.exit_code, res.output, json.loads(out.read_text()) if out.exists() else {}


def test_an_identical_candidate_passes_and_writes_its_report(setup: dict[str, Any]) -> None:
    html = setup["tmp"] / "report.html"
    code, output, result = gate(
        setup, "--prompt", "rag/v3", "--baseline", "rag/v3", "--report", str(html)
    )
    assert code == 0, output
    assert "gate: PASSED" in output and result["passed"] is True
    runs = [c["runs"]["rag/v3"] for c in result["cases"]]
    assert len(runs) == len(CASES)
    # the baseline is worth gating on: it answers and cites the right documents
    assert sum(r["passed"] for r in runs) >= 2, runs
    page = html.read_text()
    assert "Gate passed" in page and "When does the canteen serve lunch?" in page


def test_a_prompt_that_ignores_the_context_fails_the_gate(setup: dict[str, Any]) -> None:
    code, output, result = gate(setup, "--prompt", "rag/v9", "--baseline", "rag/v3")
    assert code == 1, output
    assert "gate: FAILED" in output and not result["passed"]
    regressions = [p for p in result["problems"] if "passes with rag/v3 but fails with rag/v9" in p]
    assert regressions, result["problems"]
    assert any("expected_docs_cited 0.00" in p for p in regressions)


@pytest.mark.parametrize(
    ("candidate", "baseline"),
    [("rag/v3", "rag/v1"), ("rag/v1", "rag/v3")],
    ids=["baseline", "candidate"],
)
def test_a_prompt_that_cannot_answer_is_an_error_of_the_gate_not_a_pass(
    setup: dict[str, Any], candidate: str, baseline: str
) -> None:
    # rag/v1 is written for chat models; the default model is a completion one: every case
    # fails with that prompt, and nothing can be compared (it used to print "gate: PASSED")
    code, output, result = gate(setup, "--prompt", candidate, "--baseline", baseline)
    assert code == 2, output
    assert "gate: ERROR" in output and "PASSED" not in output and result["passed"] is False
    assert len(result["errors"]) == len(CASES), result["errors"]
    assert all("could not run with rag/v1" in e for e in result["errors"])


def test_a_duplicate_or_a_case_that_cannot_run_fails_the_gate(setup: dict[str, Any]) -> None:
    lines = setup["cases"].read_text().splitlines()
    dup = setup["tmp"] / "dup.jsonl"
    dup.write_text("\n".join([*lines, lines[0]]) + "\n")
    code, output, result = gate(setup, "--prompt", "rag/v3", cases=dup)
    assert code == 1 and any("duplicate case acme/lunch" in p for p in result["problems"]), output
    broken = setup["tmp"] / "broken.jsonl"
    huge = EvalCase(tenant="acme", case_id="huge", question="why? " * 1000)
    broken.write_text("\n".join([*lines, huge.model_dump_json()]) + "\n")
    code, output, result = gate(setup, "--prompt", "rag/v3", cases=broken)
    assert code == 2 and "gate: ERROR" in output, output
    assert any(
        "acme/huge could not run with rag/v3: QuestionTooLong" in e for e in result["errors"]
    )
    bad = setup["tmp"] / "bad.jsonl"
    bad.write_text('{"tenant": "acme"}\n')
    res = CliRunner().invoke(
        main, ["eval", "run", "--cases", str(bad), "--prompt", "rag/v3"], env=setup["env"]
    )
    assert res.exit_code == 1 and "bad.jsonl:1: case_id: Field required" in res.output
