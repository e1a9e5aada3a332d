"""What every workflow shares: the run context, loading the analysed data, provenance.

A workflow turns validated params into an :class:`~evaluation.results.EvaluationResults`.
It loads data through :mod:`evaluation.data`, fits a design from :mod:`evaluation.designs`
and fills in the contract. Everything that can be checked before fitting is checked in
:func:`load_area_counts` / :func:`load_csv`, so bad input fails before any report exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation import config
from evaluation.data import database as db
from evaluation.data import panel as panel_mod
from evaluation.data import tidy
from evaluation.errors import InputError
from evaluation.params import BaseParams, params_dict, params_hash, resolve
from evaluation.provenance import git_commit, now, package_versions, sha256_file, sha256_frame
from evaluation.results import Provenance

#: Lookup columns that ``data.area_level`` may name on the synthetic default lookup.
DEFAULT_LOOKUP_KEY = "lsoa11_code"


@dataclass
class RunContext:
    """One evaluation run: the params, where data come from, when it started."""

    params_path: Path
    params: BaseParams
    database: Path
    run_started: str = field(default_factory=now)

    @property
    def name(self) -> str:
        """The evaluation's slug: the params file's stem."""
        return self.params_path.stem

    @cached_property
    def connection(self) -> Any:
        """A read-only connection to the embedded database."""
        if not self.database.exists():
            raise InputError(self.database, "database not found; run `evaluation ingest` first")
        return db.connect(self.database, read_only=True)

    def close(self) -> None:
        """Close the database connection if one was opened."""
        if "connection" in self.__dict__:
            self.__dict__.pop("connection").close()


@dataclass(frozen=True)
class AreaCounts:
    """Counts per area and period of the outcome's crime types, zero-filled."""

    frame: pd.DataFrame  # columns: area, period, count (+ population)
    frequency: str
    synthetic: bool
    data_files: dict[str, str]
    no_location: int = 0
    notes: tuple[str, ...] = ()

    def series(self, areas: list[str] | None = None) -> pd.Series:
        """The sum over ``areas`` (all when None) per period."""
        frame = self.frame if areas is None else self.frame[self.frame["area"].isin(areas)]
        return frame.groupby("period")["count"].sum().sort_index()

    def offset(self, areas: list[str] | None = None) -> pd.Series | None:
        """Summed population per period, when populations were loaded."""
        if "population" not in self.frame:
            return None
        frame = self.frame if areas is None else self.frame[self.frame["area"].isin(areas)]
        return frame.groupby("period")["population"].sum().sort_index()


def synthetic_lookup(ctx: RunContext) -> Path | None:
    """The synthetic default's LSOA lookup, when the database holds the default data."""
    path = config.synthetic_dir() / "lookup.csv"
    return path if path.exists() else None


def _lookup_for(ctx: RunContext, synthetic: bool) -> tuple[Path | None, str | None]:
    data = ctx.params.data
    if data.area_level == "lsoa":
        return None, None
    if data.lookup:
        path = resolve(ctx.params_path, data.lookup)
        if not path.is_file():
            raise InputError(
                ctx.params_path, f"lookup file not found: {data.lookup}", key="data.lookup"
            )
        return path, data.area_level
    lookup = synthetic_lookup(ctx) if synthetic else None
    if lookup is None:
        raise InputError(
            ctx.params_path,
            f"grouping by {data.area_level!r} needs a lookup CSV (LSOA code -> {data.area_level})",
            key="data.lookup",
        )
    return lookup, data.area_level


def database_files(con: Any) -> tuple[dict[str, str], bool]:
    """Ingested files (name -> sha256) and whether they are the synthetic default."""
    rows = con.execute("SELECT name, sha256 FROM files ORDER BY name").fetchall()
    files = {str(name): str(sha) for name, sha in rows}
    synthetic = bool(files) and all("synthetic" in name for name in files)
    return files, synthetic


def load_area_counts(ctx: RunContext, crime_types: list[str] | None = None) -> AreaCounts:
    """Zero-filled counts per area and month from the embedded database.

    Raises
    ------
    InputError
        When the window holds no data, an area is unknown, or a lookup is missing.
    """
    data = ctx.params.data
    crime_types = crime_types or data.crime_types or list(config.CRIME_TYPES)
    con = ctx.connection
    files, synthetic = database_files(con)
    if not files:
        raise InputError(
            ctx.database, "the database holds no police.uk data; run `evaluation ingest`"
        )
    lookup, group_col = _lookup_for(ctx, synthetic)
    months = (data.start, data.end) if data.start or data.end else None
    frame = panel_mod.build_panel(
        con,
        crime_types=crime_types,
        months=months,
        lookup=lookup,
        lookup_key=DEFAULT_LOOKUP_KEY,
        group_col=group_col,
        by_crime_type=False,
    )
    if frame.empty:
        raise InputError(ctx.params_path, "no records in the data window", key="data.start")
    frame = frame.rename(columns={"month": "period"})
    frame["period"] = pd.to_datetime(frame["period"])
    if data.population_offset:
        frame = _attach_population(ctx, frame, lookup, group_col)
    no_loc = panel_mod.no_location_count(con, crime_types, months)
    return AreaCounts(
        frame=frame[[c for c in ("area", "period", "count", "population") if c in frame]],
        frequency="month",
        synthetic=synthetic,
        data_files=files,
        no_location=int(no_loc),
    )


def _attach_population(
    ctx: RunContext, frame: pd.DataFrame, lookup: Path | None, group_col: str | None
) -> pd.DataFrame:
    path = config.synthetic_dir() / "populations.csv"
    if not path.exists():
        raise InputError(
            ctx.params_path, "no population file for offsets", key="data.population_offset"
        )
    pop = pd.read_csv(path)
    if lookup is not None and group_col:
        lk = pd.read_csv(lookup)[[DEFAULT_LOOKUP_KEY, group_col]]
        pop = (
            pop.merge(lk, on=DEFAULT_LOOKUP_KEY)
            .groupby([group_col, "year"], as_index=False)["population"]
            .sum()
        )
        pop = pop.rename(columns={group_col: "area"})
    else:
        pop = pop.rename(columns={DEFAULT_LOOKUP_KEY: "area"})
    # mid-year estimates apply to the financial year they fall in
    frame = frame.assign(year=frame["period"].dt.year)
    out = frame.merge(pop, on=["area", "year"], how="left")
    out["population"] = out.groupby("area")["population"].transform(lambda s: s.ffill().bfill())
    return out.drop(columns="year")


def load_csv(ctx: RunContext) -> AreaCounts:
    """A tidy CSV as area counts (``unit`` may be absent for a single series)."""
    data = ctx.params.data
    assert data.csv is not None  # guaranteed by the schema
    path = resolve(ctx.params_path, data.csv)
    loaded = tidy.load_tidy(
        path, unit=data.unit, time=data.time or "", outcome=data.outcome or "", offset=data.offset
    )
    frame = loaded.data.reset_index(drop=True)
    frame = frame.rename(columns={"unit": "area", "outcome": "count", "offset": "population"})
    if not loaded.has_offset:
        frame = frame.drop(columns="population")
    frame["area"] = frame["area"].astype(str)
    if data.units:
        missing = sorted(set(data.units) - set(frame["area"]))
        if missing:
            raise InputError(
                ctx.params_path,
                f"unknown unit {missing[0]!r} (not in {path.name})",
                key="data.units",
            )
        frame = frame[frame["area"].isin(data.units)]
    keep = [c for c in ("area", "period", "count", "population") if c in frame]
    return AreaCounts(
        frame=frame[keep].reset_index(drop=True),
        frequency=loaded.frequency,
        synthetic=False,
        data_files={path.name: sha256_file(path)},
        notes=tuple(loaded.warnings),
    )


def load_outcome(ctx: RunContext, crime_types: list[str] | None = None) -> AreaCounts:
    """Load the evaluation's data from whichever source the params name."""
    return load_csv(ctx) if ctx.params.data.is_csv else load_area_counts(ctx, crime_types)


def check_areas(ctx: RunContext, counts: AreaCounts, areas: list[str] | None, key: str) -> None:
    """Raise naming ``key`` when an area is not in the data."""
    if not areas:
        return
    known = set(counts.frame["area"])
    unknown = [a for a in areas if a not in known]
    if unknown:
        sample = ", ".join(sorted(known)[:5])
        raise InputError(
            ctx.params_path, f"unknown area {unknown[0]!r} (known areas include: {sample})", key=key
        )


def check_start(
    ctx: RunContext, periods: pd.Index, start: Any, key: str = "intervention.start"
) -> None:
    """Raise when the intervention start lies outside the data."""
    first, last = periods.min(), periods.max()
    if start <= first or start > last:
        raise InputError(
            ctx.params_path,
            f"{_fmt(start)} is outside the data ({_fmt(first)} to {_fmt(last)})",
            key=key,
        )


def _fmt(value: Any) -> str:
    return value.strftime("%Y-%m") if hasattr(value, "strftime") else str(value)


def period_label(value: Any) -> str:
    """ISO date of a period start (or the integer period as text)."""
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else str(value)


def truth_for(ctx: RunContext, synthetic: bool) -> dict[str, Any] | None:
    """The planted effects of this evaluation on the synthetic default, if any."""
    if not synthetic:
        return None
    path = config.synthetic_dir() / "truth.json"
    if not path.exists():
        return None
    planted = json.loads(path.read_text()).get("interventions", {})
    return planted.get(ctx.name)


def planted_rate_ratio(planted: dict[str, Any] | None, crime_types: list[str]) -> float | None:
    """The planted rate ratio for an outcome made of ``crime_types``, if one entry covers them.

    The generator's truth entry (and any entry nested in it, e.g. a victim-based check)
    carries ``crime_types`` and ``rate_ratio``; an outcome mixing types with different
    planted effects has no single true rate ratio, and gets none.
    """
    if not planted:
        return None
    entries = [planted] + [v for v in planted.values() if isinstance(v, dict)]
    for entry in entries:
        types = set(entry.get("crime_types", ()))
        if "rate_ratio" in entry and set(crime_types) <= types:
            return float(entry["rate_ratio"])
    return None


def provenance(ctx: RunContext, counts: AreaCounts, analysed: pd.DataFrame) -> Provenance:
    """Provenance for the results file (``run_finished`` is filled in on saving)."""
    return Provenance(
        data_files=counts.data_files,
        data_hash=sha256_frame(analysed),
        params_file=ctx.params_path.name,
        params_hash=params_hash(ctx.params_path),
        params=params_dict(ctx.params),
        versions=package_versions(),
        git_commit=git_commit(ctx.params_path.parent),
        run_started=ctx.run_started,
        seed=ctx.params.model.seed,
    )
