"""Unit tests of ``services.inference.prompts``: prompt versions, the A/B split, and the
templates written for each mode."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from services.inference.prompts import (
    PromptNotFound,
    assign,
    check_split,
    choose,
    load_prompt,
    load_prompts,
    newest,
    parse_split,
)
from services.inference.settings import PROMPTS_DIR


def test_prompts_are_versioned_files_and_choice_is_explicit_or_split() -> None:
    prompts = load_prompts(PROMPTS_DIR)
    assert set(prompts["rag"]) >= {"v1", "v2"}
    split = parse_split("v1=0.5,v2=0.5")
    assert choose(prompts, "rag/v2", "rag", split, "x").version == "v2"
    assert choose(prompts, "v1", "rag", split, "x").version == "v1"
    with pytest.raises(PromptNotFound):
        choose(prompts, "rag/v9", "rag", split, "x")
    callers = [f"key-{i}" for i in range(2000)]
    counts = Counter(assign(split, c, "rag") for c in callers)
    assert 850 < counts["v1"] < 1150, counts
    assert all(assign(split, c, "rag") == assign(split, c, "rag") for c in callers[:50])
    assert {assign(parse_split("v1=1,v2=0"), c, "rag") for c in callers} == {"v1"}


def test_every_template_says_its_mode_and_completion_ones_where_to_stop() -> None:
    rag = load_prompts(PROMPTS_DIR)["rag"]
    assert {p.mode for p in rag.values()} == {"chat", "completion"}
    for p in rag.values():
        assert p.mode == "chat" or p.stop, p.ref
    base = newest(rag, "completion")
    assert base is not None and "\n" in base.stop, "a base model's answer is one line"
    assert newest(rag, "chat") is not None


def test_bad_templates_are_refused_with_the_file_and_the_reason(tmp_path: Path) -> None:
    f = tmp_path / "rag" / "v1.toml"
    f.parent.mkdir()
    for body, reason in [
        ('mode = "completion"\ntemplate = "{context} {question}"', "needs stop sequences"),
        ('mode = "instruct"\ntemplate = "{context} {question}"', "mode must be"),
        ('mode = "chat"\ntemplate = "{context}"', "{question}"),
        ('mode = "chat"\ntemplate = ', "not valid TOML"),
    ]:
        f.write_text(body)
        with pytest.raises(ValueError, match=reason):
            load_prompt(f)


def test_a_prompt_is_chosen_among_those_written_for_the_models_mode() -> None:
    prompts = load_prompts(PROMPTS_DIR)
    base = choose(prompts, None, "rag", [], "caller", "completion")
    assert base.mode == "completion"
    assert choose(prompts, None, "rag", [], "caller", "chat").mode == "chat"
    with pytest.raises(PromptNotFound, match="written for chat models"):
        choose(prompts, "rag/v1", "rag", [], "caller", "completion")
    with pytest.raises(PromptNotFound, match="written for completion"):
        choose(prompts, base.version, "rag", [], "caller", "chat")


def test_a_split_must_fit_the_models_mode_at_start() -> None:
    prompts = load_prompts(PROMPTS_DIR)
    check_split(prompts, "rag", parse_split("v1=0.5,v2=0.5"), "chat")
    with pytest.raises(ValueError, match="driven by completion"):
        check_split(prompts, "rag", parse_split("v1=1"), "completion")
    with pytest.raises(ValueError, match="does not exist"):
        check_split(prompts, "rag", parse_split("v99=1"), "chat")
    with pytest.raises(ValueError, match="no such prompt"):
        check_split(prompts, "nope", [], "chat")
    assert parse_split("") == []
