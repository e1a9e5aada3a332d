"""Power and minimum detectable effect by simulation (``evaluation.inference.power``) and the
power workflow (``design: power``).

Numbers are tested three ways: against closed forms (two Poisson means compared by a
z-test), against the implementations the evaluations themselves run (the Poisson DiD of
``designs.did``, the ITS of ``designs.its``, statsmodels' GLM), and on data built from
known coefficients (noise parameters, planted effects).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from scipy import optimize, stats

from evaluation import api
from evaluation.cli import main
from evaluation.designs.did import PoissonFE
from evaluation.designs.its import ItsSpec, fit_its
from evaluation.errors import InputError
from evaluation.inference import power as pw
from evaluation.report import evidence
from evaluation.results import read_results

REPO = Path(__file__).resolve().parents[1]


def _two_period(mean: float, n_pre: int, max_post: int, noise: pw.NoiseModel, family="poisson"):
    expected = np.full((1, n_pre + max_post), mean)
    return pw.Simulation(
        expected, np.array([True]), n_pre, noise, pw.two_period_test(n_pre, family)
    )


def _mc_tolerance(p: float, n: int) -> float:
    # 4 Monte Carlo standard errors (a false alarm about 1 in 16,000 per comparison) plus
    # 0.01 for the normal approximation itself, which is not exact at these counts
    return 4 * math.sqrt(p * (1 - p) / n) + 0.01


# --------------------------------------------------------------------------------------
# Closed form
# --------------------------------------------------------------------------------------


def test_two_period_poisson_power_matches_the_normal_formula():
    n_pre, mean, sims = 24, 20.0, 4000
    sim = _two_period(mean, n_pre, 24, pw.NoiseModel("poisson"))
    curve = pw.simulate_power(
        sim, [0.8, 0.85, 0.9, 0.95, 1.1], [6, 12, 24], simulations=sims, seed=3
    )
    for row in curve.rows():
        if row["effect"] == 1.0:
            continue
        want = pw.two_period_normal_power(mean, n_pre, row["post_periods"], row["effect"])
        assert abs(row["power"] - want) <= _mc_tolerance(want, sims), row
    # the Wald test of a Poisson GLM has the nominal size (within 4 MC errors)
    for size in curve.size().values():
        assert abs(size - 0.05) <= 4 * math.sqrt(0.05 * 0.95 / sims)


def test_two_period_quasipoisson_power_matches_the_normal_formula():
    """Overdispersed counts (variance 2.5 x mean) tested with quasi-Poisson errors."""
    n_pre, mean, sims, phi = 36, 15.0, 3000, 2.5
    sim = _two_period(mean, n_pre, 24, pw.NoiseModel("quasipoisson", phi), "quasipoisson")
    curve = pw.simulate_power(sim, [0.75, 0.85, 0.95], [12, 24], simulations=sims, seed=4)
    for row in curve.rows():
        if row["effect"] == 1.0:
            continue
        want = pw.two_period_normal_power(
            mean, n_pre, row["post_periods"], row["effect"], dispersion=phi
        )
        assert abs(row["power"] - want) <= _mc_tolerance(want, sims), row


def test_simulated_mde_matches_the_closed_form_mde():
    n_pre, mean, sims = 24, 20.0, 4000
    sim = _two_period(mean, n_pre, 24, pw.NoiseModel("poisson"))
    curve = pw.simulate_power(sim, [0.75, 0.8, 0.85, 0.9], [24], simulations=sims, seed=5)
    mde = pw.minimum_detectable_effect(curve.effects, curve.power[:, 0], simulations=sims)
    exact = optimize.brentq(
        lambda r: pw.two_period_normal_power(mean, n_pre, 24, r) - 0.8, 0.5, 0.99
    )
    assert mde.estimate is not None and mde.low is not None and mde.high is not None
    assert mde.low <= mde.estimate <= mde.high
    # the Monte Carlo interval, widened by 0.005 for interpolating between grid points
    assert mde.low - 0.005 <= exact <= mde.high + 0.005


# --------------------------------------------------------------------------------------
# Agreement with the implementations the evaluations run
# --------------------------------------------------------------------------------------


def _panel(rng, S=3, N=10, T=60, start=40, n_treated=2):
    unit = rng.uniform(20, 70, N)
    period = np.exp(0.2 * np.sin(np.arange(T) / 2))
    Y = rng.poisson(unit[None, :, None] * period * rng.gamma(10, 0.1, (S, N, T))).astype(float)
    D = np.zeros((N, T))
    D[:n_treated, start:] = 1
    return Y, D


def test_ppml_matches_the_headline_poisson_did():
    """Coefficient, CR1 standard error and wild bootstrap p-value as PoissonFE (the
    evaluation's own estimator): 1e-8 on the coefficient (both iterate to 1e-10 on the
    deviance), 1e-6 relative on the SE, the same p-value (the same 1,024 sign vectors)."""
    Y, D = _panel(np.random.default_rng(0))
    fit = pw.ppml_did(Y, D)
    se = pw.cr1_se(fit)
    weights, kind = pw._sign_vectors(10, 9999, np.random.default_rng(1))
    assert kind == "all" and weights.shape == (10, 1024)
    p = pw.wild_p_values(fit, weights)
    N, T = D.shape
    for s in range(Y.shape[0]):
        frame = pd.DataFrame(
            {
                "unit": np.repeat(np.arange(N), T),
                "period": np.tile(np.arange(T), N),
                "outcome": Y[s].ravel(),
                "treat": D.ravel(),
            }
        )
        ref = PoissonFE(inference="wild", reps=9999).fit(frame)
        assert fit.beta[s] == pytest.approx(ref.coef, abs=1e-8)
        assert se[s] == pytest.approx(ref.cr1.se, rel=1e-6)
        assert p[s] == pytest.approx(ref.p_value, abs=1e-12)


def _term_by_term_wild_p(fit: pw.PpmlFit, weights: np.ndarray) -> np.ndarray:
    """The simulated wild bootstrap p-values by their definition: (S, G, R) residuals."""
    wD = fit.w * fit.Dt
    a, C, s = (np.sum(wD * x, axis=2) for x in (fit.zt, fit.Dt, fit.resid))
    t_actual = np.abs(a.sum(axis=1) / np.sqrt(np.sum(s * s, axis=1)))
    num = a @ weights
    bstar = num / C.sum(axis=1, keepdims=True)
    e = weights[None] * a[:, :, None] - C[:, :, None] * bstar[:, None, :]
    t_boot = np.abs(num / np.sqrt(np.sum(e * e, axis=1)))
    return np.mean(t_boot >= (t_actual * (1 - pw._TIE))[:, None], axis=1)


def _fallen_panel(seed: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Y, D = _panel(rng, S=S)
    Y[:, :2, 40:] = rng.binomial(Y[:, :2, 40:].astype(int), 0.7)  # a 30% fall
    return Y, D


def test_closed_form_ppml_is_what_irls_converges_to():
    """With one start the Poisson DiD is fitted in closed form, without iterating: the
    same coefficient as IRLS to 1e-12, the same linearisation to its convergence (IRLS
    stops at 1e-10 on the deviance), CR1 to 1e-9 and identical bootstrap p-values."""
    Y, D = _fallen_panel(5, 40)
    fit = pw.ppml_did(Y, D)
    ref = pw._ppml_irls(Y, D, tol=1e-10, max_iter=100)
    assert fit.iterations == 0 and ref.iterations > 1
    assert fit.beta == pytest.approx(ref.beta, abs=1e-12)
    assert np.max(np.abs(fit.w / ref.w - 1)) < 1e-8
    assert np.max(np.abs(fit.Dt - ref.Dt)) < 1e-8
    assert np.max(np.abs(fit.zt - ref.zt)) < 1e-8
    assert pw.cr1_se(fit) == pytest.approx(pw.cr1_se(ref), rel=1e-9)
    weights, _ = pw._sign_vectors(10, 9999, np.random.default_rng(1))
    assert np.array_equal(pw.wild_p_values(fit, weights), pw.wild_p_values(ref, weights))


def test_ppml_without_a_closed_form_iterates_panel_by_panel():
    """Panels with a unit or a period without counts (no finite closed form) go through
    IRLS, the others not; each panel's coefficient is the one it has when fitted alone.
    A treatment that is not one block (two starts) is fitted by IRLS, as PoissonFE."""
    Y, D = _panel(np.random.default_rng(6), S=6)
    Y[2, 4] = 0
    Y[4, :, 10] = 0
    fit = pw.ppml_did(Y, D)
    assert fit.iterations > 0
    for s in range(Y.shape[0]):
        alone = pw.ppml_did(Y[s : s + 1], D)
        assert (alone.iterations == 0) == (s not in (2, 4))
        assert fit.beta[s] == pytest.approx(alone.beta[0], abs=1e-10)
    staggered = D.copy()
    staggered[1, :50] = 0
    fit = pw.ppml_did(Y[:2], staggered)
    assert fit.iterations > 0
    N, T = D.shape
    for s in range(2):
        frame = pd.DataFrame(
            {
                "unit": np.repeat(np.arange(N), T),
                "period": np.tile(np.arange(T), N),
                "outcome": Y[s].ravel(),
                "treat": staggered.ravel(),
            }
        )
        ref = PoissonFE(inference="cr1").fit(frame)
        assert fit.beta[s] == pytest.approx(ref.coef, abs=1e-8)


@pytest.mark.parametrize("shape", [(4, 7, 12), (4, 12, 7)])
def test_within_one_variable_equals_the_stacked_transform(shape):
    rng = np.random.default_rng(7)
    w = rng.uniform(1, 5, shape)
    x = rng.normal(size=shape[1:])  # shared by every panel, as the treatment
    want = pw.within_two_way(w, np.broadcast_to(x, shape)[..., None])[..., 0]
    np.testing.assert_allclose(pw._within_one(w, x), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reps", [9999, 999])  # all 1,024 sign vectors; 999 Webb draws
def test_expanded_wild_bootstrap_equals_its_definition(reps, monkeypatch):
    """The bootstrap sum of squares expanded into matrix products gives the p-values of
    the term-by-term residuals exactly, in blocks of any size, and so does its
    term-by-term fallback used where the expansion cancels."""
    Y, D = _fallen_panel(8, 50)
    fit = pw.ppml_did(Y, D)
    weights, kind = pw._sign_vectors(10, reps, np.random.default_rng(2))
    assert kind == ("all" if reps > 1024 else "webb")
    want = _term_by_term_wild_p(fit, weights)
    assert np.array_equal(pw.wild_p_values(fit, weights), want)
    monkeypatch.setattr(pw, "_BOOT_CELLS", 7 * weights.shape[1])  # 8 blocks, the last of 1
    assert np.array_equal(pw.wild_p_values(fit, weights), want)
    monkeypatch.setattr(pw, "_CANCEL", np.inf)  # every sum of squares term by term
    assert np.array_equal(pw.wild_p_values(fit, weights), want)


@pytest.mark.parametrize(
    ("family", "se", "alpha"),
    [
        ("poisson", "model", 0.0),
        ("quasipoisson", "model", 0.0),
        ("quasipoisson", "hac", 0.0),
        ("negbin", "model", 0.05),
        ("negbin", "hac", 0.05),
    ],
)
def test_glm_matches_statsmodels(family, se, alpha):
    """Coefficients and standard errors of the batched GLM against statsmodels' GLM, which
    the ITS design uses (relative 1e-6: both converge far tighter than that)."""
    rng = np.random.default_rng(2)
    n = 80
    t = np.arange(1, n + 1)
    X = np.column_stack(
        [
            np.ones(n),
            t,
            (t > 50).astype(float),
            np.sin(2 * np.pi * t / 12),
            np.cos(2 * np.pi * t / 12),
        ]
    )
    y = rng.poisson(np.exp(3 + 0.005 * t + 0.2 * np.sin(2 * np.pi * t / 12)) * rng.gamma(5, 0.2, n))
    beta, mu, bread = pw.glm_fit(y[None].astype(float), X, alpha=alpha)
    mine = pw.glm_se(y[None], X, mu, bread, 2, family=family, se=se, alpha=alpha, hac_lags=3)
    kw: dict = {"scale": "X2"} if family == "quasipoisson" else {}
    if se == "hac":
        kw.update(cov_type="HAC", cov_kwds={"maxlags": 3, "use_correction": False})
    fam = sm.families.NegativeBinomial(alpha=alpha) if alpha else sm.families.Poisson()
    ref = sm.GLM(y, X, family=fam).fit(tol=1e-12, **kw)
    assert beta[0] == pytest.approx(ref.params, rel=1e-6)
    assert mine[0] == pytest.approx(ref.bse[2], rel=1e-6)


def _series(rng, n=60, start="2016-01"):
    idx = pd.date_range(start, periods=n, freq="MS")
    t = np.arange(n)
    mu = np.exp(np.log(80) + 0.002 * t + 0.15 * np.cos(2 * np.pi * idx.month / 12))
    return pd.Series(rng.poisson(mu * rng.gamma(20, 0.05, n)).astype(float), index=idx)


@pytest.mark.parametrize("se", ["hac", "model"])
def test_its_test_matches_fit_its(se):
    """The simulated ITS test is the evaluation's own: same level change and p-value as
    ``designs.its.fit_its`` on the same simulated series (1e-8 on the log coefficient,
    1e-6 relative on the p-value)."""
    rng = np.random.default_rng(3)
    y = _series(rng)
    spec = ItsSpec(se=se)
    start = pd.Timestamp("2021-01-01")
    sim, base = pw.its_simulation(y, start, spec, [12])
    T = sim.n_pre + 12
    Y = rng.poisson(sim.expected[None, :, :T] * np.ones((4, 1, 1)))
    out = sim.test(Y, 12)
    index = base.timeline.index[:T]
    for s in range(4):
        fit = fit_its(pd.Series(Y[s, 0].astype(float), index=index), start, spec)
        ref = next(e for e in fit.estimates() if e.name == "level_change")
        assert out.coef[s] == pytest.approx(math.log(ref.estimate), abs=1e-8)
        assert out.p_value[s] == pytest.approx(ref.p_value, rel=1e-6)


# --------------------------------------------------------------------------------------
# Noise, from data built with known parameters
# --------------------------------------------------------------------------------------


def test_latent_factor_has_mean_one_and_the_noise_variance():
    noise = pw.NoiseModel("negbin", 0.2, rho=0.5)
    mu = np.full((4, 50), 30.0)
    g = pw.latent_factor(noise, mu, 2000, np.random.default_rng(0))
    # 400,000 draws: the mean within 0.01, the variance within 0.01 of alpha = 0.2
    assert g.mean() == pytest.approx(1.0, abs=0.01)
    assert g.var() == pytest.approx(0.2, abs=0.01)
    lag1 = np.corrcoef(np.log(g[:, :, 1:]).ravel(), np.log(g[:, :, :-1]).ravel())[0, 1]
    assert lag1 == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("kind", "dispersion", "rho"), [("negbin", 0.1, 0.0), ("negbin", 0.2, 0.6)]
)
def test_estimate_noise_recovers_known_parameters(kind, dispersion, rho):
    """Counts drawn around known means with known overdispersion and persistence: the
    moment estimates come back within a few of their standard errors (20 x 200 cells)."""
    rng = np.random.default_rng(1)
    mu = np.full((20, 200), 30.0)
    true = pw.NoiseModel(kind, dispersion, rho)
    y = rng.poisson(mu * pw.latent_factor(true, mu, 1, rng)[0])
    est = pw.estimate_noise(y, mu, n_params=0, kind=kind)
    assert est.dispersion == pytest.approx(dispersion, abs=0.02)
    assert est.rho == pytest.approx(rho, abs=0.1)


def test_poisson_counts_have_no_excess_dispersion():
    rng = np.random.default_rng(2)
    mu = np.full((10, 100), 25.0)
    est = pw.estimate_noise(rng.poisson(mu), mu, n_params=0, kind="quasipoisson")
    # phi is at least 1 by construction; 1,000 Poisson cells give phi within 0.1 of 1
    assert 1.0 <= est.dispersion < 1.1
    assert est.rho == 0.0  # no excess variance: persistence is not identified


# --------------------------------------------------------------------------------------
# Minimum detectable effect
# --------------------------------------------------------------------------------------


def test_mde_interpolation_is_exact_on_a_probit_linear_curve():
    """Power exactly Phi(a |log r| - b), the shape of a z-test: the interpolation recovers
    the crossing exactly (to 1e-9)."""
    a, b = 12.0, 1.6
    effects = [0.6, 0.7, 0.8, 0.9, 1.0]
    power = [stats.norm.cdf(a * abs(math.log(r)) - b) for r in effects]
    mde = pw.minimum_detectable_effect(effects, power, 0.8, simulations=10**12)
    exact = math.exp(-(stats.norm.ppf(0.8) + b) / a)
    assert mde.estimate == pytest.approx(exact, abs=1e-9)


def test_mde_is_none_when_no_fall_reaches_the_target():
    mde = pw.minimum_detectable_effect(
        [0.9, 0.95, 1.0, 1.1], [0.5, 0.2, 0.05, 0.9], 0.8, simulations=500
    )
    assert mde.estimate is None and mde.low is None
    assert mde.high is None


# --------------------------------------------------------------------------------------
# Properties of the simulation
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def did_curve() -> pw.PowerCurve:
    rng = np.random.default_rng(4)
    idx = pd.date_range("2017-01", periods=48, freq="MS")
    level = rng.uniform(15, 45, 8)
    season = np.exp(0.1 * np.cos(2 * np.pi * np.asarray(idx.month) / 12))
    panel = pd.DataFrame(
        rng.poisson(level[:, None] * season * rng.gamma(15, 1 / 15, (8, 48))),
        index=[f"area{i}" for i in range(8)],
        columns=idx,
    )
    sim, _ = pw.did_simulation(
        panel, ["area0", "area1"], pd.Timestamp("2021-01-01"), ItsSpec(), [6, 12, 24], seed=1
    )
    return pw.simulate_power(sim, [0.7, 0.8, 0.85, 0.9, 0.95], [6, 12, 24], simulations=300, seed=9)


def test_power_rises_with_effect_size(did_curve):
    # common random numbers make the curve nearly monotone; allow one Monte Carlo error
    slack = did_curve.mc_se
    falls = [i for i, e in enumerate(did_curve.effects) if e <= 1]  # 0.7 ... 1.0
    for j in range(len(did_curve.post_periods)):
        for i0, i1 in zip(falls[:-1], falls[1:], strict=True):
            assert did_curve.power[i0, j] >= did_curve.power[i1, j] - slack[i0, j]


def test_power_rises_with_post_length(did_curve):
    # the same draws cut at each length; allow two Monte Carlo errors
    slack = 2 * did_curve.mc_se
    for i, e in enumerate(did_curve.effects):
        if e < 1:
            for j in range(len(did_curve.post_periods) - 1):
                assert did_curve.power[i, j + 1] >= did_curve.power[i, j] - slack[i, j]
    assert did_curve.power_at(0.7, 24) > did_curve.power_at(0.7, 6)


def test_planted_effect_is_recovered_on_average(did_curve):
    # the Poisson DiD is consistent: the mean estimate within 0.02 of each planted ratio
    j = did_curve.post_periods.index(24)
    for i, e in enumerate(did_curve.effects):
        assert did_curve.mean_estimate[i, j] == pytest.approx(e, abs=0.02)


def test_same_seed_same_curve_other_seed_other_curve():
    sim = _two_period(10.0, 24, 12, pw.NoiseModel("quasipoisson", 1.5, rho=0.3))
    a = pw.simulate_power(sim, [0.8, 0.9], [6, 12], simulations=200, seed=11)
    b = pw.simulate_power(sim, [0.8, 0.9], [6, 12], simulations=200, seed=11)
    c = pw.simulate_power(sim, [0.8, 0.9], [6, 12], simulations=200, seed=12)
    assert np.array_equal(a.power, b.power) and np.array_equal(a.mean_estimate, b.mean_estimate)
    assert not np.array_equal(a.mean_estimate, c.mean_estimate)


def test_an_oversized_test_is_corrected_to_its_nominal_size():
    """Poisson standard errors on counts with variance 3 x the mean reject far too often;
    the corrected test rejects about 5% (at most alpha + 1/S by the quantile's definition)."""
    sims = 1000
    sim = _two_period(20.0, 24, 12, pw.NoiseModel("quasipoisson", 3.0), "poisson")
    curve = pw.simulate_power(sim, [0.8, 0.9], [12], simulations=sims, seed=2)
    assert curve.size()[12] > 0.15
    assert curve.critical_p[0] < 0.05
    assert curve.power_at(1.0, 12, adjusted=True) <= 0.05 + 1 / sims
    assert curve.power_at(0.8, 12, adjusted=True) < curve.power_at(0.8, 12)


def test_simulation_input_errors():
    sim = _two_period(10.0, 24, 12, pw.NoiseModel())
    with pytest.raises(InputError) as err:
        pw.simulate_power(sim, [0.9], [24], simulations=10)
    assert err.value.key == "power.post_periods"
    with pytest.raises(InputError) as err:
        pw.simulate_power(sim, [-0.5], [6], simulations=10)
    assert err.value.key == "power.effects"
    with pytest.raises(InputError) as err:
        pw.NoiseModel("quasipoisson", 0.5)
    assert err.value.key == "noise.dispersion"
    with pytest.raises(InputError) as err:
        pw.timeline(pd.date_range("2020-01", periods=24, freq="MS"), "2021-06-01", 12)
    assert err.value.key == "intervention.start"


# --------------------------------------------------------------------------------------
# The workflow on a tidy CSV
# --------------------------------------------------------------------------------------

AREAS = [f"Area {c}" for c in "ABCDEFGH"]


def _write_case(tmp_path: Path, **changes) -> Path:
    """A tidy CSV (8 areas, 2015-01 to 2020-12, counts from known coefficients) and a
    power params file; ``changes`` replace top-level keys or, dotted, nested ones."""
    rng = np.random.default_rng(0)
    idx = pd.date_range("2015-01", "2020-12", freq="MS")
    level = np.linspace(30, 80, len(AREAS))
    season = np.exp(0.1 * np.cos(2 * np.pi * np.asarray(idx.month) / 12))
    rows = [
        {"area": a, "month": f"{m:%Y-%m}", "count": int(rng.poisson(level[i] * season[k]))}
        for i, a in enumerate(AREAS)
        for k, m in enumerate(idx)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "counts.csv", index=False)
    params: dict = {
        "title": "Power on a tidy CSV",
        "design": "power",
        "data": {"csv": "counts.csv", "unit": "area", "time": "month", "outcome": "count"},
        "outcome": {"label": "Crimes"},
        "intervention": {"start": "2021-01", "treated": ["Area A", "Area B"]},
        "comparison": {"method": "all"},
        "model": {"family": "quasipoisson", "interruptions": "none"},
        "power": {
            "design": "did",
            "post_periods": [6, 12],
            "effects": [0.5, 0.6, 0.7, 0.8, 0.9],
            "simulations": 60,
        },
    }
    for key, value in changes.items():
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_did_power_on_a_csv(tmp_path):
    results = api.load(_write_case(tmp_path)).fit()
    assert results.design == "power" and results.headline == "mde_12"
    assert [e.name for e in results.estimates] == ["mde_6", "mde_12"]
    mde6, mde12 = (results.estimate(n).estimate for n in ("mde_6", "mde_12"))
    assert mde6 is not None and mde12 is not None and mde6 < mde12 < 1  # longer: smaller falls
    assert len(results.tables["power_curve"]) == 2 * 6  # 5 default effects and no effect
    assert results.diagnostics["n_clusters"] == len(AREAS)
    assert results.series["primary"].observed[:72] == pytest.approx(
        pd.read_csv(tmp_path / "counts.csv")
        .query("area in ['Area A', 'Area B']")
        .groupby("month")["count"]
        .sum()
        .to_numpy()
    )
    assert any("with 12 months after the start" in n.lower() for n in results.notes)
    rated = evidence.rate(results)
    assert rated["msms_level"] is None and rated["mde"]["name"] == "mde_12"


def test_its_power_with_a_future_start(tmp_path):
    path = _write_case(
        tmp_path,
        **{
            "power.design": "its",
            "intervention.start": "2021-07",
            "intervention.treated": None,
            "data.units": ["Area H"],
            "comparison": None,
        },
    )
    results = api.load(path).fit()
    assert results.diagnostics["pre_periods_observed"] == 72
    assert results.diagnostics["pre_periods_unobserved"] == 6  # 2021-01 .. 2021-06
    assert results.series["primary"].periods[72 + 6] == "2021-07-01"
    assert results.estimate("mde_12").estimate is not None


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"intervention.start": "2014-06"}, "intervention.start", "not after the first period"),
        ({"intervention.start": "2015-09"}, "intervention.start", "only 8 periods"),
        ({"intervention.start": None}, "intervention.start", "required"),
        ({"model.family": "gaussian"}, "model.family", "counts"),
        ({"power.post_periods": [0, 12]}, "power.post_periods", "between 1 and"),
        ({"power.post_periods": [12, 12]}, "power.post_periods", "repeat"),
        ({"power.effects": [1.1, 1.2]}, "power.effects", "at least one fall"),
        ({"intervention.treated": None}, "intervention.treated", "list the treated"),
        ({"intervention.treated": ["Nowhere"]}, "intervention.treated", "unknown area"),
        (
            {"power.design": "its", "comparison.areas": ["Area C"]},
            "comparison.areas",
            "controlled ITS",
        ),
        ({"power.design": "its", "power.post_periods": [1]}, "power.post_periods", "at least 2"),
    ],
)
def test_bad_inputs_name_the_key(tmp_path, changes, key, fragment):
    path = _write_case(tmp_path, **changes)
    with pytest.raises(InputError) as err:
        api.load(path).fit()
    assert err.value.key == key
    assert fragment in err.value.message
    assert err.value.source == str(path)


def test_integer_periods_plan_an_its_not_a_did(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"area": a, "t": t, "y": int(rng.poisson(30 + 10 * i))}
        for i, a in enumerate("ABCDEF")
        for t in range(1, 41)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "int.csv", index=False)
    params = {
        "title": "Integer periods",
        "design": "power",
        "data": {"csv": "int.csv", "unit": "area", "time": "t", "outcome": "y", "units": ["A"]},
        "outcome": {"label": "Count"},
        "intervention": {"start": 45},
        "power": {"design": "its", "post_periods": [4, 8], "simulations": 50},
    }
    path = tmp_path / "int.yaml"
    path.write_text(yaml.safe_dump(params))
    results = api.load(path).fit()
    assert results.diagnostics["pre_periods_unobserved"] == 4  # periods 41 .. 44
    assert results.series["primary"].periods[-1] == "52"
    params["power"]["design"] = "did"
    params["intervention"]["treated"] = ["A", "B"]
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(InputError) as err:
        api.load(path).fit()
    assert err.value.key == "power.design"


# --------------------------------------------------------------------------------------
# End to end on the default data
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_yef_power_end_to_end(tmp_path):
    out = tmp_path / "yef_power"
    assert main(["run", str(REPO / "params" / "yef_power.yaml"), "--output-dir", str(out)]) == 0
    results = read_results(out)
    assert results.design == "power" and results.synthetic
    assert results.headline == "mde_24"
    mdes = [results.estimate(f"mde_{h}").estimate for h in (12, 24, 36)]
    assert all(m is not None and 0.7 < m < 1 for m in mdes)
    assert mdes[0] < mdes[1] < mdes[2]  # more months after the start: smaller falls detected
    assert results.periods.data_end < results.periods.intervention_start  # pre-period only
    curve = pd.DataFrame(results.tables["power_curve"])
    assert set(curve["post_periods"]) == {12, 24, 36}
    assert (curve["mc_se"] >= 0).all()
    assert results.diagnostics["n_treated_clusters"] == 2
    # the same matched comparison wards as the evaluation itself
    did = yaml.safe_load((REPO / "params" / "yef_neighbourhood_fund.yaml").read_text())
    assert results.outcome.areas == did["intervention"]["treated"]
    assert len(results.outcome.comparison_areas) == did["comparison"]["n"]
    assert (out / "report.html").exists()
    assert json.loads((out / "results.json").read_text())["evidence"] is not None
