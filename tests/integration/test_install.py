"""`make install` in two clones: they share the heavy virtualenv, yet each runs its own code,
and deleting one clone leaves the other working."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = (".git", ".venv", ".llmops", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis")


def make_clone(dst: Path, marker: str) -> Path:
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(*SKIP), symlinks=True)
    init = dst / "services" / "__init__.py"
    init.write_text(init.read_text() + f'\nCLONE = "{marker}"\n')
    # a make run by this test must not inherit the outer make's state
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(
        ["make", "install"], cwd=dst, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return dst


def runs(clone: Path) -> str:
    out = subprocess.run(
        [
            str(clone / ".venv" / "bin" / "python"),
            "-c",
            "import services, torch; print(services.CLONE, services.__file__)",
        ],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_two_clones_each_run_their_own_code(tmp_path: Path) -> None:
    a = make_clone(tmp_path / "a", "a")
    b = make_clone(tmp_path / "b", "b")  # installed last: it must not take over clone a
    assert runs(a) == f"a {a / 'services' / '__init__.py'}"
    assert runs(b) == f"b {b / 'services' / '__init__.py'}"
    assert not (a / ".venv").is_symlink() and (a / ".venv" / "bin" / "llmops").exists()
    shutil.rmtree(b)
    assert runs(a).startswith("a ")
    out = subprocess.run(
        [str(a / ".venv" / "bin" / "llmops"), "--help"], capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 0 and "run" in out.stdout, out.stderr
