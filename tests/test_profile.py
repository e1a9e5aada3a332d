"""Scrutiny profile: tables from hand-built counts, disclosure control, bad input, and the
council's published drug figures reproduced by a real `evaluation run` of the notebook.

Every number here is a count or a ratio of counts computed without any fitting, so the
comparisons are exact (``==``) except ratios, compared to 1e-12 (float division only).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from evaluation import api, config, workflows
from evaluation.data import synthetic
from evaluation.errors import InputError
from evaluation.report import disclosure
from evaluation.report.profile_figures import write_profile_figures
from evaluation.results import EvaluationResults, read_results
from evaluation.workflows import profile

REPO = Path(__file__).resolve().parents[1]
RATIO_TOL = 1e-12  # a ratio of two integers: only float division rounding

YEARS = (pd.Timestamp("2019-04-01"), pd.Timestamp("2020-04-01"))

# Last outcome categories seen in real South Wales police.uk street files (2018-2024).
REAL_OUTCOMES = (
    "Unable to prosecute suspect",
    "Investigation complete; no suspect identified",
    "Under investigation",
    "Court result unavailable",
    "Awaiting court outcome",
    "Local resolution",
    "Offender given a caution",
    "Offender sent to prison",
    "Offender given community sentence",
    "Status update unavailable",
    "Offender fined",
    "Further investigation is not in the public interest",
    "Defendant found not guilty",
    "Offender given a drugs possession warning",
    "Court case unable to proceed",
    "Offender given suspended prison sentence",
    "Formal action is not in the public interest",
    "Offender given conditional discharge",
    "Offender given penalty notice",
    "Suspect charged as part of another case",
    "Action to be taken by another organisation",
    "Offender otherwise dealt with",
    "Offender deprived of property",
    "Offender ordered to pay compensation",
    "Defendant sent to Crown Court",
    "Offender given absolute discharge",
)


def months(first: str, n: int) -> pd.DatetimeIndex:
    return pd.date_range(first, periods=n, freq="MS")


# ---------------------------------------------------------------------------------------
# Outcome groups and labels
# ---------------------------------------------------------------------------------------


def test_outcome_groups_agree_with_the_generator() -> None:
    """The generator's calibration groups are the profile's (defined independently)."""
    for category in synthetic.CHARGED_OUTCOMES:
        assert profile.outcome_group(category) == "charged_summonsed", category
    for category in synthetic.CAUTION_OUTCOMES:
        assert profile.outcome_group(category) == "caution_warning", category
    others = set(synthetic._DRUG_OUTCOMES["other"])
    for category in others:
        assert profile.outcome_group(category) not in ("charged_summonsed", "caution_warning")


def test_every_real_outcome_category_has_a_group() -> None:
    for category in REAL_OUTCOMES:
        assert profile.outcome_group(category) != "other", category


def test_outcome_group_edge_cases() -> None:
    assert profile.outcome_group("  offender given a CAUTION ") == "caution_warning"
    assert profile.outcome_group("") == "open_or_unknown"
    assert profile.outcome_group(None) == "open_or_unknown"
    assert profile.outcome_group("No outcome recorded") == "open_or_unknown"
    assert profile.outcome_group("Something new") == "other"


def test_year_labels() -> None:
    assert profile.year_label(pd.Timestamp("2019-04-01")) == "2019/20"
    assert profile.year_label(pd.Timestamp("1999-04-01")) == "1999/00"
    assert profile.year_label(pd.Timestamp("2022-01-01")) == "2022"
    assert profile.year_label(pd.Timestamp("2019-06-01")) == "Jun 2019 to May 2020"


# ---------------------------------------------------------------------------------------
# Tables from hand-built counts
# ---------------------------------------------------------------------------------------


def test_monthly_table_flags_extremes_and_ties() -> None:
    idx = months("2020-01-01", 5)
    located = pd.Series([10, 30, 5, 30, 7], index=idx)
    unlocated = pd.Series([1, 2], index=idx[[0, 2]])
    with_unlocated = profile.monthly_table(located, unlocated, include=True)
    assert with_unlocated["count"].tolist() == [11, 30, 7, 30, 7]
    assert with_unlocated["without_location"].tolist() == [1, 0, 2, 0, 0]
    assert with_unlocated["highest"].tolist() == [False, True, False, True, False]
    assert with_unlocated["lowest"].tolist() == [False, False, True, False, True]
    without = profile.monthly_table(located, unlocated, include=False)
    assert without["count"].tolist() == [10, 30, 5, 30, 7]
    assert without["lowest"].tolist() == [False, False, True, False, False]


def test_two_year_table_known_counts() -> None:
    idx = months("2019-01-01", 30)  # 3 months before year 1 and 3 after year 2
    frame = pd.DataFrame(
        {"area": ["A"] * 30 + ["B"] * 30, "month": list(idx) * 2, "count": [2] * 30 + [0] * 30}
    )
    frame.loc[(frame["area"] == "B") & (frame["month"] >= YEARS[1]), "count"] = 1
    table = profile.two_year_table(frame, "area", YEARS).set_index("area")
    # A: 2 a month in each 12-month year; months outside the years are ignored
    assert table.loc["A", ["year_1", "year_2", "total", "change"]].tolist() == [24, 24, 48, 0]
    assert table.loc["A", "percent_change"] == 0
    # B: nothing in year 1, 12 in year 2: no percent change from zero
    assert table.loc["B", ["year_1", "year_2", "total", "change"]].tolist() == [0, 12, 12, 12]
    assert table.loc["B", "percent_change"] is None
    assert table.index.tolist() == ["A", "B"]  # largest total first


def _areas_frame(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Each area's count in the first month of each year (other months zero)."""
    rows = [
        {"area": a, "month": YEARS[k], "count": c}
        for a, pair in counts.items()
        for k, c in enumerate(pair)
    ]
    return pd.DataFrame(rows)


def test_area_table_ranks_and_change() -> None:
    frame = _areas_frame({"A": (50, 70), "B": (90, 40), "C": (30, 31)})
    table, info = profile.area_table(frame, YEARS)
    table = table.set_index("area")
    assert info == {"hidden_cells": 0, "hide_year_totals": []}
    assert table["total"].to_dict() == {"B": 130, "A": 120, "C": 61}
    assert table["rank_count"].to_dict() == {"B": 1, "A": 2, "C": 3}
    assert table["change"].to_dict() == {"B": -50, "A": 20, "C": 1}
    assert table["rank_change"].to_dict() == {"A": 1, "C": 2, "B": 3}
    assert table.loc["A", "percent_change"] == pytest.approx(0.4, abs=RATIO_TOL)


def test_area_table_hides_small_counts_and_what_would_reveal_them() -> None:
    frame = _areas_frame({"A": (50, 70), "B": (3, 40), "C": (30, 31), "D": (20, 25)})
    table, info = profile.area_table(frame, YEARS)
    table = table.set_index("area")
    # primary: B year 1 (3); secondary: B's other year (row) and the smallest year-1 count
    # shown (D, 20, column) -> then D's row needs a second hidden cell too
    assert table.loc["B", "year_1"] is None and table.loc["B", "year_2"] is None
    hidden_rows = set(table.index[table["suppressed"]])
    assert "B" in hidden_rows and len(hidden_rows) >= 2
    for area in hidden_rows:
        row = table.loc[area]
        assert row["total"] is None and row["change"] is None and row["percent_change"] is None
        assert row["rank_count"] is None and row["rank_change"] is None
    # the published cells leave no row or column with exactly one hidden cell
    mask = table[list(profile.YEARS)].isna()
    values = frame.pivot_table(index="area", columns="month", values="count", aggfunc="sum")
    values.columns = list(profile.YEARS)
    assert disclosure.is_safe(values.loc[mask.index], mask)
    assert info["hidden_cells"] == int(mask.to_numpy().sum())
    assert table["suppressed"].is_monotonic_increasing  # hidden rows listed last


def test_area_table_sensitive_threshold() -> None:
    frame = _areas_frame({"A": (50, 70), "B": (8, 40), "C": (30, 31)})
    ordinary, _ = profile.area_table(frame, YEARS)
    sensitive, _ = profile.area_table(frame, YEARS, sensitive=True)
    assert not ordinary["suppressed"].any()  # 8 is above 1-4
    assert sensitive.set_index("area").loc["B", "suppressed"]  # but within 1-9


def test_outcome_tables() -> None:
    frame = pd.DataFrame(
        {
            "last_outcome": ["Offender fined", "Local resolution", "Offender fined", "Weird", "x"],
            "count": [3, 5, 2, 1, 0],
        }
    )
    table = profile.outcome_table(frame)
    assert table["last_outcome"].tolist() == ["Local resolution", "Offender fined", "Weird"]
    assert table["count"].tolist() == [5, 5, 1]
    assert table["share"].sum() == pytest.approx(1, abs=RATIO_TOL)
    groups = profile.outcome_group_table(table).set_index("group")["count"]
    assert groups.to_dict() == {
        "charged_summonsed": 5,
        "caution_warning": 5,
        "no_further_action": 0,
        "open_or_unknown": 0,
        "other": 1,
    }


# ---------------------------------------------------------------------------------------
# On the default database (in process): areas, coverage and bad input
# ---------------------------------------------------------------------------------------


def _params(tmp_path: Path, **changes: Any) -> Path:
    payload = yaml.safe_load((REPO / "params" / "drug_profile.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = payload
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return path


def _fit(path: Path) -> EvaluationResults:
    evaluation = api.load(path)
    try:
        return evaluation.fit()
    finally:
        evaluation.context.close()


def _error(path: Path) -> InputError:
    evaluation = api.load(path)
    try:
        with pytest.raises(InputError) as info:
            workflows.prepare(evaluation.context)
    finally:
        evaluation.context.close()
    return info.value


def test_partial_lookup_leaves_out_records_without_location(tmp_path: Path) -> None:
    """With a lookup covering only part of the data, unlocated records could be anywhere:
    they are left out and the figures add up to the areas' own counts."""
    lookup = pd.read_csv(config.synthetic_dir() / "lookup.csv")
    lookup[lookup["sector"].isin(["City Centre", "Cathays"])].to_csv(
        tmp_path / "lookup.csv", index=False
    )
    results = _fit(_params(tmp_path, **{"data.lookup": "lookup.csv"}))
    areas = pd.DataFrame(results.tables["areas"])
    assert sorted(areas["area"]) == ["Cathays", "City Centre"]
    assert results.diagnostics["no_location_included"] is False
    assert results.data_quality["records_outside_areas"] > 0
    assert results.estimate("total").estimate == areas["total"].sum()
    assert results.estimate("year_1_total").estimate == areas["year_1"].sum()
    assert any("no location" in w for w in results.warnings)
    assert results.truth is None  # not the calibrated profile


def test_ward_profile_areas_add_up(tmp_path: Path) -> None:
    results = _fit(_params(tmp_path, **{"profile.area_level": "ward"}))
    areas = pd.DataFrame(results.tables["areas"])
    assert len(areas) == 29  # the pre-2022 Cardiff wards of the synthetic geography
    monthly = pd.DataFrame(results.tables["monthly"])
    shown = areas.dropna(subset=["total"])
    # located records only: shown areas plus hidden ones equal the monthly in-area counts
    hidden = monthly["in_areas"].sum() - shown["total"].sum()
    assert hidden >= 0
    assert (hidden == 0) == (not areas["suppressed"].any())


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"profile.years": ["2019-04", "2020-01"]}, "profile.years"),  # overlapping years
        ({"profile.years": ["2019-04", "2020-06"]}, "profile.years"),  # runs past the data
        ({"profile.area_level": "police_area"}, "profile.area_level"),  # not a lookup column
        ({"data.start": "1990-01"}, "data.start"),  # months not in the database
        ({"data.lookup": "missing.csv"}, "data.lookup"),
    ],
)
def test_bad_input_names_the_key(tmp_path: Path, changes: dict[str, Any], key: str) -> None:
    err = _error(_params(tmp_path, **changes))
    assert err.key == key, str(err)
    assert err.source == str(tmp_path / "profile.yaml")


def test_tidy_csv_is_refused(tmp_path: Path) -> None:
    (tmp_path / "counts.csv").write_text("month,count\n2020-01,3\n")
    path = _params(
        tmp_path,
        **{"data.csv": "counts.csv", "data.time": "month", "data.outcome": "count"},
    )
    assert _error(path).key == "data.csv"


# ---------------------------------------------------------------------------------------
# The published figures, through a real `evaluation run` of notebooks/profile.ipynb
# ---------------------------------------------------------------------------------------


def _cli() -> str:
    path = Path(sys.executable).parent / "evaluation"
    found = str(path) if path.exists() else shutil.which("evaluation")
    assert found, "the evaluation command is not installed"
    return found


@pytest.fixture(scope="module")
def drug_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("reports") / "drug_profile"
    res = subprocess.run(
        [_cli(), "run", "params/drug_profile.yaml", "--output-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return out, res.stdout


@pytest.mark.slow
def test_run_reproduces_the_published_drug_figures(drug_run: tuple[Path, str]) -> None:
    """Seed 001, section 3: 4,035 offences April 2019 to March 2021; 2,098 in 2019/20 and
    1,937 in 2020/21 (8% fewer); highest July 2020 (199), lowest March 2021 (120);
    1,342 charged/summonsed and 1,038 caution or warning."""
    out, _ = drug_run
    results = read_results(out)
    assert results.design == "profile" and results.synthetic
    value = {e.name: e.estimate for e in results.estimates}
    assert value["total"] == 4035
    assert value["year_1_total"] == 2098
    assert value["year_2_total"] == 1937
    assert value["percent_change"] == pytest.approx(1937 / 2098, abs=RATIO_TOL)
    assert round((1 - value["percent_change"]) * 100) == 8
    assert "8% fewer" in results.estimate("percent_change").label
    assert value["highest_month"] == 199
    assert "July 2020" in results.estimate("highest_month").label
    assert value["lowest_month"] == 120
    assert "March 2021" in results.estimate("lowest_month").label
    assert value["charged_summonsed"] == 1342
    assert value["caution_warning"] == 1038
    assert results.headline == "percent_change"
    # the planted calibration is carried as truth, and a count has no interval: exact
    assert results.truth == pytest.approx(value, abs=RATIO_TOL)
    assert all(e.ci_low is None and e.ci_high is None for e in results.estimates)


@pytest.mark.slow
def test_run_tables_and_series(drug_run: tuple[Path, str]) -> None:
    out, _ = drug_run
    results = read_results(out)
    assert set(results.tables) == {
        "monthly",
        "years",
        "areas",
        "crime_types",
        "outcomes",
        "outcome_groups",
    }
    monthly = pd.DataFrame(results.tables["monthly"])
    assert len(monthly) == 24 and monthly["count"].sum() == 4035
    assert monthly.loc[monthly["highest"], "month"].tolist() == ["2020-07-01"]
    assert monthly.loc[monthly["lowest"], "month"].tolist() == ["2021-03-01"]
    calibrated = json.loads((config.synthetic_dir() / "truth.json").read_text())
    expected = calibrated["calibration"]["drugs"]["monthly_totals"]
    assert dict(zip(monthly["month"].str[:7], monthly["count"], strict=True)) == expected
    series = results.series["primary"]
    assert series.observed == [float(v) for v in monthly["count"]]
    assert series.counterfactual is None and series.fitted is None
    areas = pd.DataFrame(results.tables["areas"])
    assert len(areas) == 10  # the police sectors of the synthetic lookup
    assert {"suppressed", "rank_count", "rank_change"} <= set(areas.columns)
    # sector totals are located records only: the records without location make up the rest
    assert areas["total"].sum() + results.data_quality["records_without_location"] == 4035
    assert areas.sort_values("rank_count")["area"].iloc[0] == "Cardiff Bay"
    groups = {r["group"]: r["count"] for r in results.tables["outcome_groups"]}
    assert sum(groups.values()) == 4035
    assert results.tables["crime_types"][0]["crime_type"] == "Drugs"


@pytest.mark.slow
def test_run_report(drug_run: tuple[Path, str], tmp_path: Path) -> None:
    out, stdout = drug_run
    results = read_results(out)
    html = (out / "report.html").read_text()
    assert "api.load" not in html and "SYNTHETIC" in html
    assert (out / "drug_profile.ipynb").exists()
    for fig in results.figures:
        assert (out / fig).stat().st_size > 10_000, fig
    assert "Synthetic demonstration data" in stdout
    # the profile's own figures draw from results.json alone
    names = write_profile_figures(results, tmp_path)
    assert names == ["profile_monthly.png", "profile_areas.png", "profile_outcomes.png"]
    assert all((tmp_path / n).stat().st_size > 10_000 for n in names)


@pytest.mark.slow
def test_run_publishes_the_profile_figures(drug_run: tuple[Path, str]) -> None:
    """api.save writes the profile's figures (needs figures.write_figures to dispatch
    design "profile" to profile_figures.write_profile_figures)."""
    out, _ = drug_run
    results = read_results(out)
    assert {"profile_monthly.png", "profile_areas.png", "profile_outcomes.png"} <= set(
        results.figures
    )
