"""Batched ITS: N series with one shared design, fitted together by vectorised IRLS.

Checked three ways: agreement per series with ``designs.its.fit_its`` (statsmodels GLM) and
with a tightly converged statsmodels GLM; recovery of planted rate ratios on long, busy
series; and the refusals (not-estimable series, wrong family).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evaluation.config import WELSH_COVID_LOCKDOWNS
from evaluation.designs.its import ItsSpec, fit_its
from evaluation.designs.its_batch import fit_its_batch, irls_poisson
from evaluation.errors import InputError

MONTHS = pd.date_range("2016-01-01", periods=84, freq="MS")
START = pd.Timestamp("2021-01-01")


def _panel(
    n: int, seed: int, step: float = 0.8, offset: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """N overdispersed monthly series with a planted step ``step`` at START."""
    rng = np.random.default_rng(seed)
    t = np.arange(len(MONTHS))
    post = (MONTHS >= START).astype(float)
    base = rng.uniform(3.0, 60.0, size=(n, 1))
    pop = rng.uniform(1500, 3000, size=(n, len(MONTHS))) if offset else np.ones((n, len(MONTHS)))
    season = 1 + 0.15 * np.cos(2 * np.pi * (MONTHS.month.to_numpy() - 1) / 12)
    mu = base * season * np.exp(0.002 * t) * step**post * (pop / pop.mean() if offset else 1.0)
    y = rng.poisson(mu * rng.gamma(8.0, 1 / 8.0, size=mu.shape))
    names = [f"area{i:04d}" for i in range(n)]
    return pd.DataFrame(y, index=names, columns=MONTHS), pd.DataFrame(
        pop, index=names, columns=MONTHS
    )


@pytest.mark.parametrize("family", ["quasipoisson", "poisson"])
@pytest.mark.parametrize("with_offset", [False, True])
def test_agrees_with_fit_its_per_series(family: str, with_offset: bool) -> None:
    counts, pop = _panel(12, seed=3, offset=with_offset)
    spec = ItsSpec(family=family, se="model", interruptions=WELSH_COVID_LOCKDOWNS, phase_in=2)
    batch = fit_its_batch(counts, START, spec, offset=pop if with_offset else None)
    assert batch.converged.all() and batch.estimable.all()
    for i, area in enumerate(counts.index):
        one = fit_its(counts.loc[area], START, spec, offset=pop.loc[area] if with_offset else None)
        assert list(one.params.index) == list(batch.terms)
        # 1e-6: both solve the same likelihood; statsmodels stops at a relative deviance
        # change of 1e-8, which (Newton converges quadratically) leaves far less than 1e-6
        np.testing.assert_allclose(batch.params[i], one.params.to_numpy(), rtol=0, atol=1e-6)
        # SEs to 1e-5 relative: the weakly identified firebreak term (18 days) moves most
        # with statsmodels' looser stopping rule; the tightly converged test checks 1e-8
        np.testing.assert_allclose(batch.bse[i], one.bse.to_numpy(), rtol=1e-5, atol=0)
        # Pearson dispersion: the scale of quasi-Poisson, a diagnostic for Poisson (scale 1)
        expected = one.dispersion if family == "quasipoisson" else 1.0
        assert batch.scale[i] == pytest.approx(expected, rel=1e-5)


def test_agrees_with_a_tightly_converged_statsmodels_glm() -> None:
    counts, _ = _panel(30, seed=11)
    spec = ItsSpec(family="quasipoisson", se="model", seasonality="month", interruptions=())
    batch = fit_its_batch(counts, START, spec)
    x = pd.DataFrame(
        {
            "const": 1.0,
            "time": np.arange(1, 85.0),
            "post": (MONTHS >= START).astype(float),
            "time_since": (np.arange(84) - 60.0) * (MONTHS >= START),  # 0 at the start
        }
    )
    for m in range(2, 13):
        x[f"season_{m}"] = (MONTHS.month == m).astype(float)
    assert list(x.columns) == list(batch.terms)
    for i in range(len(counts)):
        res = sm.GLM(counts.iloc[i].to_numpy(), x, family=sm.families.Poisson()).fit(
            scale="X2", tol=1e-13
        )
        # 1e-8: both converged to 1e-10 or better on the same data
        np.testing.assert_allclose(batch.params[i], res.params.to_numpy(), atol=1e-8, rtol=0)
        np.testing.assert_allclose(batch.bse[i], res.bse.to_numpy(), rtol=1e-8)


def test_recovers_a_planted_step_in_busy_series() -> None:
    counts, _ = _panel(200, seed=5, step=0.8)
    counts = counts * 20  # busy series: the step is estimated tightly
    rr = fit_its_batch(counts, START, ItsSpec(se="model", interruptions=())).rate_ratios("post")
    # median over 200 series of an unbiased-on-the-log-scale estimate: within 2%
    assert np.median(rr["rate_ratio"]) == pytest.approx(0.8, rel=0.02)
    covered = (rr["lower"] <= 0.8) & (rr["upper"] >= 0.8)
    assert covered.mean() > 0.85  # nominal 95%; the planted gamma noise is quasi-Poisson-like


def test_series_without_counts_on_one_side_are_not_estimable() -> None:
    counts, _ = _panel(4, seed=2)
    counts.iloc[1, MONTHS >= START] = 0
    batch = fit_its_batch(counts, START, ItsSpec(se="model", interruptions=()))
    rr = batch.rate_ratios()
    assert list(rr["estimable"]) == [True, False, True, True]
    assert (
        np.isnan(rr.iloc[1]["rate_ratio"])
        and np.isfinite(rr.drop(index=rr.index[1])["rate_ratio"]).all()
    )


def test_refuses_bad_input() -> None:
    counts, _ = _panel(3, seed=1)
    with pytest.raises(InputError, match="poisson or quasipoisson"):
        fit_its_batch(counts, START, ItsSpec(family="gaussian", se="model"))
    bad = counts.astype(float)
    bad.iloc[0, 0] = 1.5
    with pytest.raises(InputError, match="whole numbers"):
        fit_its_batch(bad, START)
    with pytest.raises(InputError, match="intervention.start|before the start"):
        fit_its_batch(counts, MONTHS[5])
    with pytest.raises(InputError, match="no model term"):
        fit_its_batch(counts, START).rate_ratios("nope")


def test_irls_converges_with_an_offset() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(40), np.linspace(0, 1, 40)])
    off = np.log(rng.uniform(50, 100, size=(5, 40)))
    y = rng.poisson(np.exp(x @ np.array([-2.0, 0.5]) + off))
    beta, inv, conv, _ = irls_poisson(x, y, off)
    assert conv.all() and inv.shape == (5, 2, 2)
    for i in range(5):
        ref = sm.GLM(y[i], x, family=sm.families.Poisson(), offset=off[i]).fit(tol=1e-13)
        np.testing.assert_allclose(beta[i], ref.params, atol=1e-8)
