"""Zero-filled area x month x crime-type panels from the aggregated counts.

police.uk files list only crimes that happened, so a month with no crime in an area has no
row; here it becomes a zero. The zero-fill is a cross join of the area, month and crime-type
universes left-joined to the aggregated counts, done in DuckDB so it scales to every LSOA
in England and Wales.

* **Areas**: every area in the lookup when one is given (LSOAs grouped by ``group_col``, or
  the ``lookup_key`` LSOAs themselves), else every LSOA seen in the database.
* **Months**: the requested window, which must be fully ingested, else every ingested month.
* **Crime types**: the requested ones (old names accepted), else the 14 current types plus
  any other type found in the data.

Rows with no location cannot be placed in an area and are left out of every panel; their
number in a window is :func:`no_location_count`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from evaluation import config
from evaluation.data.database import scalar
from evaluation.errors import InputError

#: ``crime_type`` value of a panel summed over the selected types (``by_crime_type=False``).
ALL_TYPES_LABEL = "All selected crime types"
#: ``last_outcome`` value for rows whose file gives no outcome (anti-social behaviour).
NO_OUTCOME_LABEL = "No outcome recorded"

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})(?:-\d{2})?$")
_POP_COL_RE = re.compile(r"^pop(?:ulation)?_?(?:mid)?_?(\d{4})$", re.IGNORECASE)


@dataclass(frozen=True)
class _Spec:
    """The resolved universes and names of the registered helper tables."""

    months: list[date]
    crime_types: list[str]
    areas_table: str  # columns: lsoa_code, area
    months_table: str  # column: month
    types_table: str  # columns: crime_type, ti (rank of the name: the sort key)
    area_list_table: str  # columns: area (the area universe), ai (rank: the sort key)
    lsoa_index_table: str  # columns: lsoa_code, ai (the LSOAs of the universe's areas)
    area_names: list[str]  # the area universe, sorted: ai is the position here


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def build_panel(
    con: duckdb.DuckDBPyConnection,
    *,
    crime_types: Sequence[str] | None = None,
    months: tuple[str, str] | None = None,
    lookup: Path | str | pd.DataFrame | None = None,
    lookup_key: str = "lsoa11_code",
    group_col: str | None = None,
    areas: Sequence[str] | None = None,
    population: Path | str | None = None,
    by_crime_type: bool = True,
) -> pd.DataFrame:
    """Zero-filled counts per area, month and crime type.

    Parameters
    ----------
    con
        A connection from :func:`evaluation.data.database.connect`.
    crime_types
        Crime types to keep (current or old police.uk names); all when None.
    months
        Inclusive window ``("YYYY-MM", "YYYY-MM")``; every ingested month when None.
    lookup
        CSV path or frame mapping LSOAs (``lookup_key``) to larger areas (``group_col``).
    lookup_key
        Lookup column holding the LSOA codes of the database.
    group_col
        Lookup column naming the areas (e.g. ``ward_name``); the LSOAs themselves when None.
    areas
        Keep only these areas (values of ``group_col``, or LSOA codes).
    population
        CSV with the LSOA key (``lookup_key`` or ``lsoa_code``) and either ``population`` or
        mid-year columns ``pop_mid<YYYY>``; each month takes the latest mid-year estimate
        not after its year (the earliest when none is). Summed over each area's LSOAs.
    by_crime_type
        One series per crime type when True; summed over the selected types, labelled
        :data:`ALL_TYPES_LABEL`, when False.

    Returns
    -------
    pandas.DataFrame
        ``area, month, crime_type, count`` (+ ``population``), sorted, one row for every
        area x month x crime type.

    Raises
    ------
    InputError
        Unknown areas or crime types, a window with months not ingested, a bad lookup or
        population file.
    """
    with _panel_sql(
        con,
        crime_types,
        months,
        lookup,
        lookup_key,
        group_col,
        areas,
        population,
        by_crime_type,
        ranks=True,
    ) as (sql, spec):
        ranked = con.execute(sql).df()
    # DuckDB hands over numbers only; names come from the (small) universes by position:
    # turning millions of VARCHAR values into Python strings took half the time
    type_names = sorted(spec.crime_types) if by_crime_type else [ALL_TYPES_LABEL]
    panel = pd.DataFrame(
        {
            "area": _take(spec.area_names, ranked["ai"]),
            "month": pd.to_datetime(ranked["month"]),
            "crime_type": _take(type_names, ranked["ti"]),
            "count": ranked["count"],
        }
    )
    if "population" in ranked:
        panel["population"] = ranked["population"]
    return panel


def _take(names: list[str], positions: pd.Series) -> pd.api.extensions.ExtensionArray:
    """``names[i]`` for each position, typed as pandas types text (as DuckDB's ``df()``)."""
    if not names:  # no rows: DuckDB's df() gives an empty object column
        return pd.Series([], dtype=object).array
    return pd.Series(names).array.take(positions.to_numpy())


def export_panel(
    con: duckdb.DuckDBPyConnection,
    out: Path | str,
    *,
    crime_types: Sequence[str] | None = None,
    months: tuple[str, str] | None = None,
    lookup: Path | str | pd.DataFrame | None = None,
    lookup_key: str = "lsoa11_code",
    group_col: str | None = None,
    areas: Sequence[str] | None = None,
    population: Path | str | None = None,
    by_crime_type: bool = True,
) -> Path:
    """Write the panel of :func:`build_panel` to ``out`` as CSV, atomically.

    DuckDB writes the CSV straight from SQL (no DataFrame in between) to a temporary file
    beside ``out`` that then replaces it, so a failed export never leaves half a file.
    ``month`` is written as ``YYYY-MM``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _panel_sql(
        con, crime_types, months, lookup, lookup_key, group_col, areas, population, by_crime_type
    ) as (sql, _):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            con.execute(
                f"""COPY (SELECT * REPLACE (strftime(month, '%Y-%m') AS month) FROM ({sql}))
                    TO {_quote(str(tmp))} (HEADER, DELIMITER ',')"""
            )
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def no_location_count(
    con: duckdb.DuckDBPyConnection,
    crime_types: Sequence[str] | None = None,
    months: tuple[str, str] | None = None,
) -> int:
    """Number of rows with no location (no LSOA) for the crime types and window."""
    types = _resolve_crime_types(con, crime_types)
    month_list = _resolve_months(con, months)
    return int(
        scalar(
            con,
            """SELECT coalesce(sum(n), 0) FROM counts
               WHERE lsoa_code IS NULL AND list_contains(?, crime_type)
                 AND list_contains(CAST(? AS DATE[]), month)""",
            [types, month_list],
        )
    )


def outcome_counts(
    con: duckdb.DuckDBPyConnection,
    crime_types: Sequence[str] | None = None,
    months: tuple[str, str] | None = None,
    lookup: Path | str | pd.DataFrame | None = None,
    group_col: str | None = None,
    areas: Sequence[str] | None = None,
    *,
    lookup_key: str = "lsoa11_code",
    by_crime_type: bool = True,
) -> pd.DataFrame:
    """Counts by last outcome category over the window, per area (and crime type).

    Returns ``area, crime_type, last_outcome, count`` (not zero-filled: outcome categories
    are open-ended), sorted by area, crime type and descending count. Rows whose file gives
    no outcome (anti-social behaviour) are labelled :data:`NO_OUTCOME_LABEL`.
    """
    with _universes(
        con, crime_types, months, lookup, lookup_key, group_col, areas, by_crime_type
    ) as spec:
        type_expr = "c.crime_type" if by_crime_type else _quote(ALL_TYPES_LABEL)
        return con.execute(
            f"""SELECT l.area, {type_expr} AS crime_type,
                       coalesce(c.last_outcome, {_quote(NO_OUTCOME_LABEL)}) AS last_outcome,
                       CAST(sum(c.n) AS BIGINT) AS count
                FROM counts c JOIN {spec.areas_table} l ON c.lsoa_code = l.lsoa_code
                WHERE {_month_filter(spec)}
                  AND c.crime_type IN (SELECT crime_type FROM {spec.types_table})
                GROUP BY ALL ORDER BY area, crime_type, count DESC, last_outcome"""
        ).df()


# --------------------------------------------------------------------------------------
# SQL building
# --------------------------------------------------------------------------------------


@contextmanager
def _panel_sql(
    con: duckdb.DuckDBPyConnection,
    crime_types: Sequence[str] | None,
    months: tuple[str, str] | None,
    lookup: Path | str | pd.DataFrame | None,
    lookup_key: str,
    group_col: str | None,
    areas: Sequence[str] | None,
    population: Path | str | None,
    by_crime_type: bool,
    *,
    ranks: bool = False,
) -> Iterator[tuple[str, _Spec]]:
    """Yield the zero-filled panel query while its helper tables are registered.

    With ``ranks`` the query returns ``ai`` and ``ti``, positions in ``spec.area_names``
    and in the sorted crime types, in place of ``area`` and ``crime_type``.
    """
    with _universes(
        con, crime_types, months, lookup, lookup_key, group_col, areas, by_crime_type
    ) as spec:
        # Areas and crime types are joined and sorted by their integer ranks, not by name:
        # at 35,000 LSOAs x 120 months x 14 types a sort on strings dominates the query
        types_out = (
            f"SELECT crime_type, ti FROM {spec.types_table}"
            if by_crime_type
            else f"SELECT {_quote(ALL_TYPES_LABEL)} AS crime_type, 0 AS ti"
        )
        sql = f"""
            WITH agg AS (
                SELECT x.ai, c.month, {"t.ti" if by_crime_type else "0"} AS ti,
                       sum(c.n) AS count
                FROM counts c
                JOIN {spec.lsoa_index_table} x ON c.lsoa_code = x.lsoa_code
                JOIN {spec.types_table} t ON c.crime_type = t.crime_type
                WHERE {_month_filter(spec)}
                GROUP BY ALL
            )
            SELECT {"a.ai, m.month, t.ti" if ranks else "a.area, m.month, t.crime_type"},
                   CAST(coalesce(agg.count, 0) AS BIGINT) AS count{{pop_col}}
            FROM {spec.area_list_table} a
            CROSS JOIN {spec.months_table} m
            CROSS JOIN ({types_out}) t
            LEFT JOIN agg ON agg.ai = a.ai AND agg.month = m.month AND agg.ti = t.ti{{pop_join}}
            ORDER BY a.ai, m.month, t.ti"""
        if population is None:
            yield sql.format(pop_col="", pop_join=""), spec
            return
        with _population_tables(con, Path(population), spec, lookup_key) as pop_table:
            yield (
                sql.format(
                    pop_col=", p.population",
                    pop_join=f"\n            LEFT JOIN {pop_table} p ON a.area = p.area "
                    "AND m.month = p.month",
                ),
                spec,
            )


@contextmanager
def _universes(
    con: duckdb.DuckDBPyConnection,
    crime_types: Sequence[str] | None,
    months: tuple[str, str] | None,
    lookup: Path | str | pd.DataFrame | None,
    lookup_key: str,
    group_col: str | None,
    areas: Sequence[str] | None,
    by_crime_type: bool,
) -> Iterator[_Spec]:
    """Resolve areas, months and crime types and register them as tables for the query."""
    types = _resolve_crime_types(con, crime_types)
    month_list = _resolve_months(con, months)
    _warn_on_mixed_coverage(con, month_list)
    tag = uuid.uuid4().hex[:8]
    names = {k: f"_panel_{k}_{tag}" for k in ("areas", "months", "types", "arealist", "lsoas")}
    registered: list[str] = []
    try:
        _register(con, names["months"], pd.DataFrame({"month": month_list}), registered)
        ranks = {name: i for i, name in enumerate(sorted(types))}
        type_frame = pd.DataFrame(
            {"crime_type": pd.Series(types, dtype=object), "ti": [ranks[t] for t in types]}
        )
        _register(con, names["types"], type_frame, registered)
        if lookup is None:
            if group_col is not None:
                raise InputError(None, "grouping needs a lookup file", key="group_col")
            # the LSOAs in the data, read once (a view would rescan counts at every use)
            codes = pd.Series(
                [
                    r[0]
                    for r in con.execute(
                        "SELECT DISTINCT lsoa_code FROM counts WHERE lsoa_code IS NOT NULL"
                    ).fetchall()
                ],
                dtype=object,
            )
            frame = pd.DataFrame({"lsoa_code": codes, "area": codes})
            _register(con, names["areas"], frame, registered)
        else:
            frame = _lookup_frame(lookup, lookup_key, group_col)
            _register(con, names["areas"], frame, registered)
            _check_lookup_matches(con, names["areas"], lookup, lookup_key)
        universe = sorted(set(frame["area"]))
        if areas is not None:
            wanted = list(dict.fromkeys(str(a) for a in areas))
            unknown = sorted(set(wanted) - set(universe))
            if unknown:
                source = lookup if isinstance(lookup, (str, Path)) else None
                where = (
                    f"the lookup's {group_col or lookup_key}"
                    if lookup is not None
                    else ("the LSOAs in the database")
                )
                raise InputError(
                    source,
                    f"unknown area(s) not in {where}: "
                    + ", ".join(unknown[:20])
                    + (" ..." if len(unknown) > 20 else ""),
                    key="areas",
                )
            universe = sorted(wanted)
        rank = {area: i for i, area in enumerate(universe)}
        area_list = pd.DataFrame(
            {"area": pd.Series(universe, dtype=object), "ai": range(len(universe))}
        )
        _register(con, names["arealist"], area_list, registered)
        kept = frame[frame["area"].isin(rank)]
        lsoas = pd.DataFrame(
            {
                "lsoa_code": kept["lsoa_code"].astype(object),
                "ai": kept["area"].map(rank).astype("int64"),
            }
        )
        _register(con, names["lsoas"], lsoas, registered)
        yield _Spec(
            month_list,
            types,
            names["areas"],
            names["months"],
            names["types"],
            names["arealist"],
            names["lsoas"],
            universe,
        )
    finally:
        for name in registered:
            _drop(con, name)


def _month_filter(spec: _Spec) -> str:
    """``counts`` rows in the month universe.

    The constant range lets DuckDB skip row groups outside the window (files are mostly
    ingested in month order); the semi-join keeps only the listed months.
    """
    first, last = min(spec.months), max(spec.months)
    return (
        f"c.month BETWEEN DATE '{first:%Y-%m-%d}' AND DATE '{last:%Y-%m-%d}' "
        f"AND c.month IN (SELECT month FROM {spec.months_table})"
    )


def _register(
    con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, registered: list[str]
) -> None:
    con.register(name, frame)
    registered.append(name)


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Remove a registered frame or temporary view."""
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)
    con.execute(f"DROP VIEW IF EXISTS {name}")


# --------------------------------------------------------------------------------------
# Universes
# --------------------------------------------------------------------------------------


def _ingested_months(con: duckdb.DuckDBPyConnection) -> list[date]:
    rows = con.execute("SELECT DISTINCT month FROM counts ORDER BY month").fetchall()
    if not rows:
        raise InputError(None, "no police.uk data in the database: ingest some first")
    return [r[0] for r in rows]


def _parse_month(text: str | date, key: str) -> date:
    if isinstance(text, date):
        return date(text.year, text.month, 1)
    match = _MONTH_RE.match(str(text).strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InputError(None, f"{text!r} is not a month (YYYY-MM)", key=key)
    return date(int(match.group(1)), int(match.group(2)), 1)


def _resolve_months(con: duckdb.DuckDBPyConnection, months: tuple[str, str] | None) -> list[date]:
    """The month universe: the window (all ingested) or every ingested month."""
    ingested = _ingested_months(con)
    if months is None:
        gaps = _month_range(ingested[0], ingested[-1])
        if len(gaps) != len(ingested):
            _warn(
                f"ingested months run from {ingested[0]:%Y-%m} to {ingested[-1]:%Y-%m} with "
                f"{len(gaps) - len(ingested)} month(s) missing; the panel has only the "
                "ingested months",
            )
        return ingested
    if len(months) != 2:
        raise InputError(None, "give the window as (first month, last month)", key="months")
    start, end = _parse_month(months[0], "months"), _parse_month(months[1], "months")
    if end < start:
        raise InputError(None, f"window ends ({end:%Y-%m}) before it starts", key="months")
    wanted = _month_range(start, end)
    missing = sorted(set(wanted) - set(ingested))
    if missing:
        shown = ", ".join(f"{m:%Y-%m}" for m in missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise InputError(
            None,
            f"no police.uk data ingested for {len(missing)} month(s) of the window: {shown}",
            key="months",
        )
    return wanted


def _month_range(start: date, end: date) -> list[date]:
    out, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _resolve_crime_types(
    con: duckdb.DuckDBPyConnection, crime_types: Sequence[str] | None
) -> list[str]:
    """Current names for the requested types; all known types when None."""
    in_data = [r[0] for r in con.execute("SELECT DISTINCT crime_type FROM counts").fetchall()]
    known = list(config.CRIME_TYPES) + sorted(set(in_data) - set(config.CRIME_TYPES))
    if crime_types is None:
        return known
    if isinstance(crime_types, str):
        crime_types = [crime_types]
    lower = {t.lower(): t for t in known}
    lower.update({old.lower(): new for old, new in config.OLD_CRIME_TYPES.items()})
    out, unknown = [], []
    for name in crime_types:
        current = lower.get(str(name).strip().lower())
        if current is None:
            unknown.append(str(name))
        elif current not in out:
            out.append(current)
    if unknown:
        raise InputError(
            None,
            "unknown crime type(s): "
            + ", ".join(repr(u) for u in unknown)
            + "; known: "
            + ", ".join(known),
            key="crime_types",
        )
    return out


def _warn_on_mixed_coverage(con: duckdb.DuckDBPyConnection, month_list: list[date]) -> None:
    """Warn when forces cover different months of the window or LSOA vintages differ.

    A month missing for one force would otherwise read as zeros in its areas.
    """
    rows = con.execute(
        """SELECT force, count(DISTINCT m) FILTER (WHERE list_contains(CAST(? AS DATE[]), m))
           FROM (SELECT force, unnest(months) AS m FROM files) GROUP BY force ORDER BY force""",
        [month_list],
    ).fetchall()
    short = [f"{force} ({n}/{len(month_list)})" for force, n in rows if n < len(month_list)]
    if short:
        _warn(
            "some forces lack months of the window, which read as zeros in their areas: "
            + ", ".join(short),
        )
    vintages = con.execute(
        """SELECT DISTINCT stored_vintage FROM files
           WHERE list_has_any(months, CAST(? AS DATE[]))""",
        [month_list],
    ).fetchall()
    if len(vintages) > 1:
        _warn(
            "the window mixes files stored with 2011 and 2021 LSOA codes; ingest the 2021 "
            "files with a crosswalk so series run on across the break",
        )


# --------------------------------------------------------------------------------------
# Lookup and population files
# --------------------------------------------------------------------------------------


def _read_small_csv(path: Path, what: str) -> pd.DataFrame:
    """Read a lookup-sized CSV as text, turning read failures into InputError."""
    if not path.is_file():
        raise InputError(path, f"{what} file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(path, f"cannot read the {what} as CSV: {err}") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _lookup_frame(
    lookup: Path | str | pd.DataFrame, lookup_key: str, group_col: str | None
) -> pd.DataFrame:
    """``lsoa_code, area`` from a lookup, checked: each LSOA in one area only."""
    if isinstance(lookup, pd.DataFrame):
        source, frame = None, lookup.copy()
    else:
        source = Path(lookup)
        frame = _read_small_csv(source, "lookup")
    for key in (lookup_key, group_col):
        if key is not None and key not in frame.columns:
            raise InputError(
                source,
                f"column not in the lookup (columns: {', '.join(map(str, frame.columns))})",
                key=key,
            )
    area_col = group_col or lookup_key
    out = pd.DataFrame(
        {
            "lsoa_code": frame[lookup_key].astype(str).str.strip(),
            "area": frame[area_col].astype(str).str.strip(),
        }
    )
    out = out[(out["lsoa_code"] != "") & (out["area"] != "")].drop_duplicates()
    clash = out["lsoa_code"].duplicated(keep=False)
    if clash.any():
        first = out.loc[clash, "lsoa_code"].iloc[0]
        raise InputError(source, f"LSOA {first} is in more than one {area_col}", key=lookup_key)
    return out.astype(object).reset_index(drop=True)


def _check_lookup_matches(
    con: duckdb.DuckDBPyConnection,
    table: str,
    lookup: Path | str | pd.DataFrame,
    lookup_key: str,
) -> None:
    """Fail when no lookup LSOA is in the data (wrong key or vintage); warn when some miss."""
    # fetchall, not fetchone: DuckDB refuses to register a frame while a result is open
    total, seen = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE lsoa_code IN (
                SELECT DISTINCT lsoa_code FROM counts WHERE lsoa_code IS NOT NULL))
            FROM {table}"""
    ).fetchall()[0]
    source = None if isinstance(lookup, pd.DataFrame) else lookup
    if total and not seen:
        raise InputError(
            source,
            "no LSOA of the lookup appears in the database (wrong column or LSOA vintage?)",
            key=lookup_key,
        )
    if seen < total:
        _warn(
            f"{total - seen} of {total} lookup LSOAs have no recorded crime in the database; "
            "their counts are zero",
        )


@contextmanager
def _population_tables(
    con: duckdb.DuckDBPyConnection, path: Path, spec: _Spec, lookup_key: str
) -> Iterator[str]:
    """Register ``area, month, population`` (area sums of LSOA mid-year estimates)."""
    frame = _read_small_csv(path, "population")
    key = next(
        (c for c in (lookup_key, "lsoa_code", "lsoa11_code", "lsoa21_code") if c in frame.columns),
        None,
    )
    if key is None:
        raise InputError(path, "no LSOA code column in the population file", key=lookup_key)
    by_year = {int(m.group(1)): c for c in frame.columns if (m := _POP_COL_RE.match(c))}
    if "population" in frame.columns:
        by_year = {0: "population"}
    if not by_year:
        raise InputError(
            path,
            "no population column (expected 'population' or 'pop_mid<YYYY>')",
            key="population",
        )
    long = []
    for year, col in by_year.items():
        values = pd.to_numeric(frame[col].replace("", None), errors="coerce")
        bad = frame[col].ne("") & values.isna()
        if bad.any():
            raise InputError(
                path,
                f"non-numeric population {frame[col][bad].iloc[0]!r}",
                key=col,
                line=int(bad.idxmax()) + 2,
            )
        long.append(
            pd.DataFrame({"lsoa_code": frame[key].str.strip(), "year": year, "pop": values})
        )
    pops = pd.concat(long, ignore_index=True)
    years = sorted(by_year)
    month_year = pd.DataFrame(
        {
            "month": spec.months,
            "year": [max((y for y in years if y <= m.year), default=years[0]) for m in spec.months],
        }
    )
    tag = uuid.uuid4().hex[:8]
    pop_name, my_name, out_name = (f"_panel_{k}_{tag}" for k in ("pop", "monthyear", "areapop"))
    con.register(pop_name, pops)
    con.register(my_name, month_year)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW {out_name} AS
                SELECT l.area, my.month,
                       CASE WHEN count(p.pop) = count(*) THEN sum(p.pop) END AS population
                FROM {spec.areas_table} l
                CROSS JOIN {my_name} my
                LEFT JOIN {pop_name} p ON p.lsoa_code = l.lsoa_code AND p.year = my.year
                GROUP BY ALL"""
        )
        missing = scalar(
            con, f"SELECT count(DISTINCT area) FROM {out_name} WHERE population IS NULL"
        )
        if missing:
            _warn(
                f"{missing} area(s) have LSOAs without a population estimate in {path.name}; "
                "their population is missing",
            )
        yield out_name
    finally:
        _drop(con, out_name)
        _drop(con, pop_name)
        _drop(con, my_name)


def _warn(message: str) -> None:
    """Warn, pointing at the first caller outside this module."""
    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename in (
        __file__,
        contextlib.__file__,
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
