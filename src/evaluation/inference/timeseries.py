"""Time-series inference helpers: Newey-West lag rule, delta method, residual diagnostics.

numpy and scipy only, so that any design can use them. The HAC covariance itself is
computed by statsmodels inside the designs (``cov_type="HAC"``); this module holds the
pieces around it: how many lags, how to carry a covariance to a derived quantity, and how
to check residuals for autocorrelation. Every diagnostic returns ``None`` where it is not
defined (a constant residual series, too few observations) rather than ``nan``, so that it
can go straight into ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evaluation.inference import distributions as dist


def newey_west_lags(n: int) -> int:
    """The Newey-West (1994) plug-in rule ``floor(4 (n / 100) ^ (2 / 9))``.

    Parameters
    ----------
    n
        Number of time periods (not stacked rows) in the fit.

    Returns
    -------
    int
        The truncation lag (0 for ``n < 1``): 3 for 30 to 100 periods, 2 for 5 to 29.
    """
    if n < 1:
        return 0
    return int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))


def z_value(level: float) -> float:
    """Two-sided normal critical value for a confidence ``level`` (1.96 for 0.95)."""
    return float(dist.norm_ppf(0.5 + level / 2.0))


def linear_combination(
    weights: np.ndarray, params: np.ndarray, cov: np.ndarray
) -> tuple[float, float]:
    """Estimate and standard error of ``weights @ params``.

    Returns
    -------
    tuple of float
        ``(weights @ params, sqrt(weights @ cov @ weights))``.
    """
    w = np.asarray(weights, dtype=float)
    est = float(w @ np.asarray(params, dtype=float))
    var = float(w @ np.asarray(cov, dtype=float) @ w)
    return est, math.sqrt(max(var, 0.0))


def prediction_se(exog: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Standard error of each row's linear predictor ``x_i @ params``: ``sqrt(x_i' V x_i)``."""
    x = np.asarray(exog, dtype=float)
    var = np.einsum("ij,jk,ik->i", x, np.asarray(cov, dtype=float), x)
    return np.sqrt(np.clip(var, 0.0, None))


def normal_p_value(estimate: float, se: float) -> float | None:
    """Two-sided p-value of ``estimate / se`` against the standard normal, or ``None``."""
    if not (math.isfinite(estimate) and math.isfinite(se)) or se <= 0.0:
        return None
    return float(2.0 * dist.norm_sf(abs(estimate / se)))


def _clean(x: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _centred_or_none(x: np.ndarray) -> np.ndarray | None:
    """Demeaned series, or ``None`` when it has no variance (ACF undefined)."""
    if x.size < 2:
        return None
    dev = x - x.mean()
    scale = float(np.abs(x).max()) or 1.0
    if float(np.sqrt(np.mean(dev**2))) <= 1e-12 * scale:
        return None
    return dev


def acf(x: Sequence[float] | np.ndarray, nlags: int) -> list[float] | None:
    """Sample autocorrelations at lags 1..``nlags`` (denominator n, as statsmodels' ``acf``).

    Returns ``None`` for a constant series; ``nlags`` is capped at ``n - 1``.
    """
    dev = _centred_or_none(_clean(x))
    if dev is None:
        return None
    n = dev.size
    nlags = min(int(nlags), n - 1)
    denom = float(dev @ dev)
    return [float(dev[k:] @ dev[:-k] / denom) for k in range(1, nlags + 1)]


def ljung_box(x: Sequence[float] | np.ndarray, lag: int) -> tuple[float, float] | None:
    """Ljung-Box portmanteau test ``Q = n (n + 2) sum_k r_k^2 / (n - k)``, chi2 on ``lag`` df.

    Matches ``statsmodels.stats.diagnostic.acorr_ljungbox(x, lags=[lag])`` with
    ``model_df=0``. Returns ``(Q, p)``, or ``None`` when ``lag >= n`` or the series is constant.
    """
    arr = _clean(x)
    n = arr.size
    if lag < 1 or lag >= n:
        return None
    r = acf(arr, lag)
    if r is None:
        return None
    k = np.arange(1, lag + 1)
    q = float(n * (n + 2) * np.sum(np.asarray(r) ** 2 / (n - k)))
    return q, float(dist.chi2_sf(q, lag))


def durbin_watson(x: Sequence[float] | np.ndarray) -> float | None:
    """Durbin-Watson statistic ``sum (e_t - e_{t-1})^2 / sum e_t^2`` (about 2 when uncorrelated)."""
    arr = _clean(x)
    denom = float(arr @ arr)
    if arr.size < 2 or denom <= 0.0:
        return None
    return float(np.sum(np.diff(arr) ** 2) / denom)


def residual_diagnostics(
    resid: Sequence[float] | np.ndarray,
    *,
    ljung_box_lags: Sequence[int] = (6, 12),
    acf_lags: int = 12,
) -> dict[str, object]:
    """Autocorrelation checks on a residual series in time order.

    Returns
    -------
    dict
        ``ljung_box_p_lag<k>`` for each ``k``, ``durbin_watson`` and ``residual_acf`` (lags
        1..``acf_lags``, capped at ``n - 1``); ``None`` where undefined.
    """
    out: dict[str, object] = {}
    for lag in ljung_box_lags:
        lb = ljung_box(resid, lag)
        out[f"ljung_box_p_lag{lag}"] = None if lb is None else lb[1]
    out["durbin_watson"] = durbin_watson(resid)
    out["residual_acf"] = acf(resid, acf_lags)
    return out
