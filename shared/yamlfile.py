"""Declared files (alert rules, CDC mappings): a YAML list under one key, read with each
item's line, so a bad file stops the start with its line and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DeclaredFileError(ValueError):
    """A declared file that cannot be used: names the file, the line and the reason."""


def items_with_lines(path: Path, key: str, error: type[DeclaredFileError]) -> list[tuple[Any, int]]:
    """The items of the list under ``key`` in the YAML file ``path``, each with its line
    (1-based); an empty file has none. ``error`` (a subclass) says what is wrong, and where."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise error(f"{path}{where}: not YAML: {problem}") from None
    if root is None:
        return []
    data = yaml.safe_load(text)
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise error(f"{path}:{root.start_mark.line + 1}: expected '{key}:' and a list")
    nodes = next(v for k, v in root.value if k.value == key).value
    return [(item, node.start_mark.line + 1) for item, node in zip(items, nodes, strict=True)]


def validated(
    model: type[M], item: Any, path: Path, line: int, error: type[DeclaredFileError]
) -> M:
    """``item`` as ``model``; ``error`` names the file, the line and the first problem."""
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "item"
        raise error(f"{path}:{line}: {where}: {first['msg']}") from None
