"""Unit costs, uprating, cost per crime prevented and benefit-cost ratio, by hand."""

from __future__ import annotations

import pytest

from evaluation.errors import InputError
from evaluation.report import costs, text
from evaluation.results import Estimate, EvaluationResults, Outcome, Periods

# Confirmed figures (resources/README.md): Heeks et al. 2018, 2015/16 prices, per crime.
CONFIRMED = {
    "violence_with_injury": 14050,
    "rape": 39360,
    "other_sexual_offences": 6520,
    "robbery": 11320,
    "theft_of_vehicle": 10290,
    "theft_from_vehicle": 870,
    "arson": 8420,
    "criminal_damage_other": 1350,
}


def test_csv_holds_exactly_the_confirmed_figures():
    table = costs.load_unit_costs()
    assert list(table.columns) == list(costs.COLUMNS)
    assert dict(zip(table.crime_category, table.unit_cost_gbp_2015_16, strict=True)) == CONFIRMED
    assert not table["police_uk_crime_type"].eq("Drugs").any()
    assert not set(costs.UNCONFIRMED) & set(table.crime_category)
    assert table["note"].str.len().gt(0).all()


def test_drugs_never_monetised():
    uc = costs.unit_cost_for("Drugs")
    assert uc.value_gbp is None and "never monetised" in uc.reason
    with pytest.raises(InputError):
        costs.unit_cost_for("Drugs", mix={"robbery": 1.0})
    with pytest.raises(InputError):
        costs.load_unit_costs(
            extra={
                "drugs": {"police_uk_crime_type": "Drugs", "unit_cost_gbp_2015_16": 1, "note": "x"}
            }
        )


def test_default_mix_is_cheapest_confirmed_component():
    assert costs.unit_cost_for("Vehicle crime").value_gbp == 870
    assert costs.unit_cost_for("Criminal damage and arson").value_gbp == 1350
    assert costs.unit_cost_for("Robbery").value_gbp == 11320


def test_params_mix_overrides():
    # 0.25 x 10,290 + 0.75 x 870 = 2,572.5 + 652.5 = 3,225
    uc = costs.unit_cost_for(
        "Vehicle crime", mix={"theft_of_vehicle": 0.25, "theft_from_vehicle": 0.75}
    )
    assert uc.value_gbp == pytest.approx(3225.0)
    for bad in (
        {"theft_of_vehicle": 0.5},  # does not sum to 1
        {"robbery": 1.0},  # another crime type's category
        {"theft_of_vehicle": 1.5, "theft_from_vehicle": -0.5},
        {"nonsense": 1.0},
    ):
        with pytest.raises(InputError):
            costs.unit_cost_for("Vehicle crime", mix=bad)


def test_unconfirmed_types_have_no_value_until_added_with_a_source():
    assert costs.unit_cost_for("Burglary").value_gbp is None
    assert costs.unit_cost_for("Theft from the person").value_gbp is None
    assert costs.unit_cost_for("Violence and sexual offences").value_gbp is None
    with pytest.raises(InputError):  # no source given
        costs.load_unit_costs(
            extra={
                "domestic_burglary": {
                    "police_uk_crime_type": "Burglary",
                    "unit_cost_gbp_2015_16": 5000,
                }
            }
        )
    table = costs.load_unit_costs(
        extra={
            "domestic_burglary": {
                "police_uk_crime_type": "Burglary",
                "unit_cost_gbp_2015_16": 5000,  # an illustrative value, not a real figure
                "note": "evaluator's checked figure",
            }
        }
    )
    assert costs.unit_cost_for("Burglary", table=table).value_gbp == 5000


def test_uprate_by_hand():
    # £1,000 at index 100 -> £1,000 x 110 / 100 = £1,100.
    assert costs.uprate(1000, 100, 110) == pytest.approx(1100)
    # And back again.
    assert costs.uprate(1100, 110, 100) == pytest.approx(1000)
    with pytest.raises(InputError):
        costs.uprate(1000, 0, 110)


def test_cost_per_crime_prevented_by_hand():
    # £100,000 / 50 = £2,000; interval £100,000/80 = £1,250 to £100,000/20 = £5,000.
    out = costs.cost_per_crime_prevented(100_000, (50, 20, 80))
    e = out["estimate"]
    assert (e.name, e.scale) == ("cost_per_crime_prevented", "gbp")
    assert (e.estimate, e.ci_low, e.ci_high) == pytest.approx((2000, 1250, 5000))
    assert out["upper_unbounded"] is False
    assert out["text"] == "Cost per crime prevented: about £2,000 (95% interval £1,250 to £5,000)."


def test_interval_reaching_zero_prevented_is_unbounded():
    # Prevented 50 (-10 to 110): lower cost £100,000/110 = £909.09; no upper cost.
    out = costs.cost_per_crime_prevented(100_000, (50, -10, 110))
    e = out["estimate"]
    assert e.estimate == pytest.approx(2000)
    assert e.ci_low == pytest.approx(909.0909)
    assert e.ci_high is None and out["upper_unbounded"] is True
    assert "no upper limit" in out["text"]


def test_never_divides_by_almost_zero():
    # 0.01 crimes prevented at the lower bound would give £10,000,000 per crime: refused.
    out = costs.cost_per_crime_prevented(100_000, (50, 0.01, 110))
    assert out["estimate"].ci_high is None and out["upper_unbounded"] is True


def test_no_crimes_prevented_gives_no_cost():
    out = costs.cost_per_crime_prevented(100_000, (-5, -20, 10))
    assert out["estimate"].estimate is None
    assert out["estimate"].ci_low == pytest.approx(10_000)  # £100,000 / 10 at best
    assert "cannot be given" in out["text"]


def test_prevented_from_effect_flips_sign_and_bounds():
    effect = Estimate(
        name="cumulative_effect", estimate=-120, ci_low=-200, ci_high=-40, scale="count", method="t"
    )
    p = costs.prevented_from_effect(effect)
    assert (p.estimate, p.ci_low, p.ci_high) == (120, 40, 200)
    with pytest.raises(InputError):
        costs.prevented_from_effect(effect.model_copy(update={"scale": "rate_ratio"}))
    with pytest.raises(InputError):
        costs.Prevented(50, 60, 80)  # interval does not contain the estimate


def test_benefit_cost_ratio_by_hand():
    # Robbery 10 (4..16) x £11,320; vehicle crime 20 (10..30) x £870; x 110/100; / £50,000.
    #   benefit = (113,200 + 17,400) x 1.1 = 143,660   -> BCR 2.8732
    #   low     = ( 45,280 +  8,700) x 1.1 =  59,378   -> 1.18756
    #   high    = (181,120 + 26,100) x 1.1 = 227,942   -> 4.55884
    out = costs.benefit_cost_ratio(
        {"Robbery": (10, 4, 16), "Vehicle crime": (20, 10, 30), "Drugs": (5, 1, 9)},
        None,
        50_000,
        costs.Deflator(100, 110, label_to="2021/22"),
    )
    r, b = out["estimate"], out["benefit"]
    assert (r.name, r.scale) == ("benefit_cost_ratio", "ratio")
    assert (b.estimate, b.ci_low, b.ci_high) == pytest.approx((143_660, 59_378, 227_942))
    assert (r.estimate, r.ci_low, r.ci_high) == pytest.approx((2.8732, 1.18756, 4.55884))
    assert out["valued"] == pytest.approx({"Robbery": 12_452, "Vehicle crime": 957})
    assert set(out["excluded"]) == {"Drugs"}
    assert "Not valued: Drugs" in out["text"]


def test_benefit_cost_ratio_with_given_unit_costs_and_nothing_valued():
    out = costs.benefit_cost_ratio({"Robbery": (2, 1, 3)}, {"Robbery": 1000.0}, 1000, (100, 100))
    assert out["estimate"].estimate == pytest.approx(2.0)
    none = costs.benefit_cost_ratio({"Drugs": (5, 1, 9)}, None, 1000, (100, 100))
    assert none["estimate"].estimate is None
    assert "no benefit-cost ratio" in none["text"]


def test_payload_feeds_results_and_plain_summary():
    cost = costs.cost_per_crime_prevented(100_000, (50, -10, 110))
    payload = costs.costs_payload(cost)
    r = EvaluationResults(
        name="x",
        title="X",
        design="did",
        outcome=Outcome(label="Robbery"),
        periods=Periods(data_start="2019-01-01", data_end="2022-12-01"),
        costs=payload,
    )
    assert text.plain_summary(r)[-1] == cost["text"]


def test_bad_programme_cost():
    with pytest.raises(InputError):
        costs.cost_per_crime_prevented(0, (50, 20, 80))
    with pytest.raises(InputError):
        costs.benefit_cost_ratio({"Robbery": (1, 0, 2)}, None, -5, (100, 110))
