"""Fault injection for the service tests, loaded at interpreter start (PYTHONPATH=tests/faults).

LLMOPS_TEST_CHOKE="module:Qualified.name=MARKER;..." makes each named function raise
PlantedFailure whenever its arguments mention MARKER: a record that a service's own logic
chokes on, planted without changing the service. Nothing happens when the variable is unset.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Any


class PlantedFailure(RuntimeError):
    """What a choked function raises."""

    code = "PlantedFailure"


def _plant(target: str, marker: str) -> None:
    module, _, path = target.partition(":")
    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    def choking(*args: Any, **kw: Any) -> Any:
        if marker in repr(args[1:] if parents else args) or marker in repr(kw):
            raise PlantedFailure(f"planted failure in {target} ({marker})")
        return original(*args, **kw)

    setattr(owner, name, choking)


for item in filter(None, os.environ.get("LLMOPS_TEST_CHOKE", "").split(";")):
    _target, _, _marker = item.partition("=")
    _plant(_target, _marker)
