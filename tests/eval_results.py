"""Evaluation results as the feedback service publishes them, for the tests of the reports."""

from __future__ import annotations

from datetime import datetime

from shared.contracts.events import EvalResult, JoinedFeedback, Metric


def eval_result(
    i: int,
    version: str,
    down: bool | None,
    support: float | None,
    when: datetime | str = "2026-11-30T10:00:00Z",
    **other: Metric,
) -> EvalResult:
    """Trace ``i`` answered with prompt ``version``: rated down, up or not at all (None), its
    ``support_mean`` a value or missing (None), and ``other`` metrics beside it."""
    feedback = []
    if down is not None:
        feedback.append(
            JoinedFeedback(
                feedback_id=f"f{i}",
                author="u",
                source="user",
                name="helpful",
                value={"type": "thumbs", "thumbs": "down" if down else "up"},
                given_at=when,
            )
        )
    support_mean = Metric(value=support) if support is not None else Metric(missing="refusal")
    return EvalResult(
        trace_id=f"{i:032x}",
        tenant="acme",
        prompt_name="rag",
        prompt_version=version,
        trace_status="ok",
        trace_time=when,
        metrics={"support_mean": support_mean, **other},
        feedback=feedback,
        evaluator_version="1",
    )
