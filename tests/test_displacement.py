"""WDQ, total net effect and WDD against hand arithmetic, published examples and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.errors import InputError
from evaluation.report import displacement as dp

# Counts used for WDQ/TNE: Rb=100, Ra=70, Cb=200, Ca=190.
#   Success measure SM = Ra/Ca - Rb/Cb = 70/190 - 100/200 = (70 - 95)/190 = -25/190.
#   Control growth Ca/Cb = 0.95, so the treated part of TNE = 100 x 0.95 - 70 = 25.


def test_wdq_diffusion_of_benefits():
    # Db=80, Da=72: BD = 72/190 - 80/200 = (72 - 76)/190 = -4/190; WDQ = -4/-25 = 0.16.
    r = dp.wdq(rb=100, ra=70, db=80, da=72, cb=200, ca=190)
    assert (r.estimate.name, r.estimate.scale) == ("wdq", "ratio")
    assert r.estimate.estimate == pytest.approx(0.16)
    assert r.details["success_measure"] == pytest.approx(-25 / 190)
    assert "diffusion of benefits" in r.interpretation


def test_wdq_some_displacement_net_benefit():
    # Da=86: BD = (86 - 76)/190 = 10/190; WDQ = 10/-25 = -0.4.
    r = dp.wdq(100, 70, 80, 86, 200, 190)
    assert r.estimate.estimate == pytest.approx(-0.4)
    assert "net benefit" in r.interpretation


def test_wdq_displacement_outweighs():
    # Da=106: BD = 30/190; WDQ = 30/-25 = -1.2.
    r = dp.wdq(100, 70, 80, 106, 200, 190)
    assert r.estimate.estimate == pytest.approx(-1.2)
    assert "outweighs" in r.interpretation


def test_wdq_not_meaningful_without_a_fall():
    # Ra=100: SM = (100 - 95)/190 > 0.
    r = dp.wdq(100, 100, 80, 72, 200, 190)
    assert r.estimate.estimate is None
    assert "not meaningful" in r.interpretation and "did not fall" in r.interpretation


def test_wdq_bad_input():
    with pytest.raises(InputError):
        dp.wdq(100, 70, 80, 72, 0, 190)
    with pytest.raises(InputError):
        dp.wdq(-1, 70, 80, 72, 200, 190)


@pytest.mark.parametrize(
    ("da", "expected"),
    [
        (72, 29.0),  # 25 + (80 x 0.95 - 72 = 4)
        (86, 15.0),  # 25 + (76 - 86 = -10)
        (106, -5.0),  # 25 + (76 - 106 = -30): net more crime
    ],
)
def test_total_net_effect_by_hand(da, expected):
    r = dp.total_net_effect(100, 70, 80, da, 200, 190)
    assert (r.estimate.name, r.estimate.scale) == ("total_net_effect", "count")
    assert r.estimate.estimate == pytest.approx(expected)
    assert r.details["treated_part"] == pytest.approx(25)
    assert ("fewer" if expected > 0 else "more") in r.interpretation


# -- WDD: published examples -------------------------------------------------------------
# Exact arithmetic, so tolerance is floating point only (1e-12 relative).


def test_wdd_ptools_example_local():
    # ptools::wdd docs: control (20, 20), treated (20, 10).
    # WDD = (10 - 20) - (20 - 20) = -10; Var = 10 + 20 + 20 + 20 = 70.
    r = dp.wdd(treated=(20, 10), control=(20, 20))
    e = r.estimate
    assert (e.name, e.scale) == ("wdd", "count")
    assert e.estimate == pytest.approx(-10)
    assert e.se == pytest.approx(math.sqrt(70))
    # ptools' own follow-up: two-tailed p with zero pre counts for (20 vs 10) is ~0.068.
    assert dp.wdd((0, 10), (0, 20)).estimate.p_value == pytest.approx(0.0679, abs=5e-4)


def test_wdd_ptools_example_with_displacement():
    # Displacement treated (30, 20), displacement control (30, 30):
    # disp = (20 - 30) - (30 - 30) = -10; total -20; Var = 70 + (20 + 30 + 30 + 30) = 180.
    r = dp.wdd((20, 10), (20, 20), displacement=(30, 20), displacement_control=(30, 30))
    assert r.estimate.estimate == pytest.approx(-20)
    assert r.estimate.se == pytest.approx(math.sqrt(180))
    assert r.details["local"] == pytest.approx(-10)
    assert r.details["displacement"] == pytest.approx(-10)
    assert r.details["displacement_se"] == pytest.approx(math.sqrt(110))


def test_wdd_crimedecoder_example():
    # Wheeler's calculator example: control 100 -> 90, treated 100 -> 80: extra reduction
    # of 10 crimes, "the standard error is 19" (sqrt(370) = 19.2).
    e = dp.wdd((100, 80), (100, 90)).estimate
    assert e.estimate == pytest.approx(-10)
    assert e.se == pytest.approx(19.235, abs=1e-3)


def test_wdd_unequal_periods_blog_example():
    # Wheeler (2021) "WDD with different pre/post time periods": 2 years before, 1 after;
    # treated 80 -> 20, control 100 -> 50. Per year: (20 - 40) - (50 - 50) = -20;
    # Var = 20/1 + 80/4 + 50/1 + 100/4 = 115.
    e = dp.wdd((80, 20), (100, 50), periods=(2, 1)).estimate
    assert e.estimate == pytest.approx(-20)
    assert e.se**2 == pytest.approx(115)


def test_wdd_interval_p_and_words():
    e = dp.wdd((100, 80), (100, 90)).estimate
    z = -10 / math.sqrt(370)
    assert e.ci_low == pytest.approx(-10 - 1.959964 * math.sqrt(370), rel=1e-6)
    assert e.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    words = dp.wdd((100, 80), (100, 90)).interpretation
    assert "about 10 fewer crimes" in words and "could be chance" in words


# -- WDD: reference implementation ----------------------------------------------------------


# A saturated model has no residual degrees of freedom and an identity link outside the
# Poisson's natural domain: statsmodels warns about both, which is expected here.
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::Warning")
def test_wdd_equals_saturated_poisson_identity_glm():
    # Wheeler's note: the WDD is the interaction of an identity-link Poisson GLM on the four
    # counts; the model is saturated, so its SE is sqrt(sum of counts). Tolerance 1e-6: IRLS
    # converges to the exact counts to about 1e-8.
    sm = pytest.importorskip("statsmodels.api")
    y = np.array([130.0, 74.0, 133.0, 91.0])  # treated pre/post, control pre/post
    treat = np.array([1, 1, 0, 0])
    post = np.array([0, 1, 0, 1])
    X = np.column_stack([np.ones(4), treat, post, treat * post])
    fit = sm.GLM(y, X, family=sm.families.Poisson(link=sm.families.links.Identity())).fit()
    e = dp.wdd(treated=(130, 74), control=(133, 91)).estimate
    assert e.estimate == pytest.approx(fit.params[3], abs=1e-6)
    assert e.se == pytest.approx(fit.bse[3], rel=1e-6)


# -- WDD: common control, from known means ---------------------------------------------------


def test_wdd_common_control_variance_by_simulation():
    # Poisson counts with known means; the formula's variance must match the simulated
    # variance of the statistic. 40,000 draws: the relative SE of a sample variance is
    # sqrt(2/n) ~ 0.7%, so 3% tolerance is over four SEs.
    rng = np.random.default_rng(20240401)
    n = 40_000
    mu = {"t0": 50, "t1": 35, "c0": 60, "c1": 55, "d0": 40, "d1": 44}
    draws = {k: rng.poisson(v, n) for k, v in mu.items()}
    stat = (
        (draws["t1"] - draws["t0"]) + (draws["d1"] - draws["d0"]) - 2 * (draws["c1"] - draws["c0"])
    )
    r = dp.wdd(
        (mu["t0"], mu["t1"]),
        (mu["c0"], mu["c1"]),
        displacement=(mu["d0"], mu["d1"]),
        common_control=True,
    )
    # Var = 50 + 35 + 40 + 44 + 4 x (60 + 55) = 629.
    assert r.estimate.se**2 == pytest.approx(629)
    assert stat.var() == pytest.approx(629, rel=0.03)
    assert stat.mean() == pytest.approx(r.estimate.estimate, abs=4 * math.sqrt(629 / n))


def test_wdd_bad_input():
    with pytest.raises(InputError):
        dp.wdd((10, -1), (10, 10))
    with pytest.raises(InputError):
        dp.wdd((10, 5), (10, 10), displacement=(5, 5))  # no control for the displacement area
    with pytest.raises(InputError):
        dp.wdd(
            (10, 5), (10, 10), displacement=(5, 5), displacement_control=(5, 5), common_control=True
        )
    with pytest.raises(InputError):
        dp.wdd((10, 5), (10, 10), periods=(0, 1))


def test_wdd_all_zero_has_no_test():
    e = dp.wdd((0, 0), (0, 0)).estimate
    assert e.estimate == 0 and e.se == 0 and e.p_value is None
