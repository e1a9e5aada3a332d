"""The evidence rating (``evaluation.report.evidence``): one test per rule, on results
objects built from the pydantic models, so every level is derived from checks that can
fail and none is asserted by hand."""

from __future__ import annotations

from typing import Any

import pytest

from evaluation.report import evidence
from evaluation.results import (
    Estimate,
    EvaluationResults,
    Outcome,
    Periods,
    Series,
    read_results,
    write_results,
)

GOOD_BALANCE = [
    {"measure": "mean crimes per month", "std_diff_comparison": 0.12},
    {"measure": "yearly trend (log scale)", "std_diff_comparison": -0.05},
]
POOR_BALANCE = [
    {"measure": "mean crimes per month", "std_diff_comparison": 0.49},
    {"measure": "yearly trend (log scale)", "std_diff_comparison": -0.04},
]


def _att(estimate=0.86, low=0.74, high=0.94, scale="rate_ratio", name="att") -> Estimate:
    return Estimate(
        name=name, estimate=estimate, ci_low=low, ci_high=high, scale=scale, method="test"
    )


def make(
    design: str = "did",
    *,
    comparison: list[str] | None = None,
    pre_periods: int | None = 60,
    diagnostics: dict[str, Any] | None = None,
    tables: dict[str, Any] | None = None,
    estimates: list[Estimate] | None = None,
    headline: str | None = "att",
    measure: str = "victim",
    series: dict[str, Series] | None = None,
    evidence_in: dict[str, Any] | None = None,
) -> EvaluationResults:
    return EvaluationResults(
        name="case",
        title="Case",
        design=design,
        outcome=Outcome(
            label="Violence",
            areas=["Butetown", "Grangetown"],
            comparison_areas=comparison if comparison is not None else [f"c{i}" for i in range(8)],
            measure=measure,  # type: ignore[arg-type]
        ),
        periods=Periods(
            data_start="2016-04-01",
            data_end="2024-03-01",
            intervention_start="2021-09-01",
            pre_periods=pre_periods,
            post_periods=31,
        ),
        headline=headline,
        estimates=estimates if estimates is not None else [_att()],
        diagnostics=diagnostics if diagnostics is not None else {},
        tables=tables if tables is not None else {},
        series=series or {},
        evidence=evidence_in or {},
    )


def _check(rated: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in rated["checks"] if c["name"] == name)


# --------------------------------------------------------------------------------------
# ITS
# --------------------------------------------------------------------------------------


def test_its_without_comparison_is_level_2_at_most():
    results = make(
        "its",
        comparison=[],
        headline="level_change",
        estimates=[_att(0.82, 0.75, 0.9, name="level_change")],
        diagnostics={"primary": {"se": "hac", "ljung_box_p_lag12": 0.3}},
    )
    rated = evidence.rate(results)
    assert rated["msms_level"] == 2
    assert "level 2 at most" in rated["msms_reason"]
    assert _check(rated, "pre_periods")["passed"]
    assert not _check(rated, "comparison_group")["passed"]
    assert _check(rated, "autocorrelation")["required"] is False


def test_its_with_too_short_a_pre_period_is_level_1():
    rated = evidence.rate(make("its", comparison=[], pre_periods=8, headline=None))
    assert rated["msms_level"] == 1
    assert not _check(rated, "pre_periods")["passed"]


def test_controlled_its_reaches_3_only_with_passed_pre_trends_and_balance():
    diag = {"primary": {"se": "hac", "pre_trend_difference": {"p_value": 0.41}}}
    good = make("its", diagnostics=diag, tables={"balance": GOOD_BALANCE})
    assert evidence.rate(good)["msms_level"] == 3
    no_table = evidence.rate(make("its", diagnostics=diag))
    assert no_table["msms_level"] == 2
    assert "no balance table" in _check(no_table, "balance")["detail"]
    diverging = {"primary": {"pre_trend_difference": {"p_value": 0.01}}}
    rated = evidence.rate(make("its", diagnostics=diverging, tables={"balance": GOOD_BALANCE}))
    assert rated["msms_level"] == 2


# --------------------------------------------------------------------------------------
# DiD
# --------------------------------------------------------------------------------------


def _did(p: float | None = 0.3, balance=GOOD_BALANCE, **kw) -> EvaluationResults:
    diag = {"n_treated_clusters": 2, "inference": "wild"}
    if p is not None:
        diag["pretrend_wald_p"] = p
    return make("did", diagnostics=diag, tables={"balance": balance}, **kw)


def test_did_with_passed_pre_trends_and_balance_is_level_3():
    rated = evidence.rate(_did())
    assert rated["msms_level"] == 3
    assert rated["msms_label"].startswith("Level 3")
    assert rated["limitations"] == []
    assert _check(rated, "few_treated_areas")["passed"]  # wild bootstrap with 2 areas


def test_did_with_diverging_pre_trends_is_level_2():
    rated = evidence.rate(_did(p=0.01))
    assert rated["msms_level"] == 2
    assert not _check(rated, "pre_trends")["passed"]
    assert "pre trends" in rated["msms_reason"]


def test_did_with_unbalanced_comparison_is_level_2():
    rated = evidence.rate(_did(balance=POOR_BALANCE))
    assert rated["msms_level"] == 2
    detail = _check(rated, "balance")["detail"]
    assert "+0.49" in detail and "0.25" in detail
    assert any("+0.49" in lim for lim in rated["limitations"])


@pytest.mark.parametrize(
    ("p", "diff", "level"),
    [(0.05, 0.249, 3), (0.0499, 0.1, 2), (0.5, 0.25, 2), (0.5, -0.26, 2)],
)
def test_did_thresholds(p, diff, level):
    """p >= 0.05 passes the pre-trend rule; |d| < 0.25 (strictly) passes balance."""
    balance = [{"measure": "mean crimes per month", "std_diff_comparison": diff}]
    assert evidence.rate(_did(p=p, balance=balance))["msms_level"] == level


def test_did_without_a_pre_trend_test_cannot_reach_3():
    rated = evidence.rate(_did(p=None))
    assert rated["msms_level"] == 2
    assert "no test" in _check(rated, "pre_trends")["detail"]


def test_did_without_comparison_areas_is_level_1():
    assert evidence.rate(_did(comparison=[]))["msms_level"] == 1


def test_did_with_cr1_and_few_treated_areas_is_flagged_but_not_downgraded():
    results = make(
        "did",
        diagnostics={"n_treated_clusters": 2, "inference": "cr1", "pretrend_wald_p": 0.4},
        tables={"balance": GOOD_BALANCE},
    )
    rated = evidence.rate(results)
    check = _check(rated, "few_treated_areas")
    assert not check["passed"] and not check["required"]
    assert rated["msms_level"] == 3  # the scale rates the design, not the interval


def _event_rows(z_values: list[float]) -> list[dict[str, Any]]:
    # counts scale: estimate = z * se with se = 2
    rows = [
        {"event_time": -len(z_values) + i, "estimate": 2.0 * z, "se": 2.0, "scale": "count"}
        for i, z in enumerate(z_values)
    ]
    return rows + [{"event_time": 0, "estimate": -8.0, "se": 2.0, "scale": "count"}]


def test_pre_trends_from_the_event_study_table_by_bonferroni():
    """Without a joint test, the pre-start rows are tested jointly by Bonferroni: with 4
    leads, one |z| = 2.3 (p = 0.021) does not fail the test (4 x 0.021 > 0.05), one
    |z| = 3.2 (p = 0.0014) does."""
    base = {"tables": {"balance": GOOD_BALANCE}}
    calm = make("did", **base)
    calm = calm.model_copy(
        update={"tables": {**calm.tables, "event_study": _event_rows([0.3, -2.3, 1.0, 0.4])}}
    )
    rated = evidence.rate(calm)
    assert _check(rated, "pre_trends")["passed"]
    assert "Bonferroni" in _check(rated, "pre_trends")["detail"]
    assert rated["msms_level"] == 3
    moving = calm.model_copy(
        update={"tables": {**calm.tables, "event_study": _event_rows([0.3, -3.2, 1.0, 0.4])}}
    )
    assert evidence.rate(moving)["msms_level"] == 2


def test_rate_ratio_event_rows_use_the_log_scale():
    rows = [
        {"event_time": -2, "estimate": 1.02, "se": 0.05, "scale": "rate_ratio"},
        {"event_time": -1, "estimate": 1.0, "se": 0.0, "scale": "rate_ratio"},  # reference
    ]
    results = make("did", tables={"balance": GOOD_BALANCE, "event_study": rows})
    check = _check(evidence.rate(results), "pre_trends")
    assert check["passed"] and "1 pre-start" in check["detail"]


# --------------------------------------------------------------------------------------
# Staggered, synthetic control, not rated
# --------------------------------------------------------------------------------------


def test_staggered_with_never_treated_and_passed_pre_trends_is_level_3():
    tables = {"event_study": _event_rows([0.5, -1.0, 0.2])}
    never = make(
        "staggered_did", comparison=[], diagnostics={"control_group": "never"}, tables=tables
    )
    assert evidence.rate(never)["msms_level"] == 3
    not_yet = make(
        "staggered_did", comparison=[], diagnostics={"control_group": "not_yet"}, tables=tables
    )
    rated = evidence.rate(not_yet)
    assert rated["msms_level"] == 2
    assert "not-yet" in _check(rated, "never_treated_controls")["detail"]
    diverging = make(
        "staggered_did",
        comparison=[],
        diagnostics={"control_group": "never"},
        tables={"event_study": _event_rows([4.0, 0.1])},
    )
    assert evidence.rate(diverging)["msms_level"] == 2


def _sc_series(gap: float) -> dict[str, Series]:
    periods = [f"20{y}-{m:02d}-01" for y in (19, 20, 21) for m in range(1, 13)]
    observed = [100.0 + (i % 5) for i in range(36)]
    synthetic = [o + (gap if i % 2 else -gap) for i, o in enumerate(observed)]
    return {"primary": Series(periods=periods, observed=observed, counterfactual=synthetic)}


def test_synthetic_control_needs_a_good_pre_fit():
    # start 2021-09: 32 pre-period months; mean about 102, noise limit 1.5 sqrt(102) = 15.1
    good = make("synthetic_control", pre_periods=32, series=_sc_series(5.0))
    rated = evidence.rate(good)
    assert rated["msms_level"] == 3
    poor = make("synthetic_control", pre_periods=32, series=_sc_series(20.0))
    assert evidence.rate(poor)["msms_level"] == 2
    from_diag = make(
        "synthetic_control", pre_periods=32, series=_sc_series(5.0), diagnostics={"pre_rmspe": 30.0}
    )
    assert evidence.rate(from_diag)["msms_level"] == 2  # the design's own RMSPE wins
    unknown = make("synthetic_control", pre_periods=32)
    assert not _check(evidence.rate(unknown), "pre_fit")["passed"]


@pytest.mark.parametrize("design", ["power", "profile", "something_new"])
def test_designs_without_an_effect_are_not_rated(design):
    rated = evidence.rate(make(design))
    assert rated["msms_level"] is None and rated["msms_label"] == "Not rated"
    assert rated["emmie_effect"] is None and rated["checks"] == []
    assert rated["msms_reason"]


def test_power_results_carry_the_mde():
    mde = Estimate(
        name="mde_24", estimate=0.88, ci_low=0.87, ci_high=0.89, scale="rate_ratio", method="sim"
    )
    results = make(
        "power",
        estimates=[mde.model_copy(update={"name": "mde_12", "estimate": 0.83}), mde],
        headline="mde_24",
        diagnostics={"target_power": 0.8, "planned_design": "did", "effects": [0.7, 0.9, 1.0]},
    )
    rated = evidence.rate(results)
    assert Estimate.model_validate(rated["mde"]) == mde  # the dashboards read it so
    assert rated["mde_sentence"] == (
        "With 24 months after the start, this design detects a 12% fall with 80% power; "
        "smaller falls could well be missed."
    )
    assert evidence.power_headline(results) == (
        "With 24 months after the start, a difference-in-differences against 8 comparison "
        "areas detects a 12% fall in violence in Butetown and Grangetown with 80% power; "
        "smaller falls could well be missed."
    )


def test_mde_from_diagnostics_of_another_design():
    results = _did()
    results = results.model_copy(
        update={
            "diagnostics": {**results.diagnostics, "mde": {"estimate": 0.8, "scale": "rate_ratio"}}
        }
    )
    assert evidence.rate(results)["mde"]["estimate"] == 0.8


def test_mde_sentence_wording():
    assert "an 11% fall" in evidence.mde_sentence(36, 0.89, 0.8)
    assert "an 18% fall" in evidence.mde_sentence(12, 0.82, 0.9, "quarter")
    assert "12 quarters" in evidence.mde_sentence(12, 0.82, 0.9, "quarter")
    assert evidence.mde_sentence(6, None, 0.8, largest_fall=0.7) == (
        "With 6 months after the start, this design would not detect even a 30% fall with "
        "80% power."
    )


# --------------------------------------------------------------------------------------
# EMMIE effect, attach
# --------------------------------------------------------------------------------------


def test_emmie_effect_of_a_clear_fall():
    effect = evidence.rate(_did(balance=POOR_BALANCE))["emmie_effect"]
    assert effect["direction"] == "fall" and effect["interval_excludes_no_change"]
    assert effect["percent_change"] == pytest.approx(-14.0)
    assert effect["strength"] == "weak evidence of a fall (design at level 2)"
    assert effect["summary"].startswith("Effect: a 14% fall (95% interval 6% to 26%)")


def test_emmie_effect_when_the_interval_includes_no_change():
    results = _did(estimates=[_att(0.95, 0.8, 1.12)])
    effect = evidence.rate(results)["emmie_effect"]
    assert not effect["interval_excludes_no_change"]
    assert effect["strength"].startswith("no clear effect")


def test_emmie_effect_on_counts_and_activity_measures():
    results = make(
        "staggered_did",
        comparison=[],
        diagnostics={"control_group": "never"},
        estimates=[_att(-10.4, -16.8, -4.4, scale="count")],
        measure="activity",
    )
    effect = evidence.rate(results)["emmie_effect"]
    assert effect["direction"] == "fall" and effect["interval_excludes_no_change"]
    assert "percent_change" not in effect
    assert "enforcement" in effect["caveat"]


def test_attach_derives_the_level_and_keeps_other_keys(tmp_path):
    claimed = _did(p=0.01, evidence_in={"msms_level": 5, "note": "kept"})
    rated = evidence.attach(claimed)
    assert claimed.evidence == {"msms_level": 5, "note": "kept"}  # a copy, not a change
    assert rated.evidence["msms_level"] == 2  # never what was asserted by hand
    assert rated.evidence["note"] == "kept"
    write_results(rated, tmp_path)
    assert read_results(tmp_path).evidence == rated.evidence  # JSON round trip
