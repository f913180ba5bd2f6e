"""Chat or completion: how each model is driven, and the prompts written for each mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.inference.llm import piece_of, resolve_mode
from services.inference.models import PACKAGED, ModelMissing, packaged
from services.inference.prompts import (
    PromptNotFound,
    check_split,
    choose,
    load_prompt,
    load_prompts,
    newest,
    parse_split,
)
from services.inference.settings import PROMPTS_DIR


@pytest.mark.parametrize(
    ("setting", "has_template", "chat_format", "mode"),
    [
        ("auto", True, None, "chat"),  # SmolLM2-Instruct: a template in its GGUF
        ("auto", False, None, "completion"),  # the packaged Gemma: a base model, no template
        ("auto", False, "gemma", "chat"),  # a template configured for it
        ("completion", True, None, "completion"),
        ("chat", False, "gemma", "chat"),
    ],
)
def test_the_mode_follows_the_models_chat_template(
    setting: str, has_template: bool, chat_format: str | None, mode: str
) -> None:
    assert resolve_mode(setting, has_template, chat_format) == mode


def test_chat_without_a_template_and_unknown_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="no chat template"):
        resolve_mode("chat", False, None)
    with pytest.raises(ValueError, match="auto, chat or completion"):
        resolve_mode("instruct", True, None)


def test_streamed_pieces_are_read_from_chat_and_completion_chunks() -> None:
    assert piece_of({"choices": [{"delta": {"content": "Paris"}}]}) == "Paris"
    assert piece_of({"choices": [{"delta": {"role": "assistant"}}]}) is None
    assert piece_of({"choices": [{"text": " 35 days"}]}) == " 35 days"


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


def test_packaged_models_are_named_and_never_fetched_at_run_time(tmp_path: Path) -> None:
    assert set(PACKAGED) == {"gemma3-270m", "smollm2-135m"}
    with pytest.raises(ValueError, match="one of gemma3-270m, smollm2-135m"):
        packaged("llama-70b")
    # an empty cache: the wheel's model is missing, and the error says how to get it
    with pytest.raises(ModelMissing, match="llmops models fetch smollm2-135m"):
        packaged("smollm2-135m").locate(tmp_path)
