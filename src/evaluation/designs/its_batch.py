"""Many interrupted time series at once: one segmented Poisson regression per series, batched.

For N series (every ward or LSOA) on the same periods and intervention start, the design
matrix ``X`` (trend, step, slope change, seasonality, interruptions: exactly the one
:func:`evaluation.designs.its.fit_its` builds) is shared; only the counts ``Y`` (N x T) and
the offsets differ. Iteratively reweighted least squares then runs on all series together:
each iteration forms ``X' W_i X`` for every series with one ``einsum`` and solves the N
p x p systems with one batched ``numpy.linalg.solve``. No Python loop over series.

Poisson log-link IRLS (canonical link, so IRLS is Newton's method)::

    eta_i = X b_i + o_i,   mu_i = exp(eta_i),   z_i = eta_i - o_i + (y_i - mu_i) / mu_i
    b_i <- (X' diag(mu_i) X)^-1 X' diag(mu_i) z_i

started, as statsmodels does, from ``mu = (y + mean(y)) / 2``; iterations stop when every
series' coefficients change by less than ``tol`` (absolute, on the log scale).

Standard errors are model-based: ``sqrt(diag(phi (X'WX)^-1))`` with ``phi = 1`` (Poisson) or
the Pearson ``phi = sum((y - mu)^2 / mu) / (T - p)`` (quasi-Poisson, statsmodels'
``scale="X2"``, R's ``quasipoisson``). HAC standard errors are not offered here: screening
many areas uses the model-based ones; fit the areas of interest with ``fit_its``.

A series with no count before, or none after, the start has no finite rate ratio: it is
reported as not estimable (NaN), never as a huge number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from evaluation.designs.its import ItsSpec, _build_design
from evaluation.errors import InputError
from evaluation.inference import distributions as dist


@dataclass(frozen=True, eq=False)
class BatchItsResults:
    """The fits of N series sharing one design.

    Attributes
    ----------
    series
        The series' labels (length N).
    terms
        The model terms (length p), as in ``fit_its``.
    params, bse
        Coefficients and model-based standard errors, N x p (NaN where not estimable).
    scale
        The dispersion used per series (1 for Poisson).
    estimable
        Whether the series had counts both before and after the start.
    converged
        Whether IRLS converged for the series.
    iterations
        IRLS iterations run.
    level
        Confidence level of the intervals.
    """

    series: pd.Index
    terms: tuple[str, ...]
    params: np.ndarray
    bse: np.ndarray
    scale: np.ndarray
    estimable: np.ndarray
    converged: np.ndarray
    iterations: int
    level: float

    def coefficient(self, term: str) -> pd.DataFrame:
        """One term per series: ``estimate``, ``se`` (log scale), ``z`` and ``p_value``."""
        j = self._term(term)
        b, se = self.params[:, j], self.bse[:, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            z = b / se
        return pd.DataFrame(
            {"estimate": b, "se": se, "z": z, "p_value": 2 * dist.norm_sf(np.abs(z))},
            index=self.series,
        )

    def rate_ratios(self, term: str = "post") -> pd.DataFrame:
        """``exp(b)`` of ``term`` per series with its interval (``level``) and p-value.

        ``term="post"`` is the level change at the start (the step); ``"time_since"`` the
        change of slope (per period).
        """
        table = self.coefficient(term)
        zc = dist.norm_ppf(0.5 + self.level / 2)
        b, se = table["estimate"].to_numpy(), table["se"].to_numpy()
        return pd.DataFrame(
            {
                "rate_ratio": np.exp(b),
                "lower": np.exp(b - zc * se),
                "upper": np.exp(b + zc * se),
                "log_rr": b,
                "se": se,
                "p_value": table["p_value"].to_numpy(),
                "estimable": self.estimable,
            },
            index=self.series,
        )

    def _term(self, term: str) -> int:
        if term not in self.terms:
            raise InputError(None, f"no model term {term!r}; terms: {', '.join(self.terms)}")
        return self.terms.index(term)


def fit_its_batch(
    counts: pd.DataFrame,
    start: Any,
    spec: ItsSpec | None = None,
    *,
    offset: pd.DataFrame | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> BatchItsResults:
    """Fit a segmented Poisson / quasi-Poisson regression to every series at once.

    Parameters
    ----------
    counts
        One row per series, one column per period (period-start Timestamps or equally
        spaced integers, in order), non-negative counts. E.g.
        ``panel.pivot(index="area", columns="month", values="count")``.
    start
        The intervention start (the period containing it is the first post period).
    spec
        The model; ``family`` must be ``"poisson"`` or ``"quasipoisson"``. Its ``se`` is
        ignored: standard errors here are model-based. Default
        ``ItsSpec(se="model", interruptions=())``.
    offset
        Exposures (e.g. population), same shape and labels as ``counts``; enter as
        ``log(offset)``.
    tol, max_iter
        IRLS stops when no coefficient moves by more than ``tol``, or after ``max_iter``.

    Returns
    -------
    BatchItsResults

    Raises
    ------
    InputError
        Bad counts or offsets, a family other than Poisson / quasi-Poisson, or a design
        ``fit_its`` would refuse (too few pre-periods, collinear terms).
    """
    spec = spec or ItsSpec(se="model")
    if spec.family not in ("poisson", "quasipoisson"):
        raise InputError(None, "batched ITS fits poisson or quasipoisson", key="its.family")
    y_all = _matrix(counts, "outcome")
    if (y_all < 0).any() or (y_all != np.round(y_all)).any():
        raise InputError(None, "counts must be non-negative whole numbers", key="outcome")
    log_off_all = None
    if offset is not None:
        off = _matrix(offset.reindex(index=counts.index, columns=counts.columns), "offset")
        if not (off > 0).all():
            raise InputError(
                None, "offsets must be positive numbers for every series", key="offset"
            )
        log_off_all = np.log(off)
    # the shared design, built (and checked) by fit_its' own code on the total series
    total = pd.Series(np.maximum(y_all.sum(0), 1.0), index=counts.columns)
    design = _build_design(total, start, replace(spec, se="model"), None, None, None, None)
    rows = design.in_fit
    x = design.exog.to_numpy(dtype=float)[rows]
    y = y_all[:, rows]
    log_off = log_off_all[:, rows] if log_off_all is not None else np.zeros_like(y)

    post = design.post[rows]
    estimable = (y[:, ~post].sum(1) > 0) & (y[:, post].sum(1) > 0)
    beta = np.full((y.shape[0], x.shape[1]), np.nan)
    xtwx_inv = np.full((y.shape[0], x.shape[1], x.shape[1]), np.nan)
    converged = np.zeros(y.shape[0], dtype=bool)
    iterations = 0
    if estimable.any():
        b, inv, conv, iterations = irls_poisson(x, y[estimable], log_off[estimable], tol, max_iter)
        beta[estimable], xtwx_inv[estimable], converged[estimable] = b, inv, conv
    mu = np.exp(np.einsum("tp,np->nt", x, np.nan_to_num(beta)) + log_off)
    dof = x.shape[0] - x.shape[1]
    if spec.family == "quasipoisson":
        scale = ((y - mu) ** 2 / mu).sum(1) / dof
    else:
        scale = np.ones(y.shape[0])
    scale = np.where(estimable, scale, np.nan)
    bse = np.sqrt(scale[:, None] * np.diagonal(xtwx_inv, axis1=1, axis2=2))
    return BatchItsResults(
        series=pd.Index(counts.index),
        terms=tuple(design.exog.columns),
        params=beta,
        bse=bse,
        scale=scale,
        estimable=estimable,
        converged=converged,
        iterations=iterations,
        level=float(spec.level),
    )


def irls_poisson(
    x: np.ndarray,
    y: np.ndarray,
    log_offset: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Poisson log-link IRLS for N series sharing the design ``x`` (T x p).

    Parameters
    ----------
    x
        The shared design, T x p, full column rank.
    y
        Counts, N x T.
    log_offset
        N x T (zeros when None).
    tol, max_iter
        Stop when every coefficient changes by less than ``tol``, or after ``max_iter``.

    Returns
    -------
    beta : (N, p) array
    xtwx_inv : (N, p, p) array
        ``(X' W X)^-1`` at the estimate: the unscaled covariance.
    converged : (N,) bool array
    iterations : int
    """
    n, t = y.shape
    off = np.zeros((n, t)) if log_offset is None else log_offset
    mu = (y + y.mean(1, keepdims=True)) / 2.0  # statsmodels' start
    eta = np.log(mu)
    beta = np.zeros((n, x.shape[1]))
    active = np.ones(n, dtype=bool)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
        a = np.flatnonzero(active)  # converged series stop moving (and stop costing)
        z = eta[a] - off[a] + (y[a] - mu[a]) / mu[a]
        w = mu[a]
        xtwx = np.einsum("tp,nt,tq->npq", x, w, x, optimize=True)
        xtwz = np.einsum("tp,nt->np", x, w * z)
        new = np.linalg.solve(xtwx, xtwz[..., None])[..., 0]
        change = np.abs(new - beta[a]).max(1)
        beta[a] = new
        eta[a] = new @ x.T + off[a]
        mu[a] = np.exp(eta[a])
        active[a[change < tol]] = False
        if not active.any():
            break
    xtwx = np.einsum("tp,nt,tq->npq", x, mu, x, optimize=True)
    inv = np.linalg.inv(xtwx)
    return beta, inv, ~active, iterations


def _matrix(frame: pd.DataFrame, key: str) -> np.ndarray:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(None, f"{key} must be a DataFrame: one row per series", key=key)
    try:
        values = frame.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError(None, f"{key} must be numbers", key=key) from None
    if values.size == 0 or not np.isfinite(values).all():
        raise InputError(None, f"{key} has missing or infinite values", key=key)
    return values


__all__ = ["BatchItsResults", "fit_its_batch", "irls_poisson"]
