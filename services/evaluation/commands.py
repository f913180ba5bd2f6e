"""Offline evaluation's commands (`llmops eval ...`): agreement of the online metrics with
users, A/B of prompt versions, regression cases, and the gate that answers cases with a
candidate prompt. A launcher-level package: it answers in-process with inference's code and
scores with feedback's, both imported where the import contracts see them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from shared.cli import Context, api_key, api_url, pass_context
from shared.contracts.events import EvalCase, EvalResult

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str | None) -> datetime | None:
    """``7d``, ``24h``, ``30m``: that long before now (UTC); ``all`` or None: no limit."""
    if text is None or text == "all":
        return None
    m = _DURATION.match(text)
    if not m:
        raise click.BadParameter(f"{text!r}: use a number and s, m, h, d or w (7d, 24h) or all")
    return datetime.now(UTC) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


@click.group("eval")
def eval_group() -> None:
    """Offline evaluation: agreement with users, A/B of prompt versions, cases, the gate."""


def _results(ctx: Context, start: datetime | None) -> list[EvalResult]:
    from services.evaluation.evaluate import latest, since
    from shared.contracts.topics import EVAL_RESULTS
    from shared.kafka.reader import read_to_end

    records = (
        (r.key.decode() if r.key else "", r.value)
        for r in read_to_end(ctx.bootstrap, EVAL_RESULTS.name(ctx.prefix))
    )
    return since(latest(records, EvalResult).values(), start)


@eval_group.command("agreement")
@click.option("--since", "since_", default="7d", show_default=True, help="7d, 24h, ... or all.")
@click.option("--min-n", default=10, show_default=True, help="Fewest rated answers to judge.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def agreement_command(ctx: Context, since_: str, min_n: int, as_json: bool) -> None:
    """How well each online metric predicts a thumbs-down: AUROC with a 95% bootstrap
    interval over the answers people rated. 0.5 is chance."""
    from services.evaluation.evaluate import agreement

    rows = agreement(_results(ctx, parse_since(since_)), min_n)
    if as_json:
        click.echo(json.dumps([_row(a) for a in rows], indent=2))
        return
    click.echo(f"{'metric':24}{'n':>6}  {'AUROC [95%]':22}verdict")
    for a in rows:
        shown = a.auroc.show() if a.auroc else "-"
        click.echo(f"{a.metric:24}{a.n:>6}  {shown:22}{a.verdict}")


def _row(a: Any) -> dict[str, Any]:
    ci = a.auroc
    return {
        "metric": a.metric,
        "n": a.n,
        "auroc": None if ci is None else {"estimate": ci.estimate, "low": ci.low, "high": ci.high},
        "verdict": a.verdict,
    }


@eval_group.command("compare")
@click.option("--prompt", default="rag", show_default=True, help="Prompt name to compare.")
@click.option("--since", "since_", default="24h", show_default=True, help="24h, 7d, ... or all.")
@click.option("--min-n", default=30, show_default=True, help="Rated answers per version needed.")
@pass_context
def compare_command(ctx: Context, prompt: str, since_: str, min_n: int) -> None:
    """A/B of a prompt's versions: traffic, thumbs-up rate (Wilson 95%), mean online metrics
    (bootstrap 95%), and a verdict once the data can give one."""
    from services.evaluation.evaluate import compare

    arms, verdict = compare(_results(ctx, parse_since(since_)), prompt, min_n)
    if not arms:
        click.echo(f"no evaluated traffic for prompt {prompt!r} in that period")
        return
    for arm in arms:
        up = arm.thumbs_up.show() if arm.thumbs_up else "no thumbs yet"
        rated = arm.thumbs_up.n if arm.thumbs_up else 0
        click.echo(f"{prompt}/{arm.version}: {arm.traffic} answers, {rated} rated, thumbs-up {up}")
        for name, ci in arm.metrics.items():
            click.echo(f"    {name:24}{ci.show()}  (n={ci.n})")
    click.echo(f"verdict: {verdict}")


@eval_group.group("cases")
def cases_group() -> None:
    """Regression cases (eval.cases): corrections and thumbs-down from production."""


@cases_group.command("export")
@click.option("--tenant", default=None, help="Only this tenant's cases.")
@pass_context
def cases_export(ctx: Context, tenant: str | None) -> None:
    """Print the current cases as JSONL (the format `llmops eval run --cases` reads; cases
    may be written by hand in it too)."""
    from services.evaluation.evaluate import latest
    from shared.contracts.topics import EVAL_CASES
    from shared.kafka.reader import read_to_end

    records = (
        (r.key.decode() if r.key else "", r.value)
        for r in read_to_end(ctx.bootstrap, EVAL_CASES.name(ctx.prefix))
    )
    n = 0
    for case in latest(records, EvalCase).values():
        if tenant is None or case.tenant == tenant:
            click.echo(case.model_dump_json())
            n += 1
    click.echo(f"{n} cases", err=True)


@eval_group.command("run")
@click.option(
    "--cases",
    "cases_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL cases (from `llmops eval cases export`, or by hand).",
)
@click.option("--prompt", required=True, help="Candidate prompt, name/version (rag/v2).")
@click.option("--baseline", default=None, help="Baseline prompt to compare with (rag/v1).")
@click.option("--url", default=None, help="Ask a running API instead of answering in-process.")
@click.option("--key", envvar="LLMOPS_API_KEY", default=None, help="API key for --url.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="HTML report.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("eval-result.json"),
    show_default=True,
    help="JSON result.",
)
@click.option("--tolerance", default=0.05, show_default=True, help="Largest drop of a mean.")
@click.option("--min-support", default=0.5, show_default=True, help="support_mean per case.")
@click.option(
    "--min-correction", default=0.6, show_default=True, help="correction_similarity per case."
)
@pass_context
def run_command(
    ctx: Context,
    cases_file: Path,
    prompt: str,
    baseline: str | None,
    url: str | None,
    key: str | None,
    report: Path | None,
    json_out: Path,
    tolerance: float,
    min_support: float,
    min_correction: float,
) -> None:
    """Answer every case with the candidate (and the baseline), score it, and gate: exit 1
    when a case that passes with the baseline fails with the candidate, a gated mean falls
    by more than the tolerance, or a case is duplicated or cannot be scored; exit 2 when the
    candidate or the baseline could not answer a case (nothing to compare: not a pass)."""
    from services.evaluation.evaluate import (
        CasesError,
        Gate,
        judge,
        load_cases,
        summary_lines,
        write_html,
        write_json,
    )

    try:
        cases, problems = load_cases(cases_file)
    except CasesError as exc:
        raise click.ClickException(str(exc)) from exc
    gate = Gate(support=min_support, correction=min_correction, tolerance=tolerance)
    prompts = [p for p in (baseline, prompt) if p]
    with _answerer(ctx, url, key) as answer:
        runs = asyncio.run(_run_all(ctx, cases, prompts, answer, gate))
    result = judge(cases, runs, prompt, baseline, gate, problems)
    for line in summary_lines(result):
        click.echo(line)
    write_json(result, json_out)
    click.echo(f"result: {json_out}", err=True)
    if report:
        write_html(result, report)
        click.echo(f"report: {report}", err=True)
    sys.exit(result.exit_code)


@contextlib.contextmanager
def _answerer(ctx: Context, url: str | None, key: str | None) -> Iterator[Any]:
    from shared.store.base import StoreError

    if url:
        yield _http_answerer(api_url(url), api_key(ctx, key))
        return
    from services.inference.local import answerer

    try:
        with answerer(ctx) as answer:
            yield answer
    except StoreError as exc:
        raise click.ClickException(f"{exc} Or ask the running API: --url") from exc


def _http_answerer(base: str, key: str) -> Any:
    import httpx

    async def answer(case: EvalCase, prompt: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(
                f"{base}/v1/query",
                json={"question": case.question, "prompt": prompt, "include_context": True},
                headers={"Authorization": f"Bearer {key}"},
            )
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
        return r.json()  # type: ignore[no-any-return]

    return answer


async def _run_all(
    ctx: Context, cases: list[EvalCase], prompts: list[str], answer: Any, gate: Any
) -> dict[str, dict[str, Any]]:
    from tqdm import tqdm

    from services.evaluation.evaluate import CaseRun, score_case
    from services.feedback.settings import feedback_settings
    from shared.models.embedder import get_embedder

    embedder = get_embedder(ctx.settings(feedback_settings).model)
    runs: dict[str, dict[str, Any]] = {p: {} for p in prompts}
    with tqdm(total=len(cases) * len(prompts), unit="case", desc="evaluating") as bar:
        for p in prompts:
            for case in cases:
                try:
                    response = await answer(case, p)
                    run = await asyncio.to_thread(score_case, case, response, embedder.encode, gate)
                except Exception as exc:  # noqa: BLE001 - a case that cannot run is missing
                    run = CaseRun(case.case_id, error=f"{type(exc).__name__}: {exc}"[:500])
                runs[p][case.key] = run
                bar.update()
    return runs


commands = click.Group(commands=[eval_group])
