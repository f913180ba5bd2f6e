"""The packaged models, loaded for real: each is driven in the mode it was trained for, and a
completion stops at its prompt's stop sequences."""

from __future__ import annotations

import threading

import pytest

from services.inference.llm import LlamaCppLLM, Prompted, Sampling
from services.inference.models import GEMMA3_270M, SMOLLM2_135M
from services.inference.prompts import load_prompts, newest
from services.inference.settings import PROMPTS_DIR
from shared.settings import PlatformSettings

pytestmark = pytest.mark.integration
GREEDY = Sampling(max_tokens=48, temperature=0.0, top_p=1.0, repeat_penalty=1.0)
PASSAGE = (
    "[1] Backups\nNightly backups of the billing database are kept for 35 days in the "
    "Frankfurt bucket."
)


def answer(llm: LlamaCppLLM, prompt: Prompted) -> str:
    return "".join(llm.stream(prompt, GREEDY, threading.Event()))


def test_the_base_model_is_driven_by_completion_and_stops_at_the_line_break() -> None:
    llm = LlamaCppLLM(GEMMA3_270M.locate(PlatformSettings().cache_dir), 2048, 2)
    assert llm.mode == "completion", "Gemma 270M is a base model: no chat template"
    template = newest(load_prompts(PROMPTS_DIR)["rag"], "completion")
    assert template is not None
    text = template.render(PASSAGE, "How long are billing database backups kept?")
    out = answer(llm, Prompted(text, "completion", template.stop))
    assert "35 days" in out and "\n" not in out, out
    # without its stop sequence the same prompt runs on into a next line
    assert "\n" in answer(llm, Prompted(text, "completion")), "the stop is what ends it"


def test_the_instruction_tuned_model_is_driven_by_chat() -> None:
    llm = LlamaCppLLM(SMOLLM2_135M.locate(PlatformSettings().cache_dir), 2048, 2)
    assert llm.mode == "chat", "SmolLM2-Instruct carries its chat template"
    out = answer(llm, Prompted("What is the capital of France? Answer in one word.", "chat"))
    assert "paris" in out.lower(), out
