"""Run code in a fresh interpreter, to see what importing a module pulls in (or how it does
without a package) untouched by what the test process has imported already."""

from __future__ import annotations

import subprocess
import sys

# imports of these fail in the child: a package a module must run without
BLOCKER = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, _Blocked())
"""


def python(code: str, blocked: tuple[str, ...] = ()) -> str:
    """stdout of ``code`` in a new interpreter where importing ``blocked`` packages fails."""
    prelude = f"BLOCKED = {set(blocked)!r}\n" + BLOCKER if blocked else ""
    done = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
