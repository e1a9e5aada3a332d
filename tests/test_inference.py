"""Inference: CR1, the wild cluster restricted bootstrap, randomisation inference, policy.

References: statsmodels (CR1 and OLS covariances), ``wildboottest`` (the WCR bootstrap,
Roodman et al. 2019), and exact hand calculations for randomisation inference.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evaluation.designs.did import DiD2x2, TwoWayFE
from evaluation.inference.cluster import (
    choose_inference,
    cluster_codes,
    cluster_sums,
    cr1_factor,
    cr1_vcov,
    fe_nested,
    iid_vcov,
    wald_test,
)
from evaluation.inference.randomization import placebo_assignments, randomization_inference
from evaluation.inference.wild import bootstrap_t_stats, wild_cluster_bootstrap


def _clustered_data(n_clusters: int, per: int, beta1: float, seed: int):
    rng = np.random.default_rng(seed)
    n = n_clusters * per
    cl = np.repeat(np.arange(n_clusters), per)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    y = X @ np.array([1.0, beta1, 0.5]) + rng.normal(size=n) + rng.normal(size=n_clusters)[cl]
    return X, y, cl


# -- CR1 and friends ------------------------------------------------------------------


def test_cr1_matches_statsmodels_cluster():
    X, y, cl = _clustered_data(15, 12, 0.2, seed=1)
    ols = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": cl})
    codes, G = cluster_codes(cl)
    resid = y - X @ ols.params
    # statsmodels' default cluster correction is Stata's G/(G-1)(N-1)/(N-K): same formula,
    # so agreement is to rounding (1e-12 relative).
    np.testing.assert_allclose(cr1_vcov(X, resid, codes, G), ols.cov_params(), rtol=1e-12)
    assert cr1_factor(180, 3, 15) == pytest.approx(15 / 14 * 179 / 177, rel=1e-15)


def test_iid_vcov_matches_ols():
    X, y, _ = _clustered_data(10, 10, 0.2, seed=2)
    ols = sm.OLS(y, X).fit()
    np.testing.assert_allclose(iid_vcov(X, ols.resid), ols.cov_params(), rtol=1e-12)


def test_cluster_sums_sorted_and_unsorted_paths_agree():
    rng = np.random.default_rng(3)
    codes = np.sort(rng.integers(0, 50, size=2_000))
    codes = pd.factorize(codes)[0]
    vals = rng.normal(size=(codes.size, 3))
    fast = cluster_sums(vals, codes, codes.max() + 1)  # sorted: reduceat path
    perm = rng.permutation(codes.size)
    slow = cluster_sums(vals[perm], codes[perm], codes.max() + 1)  # bincount path
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_fe_nested():
    unit = np.repeat(np.arange(6), 4)
    period = np.tile(np.arange(4), 6)
    ward = unit // 2
    assert fe_nested(unit, ward)
    assert not fe_nested(period, ward)


def test_wald_test_forms():
    b = np.array([1.0, -2.0])
    V = np.array([[1.0, 0.2], [0.2, 2.0]])
    quad = float(b @ np.linalg.solve(V, b))
    stat, p, q = wald_test(b, V)
    assert (stat, q) == (pytest.approx(quad), 2)
    f, pf, _ = wald_test(b, V, df_denom=30)
    assert f == pytest.approx(quad / 2)
    assert pf > p  # the F reference distribution is more conservative than chi-squared


# -- the policy -------------------------------------------------------------------------


def test_choose_inference_refuses_cr1_with_two_treated_areas():
    method, reason = choose_inference(2, "auto")
    assert method == "wild"
    assert reason.startswith(
        "With only 2 treated areas, conventional cluster-robust standard errors are far too "
        "small (Cameron, Gelbach & Miller 2008); the interval comes from the wild cluster "
        "restricted bootstrap."
    )
    method, reason = choose_inference(5, "cr1")
    assert method == "wild" and "CR1 intervals were requested but not used" in reason
    assert choose_inference(12, "auto")[0] == "cr1"
    assert choose_inference(12, "conventional")[0] == "conventional"
    assert choose_inference(2, "randomization")[0] == "randomization"
    with pytest.raises(ValueError):
        choose_inference(2, "bogus")


# -- wild cluster restricted bootstrap --------------------------------------------------


def _wildboottest_cl(X, y, cl, j, B, weights, seed):
    from wildboottest.wildboottest import WildboottestCL

    R = np.zeros(X.shape[1])
    R[j] = 1.0
    wb = WildboottestCL(X=X, Y=y, cluster=cl, R=R, B=B, seed=seed, parallel=False)
    wb.get_scores(bootstrap_type="11", impose_null=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb.get_weights(weights_type=weights)
    wb.get_numer()
    wb.get_denom()
    wb.get_tboot()
    wb.get_vcov()
    wb.get_tstat()
    wb.get_pvalue()
    return wb


def test_full_enumeration_is_exact_against_wildboottest():
    """G = 10: 2^10 = 1,024 <= 9,999, so both enumerate every Rademacher sign vector."""
    X, y, cl = _clustered_data(10, 25, 0.17, seed=4)
    codes, G = cluster_codes(cl)
    wb = _wildboottest_cl(X, y, cl, 1, 9_999, "rademacher", seed=1)
    t, tb = bootstrap_t_stats(X, y, codes, G, 1)
    assert wb.B == tb.size == 1_024
    # The same 1,024 bootstrap t statistics (in another order): exact up to rounding.
    np.testing.assert_allclose(np.sort(tb), np.sort(wb.t_boot), rtol=1e-10, atol=1e-10)
    assert t == pytest.approx(float(np.ravel(wb.t_stat)[0]), rel=1e-12)
    res = wild_cluster_bootstrap(X, y, codes, G, 1)
    assert res.full_enumeration and res.reps == 1_024 and res.seed is None
    # Exact p-value: the share of |t*| >= |t| counted from wildboottest's own t*, with
    # ties (the identity sign vector and its mirror give |t*| = |t|) counted, as here.
    ref = np.mean(np.abs(wb.t_boot) >= abs(t) * (1 - 1e-9))
    assert res.p_value == ref
    # wildboottest counts strictly greater |t*|, so it can differ only by those 2 ties.
    assert 0 <= res.p_value - wb.pvalue <= 2 / 1_024 + 1e-15
    # Enumeration does not depend on the seed.
    assert wild_cluster_bootstrap(X, y, codes, G, 1, seed=99).p_value == res.p_value


def test_webb_p_value_within_monte_carlo_error_of_wildboottest():
    from wildboottest.wildboottest import wildboottest

    X, y, cl = _clustered_data(40, 20, 0.08, seed=5)
    codes, G = cluster_codes(cl)
    B = 9_999
    res = wild_cluster_bootstrap(X, y, codes, G, 1, reps=B, seed=11)
    assert res.weights == "webb" and not res.full_enumeration
    model = sm.OLS(pd.Series(y), pd.DataFrame(X, columns=["c", "x1", "x2"]))
    ref = wildboottest(model, B=B, cluster=cl, param="x1", weights_type="webb", seed=7, show=False)
    p_ref = float(ref["p-value"].iloc[0])
    assert res.t_stat == pytest.approx(float(ref["statistic"].iloc[0]), rel=1e-10)
    # Two independent Monte Carlo estimates of the same p: the SE of their difference is
    # sqrt(2 p (1 - p) / B) (about 0.004 at p = 0.1); allow 4 of those.
    p = 0.5 * (res.p_value + p_ref)
    mc_se = math.sqrt(2 * p * (1 - p) / B)
    assert abs(res.p_value - p_ref) <= 4 * mc_se
    assert 0.01 < p < 0.9  # the comparison is informative, not at a boundary


def test_wild_interval_inverts_the_test():
    X, y, cl = _clustered_data(30, 10, 0.3, seed=6)
    codes, G = cluster_codes(cl)
    res = wild_cluster_bootstrap(X, y, codes, G, 1, reps=1_999, seed=3, level=0.9)
    assert res.ci_low < res.estimate < res.ci_high
    width = res.ci_high - res.ci_low
    eps = 1e-3 * width
    for bound, inside in ((res.ci_low, +1), (res.ci_high, -1)):
        p_in = wild_cluster_bootstrap(
            X, y, codes, G, 1, null=bound + inside * eps, reps=1_999, seed=3, interval=False
        ).p_value
        p_out = wild_cluster_bootstrap(
            X, y, codes, G, 1, null=bound - inside * eps, reps=1_999, seed=3, interval=False
        ).p_value
        assert p_in > 0.1 >= p_out
    # Same seed, same answer; the null-imposed bootstrap of the true value rarely rejects.
    again = wild_cluster_bootstrap(X, y, codes, G, 1, reps=1_999, seed=3, level=0.9)
    assert again == res


def test_wild_null_value_changes_the_test():
    X, y, cl = _clustered_data(12, 15, 0.0, seed=8)
    codes, G = cluster_codes(cl)
    far = wild_cluster_bootstrap(X, y, codes, G, 1, null=5.0, interval=False)
    assert far.p_value < 0.01  # 12 clusters: all 4,096 sign vectors, exact


def test_wild_cluster_bootstrap_rejects_bad_weights():
    X, y, cl = _clustered_data(5, 5, 0.0, seed=9)
    codes, G = cluster_codes(cl)
    with pytest.raises(ValueError):
        wild_cluster_bootstrap(X, y, codes, G, 1, weights="mammen")


# -- randomisation inference --------------------------------------------------------------


def _tiny_panel():
    """Four units, two periods; unit 0 treated in period 1.

    Changes (period 1 minus period 0): unit 0: 5, unit 1: 1, unit 2: 2, unit 3: 3.
    Placebo estimate for treating unit i alone: change_i minus the mean change of the rest:
    unit 0: 5 - 2 = 3 (actual); unit 1: 1 - 10/3; unit 2: 2 - 3 = -1; unit 3: 3 - 8/3.
    Only the actual reaches |3|, so the exact p-value is 1/4.
    """
    y0 = np.array([10.0, 20.0, 30.0, 40.0])
    change = np.array([5.0, 1.0, 2.0, 3.0])
    rows = []
    for i in range(4):
        rows.append(
            {
                "unit": i,
                "period": 0,
                "outcome": y0[i],
                "treat": 0.0,
                "treated": 1.0 * (i == 0),
                "post": 0.0,
            }
        )
        rows.append(
            {
                "unit": i,
                "period": 1,
                "outcome": y0[i] + change[i],
                "treat": 1.0 * (i == 0),
                "treated": 1.0 * (i == 0),
                "post": 1.0,
            }
        )
    return pd.DataFrame(rows)


def test_randomization_exact_p_value_on_hand_example():
    df = _tiny_panel()
    res = TwoWayFE(inference="randomization").fit(df)
    assert res.estimate == pytest.approx(3.0, abs=1e-12)
    assert res.inference == "randomization"
    ri = res.randomization
    assert ri.exhaustive and ri.n_assignments == 4
    np.testing.assert_allclose(
        np.sort(ri.placebo_estimates), np.sort([3.0, 1 - 10 / 3, -1.0, 3 - 8 / 3]), atol=1e-12
    )
    assert ri.p_value == pytest.approx(0.25, abs=1e-15)
    # With 4 assignments the smallest attainable p-value is 1/4 > 0.05: no value of the
    # effect can be rejected, so the interval is unbounded on both sides.
    assert res.ci_low is None and res.ci_high is None
    # The 2x2 design (cell means by unit) gives the same placebo distribution.
    r2 = DiD2x2(unit="unit", inference="randomization").fit(df)
    assert r2.p_value == pytest.approx(0.25, abs=1e-15)
    np.testing.assert_allclose(
        np.sort(r2.randomization.placebo_estimates), np.sort(ri.placebo_estimates), atol=1e-12
    )


def test_placebo_assignments_enumerate_then_sample():
    A, exhaustive = placebo_assignments(6, np.array([1, 4]))
    assert exhaustive and A.shape == (15, 6)
    assert A[0].tolist() == [False, True, False, False, True, False]  # row 0 is the actual
    assert len({tuple(r) for r in A}) == 15 and (A.sum(axis=1) == 2).all()
    B1, ex1 = placebo_assignments(40, np.array([0, 1, 2]), max_assignments=500, seed=1)
    B2, _ = placebo_assignments(40, np.array([0, 1, 2]), max_assignments=500, seed=1)
    assert not ex1 and B1.shape == (500, 40) and (B1.sum(axis=1) == 3).all()
    np.testing.assert_array_equal(B1, B2)  # seeded


def _small_did_panel(seed=0, n=12, T=6, n_treated=2, effect=1.5):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"unit": np.repeat(np.arange(n), T), "period": np.tile(np.arange(T), n)})
    df["treat"] = ((df.unit < n_treated) & (df.period >= T // 2)).astype(float)
    df["x"] = rng.normal(size=len(df))
    df["outcome"] = (
        rng.normal(size=n)[df.unit]
        + 0.3 * df.period
        + effect * df.treat
        + 0.4 * df.x
        + rng.normal(size=len(df))
    )
    return df


def test_randomization_interval_matches_brute_force_refits():
    """The linear shortcut e_a - tau f_a equals refitting on shifted outcomes."""
    df = _small_did_panel(n=8, n_treated=2)
    spec = TwoWayFE(covariates=("x",), inference="randomization")
    res = spec.fit(df)
    ri = res.randomization
    assert ri.exhaustive and ri.n_assignments == math.comb(8, 2)
    A, _ = placebo_assignments(8, np.array([0, 1]))
    for tau in (0.0, 0.7, res.estimate + 1.0):
        shifted = df.assign(outcome=df.outcome - tau * df.treat)
        stats_ = []
        for a in A:
            treated = np.flatnonzero(a)
            d = shifted.assign(treat=(df.unit.isin(treated) & (df.period >= 3)).astype(float))
            stats_.append(abs(TwoWayFE(covariates=("x",), inference="cr1").fit(d).estimate))
        p_brute = np.mean(np.array(stats_) >= stats_[0] * (1 - 1e-9))
        shift = _brute_force_shift(df)
        p_fast = np.mean(
            np.abs(ri.placebo_estimates - tau * shift) >= abs(res.estimate - tau) * (1 - 1e-9)
        )
        assert p_fast == pytest.approx(p_brute, abs=1e-12)


def _brute_force_shift(df):
    """f_a recomputed by brute force: the estimator under a applied to the actual D."""
    A, _ = placebo_assignments(8, np.array([0, 1]))
    out = []
    for a in A:
        treated = np.flatnonzero(a)
        d = df.assign(
            outcome=df.treat, treat=(df.unit.isin(treated) & (df.period >= 3)).astype(float)
        )
        out.append(TwoWayFE(covariates=("x",), inference="cr1").fit(d).estimate)
    return np.array(out)


def test_randomization_interval_bounds_cross_the_level():
    e = np.r_[2.0, np.linspace(-0.5, 0.5, 49)]  # actual first, 49 placebo estimates
    f = np.full(e.size, 0.2)
    f[0] = 1.0
    res = randomization_inference(e, f, level=0.9)
    assert res.p_value == pytest.approx(1 / e.size)
    assert res.ci_low < 2.0 < res.ci_high
    from evaluation.inference.randomization import _p_value

    assert _p_value(e, f, res.ci_low + 1e-6) > 0.1 >= _p_value(e, f, res.ci_low - 1e-6)
    assert _p_value(e, f, res.ci_high - 1e-6) > 0.1 >= _p_value(e, f, res.ci_high + 1e-6)


def test_size_with_three_treated_areas_monte_carlo():
    """Under no effect, how often is 'no effect' rejected at 5% with 3 treated of 20 areas?

    CR1 over-rejects (Cameron, Gelbach & Miller 2008); the wild cluster restricted
    bootstrap and randomisation inference stay near or below 5%. 200 seeded simulations:
    the Monte Carlo SE of a 5% rate is about 1.5 points, so the bound for the valid
    methods is 5% + 3 SE.
    """
    reject = {"cr1": 0, "wild": 0, "randomization": 0}
    n_sim = 200
    for s in range(n_sim):
        rng = np.random.default_rng(1_000 + s)
        n, T = 20, 10
        df = pd.DataFrame({"unit": np.repeat(np.arange(n), T), "period": np.tile(np.arange(T), n)})
        df["treat"] = ((df.unit < 3) & (df.period >= 5)).astype(float)
        # Area-specific shocks after the start (heteroskedastic across areas) make the
        # few treated clusters' residuals dominate the CR1 variance.
        scale = rng.uniform(0.5, 2.0, size=n)[df.unit]
        shock = rng.normal(size=n)[df.unit] * (df.period >= 5)
        df["outcome"] = rng.normal(size=n)[df.unit] + scale * (shock + rng.normal(size=len(df)))
        res = TwoWayFE(inference="wild", reps=999, seed=s).fit(df)
        reject["wild"] += res.p_value <= 0.05
        reject["cr1"] += res.cr1.p_value <= 0.05
        ri = TwoWayFE(inference="randomization").fit(df)
        reject["randomization"] += ri.p_value <= 0.05
    rate = {k: v / n_sim for k, v in reject.items()}
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / n_sim)
    assert rate["wild"] <= bound and rate["randomization"] <= bound, rate
    assert rate["cr1"] > bound, rate  # the reason CR1 is never the headline here
