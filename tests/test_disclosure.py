"""Disclosure control: primary and secondary suppression, hand-worked and at random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.errors import InputError
from evaluation.report import disclosure as dc


def long_form(wide: pd.DataFrame) -> pd.DataFrame:
    wide = wide.rename_axis(index="area", columns="month")
    return wide.stack().rename("n").reset_index()


def hidden(result: pd.DataFrame) -> set[tuple[str, str]]:
    return set(map(tuple, result.loc[result["suppressed"], ["area", "month"]].to_numpy()))


# Hand-worked example.
#            m1   m2   m3 | row total
#   A         2   10   12 |  24
#   B         8    9   15 |  32
#   C        20   11    0 |  31
# Primary alone hides A-m1 (2), but then 24 - 10 - 12 = 2 gives it away from A's total,
# and 30 - 8 - 20 = 2 from m1's total.
# Secondary: row A has one hidden cell -> hide its smallest other non-zero cell, A-m2 (10).
# Column m1 has one hidden cell -> hide B-m1 (8, smaller than C-m1 = 20).
# Column m2 now has one hidden cell (A-m2) -> hide B-m2 (9, smaller than C-m2 = 11).
# Now rows A, B and columns m1, m2 each hide two cells: stable.
HAND = pd.DataFrame({"m1": [2, 8, 20], "m2": [10, 9, 11], "m3": [12, 15, 0]}, index=["A", "B", "C"])


def test_primary_alone_would_disclose_through_the_total():
    primary = HAND.apply(lambda s: s.between(1, 4))
    assert not dc.is_safe(HAND, primary)
    # The attack the secondary suppression prevents:
    assert HAND.loc["A"].sum() - HAND.loc["A", ["m2", "m3"]].sum() == HAND.loc["A", "m1"]


def test_hand_worked_secondary_suppression():
    out = dc.suppress(long_form(HAND), "n", row="area", col="month")
    assert hidden(out) == {("A", "m1"), ("A", "m2"), ("B", "m1"), ("B", "m2")}
    kinds = out.set_index(["area", "month"])["suppression"]
    assert kinds[("A", "m1")] == "primary"
    assert kinds[("A", "m2")] == kinds[("B", "m1")] == kinds[("B", "m2")] == "secondary"
    assert out.loc[out["suppressed"], "n"].isna().all()
    assert out.loc[~out["suppressed"], "n"].tolist() == [12, 15, 20, 11, 0]
    mask = dc.to_wide(out, "area", "month")
    assert dc.is_safe(HAND.rename_axis(index="area", columns="month"), mask)
    assert out.attrs == {"hide_row_totals": [], "hide_col_totals": []}


def test_zeros_are_never_secondary():
    # Row A: 3 is primary; the zeros must not be used, the 5 must.
    wide = pd.DataFrame({"m1": [3, 6], "m2": [0, 7], "m3": [0, 8], "m4": [5, 9]}, index=["A", "B"])
    out = dc.suppress(long_form(wide), "n", row="area", col="month")
    zeros = out[out["area"].eq("A") & out["month"].isin(["m2", "m3"])]
    assert not zeros["suppressed"].any()
    assert {("A", "m1"), ("A", "m4")} <= hidden(out)


def test_lone_cell_among_zeros_needs_its_total_hidden():
    # Row A = [3, 0, 0]: hiding the 3 cannot be backed by another cell in the row, so the
    # row total (3) would reveal it; the function says so instead of pretending.
    #          m1  m2  m3
    #   A       3   0   0
    #   B      10  12  14
    # Column m1 has one hidden cell -> hide B-m1 (10); row B then -> hide B-m2 (12);
    # column m2 then has one hidden cell beside a zero, so its total (12) must go too,
    # otherwise B-m2, then B-m1 (row B total), then A-m1 (column m1 total) unravel.
    wide = pd.DataFrame({"m1": [3, 10], "m2": [0, 12], "m3": [0, 14]}, index=["A", "B"])
    out = dc.suppress(long_form(wide), "n", row="area", col="month")
    assert hidden(out) == {("A", "m1"), ("B", "m1"), ("B", "m2")}
    assert out.attrs["hide_row_totals"] == ["A"]
    assert out.attrs["hide_col_totals"] == ["m2"]
    mask = dc.to_wide(out, "area", "month")
    table = wide.rename_axis(index="area", columns="month")
    assert not dc.is_safe(table, mask)
    assert not dc.is_safe(table, mask, hidden_row_totals=["A"])
    assert dc.is_safe(table, mask, hidden_row_totals=["A"], hidden_col_totals=["m2"])


def test_sensitive_threshold_is_one_to_nine():
    wide = pd.DataFrame({"m1": [7, 30], "m2": [40, 50]}, index=["A", "B"])
    plain = dc.suppress(long_form(wide), "n", row="area", col="month")
    strict = dc.suppress(long_form(wide), "n", row="area", col="month", sensitive=True)
    assert not plain["suppressed"].any()
    assert ("A", "m1") in hidden(strict)
    assert dc.is_safe(
        wide.rename_axis(index="area", columns="month"), dc.to_wide(strict, "area", "month")
    )


def test_suppress_long_completes_zeros_and_splits_by_type():
    df = pd.DataFrame(
        {
            "crime_type": ["Burglary", "Burglary", "Burglary", "Robbery", "Robbery"],
            "lsoa": ["L1", "L1", "L2", "L1", "L2"],
            "month": ["2021-01", "2021-02", "2021-01", "2021-01", "2021-02"],
            "count": [2, 20, 30, 15, 16],
        }
    )
    out = dc.suppress_long(df, "lsoa", "month", "count", by=["crime_type"])
    # 2 types x 2 areas x 2 months, missing cells filled with zeros.
    assert len(out) == 8
    assert list(out.columns) == [
        "crime_type",
        "lsoa",
        "month",
        "count",
        "suppressed",
        "suppression",
    ]
    l2_feb = out[(out.crime_type == "Burglary") & (out.lsoa == "L2") & (out.month == "2021-02")]
    assert l2_feb["count"].tolist() == [0] and not l2_feb["suppressed"].any()
    # Burglary L1: [2, 20]; L2: [30, 0]. The 2 is primary; the row needs the 20; column
    # 2021-01 needs the 30; then L2's row has one hidden cell and only a zero -> its total
    # must go, and column 2021-02 has one hidden cell (L1's 20) next to a zero -> same.
    assert out.attrs["hide_row_totals"] == {("Burglary",): ["L2"]}
    assert out.attrs["hide_col_totals"] == {("Burglary",): ["2021-02"]}
    assert not out[out.crime_type == "Robbery"]["suppressed"].any()


@pytest.mark.parametrize("seed", range(20))
def test_random_tables_end_safe(seed):
    # Data built to have many small counts; whatever the pattern, the result must be safe
    # (allowing for totals flagged for hiding), keep every primary cell hidden and never
    # hide a zero.
    rng = np.random.default_rng(seed)
    values = rng.poisson(rng.uniform(0.5, 12, size=(8, 1)), size=(8, 12))
    wide = pd.DataFrame(
        values, index=[f"A{i}" for i in range(8)], columns=[f"m{j:02d}" for j in range(12)]
    )
    out = dc.suppress(long_form(wide), "n", row="area", col="month")
    mask = dc.to_wide(out, "area", "month")
    table = wide.rename_axis(index="area", columns="month")
    assert dc.is_safe(
        table,
        mask,
        hidden_row_totals=out.attrs["hide_row_totals"],
        hidden_col_totals=out.attrs["hide_col_totals"],
    )
    assert mask.to_numpy()[(values >= 1) & (values <= 4)].all()
    assert not mask.to_numpy()[values == 0].any()


def test_bad_input():
    good = long_form(HAND)
    with pytest.raises(InputError):
        dc.suppress(good.assign(n=-good["n"]), "n", row="area", col="month")
    with pytest.raises(InputError):
        dc.suppress(pd.concat([good, good.head(1)]), "n", row="area", col="month")
    with pytest.raises(InputError):
        dc.suppress(good, "missing", row="area", col="month")
    with pytest.raises(InputError):
        dc.is_safe(HAND, HAND.iloc[:2].astype(bool))


def test_report_figure_never_draws_a_count_of_1_to_4() -> None:
    """The observed-vs-counterfactual PNG (in the emailed HTML report) gets the dashboards'
    disclosure control, and says how many months it hides."""
    import math

    import matplotlib.pyplot as plt

    from evaluation.dashboard.example import its_example
    from evaluation.report.figures import observed_vs_counterfactual_figure

    results = its_example(mean=4.0, synthetic=False)
    raw = [v for v in results.series["primary"].observed if v is not None]
    assert any(1 <= v <= 4 for v in raw)  # the test can fail
    fig = observed_vs_counterfactual_figure(results, "primary")
    try:
        observed = next(line for line in fig.axes[0].lines if line.get_label() == "Observed")
        drawn = [float(v) for v in observed.get_ydata() if not math.isnan(float(v))]
        assert drawn and not any(1 <= v <= 4 for v in drawn)
        hidden = len(raw) - len(drawn)
        assert hidden >= sum(1 <= v <= 4 for v in raw)  # primary, plus any secondary
        notes = [t.get_text() for t in fig.texts]
        assert f"{hidden} month(s) not shown: counts of 1 to 4" in " ".join(notes)
    finally:
        plt.close(fig)
