"""Params validation: every bad input gives one line naming the file and key, exit 2,
and nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.cli import main
from evaluation.errors import InputError
from evaluation.params import ItsParams, load_params

GOOD = """\
title: Test
design: its
data:
  csv: series.csv
  unit: area
  time: month
  outcome: count
outcome:
  label: Test crimes
intervention:
  start: {start}
model:
  family: poisson
  se: model
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> Path:
    """A project-like folder with a 48-month tidy CSV (and this checkout's notebooks, which
    check the data)."""
    monkeypatch.setenv("EVALUATION_HOME", str(tmp_path))
    (tmp_path / "notebooks").symlink_to(repo_root / "notebooks")
    rng = np.random.default_rng(1)
    months = pd.period_range("2018-01", periods=48, freq="M").strftime("%Y-%m")
    pd.DataFrame({"area": "A", "month": months, "count": rng.poisson(50, 48)}).to_csv(
        tmp_path / "series.csv", index=False
    )
    return tmp_path


def _write(dir_: Path, text: str, name: str = "p.yaml") -> Path:
    path = dir_ / name
    path.write_text(text)
    return path


def test_good_params_load(workdir: Path) -> None:
    params = load_params(_write(workdir, GOOD.format(start="2020-01")))
    assert isinstance(params, ItsParams)
    assert params.intervention.start == "2020-01-01"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (GOOD.format(start="2020-01") + "colour: blue\n", "colour", "unknown key"),
        (
            GOOD.format(start="2020-01").replace("family: poisson", "famly: poisson"),
            "model.famly",
            "unknown key",
        ),
        (
            GOOD.format(start="2020-01").replace("se: model", "hac_lags: three"),
            "model.hac_lags",
            "integer",
        ),
        (GOOD.format(start="2020-13"), "intervention.start", "date"),
        (GOOD.format(start="2020-02-30"), "intervention.start", "date"),
        (
            GOOD.format(start="2020-01").replace("design: its", "design: magic"),
            "design",
            "unknown design",
        ),
        (
            GOOD.format(start="2020-01").replace("family: poisson", "family: binomial"),
            "model.family",
            "poisson",
        ),
        (
            GOOD.format(start="2020-01").replace("  outcome: count\n", ""),
            "data.outcome",
            "required",
        ),
    ],
)
def test_bad_params_name_the_key(workdir: Path, text: str, key: str, fragment: str) -> None:
    path = _write(workdir, text)
    with pytest.raises(InputError) as info:
        load_params(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert f": {key}:" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- just\n- a list\n", "must be a mapping"),
        ("!!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
        ("title: [unclosed\n", "invalid YAML"),
        ("title: a\ntitle: b\n", "duplicate key"),
    ],
)
def test_unreadable_params(workdir: Path, text: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        load_params(_write(workdir, text))


def test_missing_params_file(workdir: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_params(workdir / "nope.yaml")


def _cli_bad(workdir: Path, capsys: pytest.CaptureFixture[str], text: str) -> str:
    path = _write(workdir, text)
    before = sorted(p.name for p in workdir.rglob("*"))
    code = main(["run", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert sorted(p.name for p in workdir.rglob("*")) == before, "something was written"
    return err


def test_cli_unknown_key_exits_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_bad(workdir, capsys, GOOD.format(start="2020-01") + "extra: 1\n")
    assert "p.yaml: extra: unknown key" in err


def test_cli_start_outside_data(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_bad(workdir, capsys, GOOD.format(start="2030-01"))
    assert "intervention.start" in err and "outside the data" in err


def test_cli_start_before_data(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_bad(workdir, capsys, GOOD.format(start="2015-01"))
    assert "intervention.start" in err and "outside the data" in err


def test_cli_too_few_pre_periods(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_bad(workdir, capsys, GOOD.format(start="2018-09"))
    assert "intervention.start" in err and "at least 12" in err


def test_cli_unknown_unit(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.format(start="2020-01").replace(
        "  outcome: count\n", "  outcome: count\n  units: [Atlantis]\n"
    )
    err = _cli_bad(workdir, capsys, text)
    assert "data.units" in err and "Atlantis" in err


def test_cli_missing_csv(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_bad(
        workdir, capsys, GOOD.format(start="2020-01").replace("series.csv", "absent.csv")
    )
    assert "absent.csv" in err
