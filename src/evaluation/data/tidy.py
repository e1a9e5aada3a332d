"""Load a tidy CSV (one row per unit and period) for evaluations that do not use police.uk.

The file can have any columns; the caller names which hold the unit, the time, the outcome
and, optionally, an exposure offset. Time may be a year (``2020``), a quarter (``2020Q1``,
``2020-Q1``, ``Q1 2020``), a month (``2020-01``, ``2020-01-15``, ``Jan 2020``, ``01/2020``) or
an integer period (``1, 2, 3 ...``). Every problem is a one-line :class:`InputError` naming
the file and the column or line at fault.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.errors import InputError

#: ``unit`` value when the file holds a single series (``unit=None``).
SINGLE_UNIT = "all"

#: Integers in this range read as calendar years; others as integer periods.
_YEAR_RANGE = (1800, 2200)
_QUARTER_RES = (
    re.compile(r"^(?P<year>\d{4})\s*[-/ ]?\s*Q(?P<q>[1-4])$", re.IGNORECASE),
    re.compile(r"^Q(?P<q>[1-4])\s*[-/ ]?\s*(?P<year>\d{4})$", re.IGNORECASE),
)
#: Month formats tried in order; the first that reads every value wins.
_MONTH_FORMATS = (
    "%Y-%m",
    "%Y-%m-%d",
    "%Y/%m",
    "%Y/%m/%d",
    "%b %Y",
    "%B %Y",
    "%b-%Y",
    "%B-%Y",
    "%b-%y",
    "%m/%Y",
    "%m-%Y",
    "%d/%m/%Y",
    "%Y%m",
)
FREQUENCIES = ("year", "quarter", "month", "period")
#: Byte-order marks of text a CSV reader cannot read as UTF-8 (UTF-32 first: it starts
#: like UTF-16).
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


@dataclass
class TidyData:
    """A loaded tidy file.

    Attributes
    ----------
    data
        Columns ``unit`` (str), ``period`` (``pd.Timestamp`` at the start of the year,
        quarter or month; ``int`` for integer periods), ``outcome`` (float), ``offset``
        (float; NaN when no offset column was named), then the ``extra`` columns as read.
        Sorted by unit and period; the index holds each row's 1-based line in the file.
    frequency
        ``"year"``, ``"quarter"``, ``"month"`` or ``"period"``.
    source
        The file read.
    warnings
        Things the caller may want to show (e.g. the encoding fallback).
    """

    data: pd.DataFrame
    frequency: str
    source: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def has_offset(self) -> bool:
        """Whether an offset column was loaded."""
        return bool(self.data["offset"].notna().any())

    @property
    def units(self) -> list[str]:
        """The distinct units, sorted."""
        return sorted(self.data["unit"].unique())


def load_tidy(
    path: Path | str,
    *,
    unit: str | None,
    time: str,
    outcome: str,
    offset: str | None = None,
    extra: Sequence[str] = (),
    frequency: str | None = None,
) -> TidyData:
    """Read and check a tidy CSV.

    Parameters
    ----------
    path
        The CSV file.
    unit
        Column naming the units (areas, schools ...); None for a single series.
    time
        Column holding the time.
    outcome
        Column holding the outcome (counts or rates).
    offset
        Column holding an exposure (population, days ...) used as a log offset; must be > 0.
    extra
        Further columns to carry along (covariates, treatment flags).
    frequency
        Force the reading of ``time``: ``"year"``, ``"quarter"``, ``"month"`` or
        ``"period"``; detected when None (integers between 1800 and 2200 read as years).

    Raises
    ------
    InputError
        Empty or binary file, undecodable text, a missing column (named as the key), an
        unparseable time, a non-numeric outcome or offset, or a repeated unit-period (each
        naming the line).
    """
    path = Path(path)
    if frequency is not None and frequency not in FREQUENCIES:
        raise InputError(path, f"unknown frequency {frequency!r}", key="frequency")
    notes: list[str] = []
    raw = _read(path, notes)
    columns = {"time": time, "outcome": outcome}
    if unit is not None:
        columns["unit"] = unit
    if offset is not None:
        columns["offset"] = offset
    resolved = {role: _column(raw, name, path) for role, name in columns.items()}
    extras = {name: _column(raw, name, path) for name in extra}

    periods, freq = _parse_time(raw[resolved["time"]], path, resolved["time"], frequency)
    out = pd.DataFrame(index=raw.index)
    out["unit"] = raw[resolved["unit"]].str.strip() if unit is not None else SINGLE_UNIT
    if unit is not None:
        _no_blanks(out["unit"], path, resolved["unit"])
    out["period"] = periods
    out["outcome"] = _numeric(raw[resolved["outcome"]], path, resolved["outcome"])
    if offset is not None:
        values = _numeric(raw[resolved["offset"]], path, resolved["offset"])
        bad = values <= 0
        if bad.any():
            line = int(values.index[bad.argmax()])
            raise InputError(path, "offset must be positive", key=resolved["offset"], line=line)
        out["offset"] = values
    else:
        out["offset"] = np.nan
    for name, col in extras.items():
        out[name] = raw[col]
    dup = out.duplicated(["unit", "period"], keep=False)
    if dup.any():
        lines = out.index[dup]
        first = out.loc[lines[0], ["unit", "period"]]
        twin = out.index[
            (out["unit"] == first["unit"]) & (out["period"] == first["period"])
        ].tolist()
        raise InputError(
            path,
            f"unit {first['unit']!r} has period {_show(first['period'])} more than once "
            f"(also line {twin[0]})",
            line=int(twin[1]),
        )
    in_time_order = out.groupby("unit", sort=False)["period"].agg(
        lambda p: p.is_monotonic_increasing
    )
    unsorted = in_time_order.index[~in_time_order.to_numpy()]
    if len(unsorted):
        notes.append(
            f"{path.name}: the rows of {len(unsorted)} unit(s) (first {unsorted[0]!r}) were "
            "not in time order; they were sorted"
        )
    out = out.sort_values(["unit", "period"], kind="stable")
    out.index.name = "line"
    return TidyData(out, freq, path, notes)


def validate_counts(data: TidyData, *, integer: bool = True) -> None:
    """Check the outcome is a count: not negative, and whole numbers when ``integer``.

    Raises
    ------
    InputError
        Naming the first line at fault.
    """
    values = data.data["outcome"]
    checks = [(values < 0, "negative count {value:g}")]
    if integer:
        checks.append((values != np.round(values), "count {value:g} is not a whole number"))
    for bad, message in checks:
        if bad.any():
            line = int(bad[bad].index.min())
            raise InputError(
                data.source, message.format(value=values.loc[line]), key="outcome", line=line
            )


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _read(path: Path, notes: list[str]) -> pd.DataFrame:
    """Read every cell as text; the index is the 1-based file line of each row.

    Rows must have as many fields as the header; blank lines are skipped.
    """
    if path.is_dir():
        raise InputError(path, "is a folder, not a CSV file")
    if not path.is_file():
        what = "not a regular file (a device or a pipe?)" if path.exists() else "file not found"
        raise InputError(path, what)  # never read a device: /dev/zero has no end
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise InputError(path, f"cannot read the file: {err.strerror or err}") from None
    if not blob.strip():
        raise InputError(path, "empty file")
    for bom, name in _WIDE_BOMS:
        if blob.startswith(bom):
            raise InputError(path, f"{name} text: save it as UTF-8")
    if b"\x00" in blob[: 1 << 16]:
        raise InputError(path, "binary file, not a CSV")
    text = _decode(blob, path, notes)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise InputError(path, "empty file")
        rows, lines = [], []
        row_start = reader.line_num + 1
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                row_start = reader.line_num + 1
                continue  # blank line
            if len(cells) != len(header):
                if reader.line_num > row_start and any("\n" in cell for cell in cells):
                    # a quoted field ran over line ends: the quote never closed
                    raise InputError(
                        path,
                        "cannot read as CSV: a quote opened on this line is not closed",
                        line=row_start,
                    )
                raise InputError(
                    path,
                    f"cannot read as CSV: expected {len(header)} fields as in the header, "
                    f"found {len(cells)}",
                    line=reader.line_num,
                )
            rows.append(cells)
            lines.append(row_start)
            row_start = reader.line_num + 1
    except csv.Error as err:
        raise InputError(path, f"cannot read as CSV: {err}", line=reader.line_num) from err
    if not rows:
        raise InputError(path, "no data rows under the header")
    columns = [c.strip() for c in header]
    if len(set(columns)) != len(columns):
        twice = next(c for c in columns if columns.count(c) > 1)
        raise InputError(path, "column appears twice in the header", key=twice, line=1)
    return pd.DataFrame(rows, columns=columns, index=pd.Index(lines, name="line"), dtype=object)


def _decode(blob: bytes, path: Path, notes: list[str]) -> str:
    """UTF-8 (with or without BOM); else Windows-1252 with a warning; else fail."""
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = blob[: err.start].count(b"\n") + 1
        try:
            text = blob.decode("cp1252")
        except UnicodeDecodeError:
            raise InputError(
                path, "text is neither UTF-8 nor Windows-1252: save it as UTF-8", line=line
            ) from err
    message = f"{path.name}: not UTF-8 (line {line}); read as Windows-1252"
    notes.append(message)
    warnings.warn(message, stacklevel=4)
    return text


def _column(frame: pd.DataFrame, name: str, path: Path) -> str:
    """The frame's column for ``name``: exact, else ignoring case and surrounding spaces."""
    if name in frame.columns:
        return name
    folded = {c.lower(): c for c in frame.columns}
    if name.strip().lower() in folded:
        return folded[name.strip().lower()]
    raise InputError(path, f"column not found (columns: {', '.join(frame.columns)})", key=name)


def _no_blanks(values: pd.Series, path: Path, column: str) -> None:
    blank = values == ""
    if blank.any():
        raise InputError(path, "empty value", key=column, line=int(values.index[blank.argmax()]))


def _numeric(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Numbers from text; the first empty or non-numeric cell is an error naming its line."""
    stripped = values.str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce")
    bad = ~np.isfinite(numbers.astype(float))  # empty, text, NaN and infinity alike
    if bad.any():
        line = int(values.index[bad.argmax()])
        shown = stripped.loc[line]
        if shown == "":
            what = "missing value"
        elif pd.notna(numbers.loc[line]):  # infinity, or too large for a float
            what = f"{shown!r} is not a finite number"
        else:
            what = f"{shown!r} is not a number"
        raise InputError(path, what, key=column, line=line)
    return numbers.astype(float)


# --------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------


def _parse_time(
    values: pd.Series, path: Path, column: str, frequency: str | None
) -> tuple[pd.Series, str]:
    """Parse the time column as a whole: one reading for every row."""
    text = values.str.strip()
    _no_blanks(text, path, column)
    as_int = pd.to_numeric(text.where(text.str.fullmatch(r"[-+]?\d+"), None), errors="coerce")
    all_int = bool(as_int.notna().all())
    if frequency is None:
        if all_int:
            low, high = _YEAR_RANGE
            frequency = "year" if as_int.between(low, high).all() else "period"
        elif text.map(_quarter).notna().all():
            frequency = "quarter"
        else:
            frequency = "month"
    if frequency in ("year", "period"):
        if not all_int:
            line = int(text.index[as_int.isna().argmax()])
            raise InputError(
                path, f"time {text.loc[line]!r} is not a whole number", key=column, line=line
            )
        if frequency == "period":
            return as_int.astype("int64"), "period"
        years = as_int.astype("int64")
        return pd.to_datetime(years.astype(str) + "-01-01", format="%Y-%m-%d"), "year"
    if frequency == "quarter":
        parsed = text.map(_quarter)
        if parsed.isna().any():
            line = int(text.index[parsed.isna().argmax()])
            raise InputError(
                path,
                f"time {text.loc[line]!r} is not a quarter (e.g. 2020Q1)",
                key=column,
                line=line,
            )
        return pd.to_datetime(parsed), "quarter"
    return _parse_months(text, path, column), "month"


def _quarter(value: str) -> pd.Timestamp | None:
    for pattern in _QUARTER_RES:
        match = pattern.match(value)
        if match:
            month = 3 * (int(match.group("q")) - 1) + 1
            return pd.Timestamp(int(match.group("year")), month, 1)
    return None


def _parse_months(text: pd.Series, path: Path, column: str) -> pd.Series:
    """Month starts, using the first format that reads every value."""
    best_fmt, best = "", pd.Series(pd.NaT, index=text.index)
    for fmt in _MONTH_FORMATS:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if parsed.notna().all():
            return parsed.dt.to_period("M").dt.to_timestamp()
        if parsed.notna().sum() > best.notna().sum():
            best_fmt, best = fmt, parsed
    line = int(text.index[best.isna().argmax()])
    example = "YYYY-MM, YYYY-MM-DD, 'Jan 2020', 2020Q1, a year or a whole-number period"
    hint = f" (other rows read as {best_fmt})" if best.notna().any() else ""
    raise InputError(
        path,
        f"cannot read time {text.loc[line]!r}{hint}; expected {example}",
        key=column,
        line=line,
    )


def _show(period: object) -> str:
    if isinstance(period, pd.Timestamp):
        return period.strftime("%Y-%m-%d")
    return str(period)
