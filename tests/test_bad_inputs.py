"""The bad-input corpus in ``tests/bad_inputs/``, run through the real command line.

Every case must give exactly one line on stderr, ``error: <file>[:<line>][: <key>]: ...``,
exit code 2, no traceback, nothing on stdout and nothing written. What can be handled
(a few missing months of a quiet area, rows out of order, Windows-1252 text, records
without a location, a force missing months) is handled and reported in the results'
``warnings``.

Layout of the corpus:

* ``<case>.yaml``: one bad input each. Its first comment lines say what is wrong; each
  ``# expect:`` line is a fragment the one-line error must contain (file, line and key
  included, e.g. ``negative_count.csv:13: count: negative count``). ``# database:
  policeuk`` runs the case on a small police.uk database the tests ingest from generated
  files. A case's CSV, when it has one, is ``<case>.csv`` beside it.
* ``good.yaml``, ``good_did.yaml``, ``good_policeuk.yaml``: the bases the cases vary; they
  must validate, so that each case fails for its own defect only.
* ``policeuk/``: files for ``evaluation ingest`` (expectations in :data:`INGEST_CASES`).
* ``handled/``: messy but usable input, run to results with warnings.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from evaluation import api, runner
from evaluation.cli import main

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p for p in CORPUS.glob("*.yaml") if not p.stem.startswith("good"))
BASES = sorted(CORPUS.glob("good*.yaml"))

#: Bad files for ``evaluation ingest``: path under ``policeuk/`` (or a special path) and
#: fragments of the one-line error.
INGEST_CASES: dict[str, tuple[str, ...]] = {
    "empty-street.csv": ("empty-street.csv: empty file",),
    "binary-street.csv": ("binary-street.csv: binary file",),
    "utf16-street.csv": ("utf16-street.csv: UTF-16 text: save it as UTF-8",),
    "header-not-utf8-street.csv": ("header-not-utf8-street.csv:1: header is not UTF-8",),
    "body-not-utf8-street.csv": ("body-not-utf8-street.csv:6: cannot read as CSV", "UTF-8"),
    "missing-column-street.csv": ("missing-column-street.csv:1:", "'LSOA code'"),
    "bad-month-street.csv": ("bad-month-street.csv:6: bad Month value '2019-13'",),
    "empty-crime-type-street.csv": ("empty-crime-type-street.csv:6: empty Crime type",),
    "ragged-street.csv": ("ragged-street.csv:6: cannot read as CSV", "Columns: 12 Found: 3"),
    "too-many-fields-street.csv": ("too-many-fields-street.csv:6: cannot read as CSV", "Found: 13"),
    "truncated-street.csv": ("truncated-street.csv:6: cannot read as CSV",),
    "unclosed-quote-street.csv": ("unclosed-quote-street.csv:6:", "unterminated quote"),
    "corrupt.zip": ("corrupt.zip: not a readable zip archive",),
    "/etc/passwd": ("/etc/passwd:1: not a police.uk street-level CSV",),
    "/dev/zero": ("/dev/zero: not a regular file",),
    "no_such_file-street.csv": ("no_such_file-street.csv: no such file or folder",),
    "<empty folder>": ("no street-level CSV files found",),
    "<two copies of a month>": ("covers south-wales 2019-01, as does",),
}

# --------------------------------------------------------------------------------------
# Helpers and fixtures
# --------------------------------------------------------------------------------------


def _header(path: Path, field: str) -> list[str]:
    """Values of ``# <field>: ...`` comment lines at the top of a case file."""
    found = []
    for raw in path.read_bytes().splitlines():
        line = raw.decode("utf-8", errors="replace")
        if not line.startswith("#"):
            break
        if line.startswith(f"# {field}:"):
            found.append(line.split(":", 1)[1].strip())
    return found


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> None:
    """Run against this checkout (its notebooks), wherever pytest was started."""
    monkeypatch.setenv("EVALUATION_HOME", str(repo_root))
    monkeypatch.delenv(runner.DEBUG_ENV, raising=False)


LSOAS = ("W01001700", "W01001701", "W01001702", "W01001703")
HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context\n"
)


def _street_rows(month: str, rng: np.random.Generator, force: str) -> str:
    rows = []
    for lsoa in LSOAS:
        for crime, mean in (("Drugs", 6), ("Burglary", 3)):
            for i in range(int(rng.poisson(mean))):
                rows.append(
                    f"{lsoa}-{month}-{i},{month},{force},{force},-3.17,51.48,On or near X,"
                    f"{lsoa},Cardiff,{crime},Under investigation,\n"
                )
    # one record a month without a location: kept, outside every area
    rows.append(f"nl-{month},{month},{force},{force},,,No location,,,Drugs,Under investigation,\n")
    return HEADER + "".join(rows)


@pytest.fixture(scope="session")
def policeuk_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Street-level files: South Wales 2018-01..2020-12 without 2020-10 (a month never
    published), and Gwent for 2018-01 only (a force missing months)."""
    folder = tmp_path_factory.mktemp("street")
    rng = np.random.default_rng(20240401)
    for month in pd.period_range("2018-01", "2020-12", freq="M").strftime("%Y-%m"):
        if month != "2020-10":
            text = _street_rows(month, rng, "South Wales Police")
            (folder / f"{month}-south-wales-street.csv").write_text(text)
    (folder / "2018-01-gwent-street.csv").write_text(
        _street_rows("2018-01", rng, "Gwent Police").replace("W0100170", "W0100050")
    )
    return folder


@pytest.fixture(scope="session")
def policeuk_db(policeuk_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small police.uk database, ingested through the command line."""
    db = tmp_path_factory.mktemp("db") / "policeuk.duckdb"
    # its summary line must not reach the capsys of whichever test first asks for it
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ingest", str(policeuk_files), "--database", str(db)]) == 0
    return db


def _table_state(db: Path) -> tuple[object, ...]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        files = con.execute("SELECT file_id, sha256, rows FROM files ORDER BY file_id").fetchall()
        counts = con.execute("SELECT count(*), sum(n) FROM counts").fetchone()
    finally:
        con.close()
    return tuple(files), counts


# --------------------------------------------------------------------------------------
# The corpus itself
# --------------------------------------------------------------------------------------


def test_corpus_is_large_and_every_case_says_what_to_expect() -> None:
    assert len(CASES) + len(INGEST_CASES) >= 40
    names_a_file = re.compile(r"(\.yaml|\.csv|/)")
    for case in CASES:
        expects = _header(case, "expect")
        assert expects, f"{case.name} has no '# expect:' line"
        assert names_a_file.search(expects[0]), f"{case.name}: first expect names no file"


@pytest.mark.parametrize("base", BASES, ids=lambda p: p.stem)
def test_bases_are_good(base: Path, policeuk_db: Path) -> None:
    """The cases vary a good input, so each fails for its own defect."""
    db = policeuk_db if _header(base, "database") else None
    runner.validate(base, db)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_bad_input_gives_one_line_and_exit_2(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    argv = ["run", str(case), "--output-dir", str(tmp_path / "reports" / case.stem)]
    if _header(case, "database"):
        argv = ["--database", str(request.getfixturevalue("policeuk_db")), *argv]
    before = _snapshot(CORPUS)
    code = main(argv)
    out, err = capsys.readouterr()
    line = _one_line_error(err)
    assert code == 2, line
    assert out == ""
    for fragment in _header(case, "expect"):
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert not (tmp_path / "reports").exists(), "something was written"
    assert _snapshot(CORPUS) == before, "the corpus was modified"


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("no_such_params.yaml", "no_such_params.yaml: params file not found"),
        ("policeuk", "policeuk: params path is a folder"),
        ("/dev/zero", "/dev/zero: params path is not a regular file"),
        ("/etc/passwd", "/etc/passwd"),
        ("series.csv", "series.csv: params must be a mapping"),
    ],
)
def test_bad_params_paths(
    given: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = given if given.startswith("/") else str(CORPUS / given)
    code = main(["run", path, "--output-dir", str(tmp_path / "out")])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2, line
    assert fragment in line
    assert not any(tmp_path.iterdir())


def test_unwritable_output_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(CORPUS / "good.yaml"), "--output-dir", "/dev/null/report"])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2
    assert "/dev/null/report: --output-dir: cannot create the report folder" in line


@pytest.mark.parametrize("case", sorted(INGEST_CASES), ids=str)
def test_bad_police_uk_file_leaves_the_database_unchanged(
    case: str,
    policeuk_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "db.duckdb"
    db.write_bytes(policeuk_db.read_bytes())
    before = _table_state(db)
    if case == "<empty folder>":
        (tmp_path / "empty").mkdir()
        paths = [str(tmp_path / "empty")]
    elif case == "<two copies of a month>":
        paths = [
            str(CORPUS / "policeuk" / "2019-01-south-wales-street.csv"),
            str(CORPUS / "policeuk" / "2019-01-south-wales-street-copy.csv"),
        ]
    else:
        paths = [case if case.startswith("/") else str(CORPUS / "policeuk" / case)]
    code = main(["ingest", *paths, "--database", str(db)])
    out, err = capsys.readouterr()
    line = _one_line_error(err)
    assert code == 2, line
    assert out == ""
    for fragment in INGEST_CASES[case]:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert _table_state(db) == before, "the database changed"


def test_no_traceback_reaches_stderr_of_the_real_command(tmp_path: Path, repo_root: Path) -> None:
    """A few cases through a fresh interpreter: only the one line reaches stderr."""
    runs = {
        "unknown_key": ["run", str(CORPUS / "unknown_key.yaml")],
        "python_object_tag": ["run", str(CORPUS / "python_object_tag.yaml")],
        "negative_count": ["run", str(CORPUS / "negative_count.yaml")],
        "csv_dev_zero": ["run", str(CORPUS / "csv_dev_zero.yaml")],
        "ingest_dev_zero": ["ingest", "/dev/zero", "--database", str(tmp_path / "x.duckdb")],
    }
    env = {k: v for k, v in os.environ.items() if k != runner.DEBUG_ENV}
    env["EVALUATION_HOME"] = str(repo_root)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "evaluation.cli", *argv]
            + (["--output-dir", str(out_dir / name)] if argv[0] == "run" else []),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in runs.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        line = _one_line_error(err)
        assert proc.returncode == 2, (name, line)
        assert out == ""
    assert not any(out_dir.iterdir()), "a run wrote something"
    # the command line opens (creates) the database before reading the files; the failed
    # ingest must have added nothing to it
    db = tmp_path / "x.duckdb"
    if db.exists():
        assert _table_state(db) == ((), (0, None))


def test_an_unexpected_error_is_one_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug met while checking the input: one line, exit 1, nothing written; the
    traceback only with EVALUATION_DEBUG=1."""

    def broken(*args: object) -> None:
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr("evaluation.context.check_params", broken)
    argv = ["run", str(CORPUS / "good.yaml"), "--output-dir", str(tmp_path / "out")]
    code = main(argv)
    line = _one_line_error(capsys.readouterr().err)
    assert code == 1
    assert "good.yaml: unexpected error" in line and "ZeroDivisionError" in line
    assert runner.DEBUG_ENV in line
    assert not any(tmp_path.iterdir())
    monkeypatch.setenv(runner.DEBUG_ENV, "1")
    with pytest.raises(ZeroDivisionError):
        main(argv)


# --------------------------------------------------------------------------------------
# Handled, with warnings
# --------------------------------------------------------------------------------------


def test_messy_csv_is_handled_with_warnings() -> None:
    """Windows-1252 text, rows out of order and two missing months of a quiet area."""
    results = api.load(CORPUS / "handled" / "messy.yaml").fit()
    text = " | ".join(results.warnings)
    assert "messy_series.csv: not UTF-8 (line 5); read as Windows-1252" in text
    assert "were not in time order; they were sorted" in text
    assert "2 area-period row(s) were missing and were read as zero counts" in text
    assert "Quiet 2019-05, Quiet 2020-11" in text
    # the series is North + Quiet, with Quiet read as 0 in the missing months
    raw = pd.read_csv(CORPUS / "handled" / "messy_series.csv", encoding="cp1252")
    series = results.series["primary"]
    for month in ("2019-05", "2020-11"):
        north = raw.loc[(raw["area"] == "North") & (raw["month"] == month), "count"].item()
        assert series.observed[series.periods.index(f"{month}-01")] == north
    assert results.periods.pre_periods == 24 and results.periods.post_periods == 24


def test_police_uk_gaps_and_unlocated_records_are_handled(
    policeuk_db: Path, policeuk_files: Path
) -> None:
    results = api.load(CORPUS / "good_policeuk.yaml", policeuk_db).fit()
    text = " | ".join(results.warnings)
    # one a month for South Wales (33 months in the window) and one for Gwent's month
    assert "34 records of these crime types had no location" in text
    assert "some forces lack months of the window" in text and "gwent (1/33)" in text
    assert results.data_quality["records_without_location"] == 34
    # provenance names every ingested file with the sha256 of its bytes
    expected = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in policeuk_files.iterdir()
    }
    assert results.provenance.data_files == expected


def test_handled_ingest_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A header-only file and an unknown crime type are warnings, not errors."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "2019-02-south-wales-street.csv").write_text(HEADER)
    (folder / "2019-03-south-wales-street.csv").write_text(
        HEADER + "a,2019-03,South Wales Police,South Wales Police,-3.1,51.4,On or near X,W01001700,"
        "Cardiff,Jaywalking,Under investigation,\n"
    )
    assert main(["ingest", str(folder), "--database", str(tmp_path / "db.duckdb")]) == 0
    out = capsys.readouterr().out
    assert "no data rows; not ingested" in out
    assert "unknown crime type 'Jaywalking' (1 rows) kept as is" in out
