"""Paths and defaults in one place.

Everything that names a location on disk or a project-wide default lives here, so that
no other module hard-codes a path. The project root is the working directory unless
``EVALUATION_HOME`` says otherwise: an evaluator runs commands from a checkout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path


def project_root() -> Path:
    """Return the root that relative defaults resolve against.

    ``EVALUATION_HOME`` when set; else the nearest folder at or above the working directory
    that holds ``params/`` and ``pyproject.toml`` (so a notebook opened from ``notebooks/``
    finds the checkout); else the working directory.
    """
    if home := os.environ.get("EVALUATION_HOME"):
        return Path(home).resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "params").is_dir():
            return folder
    return cwd


def data_dir() -> Path:
    """Folder holding the embedded database and generated data."""
    return project_root() / "data"


def synthetic_dir() -> Path:
    """Folder the synthetic police.uk-format default data are generated into."""
    return data_dir() / "synthetic"


def default_database() -> Path:
    """The DuckDB file created on first use."""
    return data_dir() / "evaluation.duckdb"


def reports_dir() -> Path:
    """Folder under which each run writes ``<name>/``."""
    return project_root() / "reports"


def params_dir() -> Path:
    """Folder of the evaluators' params files."""
    return project_root() / "params"


def notebooks_dir() -> Path:
    """Folder of the parameterised notebooks (shipped with the checkout)."""
    return project_root() / "notebooks"


RESOURCES = Path(__file__).parent / "resources"

#: Exit code for bad input (params, data, dates): one line on stderr, nothing written.
EXIT_BAD_INPUT = 2
#: Exit code for a run that failed while executing.
EXIT_RUN_FAILED = 1
#: Environment of notebook kernels: one BLAS/OpenMP thread each, since a batch runs a
#: kernel per core (multi-threaded BLAS in each would only thrash).
SINGLE_THREAD_ENV: dict[str, str] = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

#: Minimum pre-intervention periods an ITS needs (Lopez Bernal et al. 2017 advise 12+).
MIN_PRE_PERIODS = 12

#: Default seed for anything random (bootstrap, simulation, synthetic data).
DEFAULT_SEED = 20240401

#: Confidence level of every reported interval unless params say otherwise.
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interruption:
    """A dated shock modelled as a covariate: the share of each period's days inside it."""

    name: str
    start: date
    end: date
    label: str


#: The Welsh Covid-19 restrictions (Welsh Government): first lockdown from 23 March 2020,
#: the firebreak 23 October to 9 November 2020, and the lockdown from 20 December 2020
#: to the end of March 2021.
WELSH_COVID_LOCKDOWNS: tuple[Interruption, ...] = (
    Interruption("covid_lockdown_1", date(2020, 3, 23), date(2020, 6, 30), "First lockdown"),
    Interruption("covid_firebreak", date(2020, 10, 23), date(2020, 11, 9), "Firebreak"),
    Interruption("covid_lockdown_3", date(2020, 12, 20), date(2021, 3, 31), "Winter lockdown"),
)

#: The 14 current data.police.uk crime types.
CRIME_TYPES: tuple[str, ...] = (
    "Anti-social behaviour",
    "Bicycle theft",
    "Burglary",
    "Criminal damage and arson",
    "Drugs",
    "Other crime",
    "Other theft",
    "Possession of weapons",
    "Public order",
    "Robbery",
    "Shoplifting",
    "Theft from the person",
    "Vehicle crime",
    "Violence and sexual offences",
)

#: Older data.police.uk names mapped to the current ones.
OLD_CRIME_TYPES: dict[str, str] = {
    "Violent crime": "Violence and sexual offences",
    "Violence and sexual offences": "Violence and sexual offences",
    "Public disorder and weapons": "Public order",
    "Criminal damage & arson": "Criminal damage and arson",
    "Other theft": "Other theft",
}
