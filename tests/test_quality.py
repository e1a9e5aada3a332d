"""Project hygiene, run with the tests so that CI runs the same checks as pre-commit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed (it is in the test extras)"
    return found


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_lint() -> None:
    res = _run(_tool("ruff"), "check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format() -> None:
    res = _run(_tool("ruff"), "format", "--check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy() -> None:
    res = _run(_tool("mypy"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_stripped(path: Path) -> None:
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("parameters" in c["metadata"].get("tags", []) for c in code), "no parameters cell"
    for cell in code:
        src = "".join(cell["source"])
        assert not re.search(r"^\s*(def|class)\s", src, re.M), f"def/class in {path.name}"
        assert not cell.get("outputs"), f"{path.name} is committed with outputs"
        assert cell.get("execution_count") is None, f"{path.name} has execution counts"


def _tracked() -> list[Path]:
    res = _run("git", "ls-files")
    if res.returncode != 0 or not res.stdout.strip():
        pytest.skip("not a git checkout")
    return [REPO / line for line in res.stdout.splitlines()]


def test_no_absolute_machine_paths() -> None:
    pattern = re.compile(r"(/work/|/root/|/home/[a-z]|/tmp/pt|C:\\\\Users)")
    offenders = []
    for path in _tracked():
        if path.suffix in {".png", ".zip", ".duckdb"} or not path.is_file():
            continue
        if path.name == "test_quality.py":
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        if pattern.search(text):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"absolute machine paths in: {offenders}"
