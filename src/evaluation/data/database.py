"""The embedded DuckDB database that holds aggregated police.uk counts.

One file (``config.default_database()`` unless told otherwise) created on first use. It
stores *aggregated* counts, never records, so that England-and-Wales archives fit:

``meta(key, value)``
    ``schema_version`` and the time the database was created.
``files``
    One row per ingested street-level CSV: ``file_id``, ``path`` (for a file inside a zip,
    ``archive.zip!member``), ``name``, ``sha256`` (of the CSV bytes; a file already seen is
    skipped), ``rows``, ``no_location_rows``, ``months`` (``DATE[]``), ``force`` (slug, e.g.
    ``south-wales``), ``ingested_at``, ``lsoa_vintage`` (vintage of the LSOA codes *in the
    source file*: ``'2011'`` or ``'2021'``), ``vintage_basis`` (how that was decided:
    ``'crosswalk'``, ``'codes'`` or ``'month'``), ``stored_vintage`` (vintage of the codes
    written to ``counts``: ``'2011'`` after a crosswalk mapped 2021 codes back) and
    ``approximated_rows`` (rows allocated to the first of several 2011 LSOAs).
``counts``
    ``(file_id, month, lsoa_code, lsoa_name, crime_type, last_outcome, n)``: the number of
    rows of a file with those values. ``lsoa_code``/``lsoa_name`` are NULL for rows with no
    location (kept, so they can be counted); ``last_outcome`` is NULL when the file gives
    none (anti-social behaviour). ``crime_type`` is the current police.uk name.
``crime_type_map``
    Lookup of lower-cased raw crime-type names (current and old) to current names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from evaluation import config
from evaluation.errors import InputError

#: Bumped when the tables change; ``connect`` refuses a database newer than the code.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY,
    path VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL UNIQUE,
    rows BIGINT NOT NULL,
    no_location_rows BIGINT NOT NULL,
    months DATE[] NOT NULL,
    force VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    lsoa_vintage VARCHAR NOT NULL,
    vintage_basis VARCHAR NOT NULL,
    stored_vintage VARCHAR NOT NULL,
    approximated_rows BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS counts (
    file_id INTEGER NOT NULL,
    month DATE NOT NULL,
    lsoa_code VARCHAR,
    lsoa_name VARCHAR,
    crime_type VARCHAR NOT NULL,
    last_outcome VARCHAR,
    n BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS crime_type_map (
    raw VARCHAR PRIMARY KEY,
    crime_type VARCHAR NOT NULL
);
"""


def connect(path: Path | str | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and on first use create) the evaluation database.

    Parameters
    ----------
    path
        Database file; ``config.default_database()`` when None; ``":memory:"`` for an
        in-memory database (tests).
    read_only
        Open without write access (several readers may share the file).

    Raises
    ------
    InputError
        When a read-only database does not exist yet, the file is not a DuckDB database,
        or its schema is newer than this code understands.
    """
    memory = str(path) == ":memory:"
    target = Path(path) if path is not None and not memory else config.default_database()
    if memory:
        con = duckdb.connect(":memory:")
    else:
        if read_only and not target.exists():
            raise InputError(target, "no database here yet: ingest police.uk data first")
        if not read_only:
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(target), read_only=read_only)
        except duckdb.Error as err:
            raise InputError(target, f"cannot open the database: {_first_line(err)}") from err
    _ensure_schema(con, target if not memory else ":memory:", read_only)
    return con


def _ensure_schema(con: duckdb.DuckDBPyConnection, where: Path | str, read_only: bool) -> None:
    """Create the tables when missing and check the schema version."""
    has_meta = scalar(
        con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
    )
    if not has_meta:
        if read_only:
            raise InputError(where, "not an evaluation database (no meta table)")
        con.execute("BEGIN")
        con.execute(_SCHEMA)
        con.execute(
            "INSERT INTO meta VALUES ('schema_version', ?), ('created_at', CAST(now() AS VARCHAR))",
            [str(SCHEMA_VERSION)],
        )
        _seed_crime_types(con)
        con.execute("COMMIT")
        return
    rows = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    version = int(rows[0][0]) if rows else 0
    if version > SCHEMA_VERSION:
        raise InputError(
            where,
            f"database schema version {version} is newer than this code ({SCHEMA_VERSION}): "
            "upgrade the evaluation package",
        )
    if version < SCHEMA_VERSION:  # no older schema has been released yet
        raise InputError(where, f"unknown database schema version {version}")


def _seed_crime_types(con: duckdb.DuckDBPyConnection) -> None:
    """Fill ``crime_type_map`` with current and old names (lower-cased keys)."""
    mapping = {name.lower(): name for name in config.CRIME_TYPES}
    mapping.update({old.lower(): new for old, new in config.OLD_CRIME_TYPES.items()})
    con.executemany("INSERT INTO crime_type_map VALUES (?, ?)", sorted(mapping.items()))


def list_files(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The ingested files, one row each, oldest month first."""
    return con.execute(
        """SELECT file_id, path, name, force, months, rows, no_location_rows, lsoa_vintage,
                  vintage_basis, stored_vintage, approximated_rows, sha256, ingested_at
           FROM files ORDER BY list_min(months), force, file_id"""
    ).df()


def coverage(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Months ingested per force: columns ``force, month`` (one row per pair)."""
    return con.execute(
        """SELECT DISTINCT force, unnest(months) AS month FROM files ORDER BY force, month"""
    ).df()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None) -> Any:
    """The first column of the first row of a query (None when there is no row).

    Meant for one-row queries (aggregates). It fetches every row: DuckDB 2 keeps a result
    read with ``fetchone`` open, and then refuses ``register`` on the connection.
    """
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def _first_line(err: BaseException) -> str:
    """The first line of an exception message (DuckDB's are long)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
