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
    fast = _read_fast(path)
    if fast is not None:
        try:
            return _assemble(fast, path, [], unit, time, outcome, offset, extra, frequency)
        except _Declined:
            pass  # something is off: the careful reader below names the line at fault
    notes: list[str] = []
    raw = _read(path, notes)
    return _assemble(raw, path, notes, unit, time, outcome, offset, extra, frequency)


class _Declined(Exception):
    """The fast reader cannot vouch for this file; read it with the careful one."""


def _assemble(
    raw: pd.DataFrame,
    path: Path,
    notes: list[str],
    unit: str | None,
    time: str,
    outcome: str,
    offset: str | None,
    extra: Sequence[str],
    frequency: str | None,
) -> TidyData:
    """Check and shape the read cells into :class:`TidyData`.

    Text columns are checked and parsed once per distinct value (a national panel has
    4 million rows but only 35,000 areas and 120 months), then spread back to the rows.
    """
    columns = {"time": time, "outcome": outcome}
    if unit is not None:
        columns["unit"] = unit
    if offset is not None:
        columns["offset"] = offset
    resolved = {role: _column(raw, name, path) for role, name in columns.items()}
    extras = {name: _column(raw, name, path) for name in extra}
    lines = raw.index.to_numpy()

    t_codes, t_text = _distinct(raw[resolved["time"]], lines, strip=True)
    parsed, freq = _parse_time(t_text, path, resolved["time"], frequency)
    # distinct texts can read as the same period ("2020-01" and "2020-01-01")
    t_codes, periods = _merge(t_codes, parsed)
    if unit is not None:
        u_codes, units = _distinct(raw[resolved["unit"]], lines, strip=True)
        _no_blanks(units, path, resolved["unit"])
    else:
        u_codes = np.zeros(len(raw), dtype=np.intp)
        units = pd.Series([SINGLE_UNIT], index=lines[:1])
    y = _numeric(raw[resolved["outcome"]], path, resolved["outcome"])
    off = np.full(len(raw), np.nan)
    if offset is not None:
        values = _numeric(raw[resolved["offset"]], path, resolved["offset"])
        bad = values <= 0
        if bad.any():
            line = int(lines[bad.argmax()])
            raise InputError(path, "offset must be positive", key=resolved["offset"], line=line)
        off = values

    key = u_codes.astype(np.int64) * len(periods) + t_codes
    _no_duplicates(key, lines, units, periods, u_codes, t_codes, path)
    u_rank = _ranks(units.to_numpy())
    p_rank = _ranks(periods.to_numpy())
    sort_key = u_rank[u_codes].astype(np.int64) * len(periods) + p_rank[t_codes]
    # None: the file is already sorted by unit and period (the usual case)
    order = None if (np.diff(sort_key) > 0).all() else np.argsort(sort_key, kind="stable")
    _note_unsorted(u_codes, p_rank[t_codes], units, path, notes)

    def rows(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    index = pd.Index(rows(lines), name="line")
    text = {"dtype": object, "index": index}  # plain Python strings, as the careful reader gives
    out = pd.DataFrame(
        {
            "unit": pd.Series(units.to_numpy(dtype=object)[rows(u_codes)], **text),
            "period": periods.to_numpy()[rows(t_codes)],
            "outcome": rows(y),
            "offset": rows(off),
        },
        index=index,
    )
    for name, col in extras.items():
        out[name] = pd.Series(rows(raw[col].to_numpy(dtype=object)), **text)
    return TidyData(out, freq, path, notes)


def _distinct(values: pd.Series, lines: np.ndarray, *, strip: bool) -> tuple[np.ndarray, pd.Series]:
    """Codes per row and the distinct (stripped) texts, indexed by each one's first line.

    Distinct values keep the order of first appearance, so the first bad distinct value
    is also the first bad row: errors name the same line as a row-by-row check would.
    """
    codes, uniques = pd.factorize(values, sort=False)
    text = pd.Series(np.asarray(uniques, dtype=object)).astype(str)
    if strip:
        text = text.str.strip()
    codes, distinct = _recode(codes, text)
    # codes count up in order of first appearance, so a row is a first appearance exactly
    # where the running maximum of the codes grows
    grows = np.empty(len(codes), dtype=bool)
    if len(codes):
        grows[0] = True
        running = np.maximum.accumulate(codes)
        np.greater(running[1:], running[:-1], out=grows[1:])
    first = lines[grows]
    return codes, pd.Series(np.asarray(distinct, dtype=object), index=first)


def _recode(codes: np.ndarray, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the distinct ``values`` (which may repeat: "A" and "A " once stripped),
    keeping the order of first appearance; no pass over the rows when none repeat."""
    merged, distinct = pd.factorize(values, sort=False)
    if len(distinct) == len(values):  # merged is 0..n-1: the codes stand
        return codes, np.asarray(distinct)
    return merged[codes], np.asarray(distinct)


def _merge(codes: np.ndarray, parsed: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Re-code rows by parsed period (several texts may name one period)."""
    codes, distinct = _recode(codes, parsed)
    return codes, pd.Series(distinct)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Each distinct value's rank in sorted order."""
    rank = np.empty(len(values), dtype=np.intp)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return rank


def _no_duplicates(
    key: np.ndarray,
    lines: np.ndarray,
    units: pd.Series,
    periods: pd.Series,
    u_codes: np.ndarray,
    t_codes: np.ndarray,
    path: Path,
) -> None:
    """Refuse a unit-period that appears twice, naming the second line of the first pair."""
    # keys are unit x period cells: count them directly when that array is affordable
    codes = key if len(units) * len(periods) <= 50_000_000 else pd.factorize(key)[0]
    counts = np.bincount(codes)
    if counts.max(initial=0) <= 1:
        return
    dup = counts[codes] > 1
    first = int(np.flatnonzero(dup)[np.argmin(lines[dup])])
    twin = np.sort(lines[key == key[first]])
    unit_name, period = units.iloc[u_codes[first]], periods.iloc[t_codes[first]]
    raise InputError(
        path,
        f"unit {unit_name!r} has period {_show(period)} more than once (also line {twin[0]})",
        line=int(twin[1]),
    )


def _note_unsorted(
    u_codes: np.ndarray, p_rank: np.ndarray, units: pd.Series, path: Path, notes: list[str]
) -> None:
    """Note units whose rows are not in time order in the file (they are sorted)."""
    if np.count_nonzero(u_codes[1:] != u_codes[:-1]) == len(units) - 1:
        u, p = u_codes, p_rank  # each unit's rows together, as usual: no sort needed
    else:
        by_unit = np.argsort(u_codes, kind="stable")  # file order within each unit
        u, p = u_codes[by_unit], p_rank[by_unit]
    back = (u[1:] == u[:-1]) & (p[1:] < p[:-1])
    if not back.any():
        return
    bad = np.unique(u[1:][back])  # codes follow first appearance in the file
    notes.append(
        f"{path.name}: the rows of {bad.size} unit(s) (first {units.iloc[bad[0]]!r}) were "
        "not in time order; they were sorted"
    )


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


def _read_fast(path: Path) -> pd.DataFrame | None:
    """Every cell as Arrow text, read by pyarrow's multi-threaded reader; None when unsure.

    Only a plain, well-formed UTF-8 file qualifies: one row per line (so a row's line is
    its position plus 2), no blank or ragged rows, no line breaks inside quotes, a header
    without repeats. Anything else, and any reader error, returns None so that the careful
    reader (:func:`_read`) reads the file and names the exact line of any problem.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    try:
        if not path.is_file():
            return None
        blob = path.read_bytes()
    except OSError:
        return None
    if re.search(rb"\S", blob) is None or blob.startswith(
        (b"\xef\xbb\xbf", b"\xff", b"\xfe", b"\x00")
    ):
        return None
    try:
        header = next(csv.reader([blob.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")]))
        blob.decode("utf-8")  # Windows-1252 text goes to the careful reader, with its note
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    names = [c.strip() for c in header]
    if len(set(names)) != len(names) or not all(names) or b"\x00" in blob[: 1 << 16]:
        return None
    try:
        table = pacsv.read_csv(
            pa.BufferReader(blob),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    n = table.num_rows
    newlines = blob.count(b"\n")
    if n == 0 or newlines not in (n, n + 1) or (newlines == n and blob.endswith(b"\n")):
        return None  # blank lines were skipped, or a row broke over lines
    first = table.column(0)
    if pc.any(pc.equal(pc.utf8_trim_whitespace(first), "")).as_py():
        return None  # a row may be blank: the careful reader skips those
    frame = table.rename_columns(names).to_pandas(types_mapper=pd.ArrowDtype)
    frame.index = pd.Index(np.arange(2, n + 2), name="line")
    return frame


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


def _numeric(values: pd.Series, path: Path, column: str) -> np.ndarray:
    """Numbers from text; the first empty or non-numeric cell is an error naming its line.

    Text the fast reader kept as Arrow strings is cast by Arrow; anything it cannot cast
    cleanly sends the file to the careful reader, whose messages name the cell.
    """
    if isinstance(values.dtype, pd.ArrowDtype):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            numbers = pc.cast(values.array._pa_array, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise _Declined from None
        if not np.isfinite(numbers).all():
            raise _Declined
        return np.asarray(numbers, dtype=float)
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
    return numbers.to_numpy(dtype=float)


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
