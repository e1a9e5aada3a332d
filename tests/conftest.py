"""Shared fixtures.

``shared_dir`` points at the read-only ``../shared`` material beside the checkout; tests that
need it skip cleanly when it is absent (the project never copies it into the repository).
"""

from __future__ import annotations

import os
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
