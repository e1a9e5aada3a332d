"""Interrupted time series: known coefficients, statsmodels agreement, the Sicily case."""

from __future__ import annotations

import dataclasses
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.stats.stattools import durbin_watson as sm_durbin_watson
from statsmodels.tsa.stattools import acf as sm_acf

from evaluation.config import MIN_PRE_PERIODS, WELSH_COVID_LOCKDOWNS, Interruption
from evaluation.designs.its import ItsSpec, fit_its
from evaluation.errors import InputError
from evaluation.inference import timeseries as ts

# Agreement with a direct statsmodels fit of the same model: both are IRLS to statsmodels'
# default convergence tolerance, so parameters and SEs agree to far better than 1e-8.
EXACT = 1e-8

# ---------------------------------------------------------------------------------------
# Data built from known coefficients
# ---------------------------------------------------------------------------------------

TRUE = {"b0": math.log(100.0), "b1": 0.004, "b2": math.log(0.8), "b3": -0.01}
SEASON = {"sin1": 0.10, "cos1": -0.06, "sin2": 0.03, "cos2": 0.02}


def monthly(n: int, first: str = "2015-01-01") -> pd.DatetimeIndex:
    return pd.date_range(first, periods=n, freq="MS")


def columns(index: pd.DatetimeIndex, t0: int) -> pd.DataFrame:
    """Regressors as in the module docstring; ``t0`` is the 0-based first post period."""
    t = np.arange(1, len(index) + 1, dtype=float)
    post = (t >= t0 + 1).astype(float)
    out = pd.DataFrame(
        {"time": t, "post": post, "time_since": (t - t0 - 1) * post, "month": index.month},
        index=index,
    )
    for k in (1, 2):
        out[f"sin{k}"] = np.sin(2 * np.pi * k * out["month"] / 12)
        out[f"cos{k}"] = np.cos(2 * np.pi * k * out["month"] / 12)
    return out


def log_mean(x: pd.DataFrame, coef: dict[str, float] = TRUE) -> np.ndarray:
    eta = (
        coef["b0"] + coef["b1"] * x["time"] + coef["b2"] * x["post"] + coef["b3"] * x["time_since"]
    )
    for name, value in SEASON.items():
        eta = eta + value * x[name]
    return eta.to_numpy()


def overdispersed_ar(x: pd.DataFrame, rng: np.random.Generator, rho: float = 0.7) -> np.ndarray:
    """Counts with AR(1) log-scale noise and gamma-Poisson overdispersion (needs HAC)."""
    e = np.zeros(len(x))
    for i in range(1, len(x)):
        e[i] = rho * e[i - 1] + rng.normal(0, 0.12)
    mu = np.exp(log_mean(x) + e)
    return rng.poisson(rng.gamma(200.0, mu / 200.0)).astype(float)


FORMULA = "y ~ time + post + time_since + sin1 + cos1 + sin2 + cos2"
N, T0 = 72, 36  # six years monthly, intervention at the start of year four


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    x = columns(monthly(N), T0)
    x["y"] = overdispersed_ar(x, np.random.default_rng(11))
    x["pop"] = np.linspace(300_000, 330_000, N)
    return x


def test_poisson_recovers_planted_coefficients_over_200_series() -> None:
    # 200 Poisson series (mean ~100/month, 72 months). The MLE is consistent and its bias is
    # O(1/n); the tolerance is 3 Monte Carlo SEs of the mean estimate (a false alarm on a
    # fresh seed about 1 in 370 per check), and 95% interval coverage must lie in
    # [0.90, 0.99], about +/-3 binomial SEs (0.015) around 0.95.
    rng = np.random.default_rng(20240401)
    x = columns(monthly(N), T0)
    mu = np.exp(log_mean(x))
    start = x.index[T0]
    post = x["post"].to_numpy() > 0
    true_cum = float(np.sum(mu[post] - np.exp(log_mean(x, {**TRUE, "b2": 0.0, "b3": 0.0}))[post]))
    b2, b3, cum, covered = [], [], [], 0
    spec = ItsSpec(family="poisson", se="model")
    for _ in range(200):
        y = pd.Series(rng.poisson(mu).astype(float), index=x.index)
        est = {e.name: e for e in fit_its(y, start, spec).estimates()}
        lc = est["level_change"]
        b2.append(math.log(lc.estimate))
        b3.append(math.log(est["slope_change"].estimate))
        cum.append(est["cumulative_effect"].estimate)
        covered += lc.ci_low <= 0.8 <= lc.ci_high
    for values, truth in ((b2, TRUE["b2"]), (b3, TRUE["b3"]), (cum, true_cum)):
        values = np.asarray(values)
        mc_se = values.std(ddof=1) / math.sqrt(values.size)
        assert abs(values.mean() - truth) < 3 * mc_se, (values.mean(), truth, mc_se)
    assert 0.90 <= covered / 200 <= 0.99


def test_gaussian_recovers_additive_coefficients_on_noiseless_data() -> None:
    # No noise: least squares reproduces the coefficients up to floating point (1e-8).
    x = columns(monthly(60), 30)
    y = 50 + 0.5 * x["time"] - 8 * x["post"] - 0.3 * x["time_since"] + 3 * x["sin1"] - 2 * x["cos1"]
    res = fit_its(y, x.index[30], ItsSpec(family="gaussian", seasonality="fourier:1", se="model"))
    p = res.params
    assert p["const"] == pytest.approx(50, abs=EXACT)
    assert p["time"] == pytest.approx(0.5, abs=EXACT)
    assert p["sin1"] == pytest.approx(3, abs=EXACT)
    est = {e.name: e for e in res.estimates()}
    assert est["level_change"].estimate == pytest.approx(-8, abs=EXACT)
    assert est["level_change"].scale == "count"
    assert est["slope_change"].estimate == pytest.approx(-0.3, abs=EXACT)
    assert est["pre_trend"].scale == "count_per_period"
    k = np.arange(30)
    assert est["cumulative_effect"].estimate == pytest.approx(np.sum(-8 - 0.3 * k), abs=1e-6)
    assert est["level_change"].se < EXACT  # no noise, (numerically) no uncertainty


def test_gaussian_with_offset_models_the_rate_per_1000() -> None:
    # Counts built from a noiseless rate per 1,000; the coefficients come back on that rate,
    # and the cumulative effect is converted back to counts with the offset.
    x = columns(monthly(48), 24)
    pop = pd.Series(np.linspace(20_000, 26_000, 48), index=x.index)
    rate = 4.0 + 0.01 * x["time"] - 0.5 * x["post"]
    y = rate * pop / 1000
    res = fit_its(
        y,
        x.index[24],
        ItsSpec(family="gaussian", seasonality="none", slope_change=False, se="model"),
        offset=pop,
    )
    est = {e.name: e for e in res.estimates()}
    assert est["level_change"].estimate == pytest.approx(-0.5, abs=EXACT)
    assert est["level_change"].scale == "rate"
    assert est["cumulative_effect"].estimate == pytest.approx(
        float(np.sum(-0.5 * pop.iloc[24:] / 1000)), abs=1e-6
    )
    assert "rate per 1,000" in est["level_change"].method
    assert res.frame["fitted"].to_numpy() == pytest.approx(y.to_numpy(), abs=1e-6)


# ---------------------------------------------------------------------------------------
# Agreement with statsmodels' formula interface
# ---------------------------------------------------------------------------------------


def _compare(res, ref, names=None) -> None:
    names = names or list(ref.params.index.drop("Intercept"))
    np.testing.assert_allclose(res.params[names], ref.params[names], rtol=EXACT, atol=1e-12)
    np.testing.assert_allclose(res.bse[names], ref.bse[names], rtol=EXACT, atol=1e-12)
    assert res.params["const"] == pytest.approx(ref.params["Intercept"], rel=EXACT)


@pytest.mark.parametrize(
    ("family", "se", "fit_kwargs"),
    [
        ("poisson", "model", {}),
        ("quasipoisson", "model", {"scale": "X2"}),
        ("poisson", "hac", {"cov_type": "HAC", "cov_kwds": {"maxlags": 3}}),
        ("quasipoisson", "hac", {"scale": "X2", "cov_type": "HAC", "cov_kwds": {"maxlags": 3}}),
    ],
)
def test_matches_statsmodels_formula_fit(sim, family, se, fit_kwargs) -> None:
    ref = smf.glm(FORMULA, sim, family=sm.families.Poisson(), offset=np.log(sim["pop"])).fit(
        **fit_kwargs
    )
    res = fit_its(sim["y"], sim.index[T0], ItsSpec(family=family, se=se), offset=sim["pop"])
    _compare(res, ref)
    if se == "hac":
        assert res.hac_lags == 3  # floor(4 (72/100)^(2/9)) = 3
        assert "Newey-West HAC SE (3 lags)" in res.estimates()[0].method


def test_hac_is_not_rescaled_by_the_quasipoisson_dispersion(sim) -> None:
    # The documented choice: the sandwich is invariant to the GLM scale, so quasi-Poisson and
    # Poisson HAC covariances coincide (and differ from the model-based ones).
    kw = {"offset": sim["pop"]}
    quasi = fit_its(sim["y"], sim.index[T0], ItsSpec(family="quasipoisson"), **kw)
    pois = fit_its(sim["y"], sim.index[T0], ItsSpec(family="poisson"), **kw)
    model = fit_its(sim["y"], sim.index[T0], ItsSpec(family="quasipoisson", se="model"), **kw)
    assert quasi.dispersion > 1.5  # the simulated series is overdispersed
    np.testing.assert_allclose(quasi.cov.to_numpy(), pois.cov.to_numpy(), rtol=EXACT)
    assert not np.allclose(quasi.bse.to_numpy(), model.bse.to_numpy(), rtol=0.01)


def test_gaussian_and_fixed_alpha_negbin_match_statsmodels(sim) -> None:
    ref = smf.glm(FORMULA, sim, family=sm.families.Gaussian()).fit()
    _compare(fit_its(sim["y"], sim.index[T0], ItsSpec(family="gaussian", se="model")), ref)
    ref = smf.glm(FORMULA, sim, family=sm.families.Gaussian()).fit(
        cov_type="HAC", cov_kwds={"maxlags": 3}
    )
    _compare(fit_its(sim["y"], sim.index[T0], ItsSpec(family="gaussian")), ref)
    nb = sm.families.NegativeBinomial(alpha=0.05)
    ref = smf.glm(FORMULA, sim, family=nb, offset=np.log(sim["pop"])).fit(
        cov_type="HAC", cov_kwds={"maxlags": 2}
    )
    spec = ItsSpec(family="negbin", negbin_alpha=0.05, hac_lags=2)
    _compare(fit_its(sim["y"], sim.index[T0], spec, offset=sim["pop"]), ref)


def test_estimated_negbin_alpha_is_the_statsmodels_mle(sim) -> None:
    # Alpha is the NB2 MLE; the GLM at that alpha reproduces the discrete MLE coefficients.
    # Both optimisers stop on objective-based tolerances on a flat likelihood, so agreement
    # is to 1e-5 relative on alpha and 1e-5 absolute (about 1e-4 SE) on coefficients.
    mle = smf.negativebinomial(FORMULA, sim, offset=np.log(sim["pop"])).fit(disp=0, maxiter=1000)
    res = fit_its(sim["y"], sim.index[T0], ItsSpec(family="negbin", se="model"), offset=sim["pop"])
    assert res.negbin_alpha == pytest.approx(mle.params["alpha"], rel=1e-5)
    names = list(mle.params.index.drop(["Intercept", "alpha"]))
    np.testing.assert_allclose(res.params[names], mle.params[names], atol=1e-5)
    assert "alpha 0.0235, estimated" in res.method
    diag = res.diagnostics()
    assert diag["negbin_alpha_estimated"] is True
    assert diag["aic"] == pytest.approx(mle.aic, rel=1e-6)


def test_month_dummies_and_phase_in_match_statsmodels(sim) -> None:
    # Phase-in rows are dropped from the fit (but kept in the frame).
    keep = np.ones(N, dtype=bool)
    keep[T0 : T0 + 3] = False
    ref = smf.glm(
        "y ~ time + post + time_since + C(month)", sim[keep], family=sm.families.Poisson()
    ).fit(scale="X2", cov_type="HAC", cov_kwds={"maxlags": 3})
    spec = ItsSpec(seasonality="month", phase_in=3)
    res = fit_its(sim["y"], sim.index[T0], spec)
    _compare(res, ref, ["time", "post", "time_since"])
    assert res.frame["in_fit"].to_numpy().tolist() == keep.tolist()
    diag = res.diagnostics()
    assert diag["post_periods_fitted"] == N - T0 - 3
    assert diag["n"] == N - 3


def test_controlled_its_matches_statsmodels_driscoll_kraay(sim) -> None:
    rng = np.random.default_rng(5)
    comp = pd.Series(rng.poisson(np.exp(log_mean(sim)) * 1.5).astype(float), index=sim.index)
    treated = sim.assign(group=1.0)
    control = sim.assign(group=0.0, y=comp.to_numpy())
    stacked = pd.concat([treated, control], ignore_index=True)
    time_code = np.concatenate([np.arange(N), np.arange(N)])
    ref = smf.glm(
        FORMULA + " + group + group:time + group:post + group:time_since",
        stacked,
        family=sm.families.Poisson(),
    ).fit(
        scale="X2",
        cov_type="hac-groupsum",
        cov_kwds={"time": time_code, "maxlags": 3, "use_correction": False},
    )
    res = fit_its(sim["y"], sim.index[T0], ItsSpec(), comparison=comp)
    _compare(res, ref)
    est = {e.name: e for e in res.estimates()}
    assert est["level_change"].estimate == pytest.approx(
        math.exp(ref.params["group:post"]), rel=EXACT
    )
    assert "Driscoll-Kraay" in est["level_change"].method
    trend = ref.params["time"] + ref.params["group:time"]
    assert est["pre_trend"].estimate == pytest.approx(math.exp(trend), rel=EXACT)


def test_covariates_integer_periods_and_start_inside_a_month(sim) -> None:
    # A covariate enters like any regressor; integer periods 1..n give the same fit (their
    # season position is (t - 1) mod 12 + 1, the month here because the data start in
    # January); a start date inside a month makes that month the first post period.
    data = sim.assign(temp=np.random.default_rng(2).normal(size=N))
    ref = smf.glm(FORMULA + " + temp", data, family=sm.families.Poisson()).fit(scale="X2")
    cov = data[["temp"]]
    spec = ItsSpec(se="model")
    res = fit_its(data["y"], data.index[T0], spec, covariates=cov)
    _compare(res, ref)
    ints = pd.Series(data["y"].to_numpy(), index=range(1, N + 1))
    res_int = fit_its(ints, T0 + 1, spec, covariates=cov.set_axis(ints.index))
    np.testing.assert_allclose(res_int.params, res.params, rtol=EXACT)
    mid = fit_its(data["y"], data.index[T0] + pd.Timedelta(days=14), spec, covariates=cov)
    np.testing.assert_allclose(mid.params, res.params, rtol=EXACT)
    periods = data["y"].to_period("M")
    by_period = fit_its(periods, periods.index[T0], spec, covariates=cov.to_period("M"))
    np.testing.assert_allclose(by_period.params, res.params, rtol=EXACT)


def test_quarterly_series_uses_the_calendar_quarter() -> None:
    rng = np.random.default_rng(3)
    idx = pd.date_range("2010-01-01", periods=40, freq="QS")
    q = idx.quarter.to_numpy()
    t = np.arange(1, 41)
    post = (t >= 21).astype(float)
    mu = np.exp(5 + 0.01 * t - 0.2 * post + 0.1 * np.cos(2 * np.pi * q / 4))
    y = pd.Series(rng.poisson(mu).astype(float), index=idx)
    df = pd.DataFrame(
        {
            "y": y.to_numpy(),
            "time": t,
            "post": post,
            "sin1": np.sin(2 * np.pi * q / 4),
            "cos1": np.cos(2 * np.pi * q / 4),
        }
    )
    ref = smf.glm("y ~ time + post + sin1 + cos1", df, family=sm.families.Poisson()).fit(scale="X2")
    spec = ItsSpec(seasonality="fourier:1", season_length=4, slope_change=False, se="model")
    res = fit_its(y, idx[20], spec)
    _compare(res, ref)
    assert "quarter" in res.estimates()[0].label


# ---------------------------------------------------------------------------------------
# Published case: Sicily smoking ban (Lopez Bernal, Cummins & Gasparrini 2017)
# ---------------------------------------------------------------------------------------


@pytest.mark.shared
def test_sicily_published_rate_ratio(shared_dir) -> None:
    path = shared_dir / "reference" / "sicily.csv"
    if not path.exists():
        pytest.skip("reference/sicily.csv is not available")
    d = pd.read_csv(path)
    idx = pd.to_datetime(pd.DataFrame({"year": d["year"], "month": d["month"], "day": 1}))
    y = pd.Series(d["aces"].to_numpy(), index=idx)
    pop = pd.Series(d["stdpop"].to_numpy(), index=idx)
    start = idx[d["smokban"].to_numpy().argmax()]  # January 2005
    spec = ItsSpec(family="quasipoisson", seasonality="fourier:2", slope_change=False, se="model")
    est = {e.name: e for e in fit_its(y, start, spec, offset=pop).estimates()}
    lc = est["level_change"]
    # Published: 0.885 (0.839 to 0.933); the paper reports 3 and 2 decimals respectively.
    assert lc.estimate == pytest.approx(0.885, abs=5e-4)
    assert lc.ci_low == pytest.approx(0.839, abs=5e-3)
    assert lc.ci_high == pytest.approx(0.933, abs=5e-3)
    assert "slope_change" not in est
    # the same model on the paper's integer `time` periods (data start in January)
    by_time = y.set_axis(d["time"].to_numpy())
    lc_int = fit_its(by_time, 37, spec, offset=pop.set_axis(by_time.index)).estimates()[1]
    assert lc_int.estimate == pytest.approx(lc.estimate, rel=EXACT)


# ---------------------------------------------------------------------------------------
# Controlled ITS and interruptions remove planted confounding
# ---------------------------------------------------------------------------------------


def test_controlled_its_recovers_group_specific_level_change() -> None:
    # Both series drop 10% at the start (a citywide change); the evaluated one drops a further
    # 20%. 100 seeded replications; tolerance 3 Monte Carlo SEs. The uncontrolled ITS is
    # biased towards log(0.72) and must be far outside that tolerance.
    rng = np.random.default_rng(7)
    x = columns(monthly(N), T0)
    shared = log_mean(x, {**TRUE, "b2": math.log(0.9), "b3": 0.0})
    mu_c, mu_t = (
        np.exp(shared + math.log(1.5)),
        np.exp(shared + math.log(0.8) * x["post"].to_numpy()),
    )
    start = x.index[T0]
    spec = ItsSpec(family="poisson", slope_change=False, se="model")
    controlled, plain = [], []
    for _ in range(100):
        y = pd.Series(rng.poisson(mu_t).astype(float), index=x.index)
        c = pd.Series(rng.poisson(mu_c).astype(float), index=x.index)
        controlled.append(math.log(fit_its(y, start, spec, comparison=c).estimates()[1].estimate))
        plain.append(math.log(fit_its(y, start, spec).estimates()[1].estimate))
    controlled, plain = np.asarray(controlled), np.asarray(plain)
    mc_se = controlled.std(ddof=1) / 10
    assert abs(controlled.mean() - math.log(0.8)) < 3 * mc_se
    # the uncontrolled ITS attributes the citywide drop to the intervention: log(0.72)
    plain_se = plain.std(ddof=1) / 10
    assert abs(plain.mean() - math.log(0.72)) < 3 * plain_se
    assert abs(plain.mean() - math.log(0.8)) > 10 * max(mc_se, plain_se)


def test_interruption_covariate_removes_planted_covid_bias() -> None:
    # A 40% drop in proportion to the days of the first lockdown, after an intervention that
    # started in January 2020. Without the covariate the shock leaks into the level and slope
    # change; with it the level change is unbiased (3 Monte Carlo SEs over 100 replications).
    rng = np.random.default_rng(13)
    idx = monthly(N, "2016-01-01")
    t0 = int(np.flatnonzero(idx == pd.Timestamp("2020-01-01"))[0])
    x = columns(idx, t0)
    shock = Interruption("lockdown", date(2020, 3, 23), date(2020, 6, 30), "First lockdown")
    from evaluation.designs.its import _periods, _share_of_days

    share = _share_of_days(shock, _periods(pd.Series(0.0, index=idx), 12))
    mu = np.exp(log_mean(x) + math.log(0.6) * share)
    with_c, without = [], []
    for _ in range(100):
        y = pd.Series(rng.poisson(mu).astype(float), index=idx)
        spec = ItsSpec(family="poisson", se="model", interruptions=WELSH_COVID_LOCKDOWNS)
        with_c.append(math.log(fit_its(y, idx[t0], spec).estimates()[1].estimate))
        spec = ItsSpec(family="poisson", se="model")
        without.append(math.log(fit_its(y, idx[t0], spec).estimates()[1].estimate))
    with_c, without = np.asarray(with_c), np.asarray(without)
    mc_se = with_c.std(ddof=1) / 10
    bias_with, bias_without = with_c.mean() - TRUE["b2"], without.mean() - TRUE["b2"]
    assert abs(bias_with) < 3 * mc_se
    assert abs(bias_without) > 5 * max(abs(bias_with), mc_se)


def test_interruption_share_of_days() -> None:
    idx = monthly(24, "2020-01-01")
    from evaluation.designs.its import _periods, _share_of_days

    p = _periods(pd.Series(0.0, index=idx), 12)
    lockdown, firebreak, winter = (_share_of_days(i, p) for i in WELSH_COVID_LOCKDOWNS)
    assert lockdown[:7].tolist() == pytest.approx([0, 0, 9 / 31, 1, 1, 1, 0])
    assert firebreak[9:11].tolist() == pytest.approx([9 / 31, 9 / 30])
    assert winter[11:16].tolist() == pytest.approx([12 / 31, 1, 1, 1, 0])


def test_interruption_outside_the_data_is_dropped_and_noted(sim) -> None:
    # sim covers 2015-2020: the winter 2020/21 lockdown only touches December 2020.
    old = Interruption("old", date(2001, 1, 1), date(2001, 2, 1), "Before the data")
    res = fit_its(sim["y"], sim.index[T0], ItsSpec(interruptions=(old,)))
    assert res.diagnostics()["interruptions_dropped"] == ["old"]
    assert "old" not in res.params.index


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


def _series(values, n: int = 36) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=monthly(n))


GOOD = np.random.default_rng(1).poisson(50, 36).astype(float)


def _bad_cases():
    idx = monthly(36)
    gap = pd.Series(GOOD, index=idx).drop(idx[5])
    neg = GOOD.copy()
    neg[3] = -1
    frac = GOOD.copy()
    frac[3] = 2.5
    nan = GOOD.copy()
    nan[3] = np.nan
    pop = pd.Series(1000.0, index=idx)
    zero_pop = pop.copy()
    zero_pop.iloc[4] = 0
    ints = pd.Series(GOOD, index=range(1, 37))
    return [
        ("few pre periods", _series(GOOD), idx[MIN_PRE_PERIODS - 1], {}, "intervention.start"),
        ("start before data", _series(GOOD), pd.Timestamp("2014-06-01"), {}, "intervention.start"),
        ("start after data", _series(GOOD), pd.Timestamp("2018-01-01"), {}, "intervention.start"),
        ("int start, dated series", _series(GOOD), 20, {}, "intervention.start"),
        ("no post to fit", _series(GOOD), idx[-1], {}, "intervention.start"),
        ("negative count", _series(neg), idx[20], {}, "outcome"),
        ("non-integer count", _series(frac), idx[20], {}, "outcome"),
        ("all zero", _series(np.zeros(36)), idx[20], {}, "outcome"),
        ("missing value", _series(nan), idx[20], {}, "outcome"),
        ("gap in months", gap, idx[20], {}, "outcome"),
        ("zero offset", _series(GOOD), idx[20], {"offset": zero_pop}, "offset"),
        ("short offset", _series(GOOD), idx[20], {"offset": pop.iloc[:30]}, "offset"),
        ("negative comparison", _series(GOOD), idx[20], {"comparison": _series(neg)}, "comparison"),
        (
            "offset without comparison offset",
            _series(GOOD),
            idx[20],
            {"comparison": _series(GOOD), "offset": pop},
            "comparison_offset",
        ),
        (
            "interruptions on integer periods",
            ints,
            20,
            {"spec": ItsSpec(interruptions=WELSH_COVID_LOCKDOWNS)},
            "its.interruptions",
        ),
        (
            "phase-in too long",
            _series(GOOD),
            idx[20],
            {"spec": ItsSpec(phase_in=15)},
            "its.phase_in",
        ),
        (
            "too many HAC lags",
            _series(GOOD),
            idx[20],
            {"spec": ItsSpec(hac_lags=40)},
            "its.hac_lags",
        ),
        ("zero after the start", _series(np.r_[GOOD[:20], np.zeros(16)]), idx[20], {}, "outcome"),
        (
            "covariate named like a term",
            _series(GOOD),
            idx[20],
            {"covariates": pd.DataFrame({"post": np.ones(36)}, index=idx)},
            "covariates",
        ),
    ]


@pytest.mark.parametrize(
    ("y", "start", "kwargs", "key"),
    [case[1:] for case in _bad_cases()],
    ids=[case[0] for case in _bad_cases()],
)
def test_bad_input_raises_input_error_with_key(y, start, kwargs, key) -> None:
    kwargs = dict(kwargs)
    spec = kwargs.pop("spec", ItsSpec())
    with pytest.raises(InputError) as err:
        fit_its(y, start, spec, **kwargs)
    assert err.value.key == key
    assert key in str(err.value)
    assert err.value.source is None


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"family": "binomial"}, "its.family"),
        ({"seasonality": "weekly"}, "its.seasonality"),
        ({"seasonality": "fourier:7"}, "its.seasonality"),
        ({"se": "robust"}, "its.se"),
        ({"hac_lags": -1}, "its.hac_lags"),
        ({"phase_in": -2}, "its.phase_in"),
        ({"level": 1.5}, "its.level"),
        ({"negbin_alpha": 0.0}, "its.negbin_alpha"),
    ],
)
def test_bad_spec_raises_input_error_with_key(kwargs, key) -> None:
    with pytest.raises(InputError) as err:
        ItsSpec(**kwargs)
    assert err.value.key == key and key in str(err.value)


# ---------------------------------------------------------------------------------------
# Delta-method intervals against parametric simulation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "sd_rel", "end_se"),
    [
        # citywide-sized series (~1,000 a month, log-scale SE ~0.02): the delta method is
        # near exact; simulated sd within 2%, interval ends within 0.1 SE.
        ("large", 0.02, 0.1),
        # the noisy AR(1) series (~100 a month, HAC log-scale SE ~0.13): the sum of
        # exponentials is skewed, the simulated interval sits ~0.3-0.4 SE lower than the
        # symmetric delta one (measured); tolerance sd within 5%, ends within 0.5 SE.
        ("noisy", 0.05, 0.5),
    ],
)
def test_cumulative_effect_delta_method_matches_parametric_simulation(
    sim, case, sd_rel, end_se
) -> None:
    # 40,000 draws from N(beta_hat, V): Monte Carlo error of the sd ~0.4%, of a 2.5% quantile
    # ~0.02 SE, both well inside the tolerances.
    data = sim.copy()
    if case == "large":
        rng = np.random.default_rng(12)
        data["y"] = rng.poisson(np.exp(log_mean(data) + math.log(10))).astype(float)
    res = fit_its(data["y"], data.index[T0], ItsSpec(), offset=data["pop"])
    cum = res.estimates()[-1]
    d = res.design
    rows = d.treated & d.post & d.in_fit
    x, x_cf, off = d.exog.to_numpy()[rows], d.exog_cf.to_numpy()[rows], d.log_offset[rows]
    rng = np.random.default_rng(99)
    draws = rng.multivariate_normal(res.params.to_numpy(), res.cov.to_numpy(), size=40_000)
    eff = (np.exp(draws @ x.T + off) - np.exp(draws @ x_cf.T + off)).sum(axis=1)
    assert eff.std() == pytest.approx(cum.se, rel=sd_rel)
    lo, hi = np.quantile(eff, [0.025, 0.975])
    assert lo == pytest.approx(cum.ci_low, abs=end_se * cum.se)
    assert hi == pytest.approx(cum.ci_high, abs=end_se * cum.se)
    z = cum.estimate / cum.se
    assert cum.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    # the results' own simulated interval (10,000 draws, another seed) agrees with this one;
    # a 2.5% quantile from 10,000 draws varies by ~0.04 SE between seeds (measured): 0.15 SE
    s_lo, s_hi = res.cumulative_effect_simulated()
    assert s_lo == pytest.approx(lo, abs=0.15 * cum.se)
    assert s_hi == pytest.approx(hi, abs=0.15 * cum.se)


def test_counterfactual_interval_is_for_the_mean(sim) -> None:
    # The interval is exp(eta +/- z se_eta): check one post row by hand and by simulation
    # (the simulated 2.5%/97.5% quantiles of exp(eta) equal the transformed normal ones up to
    # Monte Carlo error, 1% with 40,000 draws).
    res = fit_its(sim["y"], sim.index[T0], ItsSpec(), offset=sim["pop"])
    f = res.frame
    pre, post = ~f["post"], f["post"]
    assert f.loc[pre, "counterfactual"].to_numpy() == pytest.approx(f.loc[pre, "fitted"].to_numpy())
    assert (f.loc[post, "cf_low"] < f.loc[post, "counterfactual"]).all()
    assert (f.loc[post, "counterfactual"] < f.loc[post, "cf_high"]).all()
    i = N - 1
    xi = res.design.exog_cf.to_numpy()[i]
    eta = xi @ res.params.to_numpy() + math.log(sim["pop"].iloc[i])
    se = math.sqrt(xi @ res.cov.to_numpy() @ xi)
    assert f["cf_low"].iloc[i] == pytest.approx(math.exp(eta - 1.959963985 * se), rel=1e-8)
    draws = np.random.default_rng(4).multivariate_normal(res.params, res.cov, size=40_000)
    sims = np.exp(draws @ xi + math.log(sim["pop"].iloc[i]))
    assert np.quantile(sims, 0.975) == pytest.approx(f["cf_high"].iloc[i], rel=0.01)


# ---------------------------------------------------------------------------------------
# Results object and diagnostics
# ---------------------------------------------------------------------------------------


def test_results_are_frozen_and_frame_is_a_copy(sim) -> None:
    res = fit_its(sim["y"], sim.index[T0], ItsSpec())
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.hac_lags = 9  # type: ignore[misc]
    f = res.frame
    f["observed"] = 0.0
    assert res.frame["observed"].sum() == sim["y"].sum()
    assert list(res.frame.columns) == [
        "period",
        "observed",
        "fitted",
        "counterfactual",
        "cf_low",
        "cf_high",
        "post",
        "in_fit",
    ]
    assert "Date:  " in res.model_summary and "2026" not in res.model_summary.split("Date:")[1][:30]
    names = [e.name for e in res.estimates()]
    assert names == ["pre_trend", "level_change", "slope_change", "cumulative_effect"]
    series = res.to_series(label="Drugs")
    assert series.periods[0] == "2015-01-01" and len(series.observed) == N


def test_diagnostics_match_statsmodels(sim) -> None:
    res = fit_its(sim["y"], sim.index[T0], ItsSpec(family="poisson", se="model"))
    diag = res.diagnostics()
    r = np.asarray(res.fit_result.resid_pearson)
    lb = acorr_ljungbox(r, lags=[6, 12])
    assert diag["ljung_box_p_lag6"] == pytest.approx(lb["lb_pvalue"].iloc[0], rel=1e-10)
    assert diag["ljung_box_p_lag12"] == pytest.approx(lb["lb_pvalue"].iloc[1], rel=1e-10)
    assert diag["durbin_watson"] == pytest.approx(sm_durbin_watson(r), rel=1e-12)
    np.testing.assert_allclose(diag["residual_acf"], sm_acf(r, nlags=12)[1:], rtol=1e-10)
    assert diag["dispersion"] == pytest.approx(res.fit_result.pearson_chi2 / (N - 8))
    assert diag["aic"] == pytest.approx(res.fit_result.aic)
    assert diag["pre_periods"] == T0 and diag["post_periods"] == N - T0
    # AR(1) noise was planted: the checks see it
    assert diag["ljung_box_p_lag12"] < 0.05
    assert fit_its(sim["y"], sim.index[T0], ItsSpec()).diagnostics()["aic"] is None


def test_timeseries_helpers_edge_cases() -> None:
    assert [ts.newey_west_lags(n) for n in (0, 10, 59, 72, 120, 400)] == [0, 2, 3, 3, 4, 5]
    assert ts.acf(np.ones(20), 5) is None
    assert ts.ljung_box(np.arange(5.0), 6) is None
    assert ts.durbin_watson(np.zeros(10)) is None
    assert ts.normal_p_value(1.0, 0.0) is None
