"""Provenance: hashes, package versions and the git commit, recorded in every report."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
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
    """sha256 of the exact values analysed, column by column.

    Each column adds its name, then its values in a fixed form: numbers as little-endian
    float64, times as whole seconds since 1970 (int64), anything else as the 64-bit hash
    of each value's text (pandas' fixed-key SipHash). Unlike hashing the CSV text, this
    takes a fraction of a second for millions of rows, and it does not depend on how a
    pandas version prints numbers. A categorical column hashes as its values do (each
    distinct value is hashed once), so the fingerprint does not depend on how a column
    is stored.
    """
    digest = hashlib.sha256()
    for name in frame.columns:
        digest.update(f"\x1e{name}\x1f".encode())
        # the arrays are contiguous: hashed in place, without a bytes copy
        digest.update(np.ascontiguousarray(_column_data(frame[name])).data)
    return digest.hexdigest()


def _column_data(values: pd.Series) -> np.ndarray:
    """The fixed form of one column that :func:`sha256_frame` hashes."""
    if pd.api.types.is_datetime64_any_dtype(values):
        seconds = values.to_numpy().astype("datetime64[s]")
        if np.little_endian:  # the int64 seconds are these bytes already
            return seconds.view("<i8")
        return seconds.astype("<i8")
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        data = values.to_numpy()
        if data.dtype == "<f8" and not np.isnan(data).any():
            return data  # no missing values to write as the standard NaN: no copy
        return values.to_numpy(dtype="<f8", na_value=np.nan)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return _categorical_hashes(values)
    return pd.util.hash_array(values.to_numpy(dtype=object))


def _categorical_hashes(values: pd.Series) -> np.ndarray:
    """``pd.util.hash_array`` of a categorical column's values, hashing each distinct
    value once: the same numbers as hashing the column's values one by one."""
    codes = values.cat.codes.to_numpy()
    categories = np.asarray(values.cat.categories, dtype=object)
    used: slice | np.ndarray
    if pd.api.types.infer_dtype(categories, skipna=False) == "string":
        used = slice(None)  # each string hashes the same whatever else is in the array
    else:  # only the categories in use: the mix of types hash_array would see
        used = np.bincount(codes[codes >= 0], minlength=categories.size) > 0
    table = np.zeros(categories.size + 1, dtype=np.uint64)
    table[:-1][used] = pd.util.hash_array(categories[used])
    table[-1] = np.iinfo(np.uint64).max  # code -1 (missing), as hash_array marks it
    return table[codes]


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
