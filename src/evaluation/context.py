"""One evaluation run's context: validated params, the data source and the start time.

Kept light (no NumPy, SciPy or plotting imports) because the runner opens a context in the
parent process only to check the params before it starts the notebook's kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from evaluation import config
from evaluation.errors import InputError
from evaluation.params import BaseParams, load_params


def _now() -> str:
    # provenance imports NumPy and pandas: not needed by a process that only checks params
    from evaluation.provenance import now

    return now()


@dataclass
class RunContext:
    """One evaluation run: the params, where data come from, when it started."""

    params_path: Path
    params: BaseParams
    database: Path
    run_started: str = field(default_factory=_now)

    @property
    def name(self) -> str:
        """The evaluation's slug: the params file's stem."""
        return self.params_path.stem

    @cached_property
    def connection(self) -> Any:
        """A read-only connection to the embedded database."""
        from evaluation.data import database as db

        if not self.database.exists():
            raise InputError(self.database, "database not found; run `evaluation ingest` first")
        return db.connect(self.database, read_only=True)

    def close(self) -> None:
        """Close the database connection if one was opened."""
        if "connection" in self.__dict__:
            self.__dict__.pop("connection").close()


def open_context(params_path: str | Path, database: str | Path | None = None) -> RunContext:
    """Validate the params and name the data source (raising one-line errors on bad input).

    Parameters
    ----------
    params_path
        The params YAML (relative paths that do not exist here are taken from the checkout).
    database
        The DuckDB file; the default database (built from the synthetic data on first use)
        when None.
    """
    path, params, db_path = check_params(params_path, database)
    return RunContext(params_path=path, params=params, database=db_path)


def check_params(
    params_path: str | Path, database: str | Path | None = None
) -> tuple[Path, BaseParams, Path]:
    """What :func:`open_context` checks, without the run's context: the params file's
    path, its validated params and the database path (the default database is built when
    the params need it and it is missing). Light: no NumPy or pandas in this process."""
    path = Path(params_path)
    if not path.is_absolute() and not path.exists():
        path = config.project_root() / path
    params = load_params(path)
    db_path = Path(database) if database else config.default_database()
    if not params.data.is_csv:
        from evaluation.data.default import ensure_default_database, is_default

        if is_default(db_path):
            ensure_default_database(db_path)
    return path, params, db_path
