"""The ``results.json`` contract: specified once, read by notebooks, dashboards and CI.

Every design (ITS, DiD, staggered DiD, synthetic control, power, profile) produces an
:class:`EvaluationResults`. The dashboards, the regression tests and the static publisher
read only this file; nothing downstream refits or reads raw records.

Versioning: ``schema_version`` follows ``MAJOR.MINOR``. A new optional field bumps MINOR;
a renamed or removed field bumps MAJOR, and :func:`read_results` refuses a MAJOR it does
not know.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = "1.0"

#: The scale an estimate is expressed on. Dashboards choose wording from it.
Scale = Literal[
    "rate_ratio",  # multiplicative effect of a log-link model: 0.85 means 15% fewer
    "rate_ratio_per_period",  # exp(slope) of a log-link trend: change per month
    "count",  # crimes (e.g. cumulative crimes prevented, ATT in counts)
    "count_per_period",  # additive slope of a Gaussian model
    "count_per_area_period",  # DiD effect in counts: crimes per treated area per month
    "rate",  # crimes per 1,000 population
    "level",  # any other additive outcome (e.g. house prices)
    "proportion",  # 0..1
    "ratio",  # unitless ratio (WDQ)
    "p_value",  # a test's p-value held as an estimate (e.g. pretrend_wald_p)
    "gbp",  # pounds sterling
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Estimate(_Model):
    """One reported number with its uncertainty.

    ``estimate``, ``ci_low`` and ``ci_high`` are on ``scale``; ``se`` is on the scale the
    model was fitted on (the log scale for rate ratios), as statistical software reports.
    """

    name: str
    estimate: float | None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    scale: Scale
    method: str
    label: str = ""
    level: float = 0.95

    @field_validator("estimate", "se", "ci_low", "ci_high", "p_value", mode="before")
    @classmethod
    def _finite_or_none(cls, v: Any) -> float | None:
        if v is None:
            return None
        v = float(v)
        return v if math.isfinite(v) else None


class Series(_Model):
    """A time series shown as a figure: observed against counterfactual, columnar."""

    periods: list[str]  # ISO dates of period starts, e.g. "2021-06-01"
    observed: list[float | None]
    fitted: list[float | None] | None = None
    counterfactual: list[float | None] | None = None
    counterfactual_low: list[float | None] | None = None
    counterfactual_high: list[float | None] | None = None
    comparison: list[float | None] | None = None
    label: str = ""
    unit: str = "crimes per month"


class Outcome(_Model):
    """What was counted, where."""

    label: str  # e.g. "Drug offences"
    crime_types: list[str] = Field(default_factory=list)
    areas: list[str] = Field(default_factory=list)  # treated / evaluated areas
    comparison_areas: list[str] = Field(default_factory=list)
    buffer_areas: list[str] = Field(default_factory=list)
    unit: str = "crimes per month"
    measure: Literal["victim", "activity", "other"] = "other"


class Periods(_Model):
    """The time frame of the evaluation."""

    frequency: Literal["month", "quarter", "year", "period"] = "month"
    data_start: str
    data_end: str
    intervention_start: str | None = None
    pre_periods: int | None = None
    post_periods: int | None = None


class Provenance(_Model):
    """Where the numbers came from, so that anyone can reproduce them."""

    data_files: dict[str, str] = Field(default_factory=dict)  # name -> sha256
    data_hash: str = ""  # sha256 of the analysed panel itself
    params_file: str = ""
    params_hash: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    run_started: str = ""
    run_finished: str = ""
    seed: int | None = None


class EvaluationResults(_Model):
    """The whole ``results.json``."""

    schema_version: str = SCHEMA_VERSION
    name: str  # slug: the params file stem, the report folder name
    title: str
    design: str  # its | did | staggered_did | synthetic_control | power | profile | ...
    synthetic: bool = False  # the data are the synthetic default: say so everywhere
    outcome: Outcome
    periods: Periods
    headline: str | None = None  # name of the headline estimate in ``estimates``
    estimates: list[Estimate] = Field(default_factory=list)
    series: dict[str, Series] = Field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    diagnostics: dict[str, Any] = Field(default_factory=dict)
    evidence: dict[str, Any] = Field(default_factory=dict)
    costs: dict[str, Any] = Field(default_factory=dict)
    data_quality: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # method and assumptions, plain words
    figures: list[str] = Field(default_factory=list)  # file names beside results.json
    truth: dict[str, float] | None = None  # planted values, on each estimate's scale
    provenance: Provenance = Field(default_factory=Provenance)

    def estimate(self, name: str) -> Estimate:
        """Return the estimate called ``name``.

        Raises
        ------
        KeyError
            If there is none.
        """
        for est in self.estimates:
            if est.name == name:
                return est
        raise KeyError(name)

    def headline_estimate(self) -> Estimate | None:
        """The estimate the headline sentence is about, if any."""
        return self.estimate(self.headline) if self.headline else None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(results: EvaluationResults) -> str:
    """Serialise deterministically (sorted keys inside free-form mappings, fixed indent)."""
    payload = results.model_dump(mode="json")
    return json.dumps(payload, indent=2, sort_keys=False, default=_json_default, allow_nan=False)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(results: EvaluationResults, directory: Path) -> Path:
    """Write ``results.json`` into ``directory`` atomically and return its path."""
    path = Path(directory) / "results.json"
    atomic_write_text(path, to_json(results) + "\n")
    return path


def read_results(path: Path) -> EvaluationResults:
    """Read and validate a ``results.json`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    payload = json.loads(path.read_text(encoding="utf-8"))
    major = str(payload.get("schema_version", "0")).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise ValueError(
            f"{path}: schema_version {payload.get('schema_version')} is not readable by "
            f"this version (expects {SCHEMA_VERSION})"
        )
    return EvaluationResults.model_validate(payload)
