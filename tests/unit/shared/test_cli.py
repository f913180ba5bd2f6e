"""Unit tests of ``shared.cli``: the CLI's context builds each service's settings once."""

from __future__ import annotations

import pytest


def test_a_command_builds_each_settings_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.inference.settings import inference_settings
    from shared.cli import Context

    ctx, built = Context(), []

    def counting(**kw: object) -> object:
        built.append(kw)
        return inference_settings(**kw)  # type: ignore[arg-type]

    first = ctx.settings(counting)
    assert ctx.settings(counting) is first and len(built) == 1
    # the service's settings nest the command's shared ones: read once, not per service
    assert first.kafka is ctx.kafka and first.platform is ctx.platform  # type: ignore[attr-defined]
