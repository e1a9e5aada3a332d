"""Loading tidy CSVs of any shape, and the one-line errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.data import tidy
from evaluation.errors import InputError


def write(tmp_path: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("times", "frequency", "expected"),
    [
        (["2019", "2020", "2021"], "year", ["2019-01-01", "2020-01-01", "2021-01-01"]),
        (["2020Q1", "2020Q2", "2020Q4"], "quarter", ["2020-01-01", "2020-04-01", "2020-10-01"]),
        (["2020-Q1", "2020 q2", "Q3 2020"], "quarter", ["2020-01-01", "2020-04-01", "2020-07-01"]),
        (["2020-01", "2020-02", "2020-12"], "month", ["2020-01-01", "2020-02-01", "2020-12-01"]),
        (
            ["2020-01-15", "2020-02-15", "2020-03-31"],
            "month",
            ["2020-01-01", "2020-02-01", "2020-03-01"],
        ),
        (["Jan 2020", "Feb 2020", "Mar 2020"], "month", ["2020-01-01", "2020-02-01", "2020-03-01"]),
        (
            ["January 2020", "February 2020", "March 2020"],
            "month",
            ["2020-01-01", "2020-02-01", "2020-03-01"],
        ),
        (["01/2020", "02/2020", "03/2020"], "month", ["2020-01-01", "2020-02-01", "2020-03-01"]),
    ],
)
def test_calendar_times(tmp_path, times, frequency, expected):
    body = "".join(f"{t},{i}\n" for i, t in enumerate(times))
    path = write(tmp_path, "when,y\n" + body)
    loaded = tidy.load_tidy(path, unit=None, time="when", outcome="y")
    assert loaded.frequency == frequency
    assert loaded.data["period"].tolist() == [pd.Timestamp(e) for e in expected]
    assert loaded.data["unit"].eq(tidy.SINGLE_UNIT).all()
    assert loaded.data["outcome"].tolist() == [0.0, 1.0, 2.0]


def test_integer_periods(tmp_path):
    path = write(tmp_path, "t,y\n1,5\n2,6\n3,7\n")
    loaded = tidy.load_tidy(path, unit=None, time="t", outcome="y")
    assert loaded.frequency == "period"
    assert loaded.data["period"].tolist() == [1, 2, 3]
    assert loaded.data["period"].dtype == "int64"


def test_frequency_can_be_forced(tmp_path):
    path = write(tmp_path, "t,y\n2001,5\n2002,6\n")
    loaded = tidy.load_tidy(path, unit=None, time="t", outcome="y", frequency="period")
    assert loaded.frequency == "period" and loaded.data["period"].tolist() == [2001, 2002]
    with pytest.raises(InputError, match="frequency"):
        tidy.load_tidy(path, unit=None, time="t", outcome="y", frequency="weekly")


def test_panel_with_offset_extra_and_line_index(tmp_path):
    path = write(
        tmp_path,
        "Area,Month,Crimes,Pop,treated\n"
        "b,2020-02,3,100,1\n"
        "a,2020-02,1,50,0\n"
        "\n"  # a blank line does not shift the line numbers
        "a,2020-01,2,50,0\n"
        "b,2020-01,4,100,1\n",
    )
    loaded = tidy.load_tidy(
        path, unit="area", time="month", outcome="crimes", offset="Pop", extra=["treated"]
    )
    frame = loaded.data
    assert list(frame.columns) == ["unit", "period", "outcome", "offset", "treated"]
    assert frame["unit"].tolist() == ["a", "a", "b", "b"]  # sorted by unit, period
    assert frame.index.tolist() == [5, 3, 6, 2]  # lines in the file
    assert frame.index.name == "line"
    assert frame["offset"].tolist() == [50.0, 50.0, 100.0, 100.0]
    assert loaded.has_offset and loaded.units == ["a", "b"]


def test_no_offset_is_nan(tmp_path):
    loaded = tidy.load_tidy(write(tmp_path, "t,y\n1,2\n"), unit=None, time="t", outcome="y")
    assert np.isnan(loaded.data["offset"]).all() and not loaded.has_offset


def test_crlf_and_bom(tmp_path):
    path = write(tmp_path, "\ufeffunit,year,n\r\nx,2019,1\r\nx,2020,2\r\n")
    loaded = tidy.load_tidy(path, unit="unit", time="year", outcome="n")
    assert loaded.frequency == "year" and loaded.data["outcome"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("text", "kwargs", "match", "key", "line"),
    [
        ("u,t,y\na,1,2\n", {"outcome": "count"}, "column not found", "count", None),
        ("u,t,y\na,1,2\nb,1,x\n", {}, "'x' is not a number", "y", 3),
        ("u,t,y\na,1,2\nb,1,\n", {}, "missing value", "y", 3),
        ("u,t,y\na,1,2\nb,1,3\na,1,4\n", {}, "more than once.*also line 2", None, 4),
        ("u,t,y\na,2020-01,2\na,2020-13,3\n", {}, "cannot read time '2020-13'", "t", 3),
        ("u,t,y\na,2020-01,2\na,soon,3\n", {}, "cannot read time 'soon'", "t", 3),
        ("u,t,y\na,1,2\na,,3\n", {}, "empty value", "t", 3),
        ("u,t,y\n,1,2\n", {}, "empty value", "u", 2),
        ("u,t,y,p\na,1,2,0\n", {"offset": "p"}, "offset must be positive", "p", 2),
        ("u,t,y\na,1,2,9,9\n", {}, "cannot read as CSV", None, 2),
        ("u,t,y\n", {}, "no data rows", None, None),
        ("", {}, "empty file", None, None),
        ("  \n\n", {}, "empty file", None, None),
    ],
)
def test_errors_name_file_and_line_or_column(tmp_path, text, kwargs, match, key, line):
    path = write(tmp_path, text)
    args = {"unit": "u", "time": "t", "outcome": "y"} | kwargs
    with pytest.raises(InputError, match=match) as info:
        tidy.load_tidy(path, **args)
    assert info.value.source == str(path)
    assert (info.value.key, info.value.line) == (key, line)
    assert "\n" not in str(info.value)  # one line


def test_binary_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(InputError, match="binary"):
        tidy.load_tidy(path, unit=None, time="t", outcome="y")
    with pytest.raises(InputError, match="not found"):
        tidy.load_tidy(tmp_path / "nope.csv", unit=None, time="t", outcome="y")


def test_cp1252_falls_back_with_warning(tmp_path):
    path = write(tmp_path, "ward,year,n\nCaf\u00e9 Quarter,2019,1\n", encoding="cp1252")
    with pytest.warns(UserWarning, match="Windows-1252"):
        loaded = tidy.load_tidy(path, unit="ward", time="year", outcome="n")
    assert loaded.data["unit"].tolist() == ["Caf\u00e9 Quarter"]
    assert loaded.warnings and "line 2" in loaded.warnings[0]


def test_undecodable_text_fails_clearly(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"ward,year,n\nx\x81y,2019,1\n")  # 0x81: no character in UTF-8 or cp1252
    with pytest.raises(InputError, match="neither UTF-8 nor Windows-1252") as info:
        tidy.load_tidy(path, unit="ward", time="year", outcome="n")
    assert info.value.line == 2


def test_columns_match_ignoring_case(tmp_path):
    path = write(tmp_path, " Ward ,YEAR,Count\nx,2019,1\n")
    loaded = tidy.load_tidy(path, unit="ward", time="year", outcome="count")
    assert loaded.data["outcome"].tolist() == [1.0]


def test_validate_counts(tmp_path):
    ok = tidy.load_tidy(write(tmp_path, "t,y\n1,2\n2,0\n"), unit=None, time="t", outcome="y")
    tidy.validate_counts(ok)
    negative = tidy.load_tidy(
        write(tmp_path, "t,y\n1,2\n2,-1\n", "neg.csv"), unit=None, time="t", outcome="y"
    )
    with pytest.raises(InputError, match="negative count -1") as info:
        tidy.validate_counts(negative)
    assert info.value.line == 3 and info.value.key == "outcome"
    rates = tidy.load_tidy(
        write(tmp_path, "t,y\n1,2.5\n", "rate.csv"), unit=None, time="t", outcome="y"
    )
    with pytest.raises(InputError, match="not a whole number"):
        tidy.validate_counts(rates)
    tidy.validate_counts(rates, integer=False)


MESSY_BUT_VALID = (
    "Area,Month,Crimes,Pop,Note\n"
    "B,2020-02,3,100,x\n"
    " A ,2020-01,1,50,y\n"
    "B,2020-01,2,100,z\n"
    "A,2020-02,4,50,w\n"
    '"C, east",2020-01,0,10,"quoted, with comma"\n'
)


@pytest.mark.parametrize(
    "text",
    [
        MESSY_BUT_VALID,
        MESSY_BUT_VALID.replace("\n", "\r\n"),
        MESSY_BUT_VALID + "\n\n",  # trailing blank lines: only the careful reader takes it
        MESSY_BUT_VALID.replace(",3,", ", 3 ,"),  # spaces around a number: careful reader
        "Area,Month,Crimes,Pop,Note\n"
        + "".join(
            f"U{u},2020-{m:02d},{u + m},{u + 1},n\n" for u in range(30) for m in range(1, 13)
        ),
    ],
    ids=["messy", "crlf", "blank-lines", "spaced-number", "sorted"],
)
def test_fast_and_careful_readers_agree(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow's reader (when it takes the file) and the csv-module reader give the same data."""
    path = write(tmp_path, text)
    kw = {"unit": "area", "time": "month", "outcome": "crimes", "offset": "pop", "extra": ["Note"]}
    fast = tidy.load_tidy(path, **kw)
    monkeypatch.setattr(tidy, "_read_fast", lambda path: None)
    careful = tidy.load_tidy(path, **kw)
    pd.testing.assert_frame_equal(fast.data, careful.data)
    assert fast.warnings == careful.warnings
    assert fast.frequency == careful.frequency


def test_fast_reader_takes_plain_files_and_declines_odd_ones(tmp_path: Path) -> None:
    plain = write(tmp_path, "a,t,y\nx,2020-01,1\nx,2020-02,2\n", "plain.csv")
    frame = tidy._read_fast(plain)
    assert frame is not None and frame.index.tolist() == [2, 3]
    for name, text in {
        "blank.csv": "a,t,y\nx,2020-01,1\n\nx,2020-02,2\n",
        "ragged.csv": "a,t,y\nx,2020-01,1,9\n",
        "multiline.csv": 'a,t,y\n"x\ny",2020-01,1\n',
        "repeated.csv": "a,a,y\nx,2020-01,1\n",
        "allblank.csv": "a,t,y\n,,\nx,2020-01,1\n",
    }.items():
        assert tidy._read_fast(write(tmp_path, text, name)) is None, name
    assert tidy._read_fast(write(tmp_path, "a,t,y\nxé,2020-01,1\n", "cp.csv", "cp1252")) is None
