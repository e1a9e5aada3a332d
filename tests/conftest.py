"""Shared fixtures.

``shared_dir`` points at the read-only ``../shared`` material beside the checkout; tests that
need it skip cleanly when it is absent (the project never copies it into the repository).
``run_notebook`` executes a few cells in the project's forked kernels; ``modules_loaded``
tells which modules an import pulls into a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    return Path(os.environ.get("EVALUATION_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder."""
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``../shared`` folder; skips the test when it is absent."""
    path = _shared()
    if not (path / "BRIEF.md").exists():
        pytest.skip("../shared reference material is not available")
    return path


@pytest.fixture
def run_notebook(tmp_path: Path) -> Callable[..., list[str]]:
    """``run(name, *sources, env=...)``: execute a notebook of ``sources`` with the project's
    kernel manager (``env`` added to the kernel's environment); the text outputs."""

    def run(name: str, *sources: str, env: Mapping[str, str] | None = None) -> list[str]:
        import nbformat
        import papermill as pm

        from evaluation import kernels

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
        src, out = tmp_path / f"{name}.ipynb", tmp_path / f"{name}.out.ipynb"
        nbformat.write(nb, src)
        pm.execute_notebook(
            str(src),
            str(out),
            kernel_name="python3",
            progress_bar=False,
            kernel_manager_class=kernels.kernel_manager_class(env),
        )
        cells = nbformat.read(out, as_version=4).cells
        return [c.outputs[0]["data"]["text/plain"] for c in cells if c.outputs]

    return run


@pytest.fixture(scope="session")
def modules_loaded() -> Callable[[str, Iterable[str]], list[str]]:
    """``loaded(code, modules)``: which of ``modules`` are imported after running ``code``
    (import statements) in a fresh interpreter, sorted."""

    def loaded(code: str, modules: Iterable[str]) -> list[str]:
        wanted = list(modules)
        probe = f"{code}\nimport sys\nprint(*sorted(set({wanted!r}) & set(sys.modules)))"
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        return out.stdout.split()

    return loaded
