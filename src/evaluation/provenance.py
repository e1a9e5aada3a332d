"""Provenance: hashes, package versions and the git commit, recorded in every report."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

PACKAGES = (
    "evaluation",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "duckdb",
    "papermill",
    "pydantic",
)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_frame(frame: pd.DataFrame) -> str:
    """sha256 of a frame's CSV form: the exact numbers analysed."""
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages the numbers depend on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit(start: Path | None = None) -> str | None:
    """The checkout's commit (with ``+dirty`` when it has changes), or None outside git."""
    cwd = start or Path.cwd()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty else "")


def now() -> str:
    """UTC time stamp, ISO 8601, seconds."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()
