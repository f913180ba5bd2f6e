"""Offline evaluation: reports over eval.results, cases files, and the regression gate.

Pure where it can be: the reports take results, the gate takes two runs. Reading topics and
answering questions (in-process or over HTTP) are handed in by the commands.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.evaluation.stats import Interval, auroc_interval, mean_interval, wilson
from services.feedback.scores import (
    HIGHER_IS_BETTER,
    ONLINE,
    Answered,
    cited_docs,
    correction_similarity,
    encode_all,
    missing,
    score,
    texts_of,
    value,
    without_citations,
)
from shared.contracts.events import EvalCase, EvalResult, Metric

# ---- reports over eval.results ---------------------------------------------------------------


def thumbs_down(result: EvalResult) -> bool | None:
    """Whether people disliked the answer: any latest thumbs-down; None without thumbs."""
    votes = [f.value.thumbs == "down" for f in result.feedback if f.value.type == "thumbs"]
    return any(votes) if votes else None


@dataclass(frozen=True)
class Agreement:
    """How well one metric predicts a thumbs-down."""

    metric: str
    n: int
    auroc: Interval | None
    verdict: str


def agreement(results: Iterable[EvalResult], min_n: int = 10) -> list[Agreement]:
    """Per online metric, over traces with thumbs: the AUROC of the metric (oriented so that
    a worse value predicts a thumbs-down) with a bootstrap 95% interval."""
    rated = [(r, down) for r in results if (down := thumbs_down(r)) is not None]
    out = []
    for name in ONLINE:
        sign = -1.0 if HIGHER_IS_BETTER[name] else 1.0
        pairs = [
            (sign * m.value, down)
            for r, down in rated
            if (m := r.metrics.get(name)) is not None and m.value is not None
        ]
        downs = sum(d for _, d in pairs)
        if len(pairs) < min_n or downs == 0 or downs == len(pairs):
            why = f"not enough data ({len(pairs)} rated, {downs} thumbs-down)"
            out.append(Agreement(name, len(pairs), None, why))
            continue
        ci = auroc_interval([s for s, _ in pairs], [d for _, d in pairs])
        verdict = "agrees with users" if ci.low > 0.5 else "no better than chance"
        if ci.high < 0.5:
            verdict = "disagrees with users (worse than chance)"
        out.append(Agreement(name, len(pairs), ci, verdict))
    return out


@dataclass
class Arm:
    """One prompt version's traffic in a comparison."""

    version: str
    traffic: int
    thumbs_up: Interval | None
    metrics: dict[str, Interval] = field(default_factory=dict)


def compare(results: Iterable[EvalResult], prompt: str, min_n: int = 30) -> tuple[list[Arm], str]:
    """Per version of ``prompt``: traffic, thumbs-up rate (Wilson) and mean online metrics
    (bootstrap); and a verdict that waits for ``min_n`` rated answers per version and
    intervals that do not overlap."""
    by_version: dict[str, list[EvalResult]] = defaultdict(list)
    for r in results:
        if r.prompt_name == prompt:
            by_version[r.prompt_version].append(r)
    arms = []
    for version, rs in sorted(by_version.items()):
        votes = [not d for r in rs if (d := thumbs_down(r)) is not None]
        arm = Arm(version, len(rs), wilson(sum(votes), len(votes)) if votes else None)
        for name in ONLINE:
            values = [m.value for r in rs if (m := r.metrics.get(name)) and m.value is not None]
            if values:
                arm.metrics[name] = mean_interval(values)
        arms.append(arm)
    return arms, verdict(arms, min_n)


def verdict(arms: Sequence[Arm], min_n: int) -> str:
    """Which version users prefer, once the data can say so."""
    if len(arms) < 2:
        return "not enough data: fewer than two versions have traffic"
    short = [a.version for a in arms if a.thumbs_up is None or a.thumbs_up.n < min_n]
    if short:
        return f"not enough data: {', '.join(short)} under {min_n} rated answers"
    ranked = sorted(arms, key=lambda a: -a.thumbs_up.estimate)  # type: ignore[union-attr]
    best, second = ranked[0], ranked[1]
    assert best.thumbs_up is not None and second.thumbs_up is not None
    if best.thumbs_up.separated_from(second.thumbs_up):
        return f"{best.version} is preferred: its thumbs-up interval is above {second.version}'s"
    return "no difference yet: the thumbs-up intervals overlap"


def since(results: Iterable[EvalResult], start: datetime | None) -> list[EvalResult]:
    """Results of traces at or after ``start``."""
    return [r for r in results if start is None or r.trace_time >= start]


def latest(records: Iterable[tuple[str, bytes | None]], model: type[Any]) -> dict[str, Any]:
    """The latest value per key of a stream of records; a tombstone deletes its key."""
    out: dict[str, Any] = {}
    for key, raw in records:
        if raw is None:
            out.pop(key, None)
        else:
            out[key] = model.from_bytes(raw)
    return out


# ---- cases and the regression gate -----------------------------------------------------------


class CasesError(ValueError):
    """A cases file that cannot be run, with the lines at fault."""


def load_cases(path: Path) -> tuple[list[EvalCase], list[str]]:
    """The cases of a JSONL file, and the problems that fail the gate (duplicate ids).
    A line that is not a case raises CasesError naming it."""
    cases: list[EvalCase] = []
    problems, seen = [], set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = EvalCase.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise CasesError(f"{path}:{n}: {where}: {first['msg']}") from exc
        if case.key in seen:
            problems.append(f"duplicate case {case.key} (line {n})")
            continue
        seen.add(case.key)
        cases.append(case)
    if not cases:
        raise CasesError(f"{path}: no cases")
    return cases, problems


@dataclass
class CaseRun:
    """One case answered by one prompt version, and scored."""

    case_id: str
    answer: str = ""
    cited_docs: list[str] = field(default_factory=list)
    metrics: dict[str, Metric] = field(default_factory=dict)
    error: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No error and every gated check met."""
        return self.error is None and not self.failures


@dataclass(frozen=True)
class Gate:
    """What a case must reach, and how far a mean may fall from the baseline's."""

    support: float = 0.5
    correction: float = 0.6
    relevance: float = 0.2
    tolerance: float = 0.05

    def gated(self, case: EvalCase) -> dict[str, float]:
        """The metrics a case is held to, with their minimum."""
        need = {"support_mean": self.support, "answer_relevance": self.relevance}
        if case.expected_answer:
            need["correction_similarity"] = self.correction
        if case.expected_docs:
            need["expected_docs_cited"] = 1.0
        return need


# (question, prompt, tenant, groups) -> the API's QueryResponse as JSON (with context)
AnswerFn = Callable[[EvalCase, str], Awaitable[dict[str, Any]]]


def answered_of(case: EvalCase, response: dict[str, Any]) -> Answered:
    """What scoring needs, from a QueryResponse asked with include_context."""
    return Answered(
        question=case.question,
        answer=response["answer"],
        context=response.get("context") or [],
        # the cosine, as the trace's retrieved scores are (the rank score depends on the mode)
        scores=[c["similarity"] for c in response["citations"]],
    )


def score_case(
    case: EvalCase,
    response: dict[str, Any],
    encode: Callable[[list[str]], list[list[float]]],
    gate: Gate,
) -> CaseRun:
    """Score one answered case with the online metrics, plus correction_similarity against
    the expected answer and whether the expected documents were cited."""
    a = answered_of(case, response)
    texts = texts_of(a)
    if case.expected_answer:
        texts |= {without_citations(case.expected_answer), without_citations(a.answer)}
    vectors = encode_all([t for t in texts if t], encode)
    metrics = score(a, vectors, gate.support)
    if case.expected_answer:
        metrics["correction_similarity"] = correction_similarity(
            a.answer, case.expected_answer, vectors
        )
    else:
        metrics["correction_similarity"] = missing("the case has no expected answer")
    # citations are numbered 1, 2, ... as the passages were
    cited = cited_docs(
        a.answer, [c["doc_id"] for c in sorted(response["citations"], key=lambda c: c["n"])]
    )
    if case.expected_docs:
        metrics["expected_docs_cited"] = value(
            sum(d in cited for d in case.expected_docs) / len(case.expected_docs)
        )
    run = CaseRun(case.case_id, a.answer, cited, metrics)
    for name, floor in gate.gated(case).items():
        m = metrics.get(name)
        if m is None or m.value is None:
            run.failures.append(f"{name} missing: {m.missing if m else 'not computed'}")
        elif m.value < floor:
            run.failures.append(f"{name} {m.value:.2f} < {floor:.2f}")
    return run


@dataclass
class Report:
    """A candidate's run against a baseline's, and the gate's decision."""

    candidate: str
    baseline: str | None
    cases: list[EvalCase]
    runs: dict[str, dict[str, CaseRun]]  # prompt -> case key -> run
    problems: list[str]
    means: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # cases a prompt could not answer: the comparison itself cannot be made
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """The gate passes when every case ran with every prompt and nothing is in
        ``problems``."""
        return not self.problems and not self.errors

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed (a regression), 2 could not judge (a prompt could not run)."""
        return 2 if self.errors else 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        """Everything, for machines."""
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "passed": self.passed,
            "errors": self.errors,
            "problems": self.problems,
            "means": self.means,
            "cases": [
                {
                    "tenant": c.tenant,
                    "case_id": c.case_id,
                    "question": c.question,
                    "expected_answer": c.expected_answer,
                    "runs": {
                        prompt: {
                            "answer": r.answer,
                            "cited_docs": r.cited_docs,
                            "passed": r.passed,
                            "failures": r.failures,
                            "error": r.error,
                            "metrics": {k: m.model_dump() for k, m in r.metrics.items()},
                        }
                        for prompt, runs in self.runs.items()
                        if (r := runs.get(c.key))
                    },
                }
                for c in self.cases
            ],
        }


def mean_of(runs: Iterable[CaseRun], name: str) -> float | None:
    """Mean of a metric over runs that computed it."""
    values = [m.value for r in runs if (m := r.metrics.get(name)) and m.value is not None]
    return sum(values) / len(values) if values else None


def judge(
    cases: list[EvalCase],
    runs: dict[str, dict[str, CaseRun]],
    candidate: str,
    baseline: str | None,
    gate: Gate,
    problems: list[str],
) -> Report:
    """The gate: every case answered and scored, none that passes with the baseline fails
    with the candidate (without a baseline: every case passes), and no gated mean falls by
    more than the tolerance."""
    problems = list(problems)
    # A case that a prompt cannot answer (an HTTP error, a prompt written for another mode)
    # leaves nothing to compare: an error of the gate, never a pass.
    errors = [
        f"{case.key} could not run with {prompt}: {run.error if run else 'no result'}"
        for prompt in [p for p in (baseline, candidate) if p]
        for case in cases
        if (run := runs[prompt].get(case.key)) is None or run.error is not None
    ]
    cand = runs[candidate]
    for case in cases:
        run = cand.get(case.key)
        if run is None or run.error is not None:
            continue
        base = runs[baseline].get(case.key) if baseline else None
        unscored = [f for f in run.failures if " missing: " in f]
        if base is not None and base.passed and not run.passed:
            problems.append(
                f"{case.key} passes with {baseline} but fails with {candidate}: "
                + "; ".join(run.failures)
            )
        elif unscored:
            problems.append(f"{case.key} cannot be scored: {'; '.join(unscored)}")
        elif baseline is None and not run.passed:
            problems.append(f"{case.key} fails: {'; '.join(run.failures)}")
    report = Report(candidate, baseline, cases, runs, problems, errors=errors)
    names = sorted({n for c in cases for n in gate.gated(c)})
    for prompt, prompt_runs in runs.items():
        report.means[prompt] = {n: mean_of(prompt_runs.values(), n) for n in names}
    if baseline is not None:
        for n in names:
            b, c = report.means[baseline][n], report.means[candidate][n]
            if b is not None and (c is None or c < b - gate.tolerance):
                shown = "none" if c is None else f"{c:.3f}"
                problems.append(
                    f"mean {n} fell from {b:.3f} to {shown} (tolerance {gate.tolerance})"
                )
    return report


def summary_lines(report: Report) -> list[str]:
    """The table printed at the end of a run."""
    prompts = [p for p in (report.baseline, report.candidate) if p]
    lines = [f"{'metric':24}" + "".join(f"{p:>14}" for p in prompts)]
    for n in sorted(report.means[report.candidate]):
        row = [report.means[p].get(n) for p in prompts]
        lines.append(f"{n:24}" + "".join(f"{'-':>14}" if v is None else f"{v:>14.3f}" for v in row))
    passed = {p: sum(r.passed for r in report.runs[p].values()) for p in prompts}
    lines.append(
        f"{'cases passed':24}"
        + "".join(f"{f'{passed[p]}/{len(report.cases)}':>14}" for p in prompts)
    )
    if report.errors:
        lines.append("gate: ERROR (cannot judge: a prompt could not answer every case)")
    else:
        lines.append("gate: PASSED" if report.passed else "gate: FAILED")
    lines += [f"  - {e}" for e in report.errors]
    lines += [f"  - {p}" for p in report.problems]
    return lines


def write_html(report: Report, path: Path) -> None:
    """The report as one self-contained HTML page (Jinja2), baseline and candidate side by
    side per case."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("services.evaluation", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    html = env.get_template("report.html.j2").render(r=report, data=report.to_json())
    path.write_text(html)


def write_json(report: Report, path: Path) -> None:
    """The report as JSON."""
    path.write_text(json.dumps(report.to_json(), indent=2))
