"""Unit tests of ``services.evaluation.evaluate``: offline evaluation: which online metric
predicts a thumbs-down, comparing prompt versions, and the gate."""

from __future__ import annotations

from typing import Any

import pytest

from services.evaluation.evaluate import CaseRun, Gate, judge
from shared.contracts.events import EvalCase
from tests.eval_results import eval_result


def test_compare_waits_for_enough_data_then_names_the_preferred_version() -> None:
    from services.evaluation.evaluate import compare

    def arm(version: str, n: int, up_rate: float, start: int) -> list[Any]:
        return [eval_result(start + i, version, i >= n * up_rate, 0.6) for i in range(n)]

    few = arm("v1", 10, 0.3, 0) + arm("v2", 10, 0.9, 100)
    arms, verdict = compare(few, "rag", min_n=30)
    assert [a.version for a in arms] == ["v1", "v2"] and arms[0].traffic == 10
    assert verdict.startswith("not enough data: v1, v2 under 30")
    many = arm("v1", 60, 0.3, 0) + arm("v2", 60, 0.9, 100)
    arms, verdict = compare(many, "rag", min_n=30)
    assert arms[1].thumbs_up is not None and arms[1].thumbs_up.estimate == pytest.approx(0.9)
    assert verdict.startswith("v2 is preferred")
    close = arm("v1", 40, 0.5, 0) + arm("v2", 40, 0.55, 100)
    assert (
        compare(close, "rag", min_n=30)[1] == "no difference yet: the thumbs-up intervals overlap"
    )
    assert compare(many, "other")[0] == []


def test_a_prompt_that_could_not_answer_a_case_is_an_error_of_the_gate() -> None:
    cases = [EvalCase(tenant="acme", case_id=c, question="q?") for c in ("a", "b")]
    ok = {c.key: CaseRun(c.case_id, "[1] A.", [], {}) for c in cases}
    failed = {c.key: CaseRun(c.case_id, error="HTTP 422: written for chat models") for c in cases}
    for runs in ({"cand": ok, "base": failed}, {"cand": failed, "base": ok}):
        report = judge(cases, runs, "cand", "base", Gate(), [])
        assert not report.passed and report.exit_code == 2
        assert len(report.errors) == 2 and "written for chat models" in report.errors[0]
    assert judge(cases, {"cand": ok, "base": ok}, "cand", "base", Gate(), []).exit_code in (0, 1)
