"""The national-scale synthetic police.uk archive: format, determinism, ingestion."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from evaluation.data import database, national, panel, policeuk
from evaluation.errors import InputError


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*-street.csv")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> national.NationalData:
    return national.generate_national(
        tmp_path_factory.mktemp("national"),
        n_lsoas=400,
        months=4,
        n_forces=3,
        seed=11,
        start="2022-05",
    )


def test_writes_police_uk_files_per_force_and_month(archive: national.NationalData) -> None:
    files = sorted(archive.root.rglob("*-street.csv"))
    assert archive.files == len(files) == 3 * 4
    assert archive.months == ("2022-05", "2022-06", "2022-07", "2022-08")
    assert files[0].relative_to(archive.root).as_posix() == (
        "2022-05/2022-05-synthetic-constabulary-01-street.csv"
    )
    lines = files[0].read_text().splitlines()
    assert lines[0] == national._HEADER
    # 400 LSOAs x 14 records a month on average, Poisson-gamma: well inside 15%
    assert archive.records == pytest.approx(400 * 4 * 14, rel=0.15)
    assert sum(len(f.read_text().splitlines()) - 1 for f in files) == archive.records


def test_same_seed_same_files(archive: national.NationalData, tmp_path: Path) -> None:
    again = national.generate_national(
        tmp_path / "again", n_lsoas=400, months=4, n_forces=3, seed=11, start="2022-05"
    )
    assert _digest(again.root) == _digest(archive.root)
    other = national.generate_national(
        tmp_path / "other", n_lsoas=400, months=1, seed=12, n_forces=3
    )
    assert other.records != 0 and _digest(other.root) != _digest(archive.root)


def test_ingests_out_of_core_and_builds_a_panel(
    archive: national.NationalData, tmp_path: Path
) -> None:
    con = database.connect(tmp_path / "national.duckdb")
    national.configure_out_of_core(con, memory_limit="1GB", temp_directory=tmp_path / "spill")
    report = policeuk.ingest(archive.root, con)
    assert report.files_skipped == 0
    assert database.scalar(con, "SELECT sum(n) FROM counts") == archive.records
    assert database.scalar(con, "SELECT count(DISTINCT lsoa_code) FROM counts") == 400
    assert database.scalar(con, "SELECT current_setting('memory_limit')").startswith(("953", "1.0"))
    counts = panel.build_panel(con, crime_types=["Burglary"])
    assert len(counts) == 400 * 4  # zero-filled: every LSOA in every month
    con.close()


def test_refuses_impossible_sizes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="n_lsoas"):
        national.generate_national(tmp_path, n_lsoas=40000)
    with pytest.raises(InputError, match="start"):
        national.generate_national(tmp_path, n_lsoas=10, months=1, n_forces=1, start="2020-13")


def test_command_line_generates_ingests_and_exports_out_of_core(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaluation.cli import main

    archive, db = tmp_path / "national", tmp_path / "national.duckdb"
    assert (
        main(["generate", "--national", "--lsoas", "120", "--months", "3", "--out", str(archive)])
        == 0
    )
    assert "SYNTHETIC national-size" in capsys.readouterr().out
    spill = ["--memory-limit", "512MB", "--temp-dir", str(tmp_path / "spill")]
    assert main(["--database", str(db), "ingest", str(archive), *spill]) == 0
    out = tmp_path / "burglary.csv"
    assert (
        main(
            ["--database", str(db), "panel", "--out", str(out), "--crime-type", "Burglary", *spill]
        )
        == 0
    )
    assert len(out.read_text().splitlines()) == 1 + 120 * 3  # every LSOA and month, zero-filled
    capsys.readouterr()
    assert (
        main(["--database", str(db), "panel", "--out", str(out), "--memory-limit", "8 GB'; x"]) == 2
    )
    assert "--memory-limit" in capsys.readouterr().err
