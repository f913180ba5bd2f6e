"""Versioned prompt templates (``prompts/<name>/<version>.toml``) and a stable A/B split.

A template says which way of driving a model it is written for: ``chat`` (the text is the
user's message, wrapped in the model's chat template) or ``completion`` (the text is given to
the model as it is, and generation stops at the template's stop sequences). A base model that
never learned a chat template is driven by completion; see ``llm.resolve_mode``.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Mode = Literal["chat", "completion"]
MODES: tuple[Mode, ...] = ("chat", "completion")


class PromptNotFound(LookupError):
    """No such prompt name or version."""


@dataclass(frozen=True)
class Prompt:
    """One template version; ``{context}`` and ``{question}`` are filled in."""

    name: str
    version: str
    template: str
    mode: Mode = "chat"
    # completion: where generation ends (a base model goes on writing the next question)
    stop: tuple[str, ...] = field(default=())

    def render(self, context: str, question: str) -> str:
        """The prompt text."""
        return self.template.replace("{context}", context).replace("{question}", question)

    @property
    def closed_book(self) -> bool:
        """The template shows the model no passages."""
        return "{context}" not in self.template

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


def load_prompt(path: Path) -> Prompt:
    """One ``<name>/<version>.toml``: ``mode``, ``template`` and, for completion, ``stop``."""
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    template, mode = spec.get("template"), spec.get("mode")
    # a template without {context} is closed-book: it shows what retrieval adds
    if not isinstance(template, str) or "{question}" not in template:
        raise ValueError(f"{path}: template must be a string with {{question}} (and {{context}})")
    if mode not in MODES:
        raise ValueError(f"{path}: mode must be one of {', '.join(MODES)}, not {mode!r}")
    stop = spec.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(x, str) and x for x in stop):
        raise ValueError(f"{path}: stop must be a list of non-empty strings")
    if mode == "completion" and not stop:
        raise ValueError(f"{path}: a completion template needs stop sequences")
    return Prompt(path.parent.name, path.stem, template, mode, tuple(stop))


def load_prompts(directory: Path) -> dict[str, dict[str, Prompt]]:
    """Every template under ``directory``, by name then version."""
    out: dict[str, dict[str, Prompt]] = {}
    for f in sorted(directory.glob("*/*.toml")):
        out.setdefault(f.parent.name, {})[f.stem] = load_prompt(f)
    if not out:
        raise ValueError(f"no prompt templates (<name>/<version>.toml) under {directory}")
    return out


def parse_split(spec: str) -> list[tuple[str, float]]:
    """``'v1=0.7,v2=0.3'`` -> [(v1, 0.7), (v2, 0.3)]; ``''`` -> [] (no split)."""
    out: list[tuple[str, float]] = []
    if not spec.strip():
        return out
    for part in spec.split(","):
        version, _, weight = part.strip().partition("=")
        out.append((version.strip(), float(weight or 1)))
    if any(w < 0 for _, w in out) or sum(w for _, w in out) <= 0:
        raise ValueError(f"bad prompt split {spec!r}")
    return out


def assign(split: list[tuple[str, float]], caller: str, name: str) -> str:
    """The version for a caller: stable (a hash of the caller), proportional to the weights."""
    h = int.from_bytes(hashlib.sha256(f"{name}:{caller}".encode()).digest()[:8], "big")
    point = (h / 2**64) * sum(w for _, w in split)
    acc = 0.0
    for version, weight in split:
        acc += weight
        if point < acc:
            return version
    return split[-1][0]


def newest(versions: dict[str, Prompt], mode: Mode) -> Prompt | None:
    """The newest version written for ``mode`` (versions sort as v1 < v2 < ... < v10)."""
    fit = [p for p in versions.values() if p.mode == mode]
    return max(fit, key=lambda p: _version_key(p.version)) if fit else None


def _version_key(version: str) -> tuple[int, str]:
    digits = "".join(c for c in version if c.isdigit())
    return (int(digits) if digits else -1, version)


def check_split(
    prompts: dict[str, dict[str, Prompt]], name: str, split: list[tuple[str, float]], mode: Mode
) -> None:
    """At start: the default prompt exists, and every version of its split is written for the
    model's mode (raises ValueError saying what to change)."""
    versions = prompts.get(name)
    if not versions:
        raise ValueError(f"INFERENCE_PROMPT={name!r}: no such prompt; have {sorted(prompts)}")
    if not split and newest(versions, mode) is None:
        raise ValueError(f"prompt {name!r} has no version for {mode} models")
    for version, _ in split:
        p = versions.get(version)
        if p is None:
            raise ValueError(f"INFERENCE_PROMPT_SPLIT names {name}/{version}, which does not exist")
        if p.mode != mode:
            raise ValueError(
                f"INFERENCE_PROMPT_SPLIT names {name}/{version}, written for {p.mode} models, "
                f"but the model is driven by {mode}"
            )


def choose(
    prompts: dict[str, dict[str, Prompt]],
    requested: str | None,
    default_name: str,
    split: list[tuple[str, float]],
    caller: str,
    mode: Mode = "chat",
) -> Prompt:
    """``requested`` may be ``name``, ``name/version`` or ``version`` (of the default); only
    a version written for ``mode`` (the model's) can be chosen."""
    name, version = default_name, None
    if requested:
        if "/" in requested:
            name, version = requested.split("/", 1)
        elif requested in prompts:
            name = requested
        else:
            version = requested
    versions = prompts.get(name)
    if not versions:
        raise PromptNotFound(f"no prompt named {name!r}; have {sorted(prompts)}")
    if version is None:
        # The default prompt follows the A/B split; otherwise the newest version for the mode.
        if name == default_name and split:
            version = assign(split, caller, name)
        else:
            found = newest(versions, mode)
            if found is None:
                raise PromptNotFound(f"prompt {name!r} has no version for {mode} models")
            return found
    if version not in versions:
        raise PromptNotFound(f"prompt {name!r} has no version {version!r}; have {sorted(versions)}")
    chosen = versions[version]
    if chosen.mode != mode:
        raise PromptNotFound(
            f"prompt {chosen.ref} is written for {chosen.mode} models; this model is driven by "
            f"{mode}: have {sorted(v for v, p in versions.items() if p.mode == mode)}"
        )
    return chosen
