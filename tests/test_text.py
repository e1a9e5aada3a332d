"""Plain-English wording: direction, rounding, intervals, significance, rates vs counts."""

from __future__ import annotations

import pytest

from evaluation.errors import InputError
from evaluation.report import text
from evaluation.results import Estimate, EvaluationResults, Outcome, Periods

LABEL = "Acquisitive crime in the Safer Streets area"
DID = "compared with similar areas"


def est(value, lo=None, hi=None, scale="rate_ratio", name="effect", **kw) -> Estimate:
    return Estimate(
        name=name, estimate=value, ci_low=lo, ci_high=hi, scale=scale, method="test", **kw
    )


def results(headline_est: Estimate, **kw) -> EvaluationResults:
    base = {
        "name": "safer_streets",
        "title": "Safer Streets",
        "design": "did",
        "outcome": Outcome(label="Acquisitive crime", areas=["Butetown", "Grangetown"]),
        "periods": Periods(data_start="2018-01-01", data_end="2023-12-01", post_periods=33),
        "headline": headline_est.name,
        "estimates": [headline_est],
    }
    base.update(kw)
    return EvaluationResults(**base)


# -- rate ratios -------------------------------------------------------------------------


def test_fall_reorders_interval_bounds():
    # RR 0.86 (0.79, 0.94): falls of 14%, and 6% to 21% (the smaller fall, 1-0.94, first).
    s = text.effect_sentence(est(0.86, 0.79, 0.94), outcome_label=LABEL, comparison=DID)
    assert s == (
        "Acquisitive crime in the Safer Streets area fell by an estimated 14% "
        "(95% interval 6% to 21%) compared with similar areas."
    )


def test_rise():
    s = text.effect_sentence(est(1.25, 1.12, 1.39), outcome_label="Drug offences", comparison="")
    assert s == "Drug offences rose by an estimated 25% (95% interval 12% to 39%)."


def test_interval_including_no_change_is_said_as_such():
    s = text.effect_sentence(est(0.97, 0.90, 1.05), outcome_label=LABEL, comparison=DID)
    assert "changed by an estimated -3%" in s
    assert "(95% interval: a 10% fall to a 5% rise)" in s
    assert s.endswith("the data cannot rule out no change.")
    assert "fell" not in s and "rose" not in s


def test_interval_bound_exactly_one_reads_no_change():
    s = text.effect_sentence(est(0.9, 0.8, 1.0), outcome_label=LABEL, comparison="")
    assert "(95% interval: a 20% fall to no change)" in s
    assert "cannot rule out no change" in s


@pytest.mark.parametrize(
    ("rr", "signed", "expected"),
    [
        (0.8567, False, "14%"),  # 14.33% -> whole percent
        (0.995, False, "0.5%"),  # under 1% -> one decimal
        (1.004, True, "0.4%"),
        (0.97, True, "-3%"),
        (1.0, True, "0.0%"),  # never "-0"
        (2.0, False, "100%"),
    ],
)
def test_percent_rounding(rr, signed, expected):
    assert text.format_percent_change(rr, signed=signed) == expected


def test_rounding_is_half_up_not_bankers():
    # 12.5% fall from RR 0.875 (exact in binary): Python's round(12.5) would give 12.
    assert text.format_percent_change(0.875) == "13%"


def test_bad_rate_ratio_raises():
    with pytest.raises(InputError):
        text.format_percent_change(-0.2)


def test_other_confidence_level_is_named():
    s = text.format_interval(est(0.86, 0.79, 0.94, level=0.9))
    assert s.startswith("90% interval")


def test_missing_interval_and_missing_estimate():
    s = text.effect_sentence(est(0.86), outcome_label=LABEL, comparison=DID)
    assert "fell by an estimated 14% (no interval available)" in s
    s = text.effect_sentence(est(None), outcome_label=LABEL, comparison=DID)
    assert s == f"{LABEL}: the effect could not be estimated."


def test_slope_change_is_per_month():
    s = text.effect_sentence(
        est(0.988, 0.98, 0.996, scale="rate_ratio_per_period"),
        outcome_label="Drug offences in Cardiff",
        comparison="compared with the trend before the start",
    )
    assert s.startswith("After the start, the trend in drug offences in Cardiff fell")
    assert "1% a month (95% interval 0.4% to 2%)" in s


# -- counts and rates ------------------------------------------------------------------


def test_count_fewer_crimes_with_period():
    s = text.effect_sentence(
        est(-120, -200, -40, scale="count"),
        outcome_label=LABEL,
        comparison=DID,
        period_phrase="over the 33 months after the start",
    )
    assert s == (
        "Acquisitive crime in the Safer Streets area: about 120 fewer crimes over the 33 "
        "months after the start (95% interval 40 to 200 fewer) compared with similar areas."
    )


def test_count_rise_and_straddle():
    s = text.effect_sentence(est(25, 5, 45, scale="count"), outcome_label="X", comparison="")
    assert s == "X: about 25 more crimes (95% interval 5 to 45 more)."
    s = text.effect_sentence(est(-30, -90, 30, scale="count"), outcome_label="X", comparison="")
    assert "(95% interval: 90 fewer to 30 more)" in s
    assert s.endswith("the data cannot rule out no change.")


def test_count_rounding():
    assert text.format_count(0.44) == "0.4"
    assert text.format_count(37.6) == "38"
    assert text.format_count(-156) == "160"  # two significant figures from 100 up
    assert text.format_count(1234) == "1,200"


def test_rates_are_not_counts():
    s = text.effect_sentence(est(-2.3, -3.5, -1.1, scale="rate"), outcome_label="X", comparison="")
    assert "about 2 fewer crimes per 1,000 residents" in s
    s = text.effect_sentence(
        est(-4.2, -6.0, -2.4, scale="count_per_period"), outcome_label="X", comparison=""
    )
    assert "about 4 fewer crimes a month (95% interval 2 to 6 fewer)" in s


def test_level_scale_house_prices():
    # Kiel & McClain style: an additive effect on a level with an interval including 0.
    s = text.effect_sentence(
        est(-11863.9, -26478.6, 2750.8, scale="level"), outcome_label="House prices", comparison=""
    )
    assert s.startswith("House prices: 11,864 lower (95% interval -26,479 to 2,751)")
    assert s.endswith("cannot rule out no change.")


# -- significance and evidence ------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0004, "very unlikely to be chance alone (p < 0.001)"),
        (0.004, "unlikely to be chance alone (p = 0.004)"),
        (0.03, "unlikely to be chance alone (p = 0.03)"),
        (0.07, "weak evidence: it could be chance (p = 0.07)"),
        (0.42, "could well be chance (p = 0.42)"),
    ],
)
def test_significance_phrase(p, expected):
    assert text.significance_phrase(p) == expected


def test_non_significant_never_called_evidence():
    assert "chance" in text.significance_phrase(0.5)
    assert "unlikely" not in text.significance_phrase(0.5)
    with pytest.raises(InputError):
        text.significance_phrase(1.5)


def test_evidence_phrase():
    s = text.evidence_phrase(3)
    assert s.startswith("Strength of evidence: level 3 of 5 on the Maryland Scientific")
    for bad in (0, 6, 2.5, True):
        with pytest.raises(InputError):
            text.evidence_phrase(bad)


# -- whole results -------------------------------------------------------------------------


def test_headline_names_areas_and_did_comparison():
    r = results(est(0.86, 0.79, 0.94))
    assert text.headline(r) == (
        "Acquisitive crime in Butetown and Grangetown fell by an estimated 14% "
        "(95% interval 6% to 21%) compared with similar areas."
    )


def test_headline_its_activity_measure_and_synthetic_label():
    r = results(
        est(1.25, 1.12, 1.39),
        design="its",
        synthetic=True,
        outcome=Outcome(label="Drug offences", areas=["Cardiff"], measure="activity"),
    )
    h = text.headline(r)
    assert h.startswith("Synthetic demonstration data, not real crime: Drug offences in Cardiff")
    assert "compared with the trend before the start" in h
    assert "a rise can reflect more enforcement rather than more crime" in h


def test_headline_count_uses_post_periods():
    r = results(est(-120, -200, -40, scale="count"))
    assert "about 120 fewer crimes over the 33 months after the start" in text.headline(r)


def test_headline_without_estimate():
    r = results(est(0.9, 0.8, 1.0), headline=None)
    assert text.headline(r) == "Safer Streets: no headline effect was estimated."


def test_plain_summary_has_each_part():
    cost = Estimate(
        name="cost_per_crime_prevented", estimate=2000, ci_low=909, scale="gbp", method="t"
    )
    r = results(
        est(0.86, 0.79, 0.94, name="rr"),
        estimates=[
            est(0.86, 0.79, 0.94, name="rr"),
            est(-120, -200, -40, scale="count", name="cumulative_effect"),
            est(0.42, scale="p_value", name="pretrend_wald_p"),
        ],
        headline="rr",
        evidence={"msms_level": 3},
        costs={
            "cost_per_crime_prevented": cost.model_dump(),
            "cost_per_crime_prevented_upper_unbounded": True,
        },
    )
    bullets = text.plain_summary(r)
    assert len(bullets) == 5
    assert bullets[0] == text.headline(r)
    assert bullets[1].startswith("In total, about 120 fewer crimes over the 33 months")
    assert "followed similar trends" in bullets[2] and "p = 0.42" in bullets[2]
    assert bullets[3].startswith("Strength of evidence: level 3")
    assert "no upper limit" in bullets[4] and "£909" in bullets[4]


def test_plain_summary_warns_on_differing_pretrends():
    r = results(est(0.86, 0.79, 0.94), diagnostics={"pretrend_wald_p": 0.01})
    bullets = text.plain_summary(r)
    assert bullets[1].startswith("Warning: before the start")


def test_plain_summary_minimal():
    assert text.plain_summary(results(est(0.86, 0.79, 0.94))) == [
        text.headline(results(est(0.86, 0.79, 0.94)))
    ]


def test_every_scale_has_wording():
    # The registry must cover the whole Scale literal, so no estimate falls through.
    from typing import get_args

    from evaluation.results import Scale

    assert set(get_args(Scale)) == set(text._SENTENCES) == set(text._INTERVALS)
