"""The boundary between services is checked by import-linter (the contracts in pyproject.toml):
it holds on this tree, it covers every service the host knows, and it fails when broken."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from services import host

ROOT = Path(__file__).resolve().parents[2]
LAYERS = "Launchers above services above shared's rooms above the contracts"
LINT = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` run in ``tree``: import-linter puts the working directory first on
    sys.path, so it reads that tree's modules, not the installed project's."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def status_of(report: str, contract: str) -> str:
    """KEPT or BROKEN: the word after the contract's name in lint-imports' list (which wraps
    long names over lines)."""
    flat = " ".join(report.split())
    found = re.search(re.escape(" ".join(contract.split())) + r".*?(KEPT|BROKEN)", flat)
    assert found, report
    return found.group(1)


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def copy_tree(dst: Path) -> Path:
    for name in ("services", "shared"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_every_service_the_host_knows_is_under_the_contract() -> None:
    (independent,) = [c for c in contracts() if c["type"] == "independence"]
    assert set(independent["modules"]) == {f"services.{name}" for name in host.SERVICES}  # type: ignore[arg-type]
    for name in host.SERVICES:
        assert (ROOT / "services" / name / "__init__.py").exists(), name


def test_the_tree_keeps_its_contracts() -> None:
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(contracts())} kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "services/inference/sneaky.py",
            "from services.embedding.settings import EmbeddingSettings\n",
            "No service package imports another service package",
        ),
        (
            "services/ingestion/sneaky.py",
            "def later():\n    import services.inference.llm\n",
            "No service package imports another service package",
        ),
        (
            "shared/sneaky.py",
            "from services.host import SERVICES\n",
            "shared/ never imports services/",
        ),
        # one planted import against each layer of the stack
        (
            "services/monitoring/sneaky.py",
            "from services.evaluation.stats import wilson\n",
            LAYERS,
        ),
        (
            "services/evaluation/sneaky.py",
            "from services.dev import EXAMPLES\n",
            LAYERS,
        ),
        ("shared/kafka/sneaky.py", "from shared.cli import Context\n", LAYERS),
        ("shared/models/sneaky.py", "from shared.store.base import VectorStore\n", LAYERS),
        ("shared/redact.py", "from shared.models.files import DEFAULT_MODEL\n", LAYERS),
        ("shared/contracts/sneaky.py", "from shared.settings import KafkaSettings\n", LAYERS),
        (
            "shared/contracts/sneaky.py",
            "def later():\n    import faust\n",
            "shared.contracts needs pydantic and kafka-python only",
        ),
        (
            "services/embedding/sneaky.py",
            "from shared.store.edge import EdgeStore\n",
            "Only shared.store.open imports a store backend",
        ),
        (
            "shared/store/sneaky.py",
            "import qdrant_client\n",
            "Only shared.store.open imports a store backend",
        ),
    ],
)
def test_a_deliberate_violation_breaks_the_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = copy_tree(tmp_path)
    planted = tree / module
    # a new module, or one more line in an existing one (a layer that is a single module)
    planted.write_text((planted.read_text() if planted.exists() else "") + line)
    out = lint_imports(tree)
    assert out.returncode == 1, out.stdout + out.stderr
    assert status_of(out.stdout, contract) == "BROKEN", out.stdout
