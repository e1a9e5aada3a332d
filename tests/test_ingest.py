"""Ingest of police.uk street-level CSVs into the embedded database.

Counts are checked against a direct pandas count of each real file (exact: both count the
same rows), and small hand-made files cover old names, vintages and malformed input.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from evaluation.data import database, policeuk
from evaluation.errors import InputError

HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,"
    "LSOA code,LSOA name,Crime type,Last outcome category,Context"
)


def street_dir(shared: Path) -> Path:
    return shared / "data" / "policeuk" / "street"


def crosswalk_path(shared: Path) -> Path:
    return shared / "data" / "lookups" / "cardiff_lsoa11_to_lsoa21.csv"


def raw_counts(path: Path) -> pd.Series:
    """Rows per (month, LSOA, crime type) counted by pandas; no-location rows excluded."""
    df = pd.read_csv(path, dtype=str)
    df.columns = [c.lower() for c in df.columns]
    df = df.dropna(subset=["lsoa code"])
    return df.groupby(["month", "lsoa code", "crime type"]).size().sort_index()


def db_counts(con, file_id: int) -> pd.Series:
    df = con.execute(
        """SELECT strftime(month, '%Y-%m') AS month, lsoa_code, crime_type, sum(n) AS n
           FROM counts WHERE file_id = ? AND lsoa_code IS NOT NULL GROUP BY ALL""",
        [file_id],
    ).df()
    series = df.set_index(["month", "lsoa_code", "crime_type"])["n"].astype("int64")
    series.index.names = ["month", "lsoa code", "crime type"]
    return series.sort_index()


def row(
    month="2019-01",
    lsoa="E01000001",
    name="City 001A",
    crime="Burglary",
    outcome="",
    location="On or near X",
    force="Test Police",
    crime_id="abc",
) -> str:
    return (
        f"{crime_id},{month},{force},{force},-3.1,51.4,{location},{lsoa},{name},{crime},{outcome},"
    )


def write(path: Path, rows: list[str], header: str = HEADER, newline: str = "\n") -> Path:
    path.write_bytes((newline.join([header, *rows]) + newline).encode())
    return path


@pytest.fixture
def con():
    connection = database.connect(":memory:")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def shared_db(shared_dir):
    """All ten real files ingested once, without a crosswalk."""
    connection = database.connect(":memory:")
    report = policeuk.ingest([street_dir(shared_dir)], connection)
    yield connection, report
    connection.close()


# --------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------


def test_counts_equal_direct_pandas_count_of_each_file(shared_db, shared_dir):
    con, report = shared_db
    assert report.files_ingested == 10
    files = database.list_files(con)
    for path in sorted(street_dir(shared_dir).glob("*.csv")):
        file_id = int(files.loc[files["name"] == path.name, "file_id"].iloc[0])
        pd.testing.assert_series_equal(db_counts(con, file_id), raw_counts(path), check_names=False)


def test_no_location_rows_reported_equal_direct_count(shared_db, shared_dir):
    con, report = shared_db
    by_name = {f.name: f for f in report.by_file}
    total = 0
    for path in sorted(street_dir(shared_dir).glob("*.csv")):
        df = pd.read_csv(path, dtype=str)
        expected = int(df["LSOA code"].isna().sum())
        assert expected == int((df["Location"].str.lower() == "no location").sum())
        assert by_name[path.name].no_location_rows == expected
        assert by_name[path.name].rows == len(df)
        stored = con.execute(
            """SELECT sum(n) FROM counts JOIN files USING (file_id)
               WHERE name = ? AND lsoa_code IS NULL""",
            [path.name],
        ).fetchone()[0]
        assert stored == expected
        total += expected
    assert report.no_location_rows == total
    assert min(f.no_location_rows for f in report.by_file) >= 170  # BRIEF: 170-450 a month


def test_lowercase_header_file_reads(shared_db, shared_dir):
    path = street_dir(shared_dir) / "2022-05-south-wales-street.csv"
    assert b"longitude,latitude" in path.read_bytes()[:200]  # the edited header
    con, report = shared_db
    rep = next(f for f in report.by_file if f.name == path.name)
    assert rep.rows == len(pd.read_csv(path)) and rep.months == ["2022-05"]
    assert rep.force == "south-wales"


def test_vintage_without_crosswalk(shared_db):
    _, report = shared_db
    by_month = {f.months[0]: f for f in report.by_file}
    assert by_month["2018-10"].lsoa_vintage == "2011"
    assert by_month["2018-10"].vintage_basis == "month"
    assert by_month["2024-01"].lsoa_vintage == "2021"
    assert by_month["2024-01"].vintage_basis == "codes"  # W0100201x did not exist in 2011
    assert by_month["2024-01"].stored_vintage == "2021"
    assert any("no crosswalk" in w for w in report.warnings)


def test_crlf_copy_gives_same_counts_and_replaces(con, shared_dir, tmp_path):
    original = street_dir(shared_dir) / "2018-11-south-wales-street.csv"
    assert b"\r\n" not in original.read_bytes()
    crlf = tmp_path / "crlf" / original.name
    crlf.parent.mkdir()
    crlf.write_bytes(original.read_bytes().replace(b"\n", b"\r\n"))
    policeuk.ingest([original], con)
    before = db_counts(con, 1)
    report = policeuk.ingest([crlf], con)
    assert report.files_replaced == 1 and report.files_ingested == 1
    assert report.by_file[0].replaced == [str(original)]
    assert f"replaced {original}" in report.summary()
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 1
    pd.testing.assert_series_equal(db_counts(con, 2), before)


def test_crlf_real_file(shared_db, shared_dir):
    path = street_dir(shared_dir) / "2024-02-south-wales-street.csv"
    assert b"\r\n" in path.read_bytes()[:2000]
    con, _ = shared_db
    file_id = con.execute("SELECT file_id FROM files WHERE name = ?", [path.name]).fetchone()[0]
    pd.testing.assert_series_equal(db_counts(con, file_id), raw_counts(path), check_names=False)


def test_ingesting_twice_does_not_double_count(con, shared_dir):
    paths = sorted(street_dir(shared_dir).glob("2018-1*.csv"))
    first = policeuk.ingest(paths, con)
    total = con.execute("SELECT sum(n) FROM counts").fetchone()[0]
    second = policeuk.ingest(paths, con)
    assert first.files_ingested == 3 and second.files_ingested == 0
    assert second.files_skipped == 3
    assert con.execute("SELECT sum(n) FROM counts").fetchone()[0] == total == first.rows
    assert "already" in second.summary()


def test_zip_archive(con, shared_dir, tmp_path):
    csv_path = street_dir(shared_dir) / "2019-01-south-wales-street.csv"
    archive = tmp_path / "2019-01.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(csv_path, f"2019-01/{csv_path.name}")
        zf.writestr("2019-01/2019-01-south-wales-outcomes.csv", "not,a\nstreet,file\n")
        zf.writestr("2019-01/2019-01-south-wales-stop-and-search.csv", "\x00binary")
    report = policeuk.ingest([archive], con)
    assert report.files_ingested == 1
    assert report.by_file[0].path == f"{archive}!2019-01/{csv_path.name}"
    pd.testing.assert_series_equal(db_counts(con, 1), raw_counts(csv_path), check_names=False)
    # the same CSV given plainly has the same bytes: skipped, not counted twice
    assert policeuk.ingest([csv_path], con).files_skipped == 1


def test_crosswalk_maps_2024_files_to_2011(con, shared_dir):
    paths = sorted(street_dir(shared_dir).glob("2024-*.csv"))
    xwalk = pd.read_csv(crosswalk_path(shared_dir), dtype=str)
    report = policeuk.ingest(paths, con, crosswalk=crosswalk_path(shared_dir))
    assert all(f.lsoa_vintage == "2021" and f.stored_vintage == "2011" for f in report.by_file)
    assert all(f.vintage_basis == "crosswalk" for f in report.by_file)
    raw = pd.concat([pd.read_csv(p, dtype=str) for p in paths])
    new21 = set(xwalk.loc[xwalk["change_code"] != "U", "lsoa21_code"])
    stored = set(con.execute("SELECT DISTINCT lsoa_code FROM counts").df()["lsoa_code"])
    assert not new21 & stored  # every changed Cardiff 2021 code mapped away
    # Split: 2011 W01001843 (Cardiff 003C) = its three 2021 parts, exactly.
    parts = xwalk.loc[xwalk["lsoa11_code"] == "W01001843", "lsoa21_code"]
    split = con.execute("SELECT sum(n) FROM counts WHERE lsoa_code = 'W01001843'").fetchone()[0]
    assert split == raw["LSOA code"].isin(parts).sum()
    # Merge: 2021 W01002019 goes to the first 2011 code listed and is reported approximated.
    merged = int((raw["LSOA code"] == "W01002019").sum())
    assert report.approximated_rows == merged > 0
    assert con.execute("SELECT sum(n) FROM counts WHERE lsoa_code = 'W01001939'").fetchone()[
        0
    ] == merged + int((raw["LSOA code"] == "W01001939").sum())
    assert (
        con.execute("SELECT count(*) FROM counts WHERE lsoa_code = 'W01001941'").fetchone()[0] == 0
    )
    assert con.execute("SELECT sum(n) FROM counts").fetchone()[0] == len(raw)  # nothing lost
    assert "approximated" in report.summary()
    assert any("missing from the crosswalk" in w for w in report.warnings)  # outside Cardiff


def test_crosswalk_detects_2011_files(con, shared_dir):
    path = street_dir(shared_dir) / "2019-02-south-wales-street.csv"
    report = policeuk.ingest([path], con, crosswalk=crosswalk_path(shared_dir))
    rep = report.by_file[0]
    assert (rep.lsoa_vintage, rep.vintage_basis, rep.stored_vintage) == (
        "2011",
        "crosswalk",
        "2011",
    )
    pd.testing.assert_series_equal(db_counts(con, 1), raw_counts(path), check_names=False)


# --------------------------------------------------------------------------------------
# Hand-made files
# --------------------------------------------------------------------------------------


def test_old_crime_type_names_are_mapped(con, tmp_path):
    path = write(
        tmp_path / "2012-01-test-street.csv",
        [
            row("2012-01", crime="Violent crime"),
            row("2012-01", crime="Public disorder and weapons"),
            row("2012-01", crime="Violence and sexual offences"),
            row("2012-01", crime="criminal damage & arson"),
            row("2012-01", crime="Alien abduction"),
        ],
    )
    report = policeuk.ingest([path], con)
    got = dict(con.execute("SELECT crime_type, sum(n) FROM counts GROUP BY ALL").fetchall())
    assert got == {
        "Violence and sexual offences": 2,
        "Public order": 1,
        "Criminal damage and arson": 1,
        "Alien abduction": 1,
    }
    assert any("Alien abduction" in w for w in report.warnings)


def test_header_variants_read_the_same(con, tmp_path):
    rows = [row(lsoa="E01000001"), row(lsoa="E01000002", crime="Drugs"), row(lsoa="", name="")]
    variants = {
        "upper": HEADER.upper(),
        "snake": HEADER.lower().replace(" ", "_"),
        "bom": "\ufeff" + HEADER,
    }
    for i, (label, header) in enumerate(variants.items()):
        folder = tmp_path / label
        folder.mkdir()
        month = f"2019-0{i + 1}"
        path = write(
            folder / f"{month}-test-street.csv", [r.replace("2019-01", month) for r in rows], header
        )
        report = policeuk.ingest([folder], con)
        assert report.files_ingested == 1, label
        assert (report.rows, report.no_location_rows) == (3, 1), label
        assert report.by_file[0].path == str(path)
    assert con.execute("SELECT sum(n) FROM counts").fetchone()[0] == 9


def test_cells_with_spaces_or_empty_count_as_their_tidy_twins(tmp_path):
    """Rows are counted by their cells as read and tidied only when some cell needs it:
    a file with padded and empty cells gives the counts of its tidy twin, row for row."""
    tidy_rows = [
        row(),
        row(),
        row(outcome="Under investigation"),
        row(lsoa="", name="", location="No location"),
        row(crime="Vehicle crime", force="Test Police"),
    ]
    padded_rows = [
        row(month=" 2019-01"),
        row(lsoa="E01000001 ", name=" City 001A"),
        row(outcome=" Under investigation "),
        row(lsoa="  ", name=" ", location="No location"),
        row(crime=" Vehicle crime", force=" Test Police "),
    ]
    tables = []
    for name, rows in (("tidy", tidy_rows), ("padded", padded_rows)):
        connection = database.connect(":memory:")
        policeuk.ingest([write(tmp_path / f"2019-01-test-street-{name}.csv", rows)], connection)
        tables.append(
            connection.execute("SELECT * EXCLUDE (file_id) FROM counts ORDER BY ALL").fetchall()
        )
        connection.close()
    assert tables[0] == tables[1]
    assert sum(r[-1] for r in tables[0]) == 5
    assert (None, None) in {(r[1], r[2]) for r in tables[1]}  # the blank LSOA is missing


def test_path_with_glob_characters(con, tmp_path):
    folder = tmp_path / "crime [2019] *copy*"
    folder.mkdir()
    path = write(folder / "2019-01-test-street.csv", [row(), row()])
    report = policeuk.ingest([path], con)
    assert report.rows == 2 and report.by_file[0].path == str(path)


def test_asb_rows_with_empty_crime_id_and_outcome(con, tmp_path):
    path = write(
        tmp_path / "2019-01-test-street.csv",
        [row(crime="Anti-social behaviour", crime_id="", outcome="")] * 3
        + [row(outcome="Under investigation")],
    )
    policeuk.ingest([path], con)
    got = con.execute("SELECT crime_type, last_outcome, n FROM counts ORDER BY 1").fetchall()
    assert got == [("Anti-social behaviour", None, 3), ("Burglary", "Under investigation", 1)]


def test_force_from_falls_within_when_name_has_none(con, tmp_path):
    path = write(tmp_path / "my export.csv", [row(force="Gwent Police")])
    report = policeuk.ingest(path, con)  # a single path is fine too
    assert report.by_file[0].force == "gwent"


def test_two_files_for_the_same_month_in_one_call(con, tmp_path):
    (tmp_path / "a").mkdir()
    a = write(tmp_path / "a" / "2019-01-test-street.csv", [row()])
    b = write(tmp_path / "2019-01-test-street.csv", [row(), row()])
    with pytest.raises(InputError, match="same ingest"):
        policeuk.ingest([a, b], con)
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 0


def test_partial_overlap_is_refused_and_full_cover_replaces(con, tmp_path):
    (tmp_path / "a").mkdir()
    two = write(tmp_path / "a" / "two-months.csv", [row("2019-01"), row("2019-02")])
    one = write(tmp_path / "one-month.csv", [row("2019-01")])
    policeuk.ingest([two], con)
    with pytest.raises(InputError, match="overlaps"):
        policeuk.ingest([one], con)
    # the other way round: a two-month file covering two single-month files replaces both
    con2 = database.connect(":memory:")
    jan = write(tmp_path / "2019-01-test-street.csv", [row("2019-01")])
    feb = write(tmp_path / "2019-02-test-street.csv", [row("2019-02")])
    policeuk.ingest([jan, feb], con2)
    report = policeuk.ingest([two], con2)
    assert report.files_replaced == 1 and sorted(report.by_file[0].replaced) == [str(jan), str(feb)]
    assert con2.execute("SELECT sum(n) FROM counts").fetchone()[0] == 2


@pytest.mark.parametrize(
    ("content", "match", "line"),
    [
        (b"Month,Crime type\n2019-01,Burglary\n", "missing column.*'LSOA code'", 1),
        (b"\x00\x01\x02binary\x00", "binary file", None),
        (b"", "empty file", None),
        ((HEADER + "\n" + row() + "\n" + row() + ",extra\n").encode(), "cannot read as CSV", 3),
        (
            (HEADER + "\n" + row() + "\n" + row("2019-13") + "\n").encode(),
            "bad Month value '2019-13'",
            3,
        ),
        ((HEADER + "\n" + row("Jan 2019") + "\n").encode(), "bad Month", 2),
        ((HEADER + "\n" + row() + "\n" + row(crime="") + "\n").encode(), "empty Crime type", 3),
        ((HEADER + "\n" + row() + "\n" + row(name="Caf\xe9")).encode("latin-1"), "CSV", 3),
        ("Mois,Région\n2019-01,x\n".encode("latin-1"), "not UTF-8", 1),
    ],
)
def test_malformed_input_names_file_and_line(con, tmp_path, content, match, line):
    good = write(tmp_path / "2019-02-test-street.csv", [row("2019-02")])
    bad = tmp_path / "bad-street.csv"
    bad.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        policeuk.ingest([good, bad], con)
    assert info.value.source == str(bad)
    assert info.value.line == line
    assert str(bad) in str(info.value)
    # the transaction rolled back: the good file is not half-written
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM counts").fetchone()[0] == 0


def test_failure_leaves_earlier_ingest_intact(con, tmp_path):
    first = write(tmp_path / "2019-01-test-street.csv", [row("2019-01")] * 4)
    policeuk.ingest([first], con)
    second = write(tmp_path / "2019-02-test-street.csv", [row("2019-02")])
    bad = write(tmp_path / "2019-03-test-street.csv", [row("2019-3")])
    with pytest.raises(InputError):
        policeuk.ingest([second, bad], con)
    assert con.execute("SELECT count(*), sum(rows) FROM files").fetchone() == (1, 4)
    assert con.execute("SELECT sum(n) FROM counts").fetchone()[0] == 4
    assert policeuk.ingest([second], con).files_ingested == 1  # and the database still works


def test_bad_paths_and_archives(con, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        policeuk.ingest([tmp_path / "missing.csv"], con)
    broken = tmp_path / "2019-01.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(InputError, match="zip"):
        policeuk.ingest([broken], con)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(InputError, match="no street-level CSV"):
        policeuk.ingest([empty_dir], con)


def test_bad_zip_member_names_member(con, tmp_path):
    archive = tmp_path / "2019-01.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("2019-01/2019-01-test-street.csv", HEADER + "\n" + row("2019-1") + "\n")
    with pytest.raises(InputError) as info:
        policeuk.ingest([archive], con)
    assert info.value.source == f"{archive}!2019-01/2019-01-test-street.csv"
    assert info.value.line == 2


def test_header_only_file_is_skipped_with_warning(con, tmp_path):
    path = write(tmp_path / "2019-01-test-street.csv", [])
    report = policeuk.ingest([path], con)
    assert report.files_ingested == 0 and report.files_skipped == 1
    assert any("no data rows" in w for w in report.warnings)


def test_bad_crosswalk(con, tmp_path):
    data = write(tmp_path / "2024-01-test-street.csv", [row("2024-01")])
    xwalk = tmp_path / "xwalk.csv"
    xwalk.write_text("lsoa11_code,lsoa21_code\nA,B\n")
    with pytest.raises(InputError, match="crosswalk") as info:
        policeuk.ingest([data], con, crosswalk=xwalk)
    assert info.value.key == "change_code"
    xwalk.write_text("lsoa11_code,lsoa21_code,change_code\nA,B,U\nC,D,Q\n")
    with pytest.raises(InputError, match="not U, S, M or X") as info:
        policeuk.ingest([data], con, crosswalk=xwalk)
    assert info.value.line == 3


def test_summary_is_one_paragraph(con, tmp_path):
    path = write(tmp_path / "2019-01-test-street.csv", [row(), row(lsoa="", name="")])
    text = policeuk.ingest([path], con).summary()
    assert "\n" not in text and "2 rows" in text and "1 have no location" in text


# --------------------------------------------------------------------------------------
# Database file
# --------------------------------------------------------------------------------------


def test_connect_creates_schema_and_reopens(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALUATION_HOME", str(tmp_path))
    con = database.connect()
    path = tmp_path / "data" / "evaluation.duckdb"
    assert path.exists()
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == database.SCHEMA_VERSION
    write(tmp_path / "2019-01-test-street.csv", [row()])
    policeuk.ingest([tmp_path / "2019-01-test-street.csv"], con)
    con.close()
    reader = database.connect(path, read_only=True)
    assert reader.execute("SELECT count(*) FROM files").fetchone()[0] == 1
    assert len(database.coverage(reader)) == 1
    reader.close()


def test_connect_errors(tmp_path):
    with pytest.raises(InputError, match="no database"):
        database.connect(tmp_path / "none.duckdb", read_only=True)
    path = tmp_path / "new.duckdb"
    con = database.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(InputError, match="newer"):
        database.connect(path)
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="cannot open"):
        database.connect(junk)


def test_only_2021_codes_really_missing_from_the_crosswalk_are_reported(con, tmp_path):
    """A new 2021 code that the crosswalk maps is not 'missing from the crosswalk'; one it
    lacks is, counted by its rows (the old check counted every new English code)."""
    xwalk = tmp_path / "crosswalk.csv"
    xwalk.write_text(
        "lsoa11_code,lsoa21_code,change_code\n"
        "E01000001,E01000001,U\n"
        "E01000002,E01035001,S\n"
        "E01000002,E01035002,S\n"
    )
    rows = [row("2024-01", "E01000001"), row("2024-01", "E01035001")]
    rows += [row("2024-01", "E01035002")] * 2 + [row("2024-01", "E01039999")] * 3
    report = policeuk.ingest([write(tmp_path / "f.csv", rows)], con, crosswalk=xwalk)
    missing = [w for w in report.warnings if "missing from the crosswalk" in w]
    assert len(missing) == 1 and ": 3 rows in 2021 LSOAs" in missing[0], report.warnings
    stored = dict(con.execute("SELECT lsoa_code, sum(n) FROM counts GROUP BY ALL").fetchall())
    assert stored == {"E01000001": 1, "E01000002": 3, "E01039999": 3}
