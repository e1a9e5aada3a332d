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
        # a bad value seen on several lines: the first of them
        ("u,t,y\na,2020-01,2\nb,2020-01,3\nb,soon,4\nc,soon,5\n", {}, "'soon'", "t", 4),
        ("u,t,y\na,1,2\n ,2,3\n,3,4\n", {}, "empty value", "u", 3),
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


def panel(rows: list[tuple[str, str]]) -> str:
    """A tidy file with the standard columns, one line per (unit, month) given."""
    body = "".join(f"{u},{m},{i % 7},{len(u)},n{i % 3}\n" for i, (u, m) in enumerate(rows))
    return "Area,Month,Crimes,Pop,Note\n" + body


MONTHS = [f"2020-{m:02d}" for m in range(1, 13)]
#: Units in numeric order, as files often list them: U10 sorts before U2.
UNITS = [f"U{u}" for u in range(12)]
SCRAMBLED = np.random.default_rng(3).permutation(len(UNITS) * len(MONTHS))


@pytest.mark.parametrize(
    ("text", "fast_reader"),
    [
        (MESSY_BUT_VALID, True),
        (MESSY_BUT_VALID.replace("\n", "\r\n"), True),
        (MESSY_BUT_VALID + "\n\n", False),  # trailing blank lines: only the careful reader
        (MESSY_BUT_VALID.replace(",3,", ", 3 ,"), True),  # spaces around a number
        (MESSY_BUT_VALID.replace(",3,", ',"3",'), True),  # a quoted number
        (
            "Area,Month,Crimes,Pop,Note\n"
            + "".join(
                f"U{u},2020-{m:02d},{u + m},{u + 1},n\n" for u in range(30) for m in range(1, 13)
            ),
            True,
        ),
        # each unit's rows together and in time order, the units not in sorted order:
        # whole runs move (a balanced panel) ...
        (panel([(u, m) for u in UNITS for m in MONTHS]), True),
        # ... or runs of different lengths
        (panel([(u, m) for u in UNITS for m in MONTHS[: 3 + len(u)]]), True),
        # ... or runs of one length over different months
        (panel([(u, m) for i, u in enumerate(UNITS) for m in MONTHS[i % 3 : i % 3 + 9]]), True),
        # each unit's rows together, but in reverse time order
        (panel([(u, m) for u in UNITS for m in MONTHS[::-1]]), True),
        # the first unit starts late: codes in order of appearance are not the time order
        (panel([(u, m) for u in UNITS for m in MONTHS if u != "U0" or m > "2020-03"]), True),
        # rows in no order at all, and units' rows apart
        (panel([[(u, m) for u in UNITS for m in MONTHS][i] for i in SCRAMBLED]), True),
        (panel([(u, m) for m in MONTHS for u in UNITS]), True),
        # the same unit written with and without spaces, in separate runs
        (panel([(u if i % 2 else f" {u} ", m) for i, m in enumerate(MONTHS) for u in UNITS]), True),
        # the number column first, and a column nobody asked for
        ("Crimes,Skip,Area,Month,Pop,Note\n3,q,B,2020-02,9,x\n1,r,A,2020-01,8,y\n", True),
    ],
    ids=[
        "messy",
        "crlf",
        "blank-lines",
        "spaced-number",
        "quoted-number",
        "sorted",
        "units-out-of-order",
        "unbalanced-runs",
        "shifted-runs",
        "reversed-runs",
        "late-first-period",
        "scrambled",
        "by-month",
        "spaced-units",
        "numbers-first",
    ],
)
def test_fast_and_careful_readers_agree(
    tmp_path: Path, text: str, fast_reader: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow's reader (when it takes the file) and the csv-module reader give the same data."""
    path = write(tmp_path, text)
    kw = {"unit": "area", "time": "month", "outcome": "crimes", "offset": "pop", "extra": ["Note"]}
    with monkeypatch.context() as patch:
        if fast_reader:  # so that the comparison below compares the two readers
            patch.setattr(tidy, "_read", lambda path, notes: pytest.fail("careful reader used"))
        fast = tidy.load_tidy(path, **kw)
    monkeypatch.setattr(tidy, "_read_fast", lambda path, **kw: None)
    careful = tidy.load_tidy(path, **kw)
    pd.testing.assert_frame_equal(fast.data, careful.data, check_exact=True)
    assert fast.warnings == careful.warnings
    assert fast.frequency == careful.frequency
    for frame in (fast.data, careful.data):
        assert frame.index.is_unique and frame.index.name == "line"
        assert frame["unit"].map(type).eq(str).all() and frame["Note"].map(type).eq(str).all()
        assert [str(t) for t in frame.dtypes] == [
            "object",
            "datetime64[us]",
            *["float64"] * 2,
            "object",
        ]
        for block in frame._mgr.blocks:  # the caller may write into the frame
            assert np.asarray(block.values).flags.writeable


def test_fast_reader_reads_many_blocks_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past 1 MB Arrow reads in blocks, each with its own dictionary of texts: the codes
    must still follow the file, and the data match the careful reader's."""
    rng = np.random.default_rng(11)
    units = [f"Area {u}" for u in rng.permutation(7000)]
    rows = [(u, m) for u in units for m in MONTHS[: 6 + len(u) % 7]]
    half = len(rows) // 2  # then the other half scrambled
    mixed = rows[:half] + [rows[half:][i] for i in rng.permutation(len(rows) - half)]
    path = write(tmp_path, panel(rows))
    assert path.stat().st_size > 1 << 20
    cells = tidy._read_fast(path, texts=["area", "month"], numbers=["crimes"])
    assert cells is not None
    codes, uniques = tidy._arrow_codes(cells.columns["Area"])
    expected_codes, expected = pd.factorize(pd.Series([u for u, _ in rows]))
    np.testing.assert_array_equal(codes, expected_codes)
    assert list(uniques) == list(expected)
    kw = {"unit": "area", "time": "month", "outcome": "crimes", "offset": "pop"}
    for name, body in {"runs.csv": panel(rows), "mixed.csv": panel(mixed)}.items():
        path = write(tmp_path, body, name)
        fast = tidy.load_tidy(path, **kw)
        with monkeypatch.context() as patch:
            patch.setattr(tidy, "_read_fast", lambda path, **kw: None)
            careful = tidy.load_tidy(path, **kw)
        pd.testing.assert_frame_equal(fast.data, careful.data, check_exact=True)
        assert fast.warnings == careful.warnings


def test_fast_reader_takes_plain_files_and_declines_odd_ones(tmp_path: Path) -> None:
    plain = write(tmp_path, "a,t,y\nx,2020-01,1\nx,2020-02,2\n", "plain.csv")
    cells = tidy._read_fast(plain)
    assert cells is not None and cells.num_rows == 2 and cells.names == ["a", "t", "y"]
    for name, text in {
        "blank.csv": "a,t,y\nx,2020-01,1\n\nx,2020-02,2\n",
        "ragged.csv": "a,t,y\nx,2020-01,1,9\n",
        "multiline.csv": 'a,t,y\n"x\ny",2020-01,1\n',
        "repeated.csv": "a,a,y\nx,2020-01,1\n",
        "allblank.csv": "a,t,y\n,,\nx,2020-01,1\n",
        "crlf-blank.csv": "a,t,y\r\nx,2020-01,1\r\n\r\nx,2020-02,2\r\n",
        "cr-only.csv": "a,t,y\rx,2020-01,1\rx,2020-02,2\r",
        "header-only.csv": "a,t,y\n",
    }.items():
        assert tidy._read_fast(write(tmp_path, text, name)) is None, name
    assert tidy._read_fast(write(tmp_path, "a,t,y\nxé,2020-01,1\n", "cp.csv", "cp1252")) is None
    # an unreadable number or a blank row under a number column: the careful reader decides
    for name, text in {
        "text.csv": "y,a,t\nx,x,2020-01\n",
        "blank-number.csv": "y,a,t\n,,\n1,x,2020-01\n",
    }.items():
        assert tidy._read_fast(write(tmp_path, text, name), texts=["a"], numbers=["y"]) is None, (
            name
        )


def test_a_number_column_also_carried_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MESSY_BUT_VALID)
    kw = {"unit": "area", "time": "month", "outcome": "crimes", "extra": ["Crimes", "POP"]}
    fast = tidy.load_tidy(path, **kw)
    assert fast.data["Crimes"].tolist() == ["1", "4", "2", "3", "0"]  # the text, as read
    monkeypatch.setattr(tidy, "_read_fast", lambda path, **kw: None)
    pd.testing.assert_frame_equal(fast.data, tidy.load_tidy(path, **kw).data, check_exact=True)


def test_scan_counts_line_feeds_across_chunks() -> None:
    rng = np.random.default_rng(5)
    data = rng.choice(np.frombuffer(b"ab,\n", np.uint8), size=(3 << 20) + 17)
    data[: (1 << 20) + 3] = ord("a")  # the first line feed lies past the first chunk
    blob = data.tobytes()
    assert tidy._scan(data) == (blob.count(b"\n"), blob.find(b"\n"), True)
    data[-1] = 0xE9
    assert tidy._scan(data)[2] is False
    assert tidy._scan(np.frombuffer(b"no line feed", np.uint8)) == (0, -1, True)
