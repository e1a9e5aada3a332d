"""What every workflow shares: the run context, loading the analysed data, provenance.

A workflow turns validated params into an :class:`~evaluation.results.EvaluationResults`.
It loads data through :mod:`evaluation.data`, fits a design from :mod:`evaluation.designs`
and fills in the contract. Everything that can be checked before fitting is checked in
:func:`load_area_counts` / :func:`load_csv`, so bad input fails before any report exists.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation import config
from evaluation.context import RunContext
from evaluation.data import panel as panel_mod
from evaluation.data import tidy
from evaluation.errors import InputError
from evaluation.params import params_dict, params_hash, resolve
from evaluation.provenance import git_commit, package_versions, sha256_file, sha256_frame
from evaluation.results import Provenance

#: Lookup columns that ``data.area_level`` may name on the synthetic default lookup.
DEFAULT_LOOKUP_KEY = "lsoa11_code"


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
    months = _window(ctx, con)
    with _collected_warnings() as notes:  # e.g. a force missing months: into results.json
        try:
            frame = panel_mod.build_panel(
                con,
                crime_types=crime_types,
                months=months,
                lookup=lookup,
                lookup_key=DEFAULT_LOOKUP_KEY,
                group_col=group_col,
                by_crime_type=False,
            )
            no_loc = panel_mod.no_location_count(con, crime_types, months)
        except InputError as err:
            raise _panel_error(ctx, err, lookup, group_col) from None
    if frame.empty:
        raise InputError(ctx.params_path, "no records in the data window", key="data.start")
    frame = frame.rename(columns={"month": "period"})
    frame["period"] = pd.to_datetime(frame["period"])
    if data.population_offset:
        frame = _attach_population(ctx, frame, lookup, group_col)
    return AreaCounts(
        frame=frame[[c for c in ("area", "period", "count", "population") if c in frame]],
        frequency="month",
        synthetic=synthetic,
        data_files=files,
        no_location=int(no_loc),
        notes=tuple(notes),
    )


def _window(ctx: RunContext, con: Any) -> tuple[str, str] | None:
    """The months to analyse: ``data.start`` .. ``data.end``, either side defaulting to the
    first or last ingested month; None (all) when neither is given.

    Raises
    ------
    InputError
        Naming ``data.start`` or ``data.end`` when it lies outside the ingested months.
    """
    data = ctx.params.data
    first, last = con.execute("SELECT min(month), max(month) FROM counts").fetchone()
    if first is None or not (data.start or data.end):
        return None
    lo, hi = pd.Timestamp(first), pd.Timestamp(last)
    for key, month in (("data.start", data.start), ("data.end", data.end)):
        if month is not None and not lo <= pd.Timestamp(month) <= hi:
            raise InputError(
                ctx.params_path,
                f"{pd.Timestamp(month):%Y-%m} is outside the data in the database "
                f"({lo:%Y-%m} to {hi:%Y-%m})",
                key=key,
            )
    return data.start or f"{lo:%Y-%m}", data.end or f"{hi:%Y-%m}"


#: Keys of the panel builder's arguments -> the params keys they come from.
_PANEL_KEYS = {
    "months": "data.start",
    "crime_types": "data.crime_types",
    "areas": "data.units",
    "group_col": "data.area_level",
}


def _panel_error(
    ctx: RunContext, err: InputError, lookup: Path | None, group_col: str | None
) -> InputError:
    """A panel error as a params error: the evaluator wrote the key, not the argument."""
    if err.source is None:
        key = _PANEL_KEYS.get(err.key or "", err.key)
        if key == "data.start" and "ends" in err.message:
            key = "data.end"
        return InputError(ctx.params_path, err.message, key=key, line=err.line)
    if lookup is not None and err.source == str(lookup) and err.key == group_col:
        return InputError(
            ctx.params_path,
            f"{group_col!r} is not a column of the lookup {lookup.name} "
            + (m.group(0) if (m := re.search(r"\(columns: .*\)", err.message)) else ""),
            key="data.area_level",
        )
    return err


@contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    """Collect the data layer's warnings (UserWarning) as plain text, once each.

    Other warning categories (library deprecations and the like) are passed on unchanged.
    """
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield notes
    for w in caught:
        if w.category is UserWarning:
            if str(w.message) not in notes:
                notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # they are in loaded.warnings
        loaded = tidy.load_tidy(
            path,
            unit=data.unit,
            time=data.time or "",
            outcome=data.outcome or "",
            offset=data.offset,
        )
    if data.start or data.end:
        loaded = _csv_window(ctx, loaded)
    if ctx.params.model.family != "gaussian":  # a count model needs counts
        try:
            tidy.validate_counts(loaded)
        except InputError as err:
            raise InputError(err.source, err.message, key=data.outcome, line=err.line) from None
    frame = loaded.data.reset_index(drop=True)
    frame = frame.rename(columns={"unit": "area", "outcome": "count", "offset": "population"})
    if not loaded.has_offset:
        frame = frame.drop(columns="population")
    if frame["area"].dtype != object:  # plain Python strings, as from police.uk
        frame["area"] = frame["area"].astype(str).astype(object)
    if data.units:
        missing = sorted(set(data.units) - set(frame["area"].unique()))
        if missing:
            raise InputError(
                ctx.params_path,
                f"unknown unit {missing[0]!r} (not in {path.name})",
                key="data.units",
            )
        # all areas are kept, as from police.uk data: comparison areas are among them
    keep = [c for c in ("area", "period", "count", "population") if c in frame]
    return AreaCounts(
        frame=frame[keep].reset_index(drop=True),
        frequency=loaded.frequency,
        synthetic=False,
        data_files={path.name: sha256_file(path)},
        notes=tuple(loaded.warnings),
    )


def _csv_window(ctx: RunContext, loaded: tidy.TidyData) -> tidy.TidyData:
    """The rows of a tidy CSV inside ``data.start`` .. ``data.end`` (calendar data only)."""
    data, frame = ctx.params.data, loaded.data
    if loaded.frequency == "period":
        raise InputError(
            ctx.params_path,
            f"data.start and data.end are months, but {loaded.source.name} has integer periods",
            key="data.start" if data.start else "data.end",
        )
    floor = {"quarter": "Q", "year": "Y"}.get(loaded.frequency)
    keep = pd.Series(True, index=frame.index)
    if data.start:
        first = pd.Timestamp(data.start)
        if floor:  # the period that holds the start month
            first = first.to_period(floor).start_time
        keep &= frame["period"] >= first
    if data.end:
        keep &= frame["period"] <= pd.Timestamp(data.end)
    if not keep.any():
        raise InputError(
            ctx.params_path,
            f"no rows of {loaded.source.name} fall inside data.start .. data.end",
            key="data.start" if data.start else "data.end",
        )
    return tidy.TidyData(frame[keep], loaded.frequency, loaded.source, loaded.warnings)


def load_outcome(ctx: RunContext, crime_types: list[str] | None = None) -> AreaCounts:
    """Load the evaluation's data from whichever source the params name."""
    counts = load_csv(ctx) if ctx.params.data.is_csv else load_area_counts(ctx, crime_types)
    if ctx.params.data.aggregate == "quarter":
        counts = to_quarters(ctx, counts)
    return counts


def to_quarters(ctx: RunContext, counts: AreaCounts) -> AreaCounts:
    """Sum monthly counts into calendar quarters (only whole quarters are kept)."""
    if counts.frequency != "month":
        raise InputError(
            ctx.params_path, "only monthly data can be aggregated to quarters", key="data.aggregate"
        )
    f = counts.frame.copy()
    f["quarter"] = f["period"].dt.to_period("Q").dt.start_time
    agg = {"count": ("count", "sum"), "months": ("period", "nunique")}
    if "population" in f:
        agg["population"] = ("population", "mean")
    q = f.groupby(["area", "quarter"], as_index=False).agg(**agg)
    partial = sorted({str(p.date()) for p in q.loc[q["months"] < 3, "quarter"]})
    q = q[q["months"] == 3].drop(columns="months").rename(columns={"quarter": "period"})
    notes = counts.notes + (
        (f"Partial quarters left out: {', '.join(partial)}.",) if partial else ()
    )
    return replace(counts, frame=q.reset_index(drop=True), frequency="quarter", notes=notes)


#: Largest share of an area's periods that may lack a row in a tidy CSV and be read as
#: zero counts ("a few missing months"); more is an error, not a guess.
MAX_ZERO_FILLED = 0.1
#: Least Poisson chance of a zero count (at the area's mean) for a missing row of an area
#: that has no zeros to be read as a zero: ``exp(-mean) >= 0.01`` means a mean up to 4.6.
MIN_ZERO_CHANCE = 0.01

_RANGE_FREQ = {"month": "MS", "quarter": "QS", "year": "YS"}


def period_range(periods: Any, frequency: str) -> list[Any]:
    """Every period from the first to the last of ``periods`` at ``frequency``.

    Integer periods step by the greatest common divisor of their differences.
    """
    values = sorted(set(periods))
    if len(values) < 2:
        return values
    if frequency == "period":
        step = int(np.gcd.reduce(np.diff(np.asarray(values, dtype="int64"))))
        return list(range(int(values[0]), int(values[-1]) + 1, max(step, 1)))
    index = pd.date_range(values[0], values[-1], freq=_RANGE_FREQ[frequency])
    return list(index.astype(pd.Series(values).dtype))


def complete_periods(
    ctx: RunContext, counts: AreaCounts, areas: list[str] | None, *, count_model: bool
) -> AreaCounts:
    """Check that each of ``areas`` (all when None) has every period, filling a few zeros.

    A police.uk panel is already zero-filled per month, so a month missing there was never
    ingested: an error (no data is not no crime). In a tidy CSV a missing row of a count
    outcome reads as zero (no row, nothing recorded: the police.uk convention), with a
    warning in the results, when a zero is believable: the area lacks at most
    :data:`MAX_ZERO_FILLED` of the periods, and it has zero counts elsewhere or so few
    events that a zero has at least a :data:`MIN_ZERO_CHANCE` Poisson chance. Otherwise (a
    busy series with a hole is missing data, not a quiet month), or for a non-count outcome
    or with an offset, it is an error naming the area and its first missing period.

    Raises
    ------
    InputError
        As above.
    """
    frame = counts.frame if areas is None else counts.frame[counts.frame["area"].isin(areas)]
    full = period_range(frame["period"], counts.frequency)
    if not ctx.params.data.is_csv:
        absent = sorted(set(full) - set(frame["period"]))
        if absent:
            raise InputError(
                ctx.params_path,
                f"no police.uk data for {len(absent)} month(s) inside the data "
                f"(first {_fmt(absent[0])}): ingest them, or set data.start and data.end "
                "around them",
                key="data.start",
            )
        return counts
    source = resolve(ctx.params_path, ctx.params.data.csv or "")
    have = frame.groupby("area")["period"].agg(set)
    missing = [(area, p) for area, got in have.items() for p in full if p not in got]
    if not missing:
        return counts
    per_area = Counter(a for a, _ in missing)
    for area, n_area in per_area.items():
        present = frame.loc[frame["area"] == area, "count"]
        why = _why_not_zero(present, n_area / len(full), count_model, "population" in frame)
        if why:
            first = next(p for a, p in missing if a == area)
            raise InputError(
                source,
                f"{area!r} has no row for {_fmt(first)} ({n_area} of {len(full)} periods "
                f"missing): {why}",
                key=ctx.params.data.time,
            )
    added = pd.DataFrame({"area": [a for a, _ in missing], "period": [p for _, p in missing]})
    added["count"] = 0
    filled = pd.concat([counts.frame, added.astype(counts.frame.dtypes[added.columns])])
    filled = filled.sort_values(["area", "period"], kind="stable").reset_index(drop=True)
    shown = ", ".join(f"{a} {_fmt(p)}" for a, p in missing[:5])
    note = (
        f"{source.name}: {len(missing)} area-period row(s) were missing and were read as zero "
        f"counts (no row, nothing recorded): {shown}{' ...' if len(missing) > 5 else ''}. "
        "Check that they are true zeros."
    )
    return replace(counts, frame=filled, notes=(*counts.notes, note))


def _why_not_zero(
    present: pd.Series, share_missing: float, count_model: bool, has_offset: bool
) -> str | None:
    """Why an area's missing rows cannot be read as zeros (None when they can)."""
    if not count_model or has_offset:
        return "every area needs a value for every period"
    if share_missing > MAX_ZERO_FILLED:
        return "too many to read as zeros; add the rows (0 when nothing happened)"
    mean = float(present.mean())
    if not (present == 0).any() and np.exp(-mean) < MIN_ZERO_CHANCE:
        return (
            f"with {mean:.0f} a period on average and never zero, a missing row is missing "
            "data, not a zero: add the rows"
        )
    return None


def check_areas(
    ctx: RunContext,
    counts: AreaCounts,
    areas: list[str] | None,
    key: str,
    *,
    known: Iterable[str] | None = None,
) -> None:
    """Raise naming ``key`` when an area is not in the data.

    ``known`` are the distinct areas of ``counts.frame`` when the caller has them already
    (finding them again in millions of rows takes a tenth of a second).
    """
    if not areas:
        return
    if isinstance(known, pd.Index) and known.is_unique:  # a lookup, not a set of 35,000
        # names stay Python strings to match an object index without conversion
        target = pd.Index(areas, dtype=object if known.dtype == object else None)
        unknown = [a for a, i in zip(areas, known.get_indexer(target), strict=True) if i < 0]
    else:
        known = set(counts.frame["area"].unique() if known is None else known)
        unknown = [a for a in areas if a not in known]
    if unknown:
        sample = ", ".join(sorted(known)[:5])
        raise InputError(
            ctx.params_path, f"unknown area {unknown[0]!r} (known areas include: {sample})", key=key
        )


def intervention_start(ctx: RunContext, frequency: str, design: str = "this design") -> Any:
    """``intervention.start`` as a period of the data: an integer for integer periods, else
    the start of the month, quarter or year holding it.

    Raises
    ------
    InputError
        When it is missing, or its kind does not match the data's periods.
    """
    start = ctx.params.intervention.start
    if start is None:
        raise InputError(ctx.params_path, f"required for {design}", key="intervention.start")
    if frequency == "period":
        if not isinstance(start, int):
            raise InputError(
                ctx.params_path,
                f"the data have integer periods, so the start must be one too, not {start!r}",
                key="intervention.start",
            )
        return start
    if isinstance(start, int):
        raise InputError(
            ctx.params_path,
            f"the data are {frequency}ly, so the start must be a month (YYYY-MM), not {start}",
            key="intervention.start",
        )
    ts = pd.Timestamp(start)
    if frequency == "quarter":
        return ts.to_period("Q").start_time
    if frequency == "year":
        return pd.Timestamp(year=ts.year, month=1, day=1)
    return ts


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


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready rows for ``results.tables``: NaN and infinity become None,
    numpy scalars plain Python."""
    rows = []
    for row in table.to_dict("records"):
        rows.append(
            {
                k: (
                    None
                    if isinstance(v, float) and not np.isfinite(v)
                    else (v.item() if hasattr(v, "item") else v)
                )
                for k, v in row.items()
            }
        )
    return rows


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
        # the code that made the numbers; the params' folder when the package is not in git
        git_commit=git_commit(Path(__file__).resolve().parent)
        or git_commit(ctx.params_path.parent),
        run_started=ctx.run_started,
        seed=ctx.params.model.seed,
    )
