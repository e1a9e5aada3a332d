"""Cluster-robust (CR1) covariance, Wald tests, and which interval to trust.

Everything here works on plain numpy arrays: a design matrix ``X`` (already within-
transformed when the model has absorbed fixed effects), residuals, and integer cluster
codes ``0..G-1``. The small-sample factor is Stata's and fixest's CR1 one,
``G/(G-1) * (N-1)/(N-K)``, where ``K`` counts the regressors plus the fixed effects that
are *not* nested in the clusters (fixest's ``fixef.K = "nested"``, pyfixest's default).

With few treated clusters CR1 standard errors are far too small (Cameron, Gelbach & Miller
2008; MacKinnon & Webb 2017), so :func:`choose_inference` decides which interval is the
headline and says why in plain English.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.inference import distributions as dist

#: Below this many treated clusters, CR1 intervals are not used as the headline.
MIN_TREATED_CLUSTERS_FOR_CR1 = 10

#: The inference methods a design can be asked for.
INFERENCE_METHODS = ("auto", "cr1", "wild", "randomization", "conventional")


def cluster_codes(cluster: np.ndarray | pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes ``0..G-1`` for a cluster label array, and ``G``.

    Raises
    ------
    ValueError
        If any label is missing.
    """
    codes, uniques = pd.factorize(np.asarray(cluster), use_na_sentinel=True)
    if (codes < 0).any():
        raise ValueError("cluster labels must not be missing")
    return codes.astype(np.intp), len(uniques)


def cluster_sums(values: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Sum the rows of ``values`` (n, k) within clusters: returns (G, k)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    out = np.empty((n_clusters, values.shape[1]))
    starts = None
    if 1 < n_clusters < codes.size:
        change = codes[1:] != codes[:-1]
        # Rows sorted by cluster (panels sorted by unit): contiguous block sums.
        if codes[0] == 0 and np.count_nonzero(change) == n_clusters - 1:
            starts = np.r_[0, np.flatnonzero(change) + 1]
            if not np.array_equal(codes[starts], np.arange(n_clusters)):
                starts = None
    for j in range(values.shape[1]):
        if starts is not None:
            out[:, j] = np.add.reduceat(values[:, j], starts)
        else:
            out[:, j] = np.bincount(codes, weights=values[:, j], minlength=n_clusters)
    return out


def cr1_factor(n_obs: int, n_params: int, n_clusters: int) -> float:
    """Stata's CR1 small-sample factor ``G/(G-1) * (N-1)/(N-K)``."""
    if n_clusters < 2:
        raise ValueError("cluster-robust inference needs at least 2 clusters")
    if n_obs <= n_params:
        raise ValueError("more parameters than observations")
    return n_clusters / (n_clusters - 1) * (n_obs - 1) / (n_obs - n_params)


def cr1_vcov(
    X: np.ndarray,
    resid: np.ndarray,
    codes: np.ndarray,
    n_clusters: int,
    *,
    n_params: int | None = None,
    bread: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """CR1 covariance ``c * B (sum_g s_g s_g') B`` with scores ``s_g = X_g' e_g``.

    Parameters
    ----------
    X
        (n, k) design (within-transformed and multiplied by sqrt(weights) for WLS; for a
        Poisson model the within-transformed regressors, with ``resid = y - mu``).
    resid
        (n,) residuals on the same scale as ``X``.
    codes, n_clusters
        Cluster codes from :func:`cluster_codes`.
    n_params
        ``K`` in the small-sample factor; defaults to ``k`` (no absorbed effects).
    bread
        ``(X'X)^{-1}`` (or the Hessian inverse); computed when omitted.
    scores
        The (G, k) cluster scores, when the caller has a faster way to sum them.
    """
    X = np.asarray(X, dtype=float)
    if bread is None:
        bread = np.linalg.inv(X.T @ X)
    if scores is None:
        scores = cluster_sums(X * np.asarray(resid)[:, None], codes, n_clusters)
    meat = scores.T @ scores
    k = X.shape[1] if n_params is None else n_params
    return cr1_factor(X.shape[0], k, n_clusters) * (bread @ meat @ bread)


def iid_vcov(
    X: np.ndarray, resid: np.ndarray, *, n_params: int | None = None, bread=None
) -> np.ndarray:
    """Conventional OLS covariance ``s^2 (X'X)^{-1}`` with ``s^2 = e'e / (N - K)``."""
    X = np.asarray(X, dtype=float)
    if bread is None:
        bread = np.linalg.inv(X.T @ X)
    k = X.shape[1] if n_params is None else n_params
    sigma2 = float(np.dot(resid, resid)) / (X.shape[0] - k)
    return sigma2 * bread


def fe_nested(fe_codes: np.ndarray, codes: np.ndarray) -> bool:
    """True when every level of a fixed effect (codes ``0..L-1``) sits inside one cluster."""
    first = np.full(int(fe_codes.max()) + 1, -1, dtype=np.int64)
    first[fe_codes] = codes  # any cluster seen for the level; nested iff all agree
    return bool(np.array_equal(first[fe_codes], codes))


def wald_test(coef: np.ndarray, vcov: np.ndarray, df_denom: float | None = None):
    """Joint test that all ``coef`` are zero.

    Returns ``(statistic, p_value, q)``: an F statistic ``b'V^{-1}b / q`` referred to
    ``F(q, df_denom)`` (``G - 1`` for cluster-robust V, as Stata and fixest do), or when
    ``df_denom`` is None the chi-squared statistic ``b'V^{-1}b`` on ``q`` degrees of freedom.
    """
    coef = np.atleast_1d(np.asarray(coef, dtype=float))
    q = coef.size
    if q == 0:
        return float("nan"), float("nan"), 0
    quad = float(coef @ np.linalg.solve(np.atleast_2d(vcov), coef))
    if df_denom is None:
        return quad, float(dist.chi2_sf(quad, q)), q
    f = quad / q
    return f, float(dist.f_sf(f, q, df_denom)), q


def choose_inference(n_treated_clusters: int, requested: str = "auto") -> tuple[str, str]:
    """Decide which inference gives the headline interval, and say why.

    Parameters
    ----------
    n_treated_clusters
        How many clusters (areas) contain treated observations.
    requested
        ``"auto"``, ``"cr1"``, ``"wild"``, ``"randomization"`` or ``"conventional"``.

    Returns
    -------
    (method, reason)
        ``method`` is one of ``"cr1"``, ``"wild"``, ``"randomization"``,
        ``"conventional"``; ``reason`` is a plain-English sentence for the report.
        With fewer than :data:`MIN_TREATED_CLUSTERS_FOR_CR1` treated clusters, a request
        for CR1 (or conventional) intervals is overridden by the wild cluster
        restricted bootstrap.
    """
    if requested not in INFERENCE_METHODS:
        raise ValueError(f"inference must be one of {', '.join(INFERENCE_METHODS)}")
    n = int(n_treated_clusters)
    areas = "area" if n == 1 else "areas"
    few = n < MIN_TREATED_CLUSTERS_FOR_CR1
    caution = ""
    if n <= 3:
        caution = (
            f" With so few treated {areas} even the bootstrap can be unreliable "
            "(MacKinnon & Webb 2017), so read the interval as approximate."
        )
    if requested == "randomization":
        return "randomization", (
            f"The interval and p-value come from randomisation inference: the estimate is "
            f"compared with the same estimate for placebo assignments of the treatment to "
            f"other areas ({n} treated {areas})."
        )
    if requested == "wild":
        return "wild", (
            f"The interval comes from the wild cluster restricted bootstrap "
            f"(Roodman et al. 2019), as requested ({n} treated {areas})." + caution
        )
    if few:
        asked = ""
        if requested in ("cr1", "conventional"):
            asked = f" {'Conventional' if requested == 'conventional' else 'CR1'} intervals were requested but not used."
        return "wild", (
            f"With only {n} treated {areas}, conventional cluster-robust standard errors are "
            "far too small (Cameron, Gelbach & Miller 2008); the interval comes from the wild "
            "cluster restricted bootstrap." + asked + caution
        )
    if requested == "conventional":
        return "conventional", (
            "The interval uses conventional (homoskedastic) OLS standard errors, as requested; "
            "they assume independent errors with equal variance."
        )
    return "cr1", (
        f"With {n} treated {areas}, cluster-robust (CR1) standard errors clustered by area "
        "are reliable enough for the interval."
    )
