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
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from evaluation.errors import InputError

_T = TypeVar("_T")

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
    numbers = [outcome] if offset is None else [outcome, offset]
    texts = [name for name in (unit, time, *extra) if name is not None]
    fast = _read_fast(path, texts=texts, numbers=numbers)
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


@dataclass
class _ArrowCells:
    """What the fast reader gives: the header and the columns it was asked for.

    Rows are one a line, so a row's line is its position plus 2. Text columns are
    dictionary-encoded Arrow arrays (codes in order of first appearance), number columns
    Arrow doubles (text when also wanted as text); see :func:`_read_fast`.
    """

    names: list[str]  # every column of the header, stripped
    columns: dict[str, Any]  # name -> pyarrow Array or ChunkedArray, in file order
    num_rows: int


def _assemble(
    raw: pd.DataFrame | _ArrowCells,
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

    ``raw`` comes from the careful reader (text, indexed by line) or the fast one. Text
    columns are checked and parsed once per distinct value (a national panel has
    4 million rows but only 35,000 areas and 120 months), then spread back to the rows.
    """
    cells: Any  # column name -> cells
    if isinstance(raw, _ArrowCells):
        names, lines, cells = raw.names, np.arange(2, raw.num_rows + 2), raw.columns
    else:
        names, lines, cells = list(raw.columns), raw.index.to_numpy(), raw
    columns = {"time": time, "outcome": outcome}
    if unit is not None:
        columns["unit"] = unit
    if offset is not None:
        columns["offset"] = offset
    resolved = {role: _column(names, name, path) for role, name in columns.items()}
    extras = {name: _column(names, name, path) for name in extra}

    t_codes, t_text = _distinct(cells[resolved["time"]], strip=True)
    parsed, freq = _naming_lines(
        lambda text: _parse_time(text, path, resolved["time"], frequency), t_text, t_codes, lines
    )
    # distinct texts can read as the same period ("2020-01" and "2020-01-01")
    t_codes, periods = _merge(t_codes, parsed)
    if unit is not None:
        u_codes, units = _distinct(cells[resolved["unit"]], strip=True)
        _naming_lines(lambda text: _no_blanks(text, path, resolved["unit"]), units, u_codes, lines)
    else:
        u_codes = np.zeros(len(lines), dtype=np.intp)
        units = pd.Series([SINGLE_UNIT])
    y = _numeric(cells[resolved["outcome"]], path, resolved["outcome"])
    off = None
    if offset is not None:
        off = _numeric(cells[resolved["offset"]], path, resolved["offset"])
        bad = off <= 0
        if bad.any():
            line = int(lines[bad.argmax()])
            raise InputError(path, "offset must be positive", key=resolved["offset"], line=line)

    rows, runs = _row_order(u_codes, t_codes, units, periods, lines, path, notes)
    unit_text, period_values = units.to_numpy(dtype=object), periods.to_numpy()
    if runs is None:
        unit_values = unit_text[rows(u_codes)]
        period_values = period_values[rows(t_codes)]
    else:  # one run of rows per unit: no need to gather units, and perhaps periods
        by_rank, lengths = runs
        unit_values = np.repeat(unit_text[by_rank], lengths)
        tiled = _tiled(t_codes, lengths, period_values)
        period_values = period_values[rows(t_codes)] if tiled is None else tiled
    index = pd.Index(rows(lines), name="line")

    def column(values: np.ndarray, dtype: object = None) -> pd.Series:
        # copy=False: a DataFrame built from these Series keeps one block per column
        # instead of copying the two float columns into one; the arrays are new, but a
        # few are read-only views (of Arrow memory, of the careful reader's frame)
        if not values.flags.writeable:
            values = values.copy()
        return pd.Series(values, index=index, dtype=dtype, copy=False)

    text = object  # plain Python strings, as the careful reader gives
    data = {
        "unit": column(unit_values, text),
        "period": column(period_values),
        "outcome": column(rows(y)),
        "offset": column(np.full(len(lines), np.nan) if off is None else rows(off)),
    }
    for name, col in extras.items():
        data[name] = column(rows(_objects(cells[col])), text)
    return TidyData(pd.DataFrame(data, index=index, copy=False), freq, path, notes)


def _distinct(values: Any, *, strip: bool) -> tuple[np.ndarray, pd.Series]:
    """Codes per row and the distinct (stripped) texts, in order of first appearance.

    In that order the first bad distinct value is also the first bad row, so a check of
    the distinct values names the same line as a row-by-row check would
    (:func:`_naming_lines`).
    """
    if isinstance(values, pd.Series):
        codes, uniques = pd.factorize(values, sort=False)
    else:
        codes, uniques = _arrow_codes(values)
    text = pd.Series(np.asarray(uniques, dtype=object)).astype(str)
    if strip:
        text = text.str.strip()
    codes, distinct = _recode(codes, text)
    return codes, pd.Series(np.asarray(distinct, dtype=object))


def _arrow_codes(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct values of an Arrow text column, as :func:`pandas.factorize`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        # one dictionary for all rows: combining unifies the chunks' own dictionaries,
        # each in order of first appearance, chunk by chunk, so the order stays the file's
        encoded = encoded.combine_chunks()
    if encoded.null_count:
        raise _Declined  # not expected (no text is null), but codes would be -1 there
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False)


def _objects(values: Any) -> np.ndarray:
    """A column's cells as an object array of Python strings."""
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=object)
    codes, uniques = _arrow_codes(values)
    return np.asarray(uniques, dtype=object)[codes]


def _naming_lines(
    check: Callable[[pd.Series], _T], values: pd.Series, codes: np.ndarray, lines: np.ndarray
) -> _T:
    """``check(values)`` on distinct values; an error names the line it first appears on.

    The checks name a bad value by its index label. Finding each distinct value's first
    line takes a pass over every row, so it is done only when the check fails: then the
    check runs again on the values labelled by their first lines, and fails there.
    """
    try:
        return check(values)
    except InputError as err:
        # codes count up in order of first appearance; every code occurs
        first = np.unique(codes, return_index=True)[1]
        check(values.set_axis(lines[first]))
        raise err from None  # not reached: the same check fails on the same values


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


def _row_order(
    u_codes: np.ndarray,
    t_codes: np.ndarray,
    units: pd.Series,
    periods: pd.Series,
    lines: np.ndarray,
    path: Path,
    notes: list[str],
) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """How to put a column's rows in unit and period order.

    Refuses a unit-period seen twice and notes units whose rows were out of time order.
    When each unit's rows come together and in time order (the usual file), also returns
    the units' codes in sorted order and their row counts; no unit-period repeats then.
    """
    u_rank = _ranks(units.to_numpy())
    p_rank = _ranks(periods.to_numpy())
    # each row's period rank; usually the first unit lists the periods in order, and then
    # the codes (in order of first appearance) are the ranks
    p = t_codes if (p_rank[1:] > p_rank[:-1]).all() else p_rank[t_codes]
    # codes count up in order of first appearance: with one run of rows per unit, run i
    # holds unit i
    starts = np.flatnonzero(u_codes[1:] != u_codes[:-1]) + 1
    if len(starts) == len(units) - 1:
        later = p[1:] > p[:-1]
        later[starts - 1] = True  # a new unit may start at any period
        if later.all():
            by_rank = np.argsort(u_rank)  # unit codes in sorted order
            bounds = np.concatenate(([0], starts, [len(p)]))
            lengths = np.diff(bounds)[by_rank]
            runs = by_rank, lengths
            if (by_rank[1:] > by_rank[:-1]).all():
                return _as_is, runs  # sorted already
            if (lengths == lengths[0]).all():  # a balanced panel: move whole runs
                shape = (len(lengths), int(lengths[0]))
                return lambda values: values.reshape(shape)[by_rank].reshape(-1), runs
            first = bounds[:-1][by_rank]
            shift = first - (np.cumsum(lengths) - lengths)
            order = np.arange(len(p)) + np.repeat(shift, lengths)
            return lambda values: values[order], runs
    # (a file already in order took the way above)
    key = u_codes.astype(np.int64) * len(periods) + t_codes
    _no_duplicates(key, lines, units, periods, u_codes, t_codes, path)
    _note_unsorted(u_codes, p, units, path, notes)
    order = np.argsort(u_rank[u_codes].astype(np.int64) * len(periods) + p, kind="stable")
    return lambda values: values[order], None


def _as_is(values: np.ndarray) -> np.ndarray:
    return values


def _tiled(codes: np.ndarray, lengths: np.ndarray, values: np.ndarray) -> np.ndarray | None:
    """``values[codes]`` when the rows come in runs of equal length with the same codes
    in each (a balanced panel, each unit's periods listed alike), else None.

    The runs being alike, their order does not matter: one run's values, repeated.
    """
    width = int(lengths[0])
    if (lengths != width).any():
        return None
    first = codes[:width]
    if not (codes.reshape(-1, width) == first).all():
        return None
    return np.tile(values[first], len(lengths))


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


def _read_fast(
    path: Path, *, texts: Sequence[str] | None = None, numbers: Sequence[str] = ()
) -> _ArrowCells | None:
    """Columns read by pyarrow's multi-threaded reader; None when unsure.

    Only a plain, well-formed UTF-8 file qualifies: one row per line (so a row's line is
    its position plus 2), no blank or ragged rows, no line breaks inside quotes, a header
    without repeats. Anything else, and any reader error, returns None so that the careful
    reader (:func:`_read`) reads the file and names the exact line of any problem.

    Columns are named as :func:`_column` finds them. The ``texts`` columns (every column
    when None) come dictionary-encoded, the ``numbers`` columns as doubles (as text when
    also among ``texts``); the first column is always read, for the blank-row check.
    Other columns are parsed (a ragged row still counts) but not kept, and a name no
    column has is left for the caller to report.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyarrow import csv as pacsv
    except ImportError:  # pragma: no cover - pandas usually brings pyarrow
        return None
    try:
        if not path.is_file():
            return None
        data = _slurp(path)
    except OSError:
        return None
    if data is None or re.search(rb"\S", data.data) is None:
        return None
    if bytes(data[:4]).startswith((b"\xef\xbb\xbf", b"\xff", b"\xfe", b"\x00")):
        return None
    newlines, end, ascii_only = _scan(data)
    try:
        header_line = bytes(data if end < 0 else data[:end]).rstrip(b"\r").decode("utf-8")
        header = next(csv.reader([header_line]))
        if not ascii_only:  # ASCII is UTF-8: no need to decode
            str(data.data, "utf-8")  # Windows-1252 goes to the careful reader, with its note
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    names = [c.strip() for c in header]
    if len(set(names)) != len(names) or not all(names) or (data[: 1 << 16] == 0).any():
        return None
    text_type = pa.dictionary(pa.int32(), pa.string())
    types = {names[0]: pa.string()}  # the first column is always read: see the blank check
    for name in names if texts is None else texts:
        if (found := _find_column(names, name)) is not None:
            types[found] = text_type
    for name in numbers:
        if (found := _find_column(names, name)) is not None:
            # Arrow parses the numbers as the cast in _numeric would, but in its threads
            # and after trimming spaces and tabs, which the careful reader strips too; a
            # column also wanted as text stays text, for _numeric to cast
            types[found] = pa.string() if types.get(found) == text_type else pa.float64()
    raw = dict(zip(names, header, strict=True))  # Arrow knows the columns by their raw names
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={raw[name]: kind for name, kind in types.items()},
                include_columns=[raw[name] for name in names if name in types],
                strings_can_be_null=False,
                check_utf8=False,  # checked above
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowKeyError):
        return None
    if table.column_names != [raw[name] for name in names if name in types]:
        return None  # Arrow read the header otherwise than the csv module did
    n = table.num_rows
    if n == 0 or newlines not in (n, n + 1) or (newlines == n and data[-1] == ord("\n")):
        return None  # blank lines were skipped, or a row broke over lines
    columns = {}
    for name, column in zip([name for name in names if name in types], table.columns, strict=True):
        # one dictionary for all rows: combining unifies the chunks' own dictionaries,
        # each in order of first appearance, chunk by chunk, so the order stays the file's
        columns[name] = column.combine_chunks() if types[name] == text_type else column
    # a row may be blank (every cell empty or spaces): the careful reader skips those
    first, kind = columns[names[0]], types[names[0]]
    if kind == pa.float64():
        if first.null_count:  # an empty number cell is null (one of spaces fails to read)
            return None
    elif pc.any(
        pc.equal(pc.utf8_trim_whitespace(first.dictionary if kind == text_type else first), "")
    ).as_py():
        return None
    return _ArrowCells(names, columns, n)


def _slurp(path: Path) -> np.ndarray | None:
    """The file's bytes as a NumPy array; None if it changed size while read.

    Not :meth:`Path.read_bytes`: NumPy asks for huge pages for large arrays, so a 70 MB
    file costs a few hundred page faults instead of 17,000, and a fresh process (as a
    workflow kernel is) pays for every one, dearly when the machine is busy.
    """
    with path.open("rb", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        data = np.empty(size, dtype=np.uint8)
        view, got = data.data, 0
        while got < size and (count := file.readinto(view[got:])):
            got += count
        if got < size or file.read(1):
            return None
    return data


def _scan(data: np.ndarray) -> tuple[int, int, bool]:
    """The number of line feeds in ``data``, the position of the first (-1: none), and
    whether every byte is ASCII; 1 MB at a time, so that no temporary is large."""
    count, first, ascii_only = 0, -1, True
    step = 1 << 20
    feeds = np.empty(min(step, len(data)), dtype=bool)
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        np.equal(chunk, ord("\n"), out=feeds[: len(chunk)])
        found = int(np.count_nonzero(feeds[: len(chunk)]))
        if found and first < 0:
            first = start + int(feeds[: len(chunk)].argmax())
        count += found
        ascii_only = ascii_only and int(chunk.max()) < 0x80
    return count, first, ascii_only


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


def _column(names: Sequence[str], name: str, path: Path) -> str:
    """The column for ``name``: exact, else ignoring case and surrounding spaces."""
    found = _find_column(names, name)
    if found is None:
        raise InputError(path, f"column not found (columns: {', '.join(names)})", key=name)
    return found


def _find_column(names: Sequence[str], name: str) -> str | None:
    if name in names:
        return name
    folded = {c.lower(): c for c in names}
    return folded.get(name.strip().lower())


def _no_blanks(values: pd.Series, path: Path, column: str) -> None:
    blank = values == ""
    if blank.any():
        raise InputError(path, "empty value", key=column, line=int(values.index[blank.argmax()]))


def _numeric(values: Any, path: Path, column: str) -> np.ndarray:
    """Numbers from text; the first empty or non-numeric cell is an error naming its line.

    Columns from the fast reader are Arrow doubles already (or text, cast here); any cell
    missing, unreadable or not finite sends the file to the careful reader, whose
    messages name the cell.
    """
    if not isinstance(values, pd.Series):
        import pyarrow as pa
        import pyarrow.compute as pc

        if values.null_count:  # empty, "NA" ...: read as missing by Arrow
            raise _Declined
        try:
            numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise _Declined from None
        if not np.isfinite(numbers).all():
            raise _Declined
        return numbers
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
