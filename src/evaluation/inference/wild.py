"""Wild cluster restricted (WCR) bootstrap, vectorised, with test-inversion intervals.

The algorithm follows Roodman, MacKinnon, Nielsen & Webb (2019, *Stata Journal*, "Fast and
wild"): every bootstrap t statistic is a function of a handful of ``G``-vectors and a
``G x k`` matrix, so 9,999 replications are a few matrix products instead of 9,999
regressions. The null ``beta_j = beta_0`` is imposed on the bootstrap data-generating
process (WCR), and the bootstrap t statistics use CR1 standard errors, as ``boottest`` and
``wildboottest`` do.

Because the restricted residuals are affine in the hypothesised value, the bootstrap t
statistic for every ``beta_0`` is ``(n0 + d n1) / sqrt(a + 2 d b + d^2 c)`` with
``d = beta_hat - beta_0`` and five stored numbers per replication: the p-value is then a
cheap function of ``beta_0``, and the confidence interval is found by bisection on it
(test inversion), as ``boottest`` does.

Weights: Rademacher with full enumeration of all ``2^G`` sign vectors when
``2^G <= reps`` (the p-value is then exact and not random), Webb's six-point distribution
otherwise. Models with absorbed fixed effects are bootstrapped on the within-transformed
data (the "partialled-out" bootstrap of Roodman et al. 2019, section 3.5).

On a Dask cluster (``EVALUATION_SCHEDULER``, see :mod:`evaluation.distributed`) the blocks
of replications of a very large bootstrap are accumulated on the workers: the random
weights are still drawn here, block by block in the same order, and sent as one byte per
weight, so the result is identical to the local one. Below :data:`DISTRIBUTE_MIN_CELLS`
(every evaluation of this project: a 9,999-replication bootstrap over 100 clusters takes
about 50 ms) the bootstrap always runs locally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation import distributed
from evaluation.inference.cluster import cluster_sums, cr1_factor
from evaluation.inference.inversion import inversion_bound

#: Default number of bootstrap replications.
DEFAULT_REPS = 9_999

# Webb (2014) six-point weights: +-sqrt(1/2), +-1, +-sqrt(3/2), each with probability 1/6.
_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
# Replications per block: bounds memory at about G * _BLOCK doubles per array.
_BLOCK_CELLS = 4_000_000
#: Clusters x replications from which the blocks go to a Dask cluster when one is set:
#: about a second of work here (1,000 clusters x 50,000 replications, five regressors), at
#: least 12 blocks, each sent as one byte per weight (4 MB). Smaller bootstraps take less
#: time than the round trips and the transfer of their weights.
DISTRIBUTE_MIN_CELLS = 50_000_000
# Relative tolerance for ties between bootstrap and actual |t| (exact ties occur for the
# identity sign vector under full enumeration).
_TIE = 1e-9


@dataclass(frozen=True)
class WildBootstrapResult:
    """Outcome of a wild cluster restricted bootstrap test of one coefficient.

    ``ci_low`` / ``ci_high`` are None when the inverted test does not reject far from the
    estimate (the interval is unbounded on that side: it happens with very few treated
    clusters).
    """

    estimate: float
    null: float
    t_stat: float
    p_value: float
    ci_low: float | None
    ci_high: float | None
    level: float
    reps: int
    weights: str  # "rademacher (full enumeration)" | "webb" | "rademacher"
    full_enumeration: bool
    n_clusters: int
    seed: int | None

    @property
    def method(self) -> str:
        """One-line description for reports."""
        how = (
            f"all {self.reps:,} Rademacher sign vectors"
            if self.full_enumeration
            else f"{self.reps:,} {self.weights.capitalize()} replications"
        )
        return (
            f"wild cluster restricted bootstrap ({how}, {self.n_clusters} clusters), "
            "interval by test inversion"
        )


def _weights_block(
    kind: str, n_clusters: int, start: int, stop: int, rng: np.random.Generator | None
) -> np.ndarray:
    """Bootstrap weights for replications ``start..stop-1`` as a (G, stop-start) array."""
    codes = _draw_codes(kind, n_clusters, start, stop, rng)
    return _weights_from_codes(kind, n_clusters, start, stop, codes)


def _draw_codes(
    kind: str, n_clusters: int, start: int, stop: int, rng: np.random.Generator | None
) -> np.ndarray | None:
    """The random part of a block: which Rademacher sign (0, 1) or Webb point (0..5) each
    weight takes, as small integers (None under full enumeration: nothing is random)."""
    if kind == "enumerate":
        return None
    assert rng is not None
    high = 2 if kind == "rademacher" else 6
    return rng.integers(0, high, size=(n_clusters, stop - start)).astype(np.uint8)


def _weights_from_codes(
    kind: str, n_clusters: int, start: int, stop: int, codes: np.ndarray | None
) -> np.ndarray:
    """The (G, stop-start) weights of a block from its codes (see :func:`_draw_codes`)."""
    if kind == "enumerate":
        b = np.arange(start, stop, dtype=np.int64)
        bits = (b[None, :] >> np.arange(n_clusters, dtype=np.int64)[:, None]) & 1
        return 1.0 - 2.0 * bits
    assert codes is not None
    if kind == "rademacher":
        return 1.0 - 2.0 * codes.astype(np.int64)
    return _WEBB[codes]


class _WCR:
    """Precomputed pieces of the WCR bootstrap for coefficient ``j`` of ``y ~ X``."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        codes: np.ndarray,
        n_clusters: int,
        j: int,
        n_params: int | None,
    ) -> None:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        A = np.linalg.inv(X.T @ X)
        beta = A @ (X.T @ y)
        resid = y - X @ beta
        rho = A[j]  # row j of (X'X)^{-1}
        self.beta_j = float(beta[j])
        # Scores of the unrestricted residuals, and of the direction the restricted
        # residuals move in as the null value changes: u_tilde = u_hat + d * X rho / A_jj.
        self.S_u = cluster_sums(X * resid[:, None], codes, n_clusters)  # (G, k)
        H = cluster_sums(X * (X @ rho)[:, None], codes, n_clusters)  # rows M_g rho
        self.S_d = H / A[j, j]
        self.Q = H @ A  # rows (A M_g rho)'
        self.c_u = self.S_u @ rho
        self.c_d = self.S_d @ rho
        k = X.shape[1] if n_params is None else n_params
        self.ssc = cr1_factor(X.shape[0], k, n_clusters)
        self.se = float(np.sqrt(self.ssc * np.sum(self.c_u**2)))
        self.G = n_clusters

    def accumulate(self, V: np.ndarray) -> np.ndarray:
        """For weights V (G, b), the five per-replication numbers (5, b)."""
        n0 = self.c_u @ V
        n1 = self.c_d @ V
        Z0 = self.c_u[:, None] * V - self.Q @ (self.S_u.T @ V)
        Z1 = self.c_d[:, None] * V - self.Q @ (self.S_d.T @ V)
        return np.vstack(
            [
                n0,
                n1,
                np.einsum("gb,gb->b", Z0, Z0),
                np.einsum("gb,gb->b", Z0, Z1),
                np.einsum("gb,gb->b", Z1, Z1),
            ]
        )


class _BootDistribution:
    """The bootstrap t statistics as a function of the hypothesised value."""

    def __init__(self, wcr: _WCR, parts: np.ndarray) -> None:
        self.wcr = wcr
        self.n0, self.n1, self.a, self.b, self.c = parts

    def t_boot(self, null: float) -> np.ndarray:
        d = self.wcr.beta_j - null
        var = self.wcr.ssc * np.maximum(self.a + 2 * d * self.b + d * d * self.c, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.n0 + d * self.n1) / np.sqrt(var)

    def t_actual(self, null: float) -> float:
        return (self.wcr.beta_j - null) / self.wcr.se

    def p_value(self, null: float) -> float:
        t = abs(self.t_actual(null))
        tb = np.abs(self.t_boot(null))
        return float(np.mean(tb >= t * (1 - _TIE)))


def _distribution(X, y, codes, n_clusters, coef, reps, weights, seed, n_params):
    """Run the bootstrap: the t-statistic distribution and how its weights were drawn."""
    if weights not in ("auto", "webb", "rademacher"):
        raise ValueError("weights must be 'auto', 'webb' or 'rademacher'")
    if n_clusters < 2:
        raise ValueError("the wild cluster bootstrap needs at least 2 clusters")
    codes = np.asarray(codes, dtype=np.intp)
    wcr = _WCR(X, y, codes, n_clusters, coef, n_params)
    enumerate_all = weights in ("auto", "rademacher") and n_clusters < 63 and 2**n_clusters <= reps
    if enumerate_all:
        kind, n_reps, rng = "enumerate", 2**n_clusters, None
    else:
        kind = "rademacher" if weights == "rademacher" else "webb"
        n_reps, rng = int(reps), np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // n_clusters)
    blocks = distributed.spans(n_reps, block)
    if n_clusters * n_reps >= DISTRIBUTE_MIN_CELLS and distributed.scheduler_address():
        # draw every block's weights here, in order (the same stream as the loop below);
        # only the deterministic accumulation runs on the workers
        chunks = [(kind, lo, hi, _draw_codes(kind, n_clusters, lo, hi, rng)) for lo, hi in blocks]
        done = distributed.map_chunks(_accumulate_block, chunks, wcr, name="wild-bootstrap")
        parts = np.hstack(done) if done else np.empty((5, 0))
    else:
        parts = np.empty((5, n_reps))
        for start, stop in blocks:
            weights = _weights_block(kind, n_clusters, start, stop, rng)
            parts[:, start:stop] = wcr.accumulate(weights)
    return _BootDistribution(wcr, parts), kind, n_reps, enumerate_all


def _accumulate_block(wcr: _WCR, chunk: tuple[str, int, int, np.ndarray | None]) -> np.ndarray:
    """The five numbers (5, stop-start) of one block of replications (a cluster task)."""
    kind, start, stop, codes = chunk
    return wcr.accumulate(_weights_from_codes(kind, wcr.G, start, stop, codes))


def wild_cluster_bootstrap(
    X: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    n_clusters: int,
    coef: int,
    *,
    null: float = 0.0,
    reps: int = DEFAULT_REPS,
    weights: str = "auto",
    seed: int | None = None,
    level: float = 0.95,
    n_params: int | None = None,
    interval: bool = True,
) -> WildBootstrapResult:
    """Wild cluster restricted bootstrap test of ``beta[coef] = null`` in OLS of y on X.

    Parameters
    ----------
    X, y
        Design (n, k) and outcome (n,). For fixed-effects models pass the within-
        transformed data; for weighted least squares multiply both by sqrt(weights).
    codes, n_clusters
        Cluster codes ``0..G-1`` (see :func:`evaluation.inference.cluster.cluster_codes`).
    coef
        Column of ``X`` under test.
    null
        Hypothesised value.
    reps
        Replications. When ``2^G <= reps`` and weights are ``"auto"`` or
        ``"rademacher"``, all ``2^G`` sign vectors are enumerated instead.
    weights
        ``"auto"`` (Rademacher enumeration when possible, else Webb), ``"webb"`` or
        ``"rademacher"``.
    seed
        Seed of the ``numpy.random.Generator`` (ignored under full enumeration).
    level
        Confidence level of the inverted interval.
    n_params
        ``K`` of the CR1 factor (regressors plus non-nested absorbed effects); it scales
        the actual and bootstrap t statistics alike, so the p-value does not depend on it.
    interval
        Whether to compute the test-inversion interval.

    Returns
    -------
    WildBootstrapResult
        The p-value is the share of bootstrap ``|t*|`` at least as large as ``|t|``
        (ties, such as the identity sign vector under enumeration, count).
    """
    dist, kind, n_reps, enumerate_all = _distribution(
        X, y, codes, n_clusters, coef, reps, weights, seed, n_params
    )
    wcr = dist.wcr
    lo = hi = None
    if interval:
        alpha = round(1.0 - level, 12)  # 1 - 0.9 is 0.0999...98 in floating point
        lo = inversion_bound(dist.p_value, wcr.beta_j, wcr.se, alpha, -1)
        hi = inversion_bound(dist.p_value, wcr.beta_j, wcr.se, alpha, +1)
    return WildBootstrapResult(
        estimate=wcr.beta_j,
        null=float(null),
        t_stat=float(dist.t_actual(null)),
        p_value=dist.p_value(null),
        ci_low=lo,
        ci_high=hi,
        level=level,
        reps=n_reps,
        weights="rademacher (full enumeration)" if enumerate_all else kind,
        full_enumeration=enumerate_all,
        n_clusters=n_clusters,
        seed=None if enumerate_all else seed,
    )


def bootstrap_t_stats(
    X: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    n_clusters: int,
    coef: int,
    *,
    null: float = 0.0,
    reps: int = DEFAULT_REPS,
    weights: str = "auto",
    seed: int | None = None,
    n_params: int | None = None,
) -> tuple[float, np.ndarray]:
    """The actual t statistic and the bootstrap t statistics (for checks and plots)."""
    dist, *_ = _distribution(X, y, codes, n_clusters, coef, reps, weights, seed, n_params)
    return dist.t_actual(null), dist.t_boot(null)
