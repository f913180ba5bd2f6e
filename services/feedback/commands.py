"""Feedback's command: rate an answer (`llmops feedback TRACE_ID --up`)."""

from __future__ import annotations

from typing import Any

import click

from shared.cli import Context, api_key, api_url, pass_context


@click.command("feedback")
@click.argument("trace_id")
@click.option("--up", "thumbs", flag_value="up", help="The answer was good.")
@click.option("--down", "thumbs", flag_value="down", help="The answer was bad.")
@click.option("--comment", default=None, help="Why, in a few words.")
@click.option("--correction", default=None, help="The answer that should have been given.")
@click.option("--name", default="helpful", show_default=True, help="What is judged.")
@click.option("--url", default=None, help="API base URL (default: LLMOPS_API_URL, else local).")
@click.option("--key", envvar="LLMOPS_API_KEY", default=None, help="API key (LLMOPS_API_KEY).")
@pass_context
def feedback(
    ctx: Context,
    trace_id: str,
    thumbs: str | None,
    comment: str | None,
    correction: str | None,
    name: str,
    url: str | None,
    key: str | None,
) -> None:
    """Rate the answer that came with TRACE_ID (`llmops ask` prints it)."""
    import httpx

    if thumbs is None:
        raise click.UsageError("say --up or --down")
    body: dict[str, Any] = {
        "trace_id": trace_id,
        "name": name,
        "value": {"type": "thumbs", "thumbs": thumbs},
    }
    if comment:
        body["comment"] = comment
    if correction:
        body["correction"] = correction
    base = api_url(url)
    try:
        r = httpx.post(
            f"{base}/v1/feedback",
            json=body,
            headers={"Authorization": f"Bearer {api_key(ctx, key)}"},
            timeout=30,
        )
    except httpx.ConnectError as exc:
        raise click.ClickException(f"cannot reach {base}: is `make run` running?") from exc
    if r.status_code != 202:
        detail = r.json().get("detail") if r.content else r.reason_phrase
        raise click.ClickException(f"{r.status_code}: {detail}")
    click.echo(f"feedback {r.json()['feedback_id']} stored for trace {trace_id}")


commands = click.Group(commands=[feedback])
