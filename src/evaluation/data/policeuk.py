"""Ingest data.police.uk street-level CSVs into the embedded database as aggregated counts.

DuckDB reads the files (many per statement) and groups them by month, LSOA, crime type and
last outcome; Python only lists files, checks headers and keeps the books. Files are read in
batches (up to 1,000 CSVs or 2 GiB, or one monthly zip at a time) into a staging table of
aggregated rows that is checked and written to ``counts`` before the next batch is read, so
an England-and-Wales archive never sits in memory or on disk unpacked at once (59 million
records, 17.9 GB: about 70 s and 8.5 GB of memory with DuckDB capped at 8 GB, on 2 cores).
Everything happens in one transaction: bad input leaves the database as it was.

**LSOA vintage rule.** Files up to the switch carry 2011 LSOA codes, later ones 2021 codes.
For each file, in order:

1. with a crosswalk, a code that exists only as a 2021 code in it (split or merged areas)
   marks the file as 2021; a code that exists only as a 2011 code marks it as 2011
   (``vintage_basis = 'crosswalk'``);
2. otherwise a code beyond the last 2011 code (``E01033768`` in England, ``W01001958`` in
   Wales) did not exist in 2011 and marks the file as 2021 (``'codes'``);
3. otherwise the codes in the file are the same in both vintages and the label follows the
   month: 2021 from :data:`LSOA21_FROM` on (``'month'``); this only labels the file.

With a crosswalk (``lsoa11_code, lsoa21_code, change_code``; optional ``lsoa11_name``), the
codes of a 2021 file are mapped back to 2011 so series run on across the break: U (unchanged)
and S (one 2011 area split into several 2021 areas) map exactly; M (several 2011 areas merged
into one 2021 area) and X (complex) go to the first 2011 code listed, and those rows are
reported as *approximated*. Codes missing from the crosswalk are kept as they are.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from evaluation.data.database import scalar
from evaluation.errors import InputError

#: First month labelled 2021-vintage when the codes in a file cannot tell (rule 3 above).
LSOA21_FROM = date(2023, 1, 1)

#: The last LSOA code numbers that existed in 2011 (England, Wales): higher ones are 2021.
LAST_2011_CODE = {"E01": 33768, "W01": 1958}

#: Street-level file names: ``<YYYY-MM>-<force>-street.csv``.
_NAME_RE = re.compile(r"^(\d{4}-\d{2})-(.+)-street\.csv$", re.IGNORECASE)
_STREET_GLOB = "*street*.csv"
_BATCH = 1000  # files per DuckDB read_csv statement: few statements, SQL text still small
#: Bytes of CSV per batch: bounds the staging table (one batch at a time) and keeps a
#: batch in the page cache between hashing it and reading it.
_BATCH_BYTES = 2 << 30
_HASH_WORKERS = 4  # hashlib releases the GIL on large buffers: hash files in parallel

#: Normalised header text -> column name used in SQL.
_HEADERS = {
    "crime id": "crime_id",
    "month": "month",
    "reported by": "reported_by",
    "falls within": "falls_within",
    "longitude": "longitude",
    "latitude": "latitude",
    "location": "location",
    "lsoa code": "lsoa_code",
    "lsoa name": "lsoa_name",
    "crime type": "crime_type",
    "last outcome category": "last_outcome",
    "last outcome": "last_outcome",
    "context": "context",
}
_REQUIRED = {"month": "Month", "lsoa_code": "LSOA code", "lsoa_name": "LSOA name"}
_REQUIRED["crime_type"] = "Crime type"


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    name: str
    status: str  # 'ingested', 'replaced' (ingested over an older copy), 'skipped'
    rows: int = 0
    no_location_rows: int = 0
    months: list[str] = field(default_factory=list)
    force: str = ""
    lsoa_vintage: str = ""
    vintage_basis: str = ""
    stored_vintage: str = ""
    approximated_rows: int = 0
    replaced: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class IngestReport:
    """Totals and per-file details of one :func:`ingest` call.

    ``files_ingested`` counts every file written, including the ``files_replaced`` ones
    that took the place of an older copy of the same force and month(s).
    """

    files_ingested: int = 0
    files_skipped: int = 0
    files_replaced: int = 0
    rows: int = 0
    no_location_rows: int = 0
    approximated_rows: int = 0
    by_file: list[FileReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the command line."""
        if not self.files_ingested:
            text = (
                f"No new files ingested ({self.files_skipped} skipped: already in the "
                "database, or empty)."
            )
        else:
            months = sorted({m for f in self.by_file if f.status != "skipped" for m in f.months})
            forces = sorted({f.force for f in self.by_file if f.status != "skipped"})
            span = f"{months[0]} to {months[-1]}" if months else "no months"
            text = (
                f"Ingested {self.files_ingested} file(s) ({span}; {', '.join(forces)}): "
                f"{self.rows:,} rows, of which {self.no_location_rows:,} have no location "
                "(kept, outside every area panel)."
            )
            if self.files_replaced:
                pairs = [
                    f"{f.name} replaced {', '.join(f.replaced)}"
                    for f in self.by_file
                    if f.status == "replaced"
                ]
                shown = "; ".join(pairs[:3]) + ("; ..." if len(pairs) > 3 else "")
                text += (
                    f" {self.files_replaced} replaced an earlier copy of the same force and "
                    f"month(s) ({shown})."
                )
            if self.files_skipped:
                text += f" {self.files_skipped} skipped (already ingested, or empty)."
            if self.approximated_rows:
                text += (
                    f" {self.approximated_rows:,} rows in merged 2021 LSOAs were allocated "
                    "to the first 2011 LSOA (approximated)."
                )
        if self.warnings:
            text += f" {len(self.warnings)} warning(s): " + " ".join(self.warnings)
        return text


@dataclass
class _Source:
    """One CSV to read: where it is shown as coming from and where it sits on disk."""

    display: str
    disk: Path
    name: str
    sha256: str = ""
    columns: tuple[str, ...] = ()


@dataclass
class _Books:
    """What one ingest carries from batch to batch."""

    next_id: int  # file_id of the next file written
    existing: _Older  # files in the database before this ingest, by force
    claimed: dict[tuple[str, str], str] = field(default_factory=dict)  # (force, month) -> file
    doomed: list[int] = field(default_factory=list)  # older files replaced by new ones


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def ingest(
    paths: Path | str | Sequence[Path | str],
    con: duckdb.DuckDBPyConnection,
    *,
    crosswalk: Path | str | None = None,
) -> IngestReport:
    """Ingest street-level CSVs, folders of them and monthly zip archives.

    Parameters
    ----------
    paths
        One path or several: CSV files, folders (searched recursively for ``*street*.csv``) and zip archives
        (``<YYYY-MM>/<YYYY-MM>-<force>-street.csv`` members are read; outcomes and
        stop-and-search members are ignored).
    con
        A connection from :func:`evaluation.data.database.connect`.
    crosswalk
        CSV ``lsoa11_code, lsoa21_code, change_code`` used to detect 2021 LSOA codes and
        map them back to 2011 (see the module notes).

    Returns
    -------
    IngestReport

    Raises
    ------
    InputError
        Naming the file (and line when known) for a missing path, a file that is not a
        CSV or not UTF-8, missing columns, a bad ``Month``, a wrong number of fields, or a
        file overlapping part of an already-ingested one. The database is left unchanged.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    report = IngestReport()
    xwalk = _load_crosswalk(Path(crosswalk)) if crosswalk is not None else None
    known = {row[0] for row in con.execute("SELECT sha256 FROM files").fetchall()}
    con.execute("BEGIN TRANSACTION")
    try:
        books = _Books(
            scalar(con, "SELECT coalesce(max(file_id), 0) + 1 FROM files"), _existing_files(con)
        )
        found = False
        for batch in _batches(paths, report):
            found = found or bool(batch)
            fresh = []
            for src in batch:
                if src.sha256 in known:
                    report.by_file.append(
                        FileReport(src.display, src.name, "skipped", reason="already ingested")
                    )
                    continue
                known.add(src.sha256)
                src.columns = _read_header(src)
                fresh.append(src)
            if fresh:
                _ingest_batch(con, fresh, xwalk, report, books)
        if not found:
            raise InputError(", ".join(str(p) for p in paths), "no street-level CSV files found")
        if books.doomed:  # one scan of each table, whatever the number of files replaced
            con.execute("DELETE FROM counts WHERE list_contains(?, file_id)", [books.doomed])
            con.execute("DELETE FROM files WHERE list_contains(?, file_id)", [books.doomed])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    report.files_skipped = sum(f.status == "skipped" for f in report.by_file)
    return report


def _ingest_batch(
    con: duckdb.DuckDBPyConnection,
    sources: list[_Source],
    xwalk: _Crosswalk | None,
    report: IngestReport,
    books: _Books,
) -> None:
    """Stage, check and write one batch of files.

    Each batch is written to ``counts`` before the next is read, so the staging table holds
    one batch at a time however large the archive (the transaction still spans the ingest).
    On error the caller's ROLLBACK also drops the staging table.
    """
    con.execute(
        """CREATE TEMP TABLE _ingest_stage (
               source VARCHAR, month_raw VARCHAR, lsoa_code VARCHAR, lsoa_name VARCHAR,
               crime_type_raw VARCHAR, last_outcome VARCHAR, falls_within VARCHAR,
               n BIGINT)"""
    )
    _stage(con, sources)
    staged = {str(s.disk): s for s in sources}
    _validate(con, staged)
    _write(con, staged, xwalk, report, books)
    con.execute("DROP TABLE _ingest_stage")


# --------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------


def _batches(paths: Sequence[Path | str], report: IngestReport) -> Iterator[list[_Source]]:
    """Yield lists of sources with their sha256, each list readable in one statement.

    Members of a zip are unpacked into a temporary folder that lives until the next batch.
    """
    plain: list[Path] = []
    archives: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "no such file or folder")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and fnmatch.fnmatch(p.name.lower(), _STREET_GLOB)
            )
            if not found:
                report.warnings.append(f"{path}: no *street*.csv files in this folder.")
            plain.extend(found)
        elif not path.is_file():  # a device or a pipe: never read (/dev/zero has no end)
            raise InputError(path, "not a regular file (a device or a pipe?)")
        elif path.suffix.lower() == ".zip":
            archives.append(path)
        else:
            plain.append(path)
    chunks = _chunks(plain)
    with ThreadPoolExecutor(max_workers=min(_HASH_WORKERS, os.cpu_count() or 1)) as pool:
        ahead = [pool.submit(_sha256, p) for p in chunks[0]] if chunks else []
        try:
            for k, chunk in enumerate(chunks):
                digests = [future.result() for future in ahead]
                # hash the next batch while DuckDB reads this one: both wait on the disk
                following = chunks[k + 1] if k + 1 < len(chunks) else []
                ahead = [pool.submit(_sha256, p) for p in following]
                with tempfile.TemporaryDirectory(prefix="evaluation-ingest-") as tmp:
                    yield [
                        _Source(str(p), _glob_safe(p, Path(tmp), i), p.name, digest)
                        for i, (p, digest) in enumerate(zip(chunk, digests, strict=True))
                    ]
        finally:  # on an error, do not wait for a whole batch to be hashed for nothing
            for future in ahead:
                future.cancel()
    for archive in archives:
        with _unpacked(archive) as sources:
            if not sources:
                report.warnings.append(f"{archive}: no street-level CSV in this archive.")
            yield sources


@contextmanager
def _unpacked(archive: Path) -> Iterator[list[_Source]]:
    """Unpack the street-level members of a zip into a temporary folder."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(archive, f"not a readable zip archive ({err})") from err
    with zf, tempfile.TemporaryDirectory(prefix="evaluation-ingest-") as tmp:
        sources = []
        members = [
            m
            for m in zf.infolist()
            if not m.is_dir() and fnmatch.fnmatch(Path(m.filename).name.lower(), _STREET_GLOB)
        ]
        for i, member in enumerate(sorted(members, key=lambda m: m.filename)):
            name = Path(member.filename).name
            disk = Path(tmp) / f"{i:05d}-{name}"
            digest = hashlib.sha256()
            try:
                with zf.open(member) as fin, disk.open("wb") as fout:
                    while chunk := fin.read(1 << 20):
                        digest.update(chunk)
                        fout.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise InputError(f"{archive}!{member.filename}", f"cannot unpack: {err}") from err
            sources.append(_Source(f"{archive}!{member.filename}", disk, name, digest.hexdigest()))
        yield sources


def _chunks(paths: list[Path]) -> list[list[Path]]:
    """Split files into batches of at most ``_BATCH`` files and about ``_BATCH_BYTES``."""
    chunks: list[list[Path]] = []
    size = 0
    for path in paths:
        bytes_ = path.stat().st_size
        if not chunks or len(chunks[-1]) >= _BATCH or size + bytes_ > _BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(path)
        size += bytes_
    return chunks


def _glob_safe(path: Path, tmp: Path, i: int) -> Path:
    """A path DuckDB will not read as a glob pattern (a symlink when the name has ``*?[``)."""
    if not any(ch in str(path) for ch in "*?[]{}"):
        return path
    link = tmp / f"{i:05d}.csv"
    link.symlink_to(path.resolve())
    return link


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _normalise_header(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.replace("\ufeff", "")).strip().lower()


def _read_header(src: _Source) -> tuple[str, ...]:
    """Check the first line and return SQL column names in file order.

    Headers are matched case-insensitively and ignoring ``_``/``-``/spaces, so re-cased
    copies (``longitude,latitude``) read the same as the originals.
    """
    with src.disk.open("rb") as fh:
        head = fh.read(1 << 16)
    if not head.strip():
        raise InputError(src.display, "empty file: expected a police.uk street-level CSV")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 (or UTF-32) byte-order marks
        raise InputError(src.display, "UTF-16 text: save it as UTF-8")
    if b"\x00" in head:
        raise InputError(src.display, "binary file, not a CSV")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(src.display, "header is not UTF-8 text", line=1) from err
    fields = next(csv.reader([text]), [])
    columns: list[str] = []
    for i, raw in enumerate(fields):
        name = _HEADERS.get(_normalise_header(raw), f"extra_{i}")
        if name in columns:
            raise InputError(src.display, f"column '{raw}' appears twice", line=1)
        columns.append(name)
    missing = [label for key, label in _REQUIRED.items() if key not in columns]
    if missing:
        raise InputError(
            src.display,
            "not a police.uk street-level CSV: missing column(s) "
            + ", ".join(f"'{m}'" for m in missing),
            line=1,
        )
    return tuple(columns)


def _read_csv_sql(files: Sequence[Path], columns: Sequence[str]) -> str:
    """A ``read_csv`` call with a fixed dialect (no sniffing: it guesses wrong on odd files)."""
    file_list = "[" + ", ".join(_quote(str(f)) for f in files) + "]"
    cols = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in columns) + "}"
    return (
        f"read_csv({file_list}, header = true, delim = ',', quote = '\"', escape = '\"', "
        f"auto_detect = false, columns = {cols}, filename = true)"
    )


def _stage_select(group: Sequence[_Source]) -> str:
    """The aggregating SELECT over files sharing one header layout: the cells as they are
    (:data:`_TRIMMED` tidies them afterwards, when any needs it)."""
    columns = group[0].columns
    outcome = "last_outcome" if "last_outcome" in columns else "NULL"
    force = "falls_within" if "falls_within" in columns else "NULL"
    return f"""
        SELECT filename, month, lsoa_code, lsoa_name, crime_type, {outcome}, {force}, count(*)
        FROM {_read_csv_sql([s.disk for s in group], columns)}
        GROUP BY ALL"""


#: Text columns of ``_ingest_stage`` and how each is tidied: spaces trimmed, and an empty
#: LSOA, outcome or force read as missing.
_TIDY = {
    "month_raw": "trim({})",
    "lsoa_code": "nullif(trim({}), '')",
    "lsoa_name": "nullif(trim({}), '')",
    "crime_type_raw": "trim({})",
    "last_outcome": "nullif(trim({}), '')",
    "falls_within": "nullif(trim({}), '')",
}

# Whether any distinct cell needs tidying (a few thousand distinct values, not millions
# of rows: police.uk files have none, so the check is usually all it costs)
_NEEDS_TIDY_SQL = " UNION ALL ".join(
    f"SELECT bool_or(v <> trim(v) OR v = '') FROM (SELECT DISTINCT {c} AS v FROM _ingest_stage)"
    for c in _TIDY
)

_TRIMMED = f"""
    SELECT source, {", ".join(f.format(c) for c, f in _TIDY.items())}, sum(n)::BIGINT
    FROM _ingest_stage GROUP BY ALL"""


def _stage(con: duckdb.DuckDBPyConnection, sources: Sequence[_Source]) -> None:
    """Aggregate the sources into ``_ingest_stage``, one statement per header layout.

    Rows are counted by their cells as read, then, only if a cell has spaces around it or
    is empty, counted again by the tidied cells. Counting then tidying gives the same
    counts as tidying every row first, and tidying 6 columns of every row was a third of
    the reading time.
    """
    groups: dict[tuple[str, ...], list[_Source]] = {}
    for src in sources:
        groups.setdefault(src.columns, []).append(src)
    for group in groups.values():
        try:
            con.execute("INSERT INTO _ingest_stage " + _stage_select(group))
        except duckdb.Error as err:
            raise _csv_error(con, err, group) from err
    if any(row[0] for row in con.execute(_NEEDS_TIDY_SQL).fetchall()):
        con.execute("CREATE TEMP TABLE _ingest_tidied AS " + _TRIMMED)
        con.execute("DELETE FROM _ingest_stage")
        con.execute("INSERT INTO _ingest_stage SELECT * FROM _ingest_tidied")
        con.execute("DROP TABLE _ingest_tidied")


def _csv_error(
    con: duckdb.DuckDBPyConnection, err: duckdb.Error, group: Sequence[_Source]
) -> InputError:
    """Turn a DuckDB read error into an InputError naming the file and line."""
    text = str(err)
    named = re.search(r"file = (.+)", text)
    by_disk = {str(s.disk): s for s in group}
    if named and named.group(1).strip() in by_disk:
        src = by_disk[named.group(1).strip()]
    elif len(group) > 1:  # find the culprit by reading the files one at a time
        for one in group:
            try:
                con.execute(_stage_select([one])).fetchall()
            except duckdb.Error as single:
                return _csv_error(con, single, [one])
        src = group[0]
    else:
        src = group[0]
    line = re.search(r"on Line:\s*(\d+)", text)
    message = "cannot read as CSV"
    # DuckDB: "CSV Error on Line: N", "Original Line: <the row, maybe several lines>", the
    # reason, then "Possible fixes" / "Possible Solution": the reason is the last line
    # before those hints (the row itself is not repeated in a one-line error)
    head = re.split(r"\n\s*Possible (?:fixes|Solution)", text, maxsplit=1)
    if len(head) == 2 and "Original Line:" in head[0]:
        pieces = [p.strip() for p in head[0].splitlines() if p.strip()]
        if pieces and not pieces[-1].startswith(("Original Line", "Invalid Input Error")):
            reason = pieces[-1]
            if "not utf-8" in reason.lower():
                reason += " Save it as UTF-8."
            return InputError(src.display, f"cannot read as CSV: {reason}", line=_line(line))
    for piece in text.splitlines():
        piece = piece.strip()
        if (
            piece
            and not piece.startswith(("Invalid Input Error", "Original Line", "Possible", "*"))
            and "=" not in piece
        ):
            message = f"cannot read as CSV: {piece}"
            break
    return InputError(src.display, message, line=_line(line))


def _line(match: re.Match[str] | None) -> int | None:
    return int(match.group(1)) if match else None


def _first_bad_line(con: duckdb.DuckDBPyConnection, src: _Source, condition: str) -> int | None:
    """1-based line of the first row meeting ``condition`` (assumes one line per row)."""
    row = con.execute(
        f"""SELECT rn FROM (SELECT row_number() OVER () AS rn, *
                              FROM {_read_csv_sql([src.disk], src.columns)})
            WHERE {condition} ORDER BY rn LIMIT 1"""
    ).fetchone()
    return int(row[0]) + 1 if row else None


# --------------------------------------------------------------------------------------
# Checking and writing
# --------------------------------------------------------------------------------------

_MONTH_OK = r"regexp_full_match(coalesce(trim(month), ''), '\d{4}-(0[1-9]|1[0-2])')"


def _validate(con: duckdb.DuckDBPyConnection, staged: dict[str, _Source]) -> None:
    """Reject bad months and empty crime types, naming the first bad line.

    Runs after each batch, while a zip's members are still unpacked for the line search.
    """
    checks = (  # (staged column, test on staged rows, test on file rows, message)
        (
            "month_raw",
            "NOT regexp_full_match(coalesce(month_raw, ''), '\\d{4}-(0[1-9]|1[0-2])')",
            f"NOT {_MONTH_OK}",
            "bad Month value {value!r}: expected YYYY-MM",
        ),
        (
            "crime_type_raw",
            "coalesce(crime_type_raw, '') = ''",
            "coalesce(trim(crime_type), '') = ''",
            "empty Crime type",
        ),
    )
    for column, stage_cond, file_cond, message in checks:
        bad = con.execute(
            f"SELECT source, {column} FROM _ingest_stage WHERE {stage_cond} LIMIT 1"
        ).fetchone()
        if bad:
            src = staged[bad[0]]
            line = _first_bad_line(con, src, file_cond)
            raise InputError(src.display, message.format(value=bad[1]), line=line)


def _write(
    con: duckdb.DuckDBPyConnection,
    staged: dict[str, _Source],
    xwalk: _Crosswalk | None,
    report: IngestReport,
    books: _Books,
) -> None:
    """Write ``files`` and ``counts`` for the staged files, marking older copies doomed."""
    stats = _file_stats(con, xwalk)
    # aggregate before the lookup: lower() then runs once per file and type, not per row
    types = con.execute(
        """SELECT t.source, t.crime_type_raw, m.crime_type, t.n
           FROM (SELECT source, crime_type_raw, sum(n) AS n FROM _ingest_stage GROUP BY ALL) t
           LEFT JOIN crime_type_map m ON lower(t.crime_type_raw) = m.raw
           ORDER BY ALL"""
    ).fetchall()
    for source, crime_type, current, n in types:
        if current is None:
            report.warnings.append(
                f"{staged[source].display}: unknown crime type {crime_type!r} ({n} rows) "
                "kept as is."
            )
    new_rows = []
    for source, src in sorted(staged.items(), key=lambda kv: kv[1].display):
        info = stats.get(source)
        if info is None:  # a header with no rows: nothing to count, nothing to date
            report.warnings.append(f"{src.display}: no data rows; not ingested.")
            report.by_file.append(FileReport(src.display, src.name, "skipped", reason="empty"))
            continue
        rep = _file_report(src, info, xwalk, report)
        for month in rep.months:
            other = books.claimed.setdefault((rep.force, month), src.display)
            if other != src.display:
                raise InputError(
                    src.display,
                    f"covers {rep.force} {month}, as does {other} in the same ingest: "
                    "give only one of them",
                )
        rep.replaced = _replace_older(src, rep, books.existing, books.doomed)
        if rep.replaced:
            rep.status = "replaced"
            report.files_replaced += 1
        new_rows.append((source, books.next_id, rep))
        books.next_id += 1
        report.by_file.append(rep)
        report.files_ingested += 1
        report.rows += rep.rows
        report.no_location_rows += rep.no_location_rows
        report.approximated_rows += rep.approximated_rows
    if not new_rows:
        return
    _insert_files(con, staged, new_rows)
    ids = {
        source: (file_id, rep.stored_vintage != rep.lsoa_vintage)
        for source, file_id, rep in new_rows
    }
    # One small key table: (file, raw crime type) -> file_id, current name, whether to map
    # LSOA codes; one hash join per staged row instead of three (and no lower() per row)
    keys = pd.DataFrame(
        [
            (source, raw, *ids[source], current if current is not None else raw)
            for source, raw, current, _ in types
            if source in ids
        ],
        columns=["source", "crime_type_raw", "file_id", "mapped", "crime_type"],
    )
    # Staged rows are already grouped (a second GROUP BY costs a third of the write): group
    # again only when rows fall together, by crosswalk, crime-type name or 'Falls within'
    regroup = (
        any(mapped for _, mapped in ids.values())
        or any(stats[source]["forces"] > 1 for source in ids)
        or _crime_types_merge(types)
    )
    con.register("_ingest_keys", keys)
    con.register("_ingest_xmap", _xmap_frame(xwalk))
    try:
        con.execute(
            f"""INSERT INTO counts
               SELECT k.file_id, CAST(s.month_raw || '-01' AS DATE),
                      coalesce(x.lsoa11_code, s.lsoa_code),
                      coalesce(x.lsoa11_name, s.lsoa_name),
                      k.crime_type, s.last_outcome,
                      {"sum(s.n)" if regroup else "s.n"}
               FROM _ingest_stage s
               JOIN _ingest_keys k
                 ON s.source = k.source AND s.crime_type_raw = k.crime_type_raw
               LEFT JOIN _ingest_xmap x ON k.mapped AND s.lsoa_code = x.lsoa21_code
               {"GROUP BY ALL" if regroup else ""}"""
        )
    finally:
        con.unregister("_ingest_keys")
        con.unregister("_ingest_xmap")


def _crime_types_merge(types: Sequence[tuple[str, str, str | None, int]]) -> bool:
    """Whether two raw crime types of one file map to the same current name."""
    seen: set[tuple[str, str]] = set()
    for source, raw, current, _ in types:
        key = (source, current if current is not None else raw)
        if key in seen:
            return True
        seen.add(key)
    return False


def _file_stats(con: duckdb.DuckDBPyConnection, xwalk: _Crosswalk | None) -> dict[str, dict]:
    """Rows, no-location rows, months, force and vintage evidence per staged file."""
    con.register("_ingest_xmap", _xmap_frame(xwalk))
    try:
        rows = con.execute(_FILE_STATS_SQL).fetchall()
    finally:
        con.unregister("_ingest_xmap")
    keys = (
        "rows",
        "no_location",
        "months",
        "falls_within",
        "forces",
        "new_codes",
        "only21",
        "only11",
        "approx",
        "unmapped21",
    )
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


# A code beyond the last one that existed in 2011 is a 2021 code (rule 2).
_NEW_CODE_SQL = " OR ".join(
    f"(lsoa_code LIKE '{prefix}%' AND TRY_CAST(substr(lsoa_code, 4) AS INTEGER) > {last})"
    for prefix, last in LAST_2011_CODE.items()
)

# Per file: rows, no-location rows, months, the most frequent 'Falls within' (ties go to
# the first name), how many forces, and the vintage evidence of its LSOA codes. The staged
# rows are first summed per (file, month, LSOA, force), a tenth as many rows, so the
# DISTINCT counts and crosswalk lookups below run on far fewer rows.
_FILE_STATS_SQL = f"""
WITH per AS (
    SELECT source, month_raw, lsoa_code, falls_within, sum(n) AS n, count(*) AS k
    FROM _ingest_stage GROUP BY ALL
), forces AS (
    SELECT source, first(falls_within ORDER BY falls_within IS NULL, k DESC, falls_within)
               AS falls_within,
           count(falls_within) + bool_or(falls_within IS NULL)::INTEGER AS forces
    FROM (SELECT source, falls_within, sum(k) AS k FROM per GROUP BY ALL)
    GROUP BY source
), codes AS (
    SELECT source, sum(n) AS n, coalesce(sum(n) FILTER (WHERE lsoa_code IS NULL), 0) AS no_loc,
           list(DISTINCT month_raw ORDER BY month_raw) AS months,
           count(DISTINCT lsoa_code) FILTER (WHERE {_NEW_CODE_SQL}) AS new_codes,
           count(DISTINCT lsoa_code) FILTER (
               WHERE lsoa_code IN (SELECT lsoa21_code FROM _ingest_xmap WHERE only21)) AS only21,
           count(DISTINCT lsoa_code) FILTER (
               WHERE lsoa_code IN (SELECT lsoa11_code FROM _ingest_xmap WHERE only11)) AS only11,
           coalesce(sum(n) FILTER (WHERE lsoa_code IN (
               SELECT lsoa21_code FROM _ingest_xmap WHERE approximate)), 0) AS approx,
           coalesce(sum(n) FILTER (WHERE ({_NEW_CODE_SQL}) AND lsoa_code NOT IN (
               SELECT lsoa21_code FROM _ingest_xmap WHERE lsoa21_code IS NOT NULL)), 0)
               AS unmapped21
    FROM per GROUP BY source
)
SELECT c.source, c.n, c.no_loc, c.months, f.falls_within, f.forces, c.new_codes, c.only21,
       c.only11, c.approx, c.unmapped21
FROM codes c JOIN forces f USING (source)
"""


def _file_report(
    src: _Source, info: dict, xwalk: _Crosswalk | None, report: IngestReport
) -> FileReport:
    """Build the per-file report: force, months and LSOA vintage (module notes)."""
    months = list(info["months"])
    name_match = _NAME_RE.match(src.name)
    if name_match:
        force = name_match.group(2).lower()
        if months != [name_match.group(1)]:
            report.warnings.append(
                f"{src.display}: the name says {name_match.group(1)} but the rows cover "
                f"{', '.join(months)}."
            )
    elif info["falls_within"]:
        force = _force_slug(info["falls_within"])
    else:
        force = "unknown"
    if info["only21"] or info["new_codes"]:
        vintage, basis = "2021", "crosswalk" if info["only21"] else "codes"
        if info["only11"]:
            report.warnings.append(
                f"{src.display}: mixes 2011-only and 2021-only LSOA codes; read as 2021."
            )
    elif info["only11"]:
        vintage, basis = "2011", "crosswalk"
    else:
        first = date.fromisoformat(f"{months[0]}-01")
        vintage, basis = ("2021" if first >= LSOA21_FROM else "2011"), "month"
    stored = vintage
    approx = 0
    if vintage == "2021" and basis != "month":
        if xwalk is None:
            report.warnings.append(
                f"{src.display}: uses 2021 LSOA codes and no crosswalk was given; series "
                "for LSOAs whose boundaries changed in 2021 break here."
            )
        else:
            stored = "2011"
            approx = int(info["approx"])
            if info["unmapped21"]:
                report.warnings.append(
                    f"{src.display}: {info['unmapped21']} rows in 2021 LSOAs missing from "
                    "the crosswalk kept with their 2021 codes."
                )
    return FileReport(
        path=src.display,
        name=src.name,
        status="ingested",
        rows=int(info["rows"]),
        no_location_rows=int(info["no_location"]),
        months=months,
        force=force,
        lsoa_vintage=vintage,
        vintage_basis=basis,
        stored_vintage=stored,
        approximated_rows=approx,
    )


def _force_slug(falls_within: str) -> str:
    """``'South Wales Police'`` -> ``'south-wales'`` (the slug police.uk file names use)."""
    slug = re.sub(r"[^a-z0-9]+", "-", falls_within.lower()).strip("-")
    return re.sub(r"-(police|constabulary|police-service)$", "", slug) or "unknown"


_Older = dict[str, list[tuple[int, str, frozenset[str]]]]


def _existing_files(con: duckdb.DuckDBPyConnection) -> _Older:
    """Already-ingested files by force: ``(file_id, path, months as 'YYYY-MM-DD')``.

    Read once per ingest, so replacing older copies needs no query per file.
    """
    older: _Older = {}
    for file_id, path, force, months in con.execute(
        "SELECT file_id, path, force, CAST(months AS VARCHAR[]) FROM files ORDER BY file_id"
    ).fetchall():
        older.setdefault(force, []).append((file_id, path, frozenset(months)))
    return older


def _replace_older(src: _Source, rep: FileReport, existing: _Older, doomed: list[int]) -> list[str]:
    """Mark earlier files of the same force whose months the new file covers for deletion."""
    months = {f"{m}-01" for m in rep.months}
    older = [
        (file_id, path, old <= months)
        for file_id, path, old in existing.get(rep.force, [])
        if file_id not in doomed and old & months
    ]
    for _, path, covered in older:
        if not covered:
            raise InputError(
                src.display,
                f"overlaps the already-ingested {path} without covering all of its months",
            )
    doomed.extend(file_id for file_id, _, _ in older)
    return [path for _, path, _ in older]


def _insert_files(
    con: duckdb.DuckDBPyConnection,
    staged: dict[str, _Source],
    new_rows: list[tuple[str, int, FileReport]],
) -> None:
    """Write the ``files`` rows in one statement (``executemany`` runs one per row)."""
    frame = pd.DataFrame(
        {
            "file_id": [file_id for _, file_id, _ in new_rows],
            "path": [rep.path for _, _, rep in new_rows],
            "name": [rep.name for _, _, rep in new_rows],
            "sha256": [staged[source].sha256 for source, _, _ in new_rows],
            "rows": [rep.rows for _, _, rep in new_rows],
            "no_location_rows": [rep.no_location_rows for _, _, rep in new_rows],
            "months": [[f"{m}-01" for m in rep.months] for _, _, rep in new_rows],
            "force": [rep.force for _, _, rep in new_rows],
            "lsoa_vintage": [rep.lsoa_vintage for _, _, rep in new_rows],
            "vintage_basis": [rep.vintage_basis for _, _, rep in new_rows],
            "stored_vintage": [rep.stored_vintage for _, _, rep in new_rows],
            "approximated_rows": [rep.approximated_rows for _, _, rep in new_rows],
        }
    )
    con.register("_ingest_files", frame)
    try:
        con.execute(
            """INSERT INTO files
               SELECT CAST(file_id AS INTEGER), path, name, sha256, rows, no_location_rows,
                      CAST(months AS DATE[]), force, now(), lsoa_vintage, vintage_basis,
                      stored_vintage, approximated_rows
               FROM _ingest_files"""
        )
    finally:
        con.unregister("_ingest_files")


# --------------------------------------------------------------------------------------
# Crosswalk
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Crosswalk:
    """One row per 2021 code: the 2011 code it maps to and whether that is exact."""

    table: pd.DataFrame  # lsoa21_code, lsoa11_code, lsoa11_name, approximate, only21, only11


def _load_crosswalk(path: Path) -> _Crosswalk:
    """Read and check an LSOA 2011 -> 2021 lookup (``change_code`` U, S, M or X)."""
    if not path.is_file():
        raise InputError(path, "crosswalk file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(path, f"cannot read the crosswalk as CSV: {err}") from err
    raw.columns = [c.strip().lower() for c in raw.columns]
    for key in ("lsoa11_code", "lsoa21_code", "change_code"):
        if key not in raw.columns:
            raise InputError(path, "missing column in the crosswalk", key=key)
    raw = raw.apply(lambda col: col.str.strip())
    for i, row in enumerate(raw.itertuples(index=False)):
        if not row.lsoa11_code or not row.lsoa21_code:
            raise InputError(path, "empty LSOA code", line=i + 2)
        if row.change_code.upper() not in {"U", "S", "M", "X"}:
            raise InputError(
                path, f"change_code {row.change_code!r} is not U, S, M or X", line=i + 2
            )
    raw["change_code"] = raw["change_code"].str.upper()
    names = raw["lsoa11_name"] if "lsoa11_name" in raw.columns else pd.Series(None, index=raw.index)
    raw = raw.assign(lsoa11_name=names.replace("", None))
    grouped = raw.groupby("lsoa21_code", sort=False)
    table = pd.DataFrame(
        {
            "lsoa11_code": grouped["lsoa11_code"].first(),  # the first 2011 code listed
            "lsoa11_name": grouped["lsoa11_name"].first(),
            "approximate": grouped["change_code"].agg(lambda s: bool(s.isin(["M", "X"]).any()))
            | (grouped["lsoa11_code"].nunique() > 1),
        }
    ).reset_index()
    codes11, codes21 = set(raw["lsoa11_code"]), set(raw["lsoa21_code"])
    table["only21"] = ~table["lsoa21_code"].isin(codes11)
    only11 = pd.DataFrame({"lsoa11_code": sorted(codes11 - codes21)})
    only11["only11"] = True
    table["only11"] = False
    extra = only11.assign(lsoa21_code=None, lsoa11_name=None, approximate=False, only21=False)
    return _Crosswalk(pd.concat([table, extra[table.columns]], ignore_index=True))


def _xmap_frame(xwalk: _Crosswalk | None) -> pd.DataFrame:
    """The crosswalk as a frame DuckDB can join (empty when there is none)."""
    if xwalk is not None:
        return xwalk.table
    return pd.DataFrame(
        {
            "lsoa21_code": pd.Series([], dtype=object),
            "lsoa11_code": pd.Series([], dtype=object),
            "lsoa11_name": pd.Series([], dtype=object),
            "approximate": pd.Series([], dtype=bool),
            "only21": pd.Series([], dtype=bool),
            "only11": pd.Series([], dtype=bool),
        }
    )


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
