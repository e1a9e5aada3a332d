"""Power and minimum detectable effect of a planned evaluation, by simulation.

A funder asks *could this evaluation have detected an effect at all?* This module answers
on the evaluation's own pre-period data, by a parametric bootstrap:

1. **Baseline.** The expected count of every unit and period without an intervention:
   for an ITS a log-linear model of the pre-period series (trend, seasonality, lockdowns),
   projected forward with the lockdowns off; for a DiD the Poisson unit and period
   effects of the pre-period panel (closed form: ``mu_it = y_i. y_.t / y_..``), with the
   period effects after the data projected by the same trend-and-seasonality model fitted
   to the panel's total.
2. **Noise around it** (:class:`NoiseModel`), estimated from the pre-period residuals:
   quasi-Poisson (variance ``phi mu``) or negative binomial (``mu + alpha mu^2``), made by
   a multiplicative log-normal factor with the same variance (a Poisson-lognormal draw),
   whose log is AR(1) within each unit with the lag-1 autocorrelation ``rho`` estimated
   from the Pearson residuals (when they show any), so that persistent deviations are
   simulated too.
3. **Planted effect.** Each crime that would have happened in a treated unit after the
   start is removed with probability ``1 - r`` (binomial thinning: exactly a rate ratio
   ``r``); rises add Poisson crimes. Every effect uses the same draws (common random
   numbers), so power curves are smooth and monotone up to Monte Carlo error.
4. **Planned test**, fitted to every simulated data set, vectorised over simulations:
   the ITS as it will be run (Poisson log-link GLM with the same terms, Newey-West HAC or
   model standard errors, test of the level change); the DiD as it will be run (Poisson
   fixed effects, CR1 by unit, and with fewer than 10 treated units the same wild cluster
   restricted score bootstrap as the headline, by full Rademacher enumeration).
5. **Power** for each (effect, post length) is the share of simulations whose test rejects
   "no change" at ``alpha`` in the planted direction (both directions for ``r = 1``: the
   empirical size). The **minimum detectable effect** (MDE) is the fall closest to no
   change whose power reaches the target, interpolated between simulated effects on the
   probit scale against the log rate ratio (where a z-test's power is close to linear).

Approximations, said in every report: parallel trends (DiD) and a continuing trend (ITS)
hold exactly in the simulations, so the MDE measures noise, not bias; the negative
binomial ``alpha`` is held at its baseline estimate in the simulated fits; randomisation
inference is replaced by the wild bootstrap; with more clusters than can be enumerated the
bootstrap uses at most :data:`MAX_SIM_BOOT_REPS` Webb draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy import optimize

from evaluation import distributed
from evaluation.errors import InputError
from evaluation.inference import distributions as dist
from evaluation.inference.timeseries import newey_west_lags

NoiseKind = Literal["poisson", "quasipoisson", "negbin"]
GlmFamily = Literal["poisson", "quasipoisson", "negbin"]

#: Array cells (simulations x units x periods) simulated at once: bounds memory (~10 MB each).
CHUNK_CELLS = 1_200_000
#: Cells fitted (simulations x effects x units x periods, summed over post lengths) from
#: which a power simulation goes to a Dask cluster when one is set: about 2 s of work here
#: (a 500-simulation DiD of 10 areas over 8 years is 9 million). Below it the round trips
#: and the repeated draws (each cluster task redraws its chunk's data) are not worth it.
DISTRIBUTE_MIN_CELLS = 5_000_000
#: Bootstrap replications per simulated data set when clusters are too many to enumerate.
MAX_SIM_BOOT_REPS = 999
#: Largest full enumeration of Rademacher sign vectors used inside the simulation (2^12).
MAX_SIM_ENUMERATION = 4096
#: Cells (simulations x replications) per block of the simulated bootstrap: its buffers
#: (about 0.5 MB each) stay in cache and are reused from block to block.
_BOOT_CELLS = 65_536
#: Ties between bootstrap and actual |t| (as the headline bootstrap counts them).
_TIE = 1e-9
#: Below this share of its terms' size an expanded bootstrap sum of squares is recomputed
#: term by term: its rounding error (about 1e-15 of the terms) then stays near 1e-11 of
#: it, far inside the tie tolerance.
_CANCEL = 1e-4
#: Largest lag-1 autocorrelation of the latent noise that is simulated.
MAX_RHO = 0.9
#: Below this mean share of the variance beyond Poisson, ``rho`` is not identified: 0.
MIN_EXCESS_SHARE = 0.02


def _bad(key: str, message: str) -> InputError:
    return InputError(None, message, key=key)


# --------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseModel:
    """Variation of counts around their expected value.

    Parameters
    ----------
    kind
        ``"poisson"``; ``"quasipoisson"`` (variance ``dispersion * mu``); ``"negbin"``
        (variance ``mu + dispersion * mu^2``, ``dispersion`` being NB2's alpha).
    dispersion
        phi (at least 1) or alpha (at least 0); ignored for Poisson.
    rho
        Lag-1 autocorrelation of the log of the multiplicative noise within a unit.
    """

    kind: NoiseKind = "poisson"
    dispersion: float = 1.0
    rho: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("poisson", "quasipoisson", "negbin"):
            raise _bad("noise.kind", f"unknown noise model {self.kind!r}")
        if not math.isfinite(self.dispersion) or self.dispersion < 0:
            raise _bad("noise.dispersion", f"dispersion must be >= 0, not {self.dispersion!r}")
        if self.kind == "quasipoisson" and self.dispersion < 1:
            raise _bad("noise.dispersion", "a quasi-Poisson dispersion below 1 is not simulated")
        if not 0 <= self.rho < 1:
            raise _bad("noise.rho", f"rho must lie in [0, 1), not {self.rho!r}")

    def excess(self, mu: np.ndarray) -> np.ndarray:
        """Squared coefficient of variation of the multiplicative factor (``c`` in
        ``variance = mu + c mu^2``)."""
        mu = np.asarray(mu, dtype=float)
        if self.kind == "quasipoisson":
            with np.errstate(divide="ignore"):
                return np.where(mu > 0, (self.dispersion - 1.0) / np.maximum(mu, 1e-300), 0.0)
        if self.kind == "negbin":
            return np.full_like(mu, self.dispersion)
        return np.zeros_like(mu)

    def log_sd(self, mu: np.ndarray) -> np.ndarray:
        """Standard deviation of the log factor: ``sqrt(log(1 + c))``."""
        return np.sqrt(np.log1p(self.excess(mu)))

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """Variance of a count with mean ``mu``."""
        mu = np.asarray(mu, dtype=float)
        return mu + self.excess(mu) * mu * mu

    def describe(self) -> str:
        """The noise model in words, for reports."""
        if self.kind == "quasipoisson":
            base = f"quasi-Poisson (variance {self.dispersion:.2f} times the mean)"
        elif self.kind == "negbin":
            base = f"negative binomial (alpha {self.dispersion:.4f})"
        else:
            base = "Poisson"
        if self.rho > 0:
            base += f", with month-to-month persistence (latent lag-1 correlation {self.rho:.2f})"
        return base


def _pearson_df(y: np.ndarray, n_params: int) -> int:
    df = int(np.size(y)) - int(n_params)
    if df < 1:
        raise _bad("outcome", "too few pre-period observations to estimate the noise")
    return df


def _negbin_alpha(y: np.ndarray, mu: np.ndarray, df: int) -> float:
    """Moment estimate of NB2 alpha: ``sum (y - mu)^2 / (mu (1 + alpha mu)) = df``
    (as R's ``MASS::theta.mm``); 0 when the data are not overdispersed."""
    r2 = (y - mu) ** 2

    def excess(alpha: float) -> float:
        return float(np.sum(r2 / (mu * (1.0 + alpha * mu)))) - df

    if excess(0.0) <= 0:
        return 0.0
    hi = 1.0
    while excess(hi) > 0:
        hi *= 4.0
        if hi > 1e6:
            return hi
    return float(optimize.brentq(excess, 0.0, hi, xtol=1e-12))


def estimate_noise(
    y: np.ndarray,
    mu: np.ndarray,
    n_params: int,
    kind: NoiseKind = "quasipoisson",
    *,
    persistence: bool = True,
) -> NoiseModel:
    """Estimate the noise of counts ``y`` around fitted means ``mu`` (units x periods).

    Parameters
    ----------
    y, mu
        Observed counts and the baseline model's fitted means, shape (units, periods),
        periods in time order.
    n_params
        Parameters of the baseline model (degrees of freedom for the dispersion).
    kind
        The noise family; ``"quasipoisson"`` uses the Pearson dispersion (at least 1).
    persistence
        Estimate ``rho`` from the lag-1 products of standardised residuals within units.
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    mu = np.atleast_2d(np.asarray(mu, dtype=float))
    keep = mu > 0
    df = _pearson_df(y[keep], n_params)
    if kind == "poisson":
        noise = NoiseModel("poisson")
    elif kind == "negbin":
        noise = NoiseModel("negbin", _negbin_alpha(y[keep], mu[keep], df))
    else:
        phi = float(np.sum((y[keep] - mu[keep]) ** 2 / mu[keep])) / df
        noise = NoiseModel("quasipoisson", max(phi, 1.0))
    if not persistence or kind == "poisson" or y.shape[1] < 3:
        return noise
    return replace(noise, rho=_latent_rho(y, mu, noise))


def _latent_rho(y: np.ndarray, mu: np.ndarray, noise: NoiseModel) -> float:
    """Lag-1 correlation of the latent log factor from standardised residuals.

    With ``r_t = (y_t - mu_t) / sqrt(V_t)``, ``E[r_t r_t+1] ~= rho k_t k_t+1`` where
    ``k_t^2 = c_t mu_t^2 / V_t`` is the share of the variance beyond Poisson; ``rho`` is
    the ratio of the pooled sums, clipped to ``[0, MAX_RHO]``. It is 0 unless the
    residuals' lag-1 autocorrelation is positive at the one-sided 5% level: with little
    excess variance the ratio is of two small numbers, and noise alone would make it large.
    """
    var = noise.variance(mu)
    ok = var > 0
    r = np.where(ok, (y - mu) / np.sqrt(np.where(ok, var, 1.0)), 0.0)
    k = np.where(ok, np.sqrt(noise.excess(mu) * mu * mu / np.where(ok, var, 1.0)), 0.0)
    if float(np.mean(k[ok] ** 2)) < MIN_EXCESS_SHARE:
        return 0.0
    products = r[:, 1:] * r[:, :-1]
    num = float(np.sum(products))
    spread = float(np.sqrt(np.sum(products**2)))
    den = float(np.sum(k[:, 1:] * k[:, :-1]))
    if den <= 0 or spread <= 0 or num / spread < dist.norm_ppf(0.95):
        return 0.0
    return float(np.clip(num / den, 0.0, MAX_RHO))


def latent_factor(
    noise: NoiseModel, mu: np.ndarray, n_sims: int, rng: np.random.Generator
) -> np.ndarray:
    """Multiplicative noise factors (n_sims, units, periods), mean 1, AR(1) on the log scale."""
    mu = np.atleast_2d(mu)
    s = noise.log_sd(mu)
    if not s.any():
        return np.ones((n_sims, *mu.shape))
    e = rng.standard_normal((n_sims, *mu.shape))
    if noise.rho > 0:
        scale = math.sqrt(1.0 - noise.rho**2)
        for t in range(1, mu.shape[1]):  # stationary AR(1) with unit variance
            e[:, :, t] = noise.rho * e[:, :, t - 1] + scale * e[:, :, t]
    return np.exp(s * e - 0.5 * s * s)


# --------------------------------------------------------------------------------------
# Planned tests, vectorised over simulated data sets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestOutcome:
    """Per simulation: the estimated coefficient (log scale) and the test's p-value."""

    coef: np.ndarray  # (S,)
    p_value: np.ndarray  # (S,) two-sided p-value of "no change"
    se: np.ndarray  # (S,) standard error of the statistic (CR1 for the bootstrap)


class PlannedTest(Protocol):
    """A test fitted to simulated counts ``Y`` (S, units, periods) with ``n_post`` post periods."""

    def __call__(self, Y: np.ndarray, n_post: int) -> TestOutcome: ...

    def describe(self) -> str: ...


def glm_fit(
    Y: np.ndarray,
    X: np.ndarray,
    *,
    alpha: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-link Poisson (``alpha = 0``) or NB2 GLM for many outcome vectors at once.

    Parameters
    ----------
    Y
        (S, n) counts.
    X
        (n, p) design shared by every row of ``Y``.
    alpha
        NB2 dispersion held fixed (0: Poisson / quasi-Poisson).

    Returns
    -------
    beta, mu, bread
        (S, p) coefficients, (S, n) fitted means and (S, p, p) ``(X' W X)^-1`` with the
        IRLS weights ``mu / (1 + alpha mu)`` at convergence.

    Raises
    ------
    InputError
        When a fit does not converge.
    """
    Y = np.asarray(Y, dtype=float)
    mu = (Y + Y.mean(axis=1, keepdims=True)) / 2.0  # statsmodels' Poisson start
    mu = np.maximum(mu, 1e-8)
    eta = np.log(mu)
    for _ in range(max_iter):
        w = mu / (1.0 + alpha * mu)
        z = eta + (Y - mu) / mu
        xtwx = np.einsum("np,sn,nq->spq", X, w, X)
        xtwz = np.einsum("np,sn->sp", X, w * z)
        beta = np.linalg.solve(xtwx, xtwz[..., None])[..., 0]
        new = np.clip(beta @ X.T, -30.0, 30.0)
        step = float(np.max(np.abs(new - eta)))
        eta, mu = new, np.exp(new)
        if step < tol:
            break
    else:
        raise _bad("model", f"a simulated model did not converge in {max_iter} iterations")
    w = mu / (1.0 + alpha * mu)
    bread = np.linalg.inv(np.einsum("np,sn,nq->spq", X, w, X))
    return beta, mu, bread


def glm_se(
    Y: np.ndarray,
    X: np.ndarray,
    mu: np.ndarray,
    bread: np.ndarray,
    coef: int,
    *,
    family: GlmFamily,
    se: Literal["model", "hac"],
    alpha: float = 0.0,
    hac_lags: int = 0,
) -> np.ndarray:
    """Standard error of coefficient ``coef`` for each fitted row (see :func:`glm_fit`).

    ``se="model"``: the GLM covariance, times the Pearson dispersion for quasi-Poisson.
    ``se="hac"``: the Newey-West sandwich ``B S B`` (Bartlett weights, ``hac_lags`` lags,
    no small-sample correction, not multiplied by a dispersion), as statsmodels'
    ``cov_type="HAC"`` with ``use_correction=False`` and as :mod:`evaluation.designs.its`;
    for the negative binomial ``B`` is the inverse observed Hessian, as statsmodels uses.
    """
    n, p = X.shape
    if se == "model":
        var = bread[:, coef, coef]
        if family == "quasipoisson":
            var = var * np.sum((Y - mu) ** 2 / mu, axis=1) / (n - p)
        return np.sqrt(var)
    if (
        alpha > 0
    ):  # statsmodels' sandwich uses the observed Hessian (log link is not NB2's canonical)
        h = mu * (1.0 + alpha * Y) / (1.0 + alpha * mu) ** 2
        bread = np.linalg.inv(np.einsum("np,sn,nq->spq", X, h, X))
    # influence of each period on the coefficient: (y - mu)/(1 + alpha mu) x' B[:, coef]
    u = ((Y - mu) / (1.0 + alpha * mu)) * (bread[:, :, coef] @ X.T)
    var = np.sum(u * u, axis=1)
    for lag in range(1, hac_lags + 1):
        weight = 1.0 - lag / (hac_lags + 1.0)
        var += 2.0 * weight * np.sum(u[:, lag:] * u[:, :-lag], axis=1)
    return np.sqrt(np.maximum(var, 0.0))


def _normal_p(coef: np.ndarray, se: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(coef / se)
    return np.where(np.isfinite(z), 2.0 * dist.norm_sf(z), 1.0)


@dataclass(frozen=True)
class GlmDesign:
    """The planned single-series model for one post length."""

    X: np.ndarray  # (n_fit, p) rows of the fitted periods
    rows: np.ndarray  # (n_fit,) positions of the fitted periods in the series
    coef: int  # column of the tested coefficient
    hac_lags: int = 0


@dataclass(frozen=True)
class GlmTest:
    """Wald test of one coefficient of a log-link GLM on a single series (unit 0).

    ``design(n_post)`` gives the planned model for ``n_post`` post periods.
    """

    design: Callable[[int], GlmDesign]
    family: GlmFamily = "quasipoisson"
    se: Literal["model", "hac"] = "hac"
    negbin_alpha: float = 0.0

    def __call__(self, Y: np.ndarray, n_post: int) -> TestOutcome:
        d = self.design(n_post)
        y = Y[:, 0, d.rows]
        a = self.negbin_alpha if self.family == "negbin" else 0.0
        beta, mu, bread = glm_fit(y, d.X, alpha=a)
        se = glm_se(
            y, d.X, mu, bread, d.coef, family=self.family, se=self.se, alpha=a, hac_lags=d.hac_lags
        )
        coef = beta[:, d.coef]
        return TestOutcome(coef, _normal_p(coef, se), se)

    def describe(self) -> str:
        how = {
            "poisson": "Poisson GLM",
            "quasipoisson": "quasi-Poisson GLM",
            "negbin": "negative binomial GLM (alpha fixed at its baseline estimate)",
        }[self.family]
        se = "Newey-West HAC" if self.se == "hac" else "model-based"
        return f"{how} with {se} standard errors, Wald test of the level change"


def within_two_way(w: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Residuals of ``V`` on unit and period effects by weighted least squares, batched.

    Parameters
    ----------
    w
        (S, N, T) positive weights.
    V
        (S, N, T, k) variables.

    The period effects are eliminated in closed form and the ``N x N`` normal equations of
    the unit effects (their Schur complement, one unit effect fixed at 0) are solved
    exactly; the roles swap when there are more units than periods. Exact, as
    :class:`evaluation.designs.did.WithinTransform`.
    """
    if w.shape[1] > w.shape[2]:
        return within_two_way(w.swapaxes(1, 2), V.swapaxes(1, 2)).swapaxes(1, 2)
    S, N, _ = w.shape
    wt = w.sum(axis=1)  # (S, T)
    vbar = np.einsum("snt,sntk->stk", w, V) / wt[..., None]
    b = np.einsum("snt,sntk->snk", w, V - vbar[:, None])
    M = -np.matmul(w / wt[:, None, :], w.swapaxes(1, 2))  # batched BLAS, not einsum loops
    M[:, np.arange(N), np.arange(N)] += w.sum(axis=2)
    a = np.zeros_like(b)
    if N > 1:
        a[:, 1:] = np.linalg.solve(M[:, 1:, 1:], b[:, 1:])
    g = vbar - np.matmul(w.swapaxes(1, 2), a) / wt[..., None]
    return V - a[:, :, None, :] - g[:, None, :, :]


@dataclass(frozen=True)
class PpmlFit:
    """Converged IRLS linearisation of a Poisson DiD with unit and period effects."""

    beta: np.ndarray  # (S,) log rate ratio
    w: np.ndarray  # (S, N, T) IRLS weights (fitted means)
    Dt: np.ndarray  # (S, N, T) within-transformed treatment
    zt: np.ndarray  # (S, N, T) within-transformed working outcome
    iterations: int  # IRLS iterations run (0: every panel in closed form)

    @property
    def resid(self) -> np.ndarray:
        """Working residuals ``zt - Dt beta``."""
        return self.zt - self.Dt * self.beta[:, None, None]

    @cached_property
    def cluster_sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per unit (S, N): the restricted score ``a = sum_t w Dt zt``, the information
        ``C = sum_t w Dt^2`` and the score ``s = sum_t w Dt resid = a - C beta``.

        Cached: the CR1 standard error and the wild bootstrap both need them.
        """
        wD = self.w * self.Dt
        a = np.einsum("snt,snt->sn", wD, self.zt)
        C = np.einsum("snt,snt->sn", wD, self.Dt)
        return a, C, a - C * self.beta[:, None]


def _within_one(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`within_two_way` of one variable: ``x`` (S, N, T) or (N, T) shared by every
    panel, without stacking it with others."""
    if w.shape[1] > w.shape[2]:
        return _within_one(w.swapaxes(1, 2), x.swapaxes(-1, -2)).swapaxes(1, 2)
    S, N, _ = w.shape
    wt = w.sum(axis=1)  # (S, T)
    xbar = np.sum(w * x, axis=1) / wt
    b = np.sum(w * (x - xbar[:, None, :]), axis=2)  # (S, N)
    M = -np.matmul(w / wt[:, None, :], w.swapaxes(1, 2))  # batched BLAS, not einsum loops
    M[:, np.arange(N), np.arange(N)] += w.sum(axis=2)
    a = np.zeros_like(b)
    if N > 1:
        a[:, 1:] = np.linalg.solve(M[:, 1:, 1:], b[:, 1:, None])[..., 0]
    g = xbar - np.matmul(a[:, None, :], w)[:, 0, :] / wt
    out = x - a[:, :, None]
    out -= g[:, None, :]
    return out


def _block_mle(Y: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The Poisson DiD's maximum likelihood in closed form when ``D`` is one block (some
    units in some periods, as a DiD with one start).

    Units nested in two groups (treated or not) and periods in two phases (after the start
    or not) make ``exp(a_i + g_t + b D_it)`` the decomposable log-linear model [unit,
    group x phase, period]: its fitted means ``mu_it = y_i. y_.t y_GP / (y_G. y_.P)``
    match every unit, period and block total (the likelihood equations, whose solution is
    unique), and ``b`` is the log cross-product ratio of the four block totals.

    Returns
    -------
    (mu, beta, ok) or None
        Means (S, N, T), ``b`` (S,) and which panels they hold for: those whose every unit,
        period and block total is positive (otherwise the MLE is not finite, or is not
        defined by the closed form). None when ``D`` is not one block.
    """
    units, periods = D.any(axis=1), D.any(axis=0)
    if not (
        units.any()
        and not units.all()
        and periods.any()
        and not periods.all()
        and np.array_equal(D, np.outer(units, periods))
    ):
        return None
    row = Y.sum(axis=2)  # (S, N)
    col = Y.sum(axis=1)  # (S, T)
    by_group = np.stack([Y[:, ~units].sum(axis=1), Y[:, units].sum(axis=1)], axis=1)
    block = np.stack([by_group[..., ~periods].sum(axis=2), by_group[..., periods].sum(axis=2)], -1)
    ok = (row > 0).all(axis=1) & (col > 0).all(axis=1) & (block > 0).all(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = block / (block.sum(axis=2)[:, :, None] * block.sum(axis=1)[:, None, :])
        beta = np.log(block[:, 1, 1] * block[:, 0, 0] / (block[:, 1, 0] * block[:, 0, 1]))
    by_unit = row[:, :, None] * ratio[:, units.astype(int), :]  # (S, N, phase)
    mu = by_unit[:, :, periods.astype(int)]
    mu *= col[:, None, :]
    return mu, beta, ok


def _linearised(Y: np.ndarray, D: np.ndarray, mu: np.ndarray, beta: np.ndarray) -> PpmlFit:
    """The IRLS linearisation at the maximum likelihood (``mu``, ``beta``) without iterating.

    With weights ``w = mu`` and working outcome ``z = eta + r``, ``r = (y - mu) / mu``:
    ``eta`` is unit + period effects + ``beta D``, whose within transform is ``beta Dt``,
    and ``r`` is already orthogonal to the effects (``sum w r = sum (y - mu) = 0`` over
    every unit and period, the likelihood equations), so ``zt = beta Dt + r``. One IRLS
    step from ``mu`` gives the same (up to rounding), and leaves ``mu`` where it is.
    """
    Dt = _within_one(mu, D)
    r = Y - mu
    r /= mu
    zt = Dt * beta[:, None, None]
    zt += r
    return PpmlFit(beta, mu, Dt, zt, 0)


def _ppml_irls(Y: np.ndarray, D: np.ndarray, *, tol: float, max_iter: int) -> PpmlFit:
    """IRLS of :func:`ppml_did`, from statsmodels' start, until every panel converged."""
    S = Y.shape[0]
    Dn = np.broadcast_to(D, Y.shape)
    ylogy = np.sum(np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1.0)), 0.0), axis=(1, 2))
    sum_y = Y.sum(axis=(1, 2))

    def deviance(eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        return 2.0 * (ylogy - np.sum(Y * eta, axis=(1, 2)) + mu.sum(axis=(1, 2)) - sum_y)

    mu = (Y + Y.mean(axis=(1, 2), keepdims=True)) / 2.0
    eta = np.log(mu)
    last = deviance(eta, mu)
    done = np.zeros(S, dtype=bool)
    for it in range(1, max_iter + 1):
        z = eta + (Y - mu) / mu
        w = mu
        V = within_two_way(w, np.stack([z, Dn], axis=-1))
        zt, Dt = V[..., 0], V[..., 1]
        beta = np.sum(w * Dt * zt, axis=(1, 2)) / np.sum(w * Dt * Dt, axis=(1, 2))
        eta = np.clip(z - (zt - Dt * beta[:, None, None]), -30.0, 30.0)
        mu = np.exp(eta)
        dev = deviance(eta, mu)
        done |= np.abs(dev - last) / (0.1 + np.abs(dev)) < tol
        last = dev
        if done.all():
            return PpmlFit(beta, w, Dt, zt, it)
    raise _bad("model", f"a simulated Poisson DiD did not converge in {max_iter} iterations")


def ppml_did(Y: np.ndarray, D: np.ndarray, *, tol: float = 1e-10, max_iter: int = 100) -> PpmlFit:
    """Poisson DiD ``E[y_it] = exp(a_i + g_t + b D_it)`` for many panels at once.

    When ``D`` is one block (treated units after one start) the maximum likelihood is in
    closed form (:func:`_block_mle`) and the fit is the IRLS linearisation there
    (:func:`_linearised`): what IRLS converges to, without iterating. Other panels (a
    unit, period or block with no counts) and other ``D`` go through IRLS with the exact
    weighted within transformation in every iteration and fixest's convergence criterion
    on the deviance, as :class:`evaluation.designs.did.PoissonFE`.

    Parameters
    ----------
    Y
        (S, N, T) counts, units by periods.
    D
        (N, T) treatment indicator shared by every panel.
    """
    Y = np.asarray(Y, dtype=float)
    D = np.asarray(D, dtype=float)
    closed = _block_mle(Y, D)
    if closed is None:
        return _ppml_irls(Y, D, tol=tol, max_iter=max_iter)
    mu, beta, ok = closed
    if ok.all():
        return _linearised(Y, D, mu, beta)
    rest = _ppml_irls(Y[~ok], D, tol=tol, max_iter=max_iter)
    if not ok.any():
        return rest
    exact = _linearised(Y[ok], D, mu[ok], beta[ok])
    parts = {}
    for name in ("beta", "w", "Dt", "zt"):
        both = np.empty((Y.shape[0], *getattr(rest, name).shape[1:]))
        both[ok], both[~ok] = getattr(exact, name), getattr(rest, name)
        parts[name] = both
    return PpmlFit(**parts, iterations=rest.iterations)


def cr1_se(fit: PpmlFit) -> np.ndarray:
    """CR1 standard errors clustered by unit, with ``K = T + 1`` as
    :class:`~evaluation.designs.did.PoissonFE` counts it (unit effects nested in clusters)."""
    _, N, T = fit.w.shape
    _, C, scores = fit.cluster_sums
    n = N * T
    factor = N / (N - 1) * (n - 1) / (n - (T + 1))
    return np.sqrt(factor * np.sum(scores**2, axis=1)) / C.sum(axis=1)


def _enumerate(G: int, reps: int) -> bool:
    """Whether every Rademacher sign vector is used: at most ``reps`` of them (as the
    headline bootstrap) and at most :data:`MAX_SIM_ENUMERATION`."""
    return G < 63 and min(reps, MAX_SIM_ENUMERATION) >= 2**G


def _sign_vectors(G: int, reps: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Bootstrap weights (G, R): all Rademacher sign vectors or Webb draws."""
    if _enumerate(G, reps):
        b = np.arange(2**G, dtype=np.int64)
        return 1.0 - 2.0 * ((b[None, :] >> np.arange(G, dtype=np.int64)[:, None]) & 1), "all"
    webb = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
    n = min(int(reps), MAX_SIM_BOOT_REPS)
    return webb[rng.integers(0, 6, size=(G, n))], "webb"


def wild_p_values(fit: PpmlFit, weights: np.ndarray) -> np.ndarray:
    """Wild cluster restricted bootstrap p-values of ``b = 0``, clusters = units.

    The score bootstrap on the converged IRLS linearisation, as the headline
    (:func:`evaluation.inference.wild.wild_cluster_bootstrap` on the within-transformed,
    weighted data). With one regressor left after the fixed effects, every bootstrap t
    statistic is a function of three numbers per cluster: the restricted score
    ``a_g = sum w Dt zt``, ``C_g = sum w Dt^2`` and the unrestricted score ``s_g``:
    ``t* = sum_g v_g a_g / sqrt(sum_g (v_g a_g - C_g b*)^2)`` with
    ``b* = sum_g v_g a_g / sum_g C_g``; the CR1 factor cancels.

    The sum of squares is expanded, ``sum_g v_g^2 a_g^2 - 2 b* sum_g v_g a_g C_g +
    b*^2 sum_g C_g^2``, so that every term is a matrix product over clusters instead of a
    (simulations, clusters, replications) array; blocks of simulations reuse the same
    buffers. Where the expansion cancels (the sum below :data:`_CANCEL` of its terms, so
    that its rounding could come near the tie tolerance) it is recomputed term by term.
    """
    a, C, s = fit.cluster_sums  # (S, G)
    t_actual = np.abs(a.sum(axis=1) / np.sqrt(np.sum(s * s, axis=1)))
    threshold = t_actual * (1 - _TIE)
    S, G = a.shape
    R = weights.shape[1]
    squares = weights * weights
    a2, m2aC = a * a, -2.0 * a * C
    sum_C, sum_C2 = C.sum(axis=1), np.sum(C * C, axis=1)
    block = max(1, min(S, _BOOT_CELLS // R))
    num, bstar, outer, ssr = (np.empty((block, R)) for _ in range(4))
    hit = np.empty((block, R), dtype=bool)
    out = np.empty(S)
    for lo in range(0, S, block):
        hi = min(S, lo + block)
        n = hi - lo
        nu, bs, ou, ss, h = num[:n], bstar[:n], outer[:n], ssr[:n], hit[:n]
        np.matmul(a[lo:hi], weights, out=nu)
        np.divide(nu, sum_C[lo:hi, None], out=bs)
        np.matmul(a2[lo:hi], squares, out=ou)  # sum v^2 a^2
        np.multiply(bs, bs, out=ss)
        ss *= sum_C2[lo:hi, None]
        ou += ss  # + b*^2 sum C^2: the terms' size
        np.matmul(m2aC[lo:hi], weights, out=ss)
        ss *= bs
        ss += ou  # the sum of squares
        ou *= _CANCEL
        np.less_equal(ss, ou, out=h)
        if h.any():
            i, r = np.nonzero(h)
            e = weights[:, r].T * a[lo + i] - C[lo + i] * bs[i, r][:, None]
            ss[i, r] = np.sum(e * e, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.sqrt(ss, out=ss)
            np.divide(nu, ss, out=ss)
        np.abs(ss, out=ss)  # |t*|
        np.greater_equal(ss, threshold[lo:hi, None], out=h)
        out[lo:hi] = np.count_nonzero(h, axis=1) / R
    return out


@dataclass(frozen=True)
class PpmlTest:
    """The planned DiD test: Poisson fixed effects on treated + comparison units.

    ``inference="wild"``: the wild cluster restricted bootstrap p-value (the headline with
    fewer than 10 treated units); ``"cr1"``: CR1 and the normal distribution.
    """

    treated: np.ndarray  # (N,) bool
    n_pre: int
    inference: Literal["wild", "cr1"] = "wild"
    reps: int = 9_999
    seed: int = 0

    def __call__(self, Y: np.ndarray, n_post: int) -> TestOutcome:
        T = Y.shape[2]
        post = np.arange(T) >= self.n_pre
        D = (self.treated[:, None] & post[None, :]).astype(float)
        fit = ppml_did(Y, D)
        se = cr1_se(fit)
        if self.inference == "cr1":
            return TestOutcome(fit.beta, _normal_p(fit.beta, se), se)
        weights, _ = _sign_vectors(len(self.treated), self.reps, self._rng(n_post))
        return TestOutcome(fit.beta, wild_p_values(fit, weights), se)

    def _rng(self, n_post: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 7, n_post])

    def describe(self) -> str:
        if self.inference == "cr1":
            return "Poisson fixed-effects DiD with CR1 standard errors clustered by area"
        G = len(self.treated)
        if _enumerate(G, self.reps):
            how = f"all {2**G:,} Rademacher sign vectors"
        else:
            how = f"{min(self.reps, MAX_SIM_BOOT_REPS):,} Webb draws per simulated data set"
        return (
            "Poisson fixed-effects DiD with the wild cluster restricted bootstrap "
            f"({how}), as the headline"
        )


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Simulation:
    """What to simulate: expected counts without an effect, the noise and the planned test.

    ``expected`` covers the pre periods (``n_pre`` of them: observed ones and any between
    the data and the start) followed by the longest post period simulated.
    """

    expected: np.ndarray  # (U, n_pre + max_post)
    treated: np.ndarray  # (U,) bool: units the effect applies to
    n_pre: int
    noise: NoiseModel
    test: PlannedTest

    @property
    def max_post(self) -> int:
        """Post periods available."""
        return int(self.expected.shape[1] - self.n_pre)


def _effect_draws(
    base: np.ndarray,
    lam: np.ndarray,
    mask: np.ndarray,
    effects: Sequence[float],
    rng: np.random.Generator,
) -> Iterator[tuple[float, np.ndarray]]:
    """Counts for each effect from the same no-effect draws (common random numbers).

    Falls thin the treated post-period crimes step by step (``Binomial(y, r / r_prev)``:
    exactly Poisson with rate ``r lam``); rises add ``Poisson((r - r_prev) lam)``.
    """
    yield 1.0, base
    for group in (
        sorted((e for e in effects if e < 1), reverse=True),
        sorted(e for e in effects if e > 1),
    ):
        y, prev = base.copy(), 1.0
        for r in group:
            if r < 1:
                y[:, mask] = rng.binomial(y[:, mask], r / prev)
            else:
                y[:, mask] = y[:, mask] + rng.poisson((r - prev) * lam[:, mask])
            prev = r
            yield r, y


@dataclass(frozen=True)
class PowerCurve:
    """Simulated power of the planned test for each effect and post length.

    ``power[i, j]`` is the share of the simulations with effect ``effects[i]`` and
    ``post_periods[j]`` post periods in which the test rejected no change (``p <= alpha``)
    in the planted direction; for ``effect = 1`` (always simulated) either direction
    counts: the test's empirical size. ``power_adjusted`` is the same for the test
    corrected to the nominal size: it rejects when ``p <= critical_p[j]``, the
    ``alpha``-quantile of the p-values simulated without an effect, but never above
    ``alpha`` (a conservative test is not loosened).
    """

    effects: tuple[float, ...]
    post_periods: tuple[int, ...]
    power: np.ndarray  # (E, H)
    power_adjusted: np.ndarray  # (E, H)
    critical_p: np.ndarray  # (H,)
    mean_estimate: np.ndarray  # (E, H) mean estimated rate ratio exp(coef)
    simulations: int
    alpha: float
    method: str = ""
    noise: NoiseModel = field(default_factory=NoiseModel)

    @staticmethod
    def _se(p: np.ndarray, n: int) -> np.ndarray:
        return np.sqrt(p * (1.0 - p) / n)

    @property
    def mc_se(self) -> np.ndarray:
        """Monte Carlo standard error of each power: ``sqrt(p (1 - p) / S)``."""
        return self._se(self.power, self.simulations)

    def size(self) -> dict[int, float]:
        """Empirical size (rejections with no effect) per post length."""
        i = self.effects.index(1.0)
        return {h: float(self.power[i, j]) for j, h in enumerate(self.post_periods)}

    def power_at(self, effect: float, post: int, *, adjusted: bool = False) -> float:
        """Power for one simulated effect and post length."""
        table = self.power_adjusted if adjusted else self.power
        return float(table[self.effects.index(effect), self.post_periods.index(post)])

    def rows(self) -> list[dict[str, Any]]:
        """The curve as table rows: effect, post_periods, power, mc_se, power_size_adjusted,
        mean_estimate."""
        se = self.mc_se
        return [
            {
                "effect": float(e),
                "post_periods": int(h),
                "power": float(self.power[i, j]),
                "mc_se": float(se[i, j]),
                "power_size_adjusted": float(self.power_adjusted[i, j]),
                "mean_estimate": float(self.mean_estimate[i, j]),
            }
            for j, h in enumerate(self.post_periods)
            for i, e in enumerate(self.effects)
        ]


def _check_grid(
    sim: Simulation, effects: Sequence[float], post_periods: Sequence[int], simulations: int
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    if simulations < 1:
        raise _bad("power.simulations", "at least one simulation is needed")
    bad = [e for e in effects if not (math.isfinite(e) and e > 0)]
    if bad or not effects:
        raise _bad("power.effects", f"effects are positive rate ratios, not {bad or effects}")
    posts = sorted({int(h) for h in post_periods})
    if not posts or posts[0] < 1:
        raise _bad("power.post_periods", "post lengths must be at least 1 period")
    if posts[-1] > sim.max_post:
        raise _bad("power.post_periods", f"at most {sim.max_post} post periods were projected")
    return tuple(sorted({1.0, *map(float, effects)})), tuple(posts)


@dataclass(frozen=True)
class _PowerJob:
    """What every chunk of a power simulation needs (sent once to a cluster)."""

    sim: Simulation
    grid: tuple[float, ...]
    posts: tuple[int, ...]
    seed: int
    simulations: int
    chunk: int  # simulations per chunk (fixed by the problem's size, not by the workers)


def _simulate_chunk(job: _PowerJob, part: tuple[int, int | None]) -> tuple[np.ndarray, np.ndarray]:
    """P-values and coefficients (effects, posts, n) of chunk ``c`` of the simulations.

    ``part = (c, only)``: the chunk, and the one effect (index into ``job.grid``) to test,
    or None for all of them. Chunk ``c`` draws from ``default_rng([seed, c])`` in the same
    order whatever is tested, so testing one effect per call (a cluster task) gives exactly
    the numbers of testing all of them in one call.
    """
    c, only = part
    sim, grid, posts = job.sim, job.grid, job.posts
    lo = c * job.chunk
    n = min(job.chunk, job.simulations - lo)
    T = sim.n_pre + posts[-1]
    expected = sim.expected[:, :T]
    mask = sim.treated[:, None] & (np.arange(T) >= sim.n_pre)[None, :]
    wanted = list(range(len(grid))) if only is None else [only]
    p = np.empty((len(wanted), len(posts), n))
    coef = np.empty_like(p)
    rng = np.random.default_rng([job.seed, c])
    lam = expected[None] * latent_factor(sim.noise, expected, n, rng)
    base = rng.poisson(lam)
    left = len(wanted)
    for r, Y in _effect_draws(base, lam, mask, grid, rng):
        i = grid.index(r)
        if i not in wanted:
            continue
        k = wanted.index(i)
        for j, h in enumerate(posts):
            out = sim.test(Y[:, :, : sim.n_pre + h], h)
            p[k, j] = out.p_value
            coef[k, j] = out.coef
        left -= 1
        if not left:  # later effects' draws cannot change this one's
            break
    return p, coef


def simulate_power(
    sim: Simulation,
    effects: Sequence[float],
    post_periods: Sequence[int],
    *,
    simulations: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> PowerCurve:
    """Simulate the planned test's power over a grid of effects and post lengths.

    Parameters
    ----------
    sim
        Baseline, noise and planned test.
    effects
        Rate ratios to plant in the treated units after the start (1 is always added).
    post_periods
        Post lengths; each simulated series is the same draw cut at each length.
    simulations
        Data sets per (effect, post length).
    alpha
        Level of the planned test.
    seed
        Seed of everything random (a numpy ``Generator`` per chunk of simulations).

    Returns
    -------
    PowerCurve
        The same numbers whether run here or, for large simulations with
        ``EVALUATION_SCHEDULER`` set, on a Dask cluster (see :mod:`evaluation.distributed`).
    """
    grid, posts = _check_grid(sim, effects, post_periods, simulations)
    U = sim.expected.shape[0]
    T = sim.n_pre + posts[-1]
    chunk = max(1, min(simulations, CHUNK_CELLS // (U * T)))
    job = _PowerJob(sim, grid, posts, seed, simulations, chunk)
    p = np.empty((len(grid), len(posts), simulations))
    coef = np.empty_like(p)
    spans = distributed.spans(simulations, chunk)
    fitted = simulations * len(grid) * U * sum(sim.n_pre + h for h in posts)
    if fitted >= DISTRIBUTE_MIN_CELLS and distributed.scheduler_address():
        # one task per (chunk, effect): each redraws its chunk from the chunk's seed (cheap
        # next to the fits) and fits one effect, so no simulated data set is sent anywhere
        parts: list[tuple[int, int | None]] = [
            (c, i) for c in range(len(spans)) for i in range(len(grid))
        ]
    else:
        parts = [(c, None) for c in range(len(spans))]
    done = distributed.map_chunks(_simulate_chunk, parts, job, name="power-simulation")
    for (c, only), (p_c, coef_c) in zip(parts, done, strict=True):
        lo, hi = spans[c]
        rows = slice(None) if only is None else slice(only, only + 1)
        p[rows, :, lo:hi] = p_c
        coef[rows, :, lo:hi] = coef_c
    right = np.sign(coef) == np.sign(np.asarray(grid) - 1.0)[:, None, None]
    right[grid.index(1.0)] = True  # the size counts both directions
    null_p = p[grid.index(1.0)]  # (H, S)
    critical = np.minimum(alpha, np.quantile(null_p, alpha, axis=1, method="lower"))
    return PowerCurve(
        effects=grid,
        post_periods=posts,
        power=np.mean((p <= alpha) & right, axis=2),
        power_adjusted=np.mean((p <= critical[None, :, None]) & right, axis=2),
        critical_p=critical,
        mean_estimate=np.mean(np.exp(coef), axis=2),
        simulations=simulations,
        alpha=alpha,
        method=sim.test.describe(),
        noise=sim.noise,
    )


# --------------------------------------------------------------------------------------
# Minimum detectable effect
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mde:
    """Minimum detectable fall (a rate ratio below 1), with its Monte Carlo interval.

    ``estimate`` is None when no simulated fall reached the target power; ``low`` (the
    larger fall, from the power curve lowered by its Monte Carlo error) and ``high`` (the
    smaller fall, from the curve raised) bound the simulation error only.
    """

    estimate: float | None
    low: float | None
    high: float | None
    target: float


def _probit(p: np.ndarray, n: int) -> np.ndarray:
    eps = 0.5 / max(n, 1)
    return dist.norm_ppf(np.clip(p, eps, 1.0 - eps))


def _crossing(effects: np.ndarray, power: np.ndarray, target: float, n: int) -> float | None:
    """First effect (going away from 1) where ``power`` reaches ``target``, interpolated."""
    hit = np.flatnonzero(power >= target)
    if hit.size == 0:
        return None
    k = int(hit[0])
    if k == 0:
        return float(effects[0])
    x0, x1 = math.log(effects[k - 1]), math.log(effects[k])
    y0, y1 = _probit(np.array([power[k - 1], power[k]]), n)
    yt = float(_probit(np.array([target]), n)[0])
    frac = 1.0 if y1 == y0 else float(np.clip((yt - y0) / (y1 - y0), 0.0, 1.0))
    return float(math.exp(x0 + frac * (x1 - x0)))


def minimum_detectable_effect(
    effects: Sequence[float] | np.ndarray,
    power: Sequence[float] | np.ndarray,
    target: float = 0.8,
    *,
    simulations: int,
    level: float = 0.95,
) -> Mde:
    """The smallest fall (rate ratio closest to 1 below it) with power at least ``target``.

    Parameters
    ----------
    effects, power
        The power curve at one post length (effect 1, the size, anchors the curve).
    target
        Power required, e.g. 0.8.
    simulations
        Simulations behind each power (for the Monte Carlo interval).
    level
        Level of the Monte Carlo interval.
    """
    e = np.asarray(effects, dtype=float)
    p = np.asarray(power, dtype=float)
    keep = e <= 1.0
    order = np.argsort(-e[keep])  # from 1 down
    e, p = e[keep][order], p[keep][order]
    z = dist.norm_ppf(0.5 + level / 2.0)
    se = np.sqrt(p * (1 - p) / simulations)
    return Mde(
        estimate=_crossing(e, p, target, simulations),
        low=_crossing(e, p - z * se, target, simulations),
        high=_crossing(e, p + z * se, target, simulations),
        target=target,
    )


def two_period_normal_power(
    mean: float,
    n_pre: int,
    n_post: int,
    effect: float,
    alpha: float = 0.05,
    dispersion: float = 1.0,
) -> float:
    """Normal-approximation power of comparing two Poisson means (the closed-form check).

    Counts have mean ``mean`` for ``n_pre`` periods and ``effect * mean`` for ``n_post``,
    with variance ``dispersion`` times the mean (1: Poisson); the log rate ratio has
    variance ``dispersion (1/(n_pre mean) + 1/(n_post effect mean))``, and a two-sided
    z-test rejects in the planted direction with probability
    ``Phi(|log effect| / sd - z_{1 - alpha/2})``.
    """
    sd = math.sqrt(dispersion * (1.0 / (n_pre * mean) + 1.0 / (n_post * effect * mean)))
    return float(dist.norm_cdf(abs(math.log(effect)) / sd - dist.norm_ppf(1 - alpha / 2)))


def two_period_test(n_pre: int, family: GlmFamily = "poisson") -> GlmTest:
    """The planned test of the closed-form check: log-linear model ``const + post``."""

    def design(n_post: int) -> GlmDesign:
        post = (np.arange(n_pre + n_post) >= n_pre).astype(float)
        return GlmDesign(np.column_stack([np.ones_like(post), post]), np.arange(post.size), 1)

    return GlmTest(design, family=family, se="model")


# --------------------------------------------------------------------------------------
# Building the simulation from an evaluation's pre-period data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Periods of a planned evaluation: observed pre, unobserved pre (a future start), post."""

    index: pd.Index  # every period: observed, gap, post
    n_observed: int
    n_pre: int  # observed + gap

    @property
    def n_gap(self) -> int:
        """Pre periods between the end of the data and the start."""
        return self.n_pre - self.n_observed


def timeline(observed: pd.Index, start: Any, max_post: int) -> Timeline:
    """The observed pre periods, any periods between them and the start, then ``max_post``.

    ``observed`` are equally spaced period starts (Timestamps a whole number of months
    apart) or integers; ``start`` is the first post period and must come after them.
    """
    if len(observed) < 2:
        raise _bad("intervention.start", "at least two pre-period periods are needed")
    if isinstance(observed, pd.DatetimeIndex):
        step = pd.DateOffset(months=int(np.diff(observed.year * 12 + observed.month)[0]))
        first = pd.Timestamp(start)
        if first <= observed[-1]:
            raise _bad("intervention.start", "the start must come after the pre-period data")
        later = pd.date_range(observed[-1], first, freq=step)[1:]
        if len(later) == 0 or later[-1] != first:
            raise _bad("intervention.start", f"{first:%Y-%m} is not the start of a period")
        post = pd.date_range(first, periods=max_post, freq=step)
        full = observed.append(later[:-1]).append(post)
        return Timeline(pd.DatetimeIndex(full), len(observed), len(observed) + len(later) - 1)
    values = np.asarray(observed, dtype=int)
    step_i = int(np.diff(values)[0])
    begin = int(start)
    if begin <= values[-1] or (begin - values[-1]) % step_i:
        raise _bad("intervention.start", "the start must be a period after the pre-period data")
    gap = list(range(values[-1] + step_i, begin, step_i))
    post = list(range(begin, begin + step_i * max_post, step_i))
    return Timeline(pd.Index([*values.tolist(), *gap, *post]), len(values), len(values) + len(gap))


@dataclass(frozen=True)
class Baseline:
    """The no-effect expectation a simulation is built on, for reports and figures.

    Series are totals over the evaluated (treated) units; ``comparison`` is the comparison
    units' observed total (DiD only).
    """

    timeline: Timeline
    observed: np.ndarray  # (n_observed,)
    fitted: np.ndarray  # (n_observed,) baseline expected counts
    projected: np.ndarray  # (n_pre + max_post,) expected counts without an effect
    terms: tuple[str, ...]  # terms of the baseline model
    noise: NoiseModel
    comparison: np.ndarray | None = None
    dropped_units: tuple[str, ...] = ()


_EFFECT_TERMS = ("post", "time_since")


def _dummy(index: pd.Index) -> pd.Series:
    return pd.Series(np.ones(len(index)), index=index)


def _planned_its(index: pd.Index, start: Any, spec: Any) -> Any:
    """The ITS design matrices for periods ``index`` (values unused), via the ITS design."""
    from evaluation.designs.its import _build_design

    return _build_design(_dummy(index), start, spec, None, None, None, None)


def _trend_baseline(
    y: np.ndarray, tl: Timeline, start: Any, spec: Any
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Fit trend + seasonality + interruptions to the observed pre-period series ``y`` and
    project it over the whole timeline with the interruptions off after the data.

    Returns fitted (observed periods), projected (all periods) and the terms used.
    """
    design = _planned_its(tl.index, start, replace(spec, slope_change=False, phase_in=0))
    terms = [c for c in design.exog.columns if c not in _EFFECT_TERMS]
    X_all = design.exog[terms].to_numpy(dtype=float)
    used = np.abs(X_all[: tl.n_observed]).sum(axis=0) > 0
    X_all = X_all[:, used]
    terms = [t for t, u in zip(terms, used, strict=True) if u]
    X_obs = X_all[: tl.n_observed]
    if np.linalg.matrix_rank(X_obs) < X_obs.shape[1] or X_obs.shape[0] <= X_obs.shape[1]:
        raise _bad("its.seasonality", "too few pre-period periods for the baseline model's terms")
    if not np.any(y):
        raise _bad("outcome", "the outcome is zero in every pre-period period")
    beta, mu, _ = glm_fit(np.asarray(y, dtype=float)[None], X_obs)
    projected = np.exp(np.clip(X_all @ beta[0], -30, 30))
    # interruptions that end inside the data are off afterwards by construction (zero share)
    return mu[0], projected, tuple(terms)


def _glm_designs(tl: Timeline, start: Any, spec: Any, posts: Sequence[int]) -> dict[int, GlmDesign]:
    out: dict[int, GlmDesign] = {}
    for h in posts:
        d = _planned_its(tl.index[: tl.n_pre + h], start, spec)
        rows = np.flatnonzero(d.in_fit)
        lags = spec.hac_lags if spec.hac_lags is not None else newey_west_lags(rows.size)
        if spec.se == "hac" and lags >= rows.size:
            raise _bad("its.hac_lags", f"{lags} HAC lags for {rows.size} fitted periods: too many")
        cols = list(d.exog.columns)
        out[h] = GlmDesign(d.exog.to_numpy(dtype=float)[rows], rows, cols.index("post"), lags)
    return out


def its_simulation(
    y: pd.Series,
    start: Any,
    spec: Any,
    post_periods: Sequence[int],
    *,
    noise_kind: NoiseKind = "quasipoisson",
    persistence: bool = True,
) -> tuple[Simulation, Baseline]:
    """A planned single-series ITS, simulated from its pre-period series.

    Parameters
    ----------
    y
        Observed pre-period counts indexed by period start (or integer periods).
    start
        The intervention start (first post period), after the data.
    spec
        The planned :class:`evaluation.designs.its.ItsSpec`; its terms (trend,
        seasonality, interruptions) form the baseline, and the planned test is its level
        change with its standard errors (count families only).
    post_periods
        Post lengths to simulate.
    noise_kind
        ``"quasipoisson"`` or ``"negbin"``: how the noise is simulated.

    Raises
    ------
    InputError
        With ``source=None`` and the key at fault (ITS keys as :mod:`evaluation.designs.its`).
    """
    if spec.family == "gaussian":
        raise _bad("its.family", "power is simulated for count models, not gaussian")
    posts = sorted({int(h) for h in post_periods})
    tl = timeline(y.index, start, posts[-1])
    values = y.to_numpy(dtype=float)
    fitted, projected, terms = _trend_baseline(values, tl, start, spec)
    noise = estimate_noise(
        values[None], fitted[None], len(terms), noise_kind, persistence=persistence
    )
    designs = _glm_designs(tl, start, spec, posts)
    family: GlmFamily = spec.family if spec.family != "gaussian" else "quasipoisson"
    test = GlmTest(
        designs.__getitem__,
        family=family,
        se=spec.se,
        negbin_alpha=noise.dispersion if noise.kind == "negbin" else 0.0,
    )
    expected = np.concatenate([fitted, projected[tl.n_observed :]])[None]
    sim = Simulation(expected, np.array([True]), tl.n_pre, noise, test)
    return sim, Baseline(tl, values, fitted, expected[0], terms, noise)


def did_simulation(
    panel: pd.DataFrame,
    treated: Sequence[str],
    start: Any,
    spec: Any,
    post_periods: Sequence[int],
    *,
    inference: Literal["wild", "cr1"] = "wild",
    reps: int = 9_999,
    seed: int = 0,
    noise_kind: NoiseKind = "quasipoisson",
    persistence: bool = True,
) -> tuple[Simulation, Baseline]:
    """A planned Poisson DiD, simulated from its pre-period panel.

    Parameters
    ----------
    panel
        Observed pre-period counts: one row per unit (treated and comparison), one column
        per period (period starts or integers, in time order).
    treated
        The treated units (rows of ``panel``).
    start
        The intervention start (first post period), after the data.
    spec
        An :class:`evaluation.designs.its.ItsSpec` whose trend, seasonality and
        interruptions project the common period effects beyond the data.
    post_periods
        Post lengths to simulate.
    inference
        ``"wild"`` (the headline with fewer than 10 treated units) or ``"cr1"``.
    reps, seed
        Bootstrap replications (all sign vectors when ``2^G <= reps``) and seed.

    Raises
    ------
    InputError
        With ``source=None`` and the key at fault.
    """
    posts = sorted({int(h) for h in post_periods})
    counts = panel.to_numpy(dtype=float)
    totals_unit = counts.sum(axis=1)
    units = [str(u) for u in panel.index]
    is_treated = np.isin(units, list(treated))
    empty = totals_unit <= 0
    if (empty & is_treated).any():
        first = units[int(np.flatnonzero(empty & is_treated)[0])]
        raise _bad("intervention.treated", f"{first!r} has no recorded crime before the start")
    keep = ~empty
    dropped = tuple(u for u, k in zip(units, keep, strict=True) if not k)
    counts, is_treated = counts[keep], is_treated[keep]
    if keep.sum() - is_treated.sum() < 1:
        raise _bad("comparison", "no comparison area has any recorded crime before the start")
    tl = timeline(pd.Index(panel.columns), start, posts[-1])
    total_t = counts.sum(axis=0)
    share = counts.sum(axis=1) / counts.sum()
    _, projected_total, terms = _trend_baseline(total_t, tl, start, spec)
    common = np.concatenate([total_t, projected_total[tl.n_observed :]])
    expected = share[:, None] * common[None, :]
    n_params = counts.shape[0] + counts.shape[1] - 1
    noise = estimate_noise(
        counts, expected[:, : tl.n_observed], n_params, noise_kind, persistence=persistence
    )
    test = PpmlTest(is_treated, tl.n_pre, inference=inference, reps=reps, seed=seed)
    sim = Simulation(expected, is_treated, tl.n_pre, noise, test)
    base = Baseline(
        tl,
        observed=counts[is_treated].sum(axis=0),
        fitted=expected[is_treated, : tl.n_observed].sum(axis=0),
        projected=expected[is_treated].sum(axis=0),
        terms=("unit effects", "period effects", *(f"projection: {t}" for t in terms)),
        noise=noise,
        comparison=counts[~is_treated].sum(axis=0),
        dropped_units=dropped,
    )
    return sim, base
