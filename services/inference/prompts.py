"""Versioned prompt templates (``prompts/<name>/<version>.txt``) and a stable A/B split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


class PromptNotFound(LookupError):
    """No such prompt name or version."""


@dataclass(frozen=True)
class Prompt:
    """One template version; ``{context}`` and ``{question}`` are filled in."""

    name: str
    version: str
    template: str

    def render(self, context: str, question: str) -> str:
        """The prompt text."""
        return self.template.replace("{context}", context).replace("{question}", question)


def load_prompts(directory: Path) -> dict[str, dict[str, Prompt]]:
    """Every template under ``directory``, by name then version."""
    out: dict[str, dict[str, Prompt]] = {}
    for f in sorted(directory.glob("*/*.txt")):
        text = f.read_text()
        if "{context}" not in text or "{question}" not in text:
            raise ValueError(f"{f}: a template needs {{context}} and {{question}}")
        out.setdefault(f.parent.name, {})[f.stem] = Prompt(f.parent.name, f.stem, text)
    return out


def parse_split(spec: str) -> list[tuple[str, float]]:
    """``'v1=0.7,v2=0.3'`` -> [(v1, 0.7), (v2, 0.3)]."""
    out = []
    for part in spec.split(","):
        version, _, weight = part.strip().partition("=")
        out.append((version.strip(), float(weight or 1)))
    if not out or any(w < 0 for _, w in out) or sum(w for _, w in out) <= 0:
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


def choose(
    prompts: dict[str, dict[str, Prompt]],
    requested: str | None,
    default_name: str,
    split: list[tuple[str, float]],
    caller: str,
) -> Prompt:
    """``requested`` may be ``name``, ``name/version`` or ``version`` (of the default)."""
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
        # The default prompt follows the A/B split; another prompt uses its newest version.
        version = assign(split, caller, name) if name == default_name else sorted(versions)[-1]
    if version not in versions:
        raise PromptNotFound(f"prompt {name!r} has no version {version!r}; have {sorted(versions)}")
    return versions[version]
