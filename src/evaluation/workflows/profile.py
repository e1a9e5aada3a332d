"""Scrutiny-profile workflow: params -> recorded counts -> descriptive tables -> results.

A profile is what a partnership puts before a scrutiny committee: the monthly series with
its highest and lowest months, two 12-month years compared, areas ranked by count and by
change, crime types and last outcomes. It describes recorded crime; it estimates no effect
and no counterfactual, so its estimates are counts with no interval.

City-wide figures (the monthly series, year totals, crime types, outcomes) include records
with no location when every located record of the selection falls in the profiled areas
(the database holds only the profiled place, as police totals count them); otherwise those
records could belong anywhere in the force and are left out, with a warning. Area tables
only ever hold located records, and pass through disclosure control before anyone sees them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation import config
from evaluation.data import panel as panel_mod
from evaluation.errors import InputError
from evaluation.params import ProfileParams, resolve
from evaluation.report import disclosure
from evaluation.results import Estimate, EvaluationResults, Outcome, Periods, Series
from evaluation.workflows import common
from evaluation.workflows.common import AreaCounts, RunContext

#: Crime types whose area tables use the stricter suppression threshold (1-9).
SENSITIVE_CRIME_TYPES: frozenset[str] = frozenset({"Violence and sexual offences"})

#: Groups of police.uk "Last outcome category" values (as written in the street-level CSVs;
#: matched ignoring case and surrounding spaces). Anything else is "other".
OUTCOME_GROUPS: dict[str, tuple[str, ...]] = {
    "charged_summonsed": (  # a court route: charged or summonsed, whatever the court did
        "Suspect charged",
        "Awaiting court outcome",
        "Court result unavailable",
        "Court case unable to proceed",
        "Defendant sent to Crown Court",
        "Defendant found not guilty",
        "Offender sent to prison",
        "Offender given suspended prison sentence",
        "Offender given community sentence",
        "Offender fined",
        "Offender given conditional discharge",
        "Offender given absolute discharge",
        "Offender ordered to pay compensation",
        "Offender deprived of property",
        "Offender otherwise dealt with",
        "Suspect charged as part of another case",
    ),
    "caution_warning": (  # out-of-court disposals
        "Offender given a caution",
        "Offender given a drugs possession warning",
        "Offender given penalty notice",
        "Offender given a penalty notice",
        "Local resolution",
    ),
    "no_further_action": (
        "Investigation complete; no suspect identified",
        "Unable to prosecute suspect",
        "Formal action is not in the public interest",
        "Further action is not in the public interest",
        "Further investigation is not in the public interest",
        "Action to be taken by another organisation",
    ),
    "open_or_unknown": (
        "Under investigation",
        "Status update unavailable",
        panel_mod.NO_OUTCOME_LABEL,
    ),
}
#: Words for each outcome group, in the order tables list them.
OUTCOME_GROUP_LABELS: dict[str, str] = {
    "charged_summonsed": "Charged or summonsed",
    "caution_warning": "Caution or warning",
    "no_further_action": "No further action",
    "open_or_unknown": "Still open or not known",
    "other": "Other outcome",
}
_GROUP_OF = {c.strip().lower(): g for g, cats in OUTCOME_GROUPS.items() for c in cats}

YEARS = ("year_1", "year_2")


def outcome_group(category: str | None) -> str:
    """The group (a key of :data:`OUTCOME_GROUP_LABELS`) of a last outcome category."""
    if category is None or not str(category).strip():
        return "open_or_unknown"
    return _GROUP_OF.get(str(category).strip().lower(), "other")


def year_label(first: pd.Timestamp) -> str:
    """``2019/20`` for a financial year, ``2019`` for a calendar year, else the months."""
    first = pd.Timestamp(first)
    if first.month == 4:
        return f"{first.year}/{(first.year + 1) % 100:02d}"
    if first.month == 1:
        return str(first.year)
    last = first + pd.DateOffset(months=11)
    return f"{first:%b %Y} to {last:%b %Y}"


def month_words(month: pd.Timestamp) -> str:
    """``July 2020``."""
    return f"{pd.Timestamp(month):%B %Y}"


def year_months(first: pd.Timestamp) -> pd.DatetimeIndex:
    """The 12 month starts of the year beginning at ``first``."""
    return pd.date_range(pd.Timestamp(first), periods=12, freq="MS")


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileData:
    """Everything a profile is computed from (loaded and checked by :func:`prepare`)."""

    panel: pd.DataFrame  # area, month, crime_type, count: located records, zero-filled
    unlocated: pd.DataFrame  # month, crime_type, last_outcome, count: records without location
    outcomes: pd.DataFrame  # crime_type, last_outcome, count: located records, whole window
    years: tuple[pd.Timestamp, pd.Timestamp]
    include_unlocated: bool  # whether no-location records count in city-wide figures
    outside_areas: int  # located records of the selection outside the profiled areas
    counts: AreaCounts  # provenance: files, synthetic flag, no-location total

    @property
    def months(self) -> pd.DatetimeIndex:
        """Every month of the data window."""
        return pd.DatetimeIndex(sorted(self.panel["month"].unique()))


def _lookup(ctx: RunContext, params: ProfileParams, synthetic: bool) -> Path | None:
    """The LSOA lookup for ``profile.area_level`` (none for LSOAs themselves)."""
    level = params.profile.area_level
    if level == "lsoa":
        return None
    if params.data.lookup:
        path = resolve(ctx.params_path, params.data.lookup)
        if not path.is_file():
            raise InputError(
                ctx.params_path, f"lookup file not found: {params.data.lookup}", key="data.lookup"
            )
        return path
    lookup = common.synthetic_lookup(ctx) if synthetic else None
    if lookup is None:
        raise InputError(
            ctx.params_path,
            f"grouping by {level!r} needs a lookup CSV (LSOA code -> {level})",
            key="data.lookup",
        )
    return lookup


def _with_key(ctx: RunContext, err: InputError, level: str) -> InputError:
    """A data-layer error re-said against the params key that caused it."""
    keys = {
        "months": "data.start",
        "crime_types": "data.crime_types",
        level: "profile.area_level",
        common.DEFAULT_LOOKUP_KEY: "data.lookup",
    }
    key = keys.get(err.key or "", err.key)
    return InputError(ctx.params_path, err.message, key=key)


def _unlocated(con: Any, crime_types: list[str], months: list[date]) -> pd.DataFrame:
    """Records with no location by month, crime type and last outcome.

    The panel functions leave these out (they cannot be placed in an area); a city-wide
    profile counts them, as police totals do.
    """
    frame = con.execute(
        f"""SELECT month, crime_type,
                   coalesce(last_outcome, '{panel_mod.NO_OUTCOME_LABEL}') AS last_outcome,
                   CAST(sum(n) AS BIGINT) AS count
            FROM counts
            WHERE lsoa_code IS NULL AND list_contains(?, crime_type)
              AND list_contains(CAST(? AS DATE[]), month)
            GROUP BY ALL ORDER BY ALL""",
        [crime_types, months],
    ).df()
    frame["month"] = pd.to_datetime(frame["month"])
    return frame


def _located_total(con: Any, crime_types: list[str], months: list[date]) -> int:
    """Located records of the selection in the whole database (any area)."""
    row = con.execute(
        """SELECT coalesce(sum(n), 0) FROM counts
           WHERE lsoa_code IS NOT NULL AND list_contains(?, crime_type)
             AND list_contains(CAST(? AS DATE[]), month)""",
        [crime_types, months],
    ).fetchone()
    return int(row[0]) if row else 0


def _window(con: Any, params: ProfileParams) -> tuple[str, str] | None:
    """``data.start`` to ``data.end``; a missing end is the data's first or last month."""
    start, end = params.data.start, params.data.end
    if start is None and end is None:
        return None
    row = con.execute("SELECT min(month), max(month) FROM counts").fetchone()
    first, last = (f"{pd.Timestamp(v):%Y-%m}" for v in row)
    return (start or first)[:7], (end or last)[:7]


def _check_years(ctx: RunContext, params: ProfileParams, months: pd.DatetimeIndex) -> None:
    first, second = (pd.Timestamp(y) for y in params.profile.years)
    if second < first + pd.DateOffset(months=12):
        raise InputError(
            ctx.params_path,
            f"the second year ({second:%Y-%m}) must start 12 or more months after the first "
            f"({first:%Y-%m}) so the years do not overlap",
            key="profile.years",
        )
    have = set(months)
    for start in (first, second):
        missing = [m for m in year_months(start) if m not in have]
        if missing:
            raise InputError(
                ctx.params_path,
                f"the year from {start:%Y-%m} needs 12 months of data, but {missing[0]:%Y-%m} "
                f"is not in the data window ({months.min():%Y-%m} to {months.max():%Y-%m})",
                key="profile.years",
            )


def prepare(ctx: RunContext) -> ProfileData:
    """Load and check everything the profile needs; raises InputError before any output."""
    params = ctx.params
    assert isinstance(params, ProfileParams)
    if params.data.is_csv:
        raise InputError(
            ctx.params_path,
            "a profile reads police.uk records from the database (crime types and outcomes); "
            "a tidy CSV is not supported",
            key="data.csv",
        )
    crime_types = list(params.data.crime_types or config.CRIME_TYPES)
    con = ctx.connection
    files, synthetic = common.database_files(con)
    if not files:
        raise InputError(
            ctx.database, "the database holds no police.uk data; run `evaluation ingest`"
        )
    lookup = _lookup(ctx, params, synthetic)
    level = params.profile.area_level
    group_col = None if lookup is None else level
    try:
        frame = panel_mod.build_panel(
            con,
            crime_types=crime_types,
            months=_window(con, params),
            lookup=lookup,
            lookup_key=common.DEFAULT_LOOKUP_KEY,
            group_col=group_col,
            by_crime_type=True,
        )
    except InputError as err:
        raise _with_key(ctx, err, level) from None
    if frame.empty or int(frame["count"].sum()) == 0:
        raise InputError(ctx.params_path, "no records in the data window", key="data.start")
    months = pd.DatetimeIndex(sorted(frame["month"].unique()))
    _check_years(ctx, params, months)
    month_dates = [m.date() for m in months]
    month_window = (f"{months.min():%Y-%m}", f"{months.max():%Y-%m}")
    outcomes = panel_mod.outcome_counts(
        con,
        crime_types,
        month_window,
        lookup,
        group_col,
        lookup_key=common.DEFAULT_LOOKUP_KEY,
        by_crime_type=True,
    )
    outcomes = outcomes.groupby(["crime_type", "last_outcome"], as_index=False)["count"].sum()
    unlocated = _unlocated(con, crime_types, month_dates)
    outside = _located_total(con, crime_types, month_dates) - int(frame["count"].sum())
    counts = AreaCounts(
        frame=frame.rename(columns={"month": "period"})[["area", "period", "count"]],
        frequency="month",
        synthetic=synthetic,
        data_files=files,
        no_location=int(unlocated["count"].sum()),
    )
    return ProfileData(
        panel=frame[["area", "month", "crime_type", "count"]],
        unlocated=unlocated,
        outcomes=outcomes,
        years=(pd.Timestamp(params.profile.years[0]), pd.Timestamp(params.profile.years[1])),
        include_unlocated=outside == 0,
        outside_areas=max(outside, 0),
        counts=counts,
    )


# --------------------------------------------------------------------------------------
# Tables (pure functions of frames, so they can be tested on data built by hand)
# --------------------------------------------------------------------------------------


def year_of(months: pd.Series, years: tuple[pd.Timestamp, pd.Timestamp]) -> pd.Series:
    """``year_1`` / ``year_2`` for months inside a comparison year, else None."""
    out = pd.Series([None] * len(months), index=months.index, dtype=object)
    for key, start in zip(YEARS, years, strict=True):
        inside = months.isin(year_months(start))
        out[inside] = key
    return out


def monthly_table(located: pd.Series, unlocated: pd.Series, include: bool) -> pd.DataFrame:
    """Monthly counts with the highest and lowest months flagged.

    Parameters
    ----------
    located
        Counts in the profiled areas, indexed by month (every month of the window).
    unlocated
        Counts of records with no location, indexed by month (missing months are zero).
    include
        Whether records with no location count in the monthly total.

    Returns
    -------
    pandas.DataFrame
        ``month, count, in_areas, without_location, highest, lowest``, one row per month.
    """
    located = located.sort_index().astype(int)
    without = unlocated.reindex(located.index, fill_value=0).astype(int)
    total = located + without if include else located
    return pd.DataFrame(
        {
            "month": located.index,
            "count": total.to_numpy(),
            "in_areas": located.to_numpy(),
            "without_location": without.to_numpy(),
            "highest": (total == total.max()).to_numpy(),
            "lowest": (total == total.min()).to_numpy(),
        }
    )


def two_year_table(
    frame: pd.DataFrame, key: str, years: tuple[pd.Timestamp, pd.Timestamp]
) -> pd.DataFrame:
    """Counts per ``key`` in each comparison year, their total and change.

    Parameters
    ----------
    frame
        ``key, month, count`` rows (several rows per key and month are summed).
    key
        The column to tabulate by (e.g. ``area`` or ``crime_type``).
    years
        First months of the two years.

    Returns
    -------
    pandas.DataFrame
        ``key, year_1, year_2, total, change, percent_change`` (percent change as a
        proportion of year 1; None when year 1 is zero), sorted by total, largest first.
    """
    tagged = frame.assign(year=year_of(frame["month"], years)).dropna(subset=["year"])
    wide = (
        tagged.pivot_table(index=key, columns="year", values="count", aggfunc="sum", fill_value=0)
        .reindex(columns=list(YEARS), fill_value=0)
        .reindex(sorted(frame[key].unique()), fill_value=0)
        .astype(int)
    )
    out = wide.reset_index()
    out.columns.name = None
    out["total"] = out["year_1"] + out["year_2"]
    out["change"] = out["year_2"] - out["year_1"]
    out["percent_change"] = pd.Series(
        [(c / y1 if y1 else None) for c, y1 in zip(out["change"], out["year_1"], strict=True)],
        index=out.index,
        dtype=object,
    )
    return out.sort_values(["total", key], ascending=[False, True]).reset_index(drop=True)


def _rank(values: pd.Series) -> list[int | None]:
    """1 for the largest value; None where the value is hidden."""
    ranks = values.dropna().astype(float).rank(ascending=False, method="min")
    return [None if pd.isna(r) else int(r) for r in ranks.reindex(values.index)]


def area_table(
    frame: pd.DataFrame, years: tuple[pd.Timestamp, pd.Timestamp], *, sensitive: bool = False
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Areas ranked by count and by change, with disclosure control applied.

    Area-by-year counts of 1 to 4 (1 to 9 when ``sensitive``) are hidden, with secondary
    suppression (:func:`evaluation.report.disclosure.suppress_long`). In any row with a
    hidden count the total, change and percent change are hidden too: with one year shown
    they would give the other away.

    Returns
    -------
    table
        ``area, year_1, year_2, total, change, percent_change, rank_count, rank_change,
        suppressed``; ``rank_count`` 1 = most records, ``rank_change`` 1 = largest rise.
        Sorted by total (hidden rows last).
    info
        ``hidden_cells`` (number of hidden area-year counts) and ``hide_year_totals``
        (years whose area total must not be published).
    """
    table = two_year_table(frame, "area", years)
    long = table.melt(id_vars="area", value_vars=list(YEARS), var_name="year", value_name="count")
    done = disclosure.suppress_long(long, "area", "year", "count", sensitive=sensitive)
    hidden_rows = set(done.loc[done["suppressed"], "area"])
    shown = done.pivot(index="area", columns="year", values="count")
    out = table.copy().astype(object)
    for col in YEARS:
        out[col] = out["area"].map(shown[col]).astype(object)
    mask = out["area"].isin(hidden_rows)
    for col in ("total", "change", "percent_change"):
        out.loc[mask, col] = None
    out = out.where(pd.notna(out), None)
    for col, by in (("rank_count", "total"), ("rank_change", "change")):
        out[col] = pd.Series(_rank(pd.to_numeric(out[by])), index=out.index, dtype=object)
    out["suppressed"] = mask.to_numpy()
    out = out.sort_values(["suppressed"], kind="stable").reset_index(drop=True)
    info = {
        "hidden_cells": int(done["suppressed"].sum()),
        "hide_year_totals": list(done.attrs.get("hide_col_totals", [])),
    }
    return out, info


def outcome_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Last outcome categories with their group, count and share, largest first.

    Parameters
    ----------
    frame
        ``last_outcome, count`` rows (repeats are summed).
    """
    table = frame.groupby("last_outcome", as_index=False)["count"].sum()
    table = table[table["count"] > 0]
    total = table["count"].sum()
    table["group"] = table["last_outcome"].map(outcome_group)
    table["group_label"] = table["group"].map(OUTCOME_GROUP_LABELS)
    table["share"] = table["count"] / total if total else 0.0
    table = table.sort_values(["count", "last_outcome"], ascending=[False, True])
    return table[["last_outcome", "group", "group_label", "count", "share"]].reset_index(drop=True)


def outcome_group_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Outcome groups (every group, zero when absent) with count and share."""
    sums = outcomes.groupby("group")["count"].sum()
    total = int(sums.sum())
    rows = [
        {
            "group": g,
            "group_label": label,
            "count": int(sums.get(g, 0)),
            "share": (float(sums.get(g, 0)) / total) if total else 0.0,
        }
        for g, label in OUTCOME_GROUP_LABELS.items()
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

_METHOD = "count of recorded crimes"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-able dicts (dates as ISO text, missing as None, numpy as Python)."""
    out = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, pd.Timestamp):
                clean[k] = common.period_label(v)
            elif v is None or (isinstance(v, float) and pd.isna(v)):
                clean[k] = None
            elif hasattr(v, "item"):
                clean[k] = v.item()
            else:
                clean[k] = v
        out.append(clean)
    return out


def _extreme(monthly: pd.DataFrame, word: str, label: str, window: str) -> Estimate:
    """The highest or lowest month (``word``) as an estimate; ties are all named."""
    rows = monthly[monthly[word]]
    value = int(rows["count"].iloc[0])
    names = [month_words(m) for m in rows["month"]]
    when = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    each = "" if len(names) == 1 else " each"
    return Estimate(
        name=f"{word}_month",
        estimate=value,
        scale="count",
        method=_METHOD,
        label=f"{word.capitalize()} month of {_lower_first(label)}, {window}: {when} "
        f"({value:,}{each})",
    )


def _estimates(
    label: str,
    monthly: pd.DataFrame,
    years: pd.DataFrame,
    groups: pd.DataFrame,
    window: str,
) -> list[Estimate]:
    y1, y2 = (int(v) for v in years["count"])
    l1, l2 = years["label"]
    ratio = y2 / y1 if y1 else None
    if ratio is None:
        words = "not defined: no records in the first year"
    else:
        pct = round(abs(ratio - 1) * 100)
        words = f"{pct}% {'fewer' if ratio < 1 else 'more'}" if pct else "no change"
    out = [
        Estimate(
            name="total",
            estimate=int(monthly["count"].sum()),
            scale="count",
            method=_METHOD,
            label=f"{label}, {window}",
        ),
        Estimate(
            name="year_1_total", estimate=y1, scale="count", method=_METHOD, label=f"{label}, {l1}"
        ),
        Estimate(
            name="year_2_total", estimate=y2, scale="count", method=_METHOD, label=f"{label}, {l2}"
        ),
        Estimate(
            name="percent_change",
            estimate=ratio,
            scale="rate_ratio",  # year 2 / year 1: 0.92 reads "8% fewer", like any rate ratio
            method="ratio of two counts",
            label=f"{label} in {l2} against {l1} (yearly count): {words}",
        ),
    ]
    out += [_extreme(monthly, w, label, window) for w in ("highest", "lowest")]
    for g in ("charged_summonsed", "caution_warning"):
        row = groups[groups["group"] == g].iloc[0]
        out.append(
            Estimate(
                name=g,
                estimate=int(row["count"]),
                scale="count",
                method=_METHOD,
                label=f"{label} whose last outcome was '{row['group_label'].lower()}', {window}",
            )
        )
    return out


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym (``ASB``)."""
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _window_words(months: pd.DatetimeIndex) -> str:
    return f"{month_words(months.min())} to {month_words(months.max())}"


def _truth(ctx: RunContext, synthetic: bool, data: ProfileData) -> dict[str, float] | None:
    """On the synthetic default, the generator's exact drug calibration, when this profile
    is the calibrated one (drug offences, the calibration window, its two years)."""
    if not synthetic or not data.include_unlocated:
        return None
    path = config.synthetic_dir() / "truth.json"
    if not path.exists():
        return None
    cal = json.loads(path.read_text()).get("calibration", {}).get("drugs")
    if not cal or list(ctx.params.data.crime_types or []) != [cal.get("crime_type")]:
        return None
    first, last = data.months.min(), data.months.max()
    calibrated = [f"{first:%Y-%m}", f"{last:%Y-%m}"] == list(cal["window"]) and data.years == (
        first,
        first + pd.DateOffset(months=12),
    )
    if not calibrated:
        return None
    by_year = list(cal["by_year"].values())
    truth = {
        "total": float(cal["total"]),
        "year_1_total": float(by_year[0]),
        "year_2_total": float(by_year[1]),
        "percent_change": by_year[1] / by_year[0],
        "highest_month": float(cal["max"]["count"]),
        "lowest_month": float(cal["min"]["count"]),
    }
    outcomes = cal.get("outcomes", {})
    if outcomes.get("exact"):
        truth["charged_summonsed"] = float(outcomes["charged_summonsed"])
        truth["caution_warning"] = float(outcomes["caution_warning"])
    return truth


def _monthly(data: ProfileData) -> pd.DataFrame:
    """The monthly table, each month tagged with its comparison year."""
    located = data.panel.groupby("month")["count"].sum()
    unlocated = data.unlocated.groupby("month")["count"].sum()
    monthly = monthly_table(located, unlocated, data.include_unlocated)
    monthly["year"] = year_of(monthly["month"], data.years).to_numpy()
    labels = {k: year_label(y) for k, y in zip(YEARS, data.years, strict=True)}
    monthly["year_label"] = monthly["year"].map(labels)
    return monthly


def _years(monthly: pd.DataFrame, data: ProfileData) -> pd.DataFrame:
    """``year, label, start, end, count`` for the two comparison years."""
    return pd.DataFrame(
        [
            {
                "year": key,
                "label": year_label(start),
                "start": start,
                "end": year_months(start)[-1],
                "count": int(monthly.loc[monthly["year"] == key, "count"].sum()),
            }
            for key, start in zip(YEARS, data.years, strict=True)
        ]
    )


def _crime_types(data: ProfileData) -> pd.DataFrame:
    """Crime types compared across the years, with their window totals and shares."""
    frames = [data.panel[["crime_type", "month", "count"]]]
    if data.include_unlocated:
        frames.append(data.unlocated[["crime_type", "month", "count"]])
    by_type = pd.concat(frames).groupby(["crime_type", "month"], as_index=False)["count"].sum()
    table = two_year_table(by_type, "crime_type", data.years)
    window = by_type.groupby("crime_type")["count"].sum()
    table["window_total"] = table["crime_type"].map(window).astype(int)
    table["share"] = table["window_total"] / max(int(window.sum()), 1)
    return table


def _outcomes(data: ProfileData) -> pd.DataFrame:
    """Last outcome categories over the whole window."""
    frames = [data.outcomes[["last_outcome", "count"]]]
    if data.include_unlocated:
        frames.append(data.unlocated[["last_outcome", "count"]])
    return outcome_table(pd.concat(frames))


def run(ctx: RunContext) -> EvaluationResults:
    """Build the profile's tables and estimates and fill in the results contract."""
    params = ctx.params
    assert isinstance(params, ProfileParams)
    data = prepare(ctx)
    label = params.outcome.label
    months = data.months
    monthly = _monthly(data)
    years = _years(monthly, data)
    by_area = data.panel.groupby(["area", "month"], as_index=False)["count"].sum()
    sensitive = bool(SENSITIVE_CRIME_TYPES & set(params.data.crime_types or config.CRIME_TYPES))
    areas, area_info = area_table(by_area, data.years, sensitive=sensitive)
    crime_types = _crime_types(data)
    outcomes = _outcomes(data)
    groups = outcome_group_table(outcomes)
    window = _window_words(months)
    estimates = _estimates(label, monthly, years, groups, window)
    series = {
        "primary": Series(
            periods=[common.period_label(m) for m in monthly["month"]],
            observed=[float(v) for v in monthly["count"]],
            label=label,
            unit="crimes per month",
        )
    }
    analysed = data.panel.rename(columns={"month": "period"})
    return EvaluationResults(
        name=ctx.name,
        title=params.title,
        design="profile",
        synthetic=data.counts.synthetic,
        outcome=Outcome(
            label=label,
            crime_types=params.data.crime_types or [],
            unit="crimes per month",
            measure=params.outcome.measure,
        ),
        periods=Periods(
            frequency="month",
            data_start=common.period_label(months.min()),
            data_end=common.period_label(months.max()),
        ),
        headline="percent_change" if years["count"].iloc[0] > 0 else None,
        estimates=estimates,
        series=series,
        tables={
            "monthly": _records(monthly),
            "years": _records(years),
            "areas": _records(areas),
            "crime_types": _records(crime_types),
            "outcomes": _records(outcomes),
            "outcome_groups": _records(groups),
        },
        diagnostics={
            "area_level": params.profile.area_level,
            "top_n": params.profile.top_n,
            "areas": int(data.panel["area"].nunique()),
            "area_cells_hidden": area_info["hidden_cells"],
            "no_location_included": data.include_unlocated,
            "sensitive_suppression": sensitive,
        },
        data_quality={
            "records_without_location": data.counts.no_location,
            "records_outside_areas": data.outside_areas,
        },
        warnings=_warnings(data, monthly, area_info),
        notes=_notes(
            params, data, dict(zip(years["year"], years["label"], strict=True)), sensitive
        ),
        truth=_truth(ctx, data.counts.synthetic, data),
        provenance=common.provenance(ctx, data.counts, analysed),
    )


def _warnings(data: ProfileData, monthly: pd.DataFrame, area_info: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if not data.include_unlocated:
        if data.counts.no_location:
            out.append(
                f"{data.counts.no_location:,} records had no location and "
                f"{data.outside_areas:,} lay outside the profiled areas; records without a "
                "location cannot be told apart between these areas and the rest of the "
                "data, so every figure here leaves them out."
            )
        else:
            out.append(
                f"{data.outside_areas:,} records lay outside the profiled areas and are left out."
            )
    small = monthly[(monthly["count"] > 0) & (monthly["count"] <= disclosure.THRESHOLD_HIGH)]
    if not small.empty:
        out.append(
            f"{len(small)} month(s) have fewer than {disclosure.THRESHOLD_HIGH + 1} records; "
            "review the monthly series before publishing it."
        )
    if area_info["hide_year_totals"]:
        out.append(
            "A hidden area count could be worked out from the year total of the areas; "
            "do not publish area totals by year next to the area table."
        )
    return out


def _notes(
    params: ProfileParams, data: ProfileData, year_labels: dict[str, str], sensitive: bool
) -> list[str]:
    y1, y2 = data.years
    level = params.profile.area_level
    notes = [
        "A descriptive profile of recorded crime: counts, not estimates of an effect. "
        "Changes between years are not tested against chance and show no cause.",
        f"Years compared: {year_labels['year_1']} ({month_words(y1)} to "
        f"{month_words(year_months(y1)[-1])}) and {year_labels['year_2']} "
        f"({month_words(y2)} to {month_words(year_months(y2)[-1])}).",
        (
            "City-wide figures include records with no location (as police totals do); "
            f"the {level} table cannot, so its totals are smaller."
            if data.include_unlocated
            else "All figures count located records in the profiled areas only."
        ),
        f"Areas are police.uk LSOAs grouped to {level}; area-by-year counts of 1 to "
        f"{disclosure.SENSITIVE_THRESHOLD_HIGH if sensitive else disclosure.THRESHOLD_HIGH} "
        "are hidden, with further counts hidden so they cannot be worked out from totals.",
        "Outcome groups: 'charged or summonsed' is every court route (awaiting or with a "
        "court result); 'caution or warning' is cautions, drugs possession warnings, penalty "
        "notices and local resolutions. The last outcome can change after the data were "
        "extracted: recent crimes are more often still open.",
    ]
    if params.outcome.measure == "activity":
        notes.append(
            "This outcome measures police activity: more enforcement records more offences, so "
            "a rise can mean more policing rather than more crime, and a fall less policing."
        )
    return notes
