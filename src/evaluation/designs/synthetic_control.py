"""Synthetic control and synthetic difference-in-differences for one (or a few) treated areas.

"For a single area, compared with what?" A synthetic control answers with a weighted blend
of untreated areas (the donors) that tracks the treated area before the start; after the
start, the blend stands in for what would have happened without the intervention.

- :class:`SyntheticControl` with ``method="synthetic_control"`` -- classic synthetic
  control (Abadie, Diamond & Hainmueller 2010) on the outcome path: donor weights
  ``w >= 0, sum(w) = 1`` minimising ``sum_t (y_t - sum_j w_j Y_jt)^2`` over the
  pre-period. The weights solve a quadratic programme on the simplex (:func:`simplex_qp`,
  an exact primal active-set method), so they are reproducible to machine precision
  rather than to an optimiser's stopping rule.
- ``method="sdid"`` -- synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg,
  Imbens & Wager 2021, Algorithm 1): unit weights with an intercept and a ridge penalty
  ``zeta^2 T_pre ||w||^2``, ``zeta = (N_tr T_post)^(1/4) sigma`` with ``sigma`` the
  standard deviation of the donors' first differences before the start; time weights with
  an intercept and ``zeta_lambda = 1e-6 sigma``; then the weighted two-way fixed-effects
  regression with weights ``w_i lambda_t``, whose coefficient is the weighted double
  difference computed here in closed form (``tests/test_synthetic_control.py`` checks it
  against the regression).

Several treated areas are averaged into one treated series before fitting (a synthetic
"average treated area", so that one blend of donor areas can reach its level); effects are
then reported for the treated areas' total (``report="total"``: the average times the
number of treated areas) or per treated area (``report="average"``).

Inference is placebo-in-space (Abadie et al. 2010): the same estimator is refitted with
each donor in turn as the pseudo-treated area (the other donors as its donor pool, the
treated areas left out).

- ``placebo_p``: the rank of the treated area's post/pre RMSPE ratio among all areas,
  ``(1 + #{placebos with a ratio >= the treated ratio}) / (1 + #placebos)``. It needs no
  assumption about the placebo gaps' distribution, but cannot be below ``1 / (J + 1)``.
- The interval for the average post-period gap: each placebo's average post gap is
  standardised by its own pre-period RMSPE (wards differ tenfold in size and in how well a
  blend fits them, so raw gaps are not comparable); the root mean square ``s`` of those
  standardised placebo effects (about zero, so that a systematic placebo bias counts as
  uncertainty) times the treated fit's RMSPE is the standard error, and the interval is
  ``att +/- z * s * RMSPE_treated`` (a normal approximation, as the placebo variance of
  Arkhangelsky et al. 2021, Algorithm 4). With few placebos it is coarse; with fewer than
  :data:`MIN_PLACEBOS` no interval is given.

``rate_ratio_sc`` is observed / synthetic over the post period (0.85 = 15% fewer than the
synthetic area); its interval maps the gap's interval through ``obs / (obs - gap)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize

from evaluation.config import DEFAULT_LEVEL
from evaluation.errors import InputError
from evaluation.inference import distributions as dist
from evaluation.results import Estimate

_SOURCE = "<data>"
#: Fewer placebo areas than this give no placebo interval (only the rank p-value).
MIN_PLACEBOS = 5
#: SDID's time-weight regularisation relative to the noise level (Arkhangelsky et al.).
ETA_LAMBDA = 1e-6

Method = Literal["synthetic_control", "sdid"]


# --------------------------------------------------------------------------------------
# Quadratic programme on the simplex
# --------------------------------------------------------------------------------------


def _kkt_solve(P: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Minimiser of ``0.5 w'Pw - q'w`` subject to ``sum(w) = 1`` (signs not enforced).

    Least squares on the KKT system: a singular ``P`` (more donors than pre-periods) has
    many minimisers on the affine hull and this picks the one of least norm.
    """
    n = q.size
    K = np.zeros((n + 1, n + 1))
    K[:n, :n] = P
    K[:n, n] = -1.0
    K[n, :n] = 1.0
    rhs = np.append(q, 1.0)
    sol = np.linalg.lstsq(K, rhs, rcond=None)[0]
    return sol[:n]


def _slsqp_simplex(P: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The same programme by SLSQP (a fallback should the active-set method cycle)."""
    n = q.size
    scale = float(np.trace(P)) / n or 1.0
    P, q = P / scale, q / scale
    res = optimize.minimize(
        lambda w: 0.5 * w @ P @ w - q @ w,
        np.full(n, 1.0 / n),
        jac=lambda w: P @ w - q,
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(n)}],
        method="SLSQP",
        options={"maxiter": 1000, "ftol": 1e-14},
    )
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


def simplex_qp(P: np.ndarray, q: np.ndarray, *, tol: float = 1e-10) -> np.ndarray:
    """Minimise ``0.5 w'Pw - q'w`` over the simplex ``w >= 0, sum(w) = 1``.

    A primal active-set method (Nocedal & Wright 2006, Algorithm 16.3) started from equal
    weights: each step solves the equality-constrained problem on the free weights, moves
    as far towards it as the bounds allow, and frees a weight whose Lagrange multiplier is
    negative. It ends at an exact KKT point (a global minimum: ``P`` is positive
    semi-definite), so the weights do not depend on an optimiser's tolerance.

    Parameters
    ----------
    P
        Symmetric positive semi-definite ``(n, n)`` matrix (e.g. ``X'X``).
    q
        Linear term ``(n,)`` (e.g. ``X'y``).
    tol
        Tolerance on the (scaled) multipliers and on negative weights.

    Returns
    -------
    numpy.ndarray
        The weights, non-negative and summing to one.
    """
    P = np.asarray(P, dtype=float)
    q = np.asarray(q, dtype=float)
    n = q.size
    if n == 1:
        return np.ones(1)
    scale = float(np.trace(P)) / n or 1.0  # conditioning: multipliers on a unit scale
    P, q = P / scale, q / scale
    w = np.full(n, 1.0 / n)
    free = np.ones(n, dtype=bool)
    for _ in range(20 * n + 100):
        F = np.flatnonzero(free)
        target = _kkt_solve(P[np.ix_(F, F)], q[F])
        if (target >= -tol).all():
            w = np.zeros(n)
            w[F] = np.clip(target, 0.0, None)
            w /= w.sum()
            g = P @ w - q
            mu = float(g[F].mean())  # the multiplier of sum(w) = 1
            bound = np.flatnonzero(~free)
            if bound.size == 0:
                return w
            lam = g[bound] - mu
            if lam.min() >= -tol:
                return w
            free[bound[np.argmin(lam)]] = True
        else:
            step = target - w[F]
            shrink = step < 0
            ratios = np.full(F.size, np.inf)
            ratios[shrink] = w[F][shrink] / -step[shrink]
            k = int(np.argmin(ratios))
            w[F] = w[F] + min(ratios[k], 1.0) * step
            w[F[k]] = 0.0
            free[F[k]] = False
            w = np.clip(w, 0.0, None)
            w /= w.sum()
    return _slsqp_simplex(P, q)


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------


def sc_weights(target: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """Synthetic-control donor weights on the outcome path.

    Parameters
    ----------
    target
        The treated series over the pre-period, shape ``(T0,)``.
    donors
        The donors' series over the pre-period, shape ``(T0, J)``.

    Returns
    -------
    numpy.ndarray
        ``w`` (``J``,) minimising ``||target - donors @ w||^2`` on the simplex.
    """
    X = np.asarray(donors, dtype=float)
    y = np.asarray(target, dtype=float)
    return simplex_qp(X.T @ X, X.T @ y)


def noise_level(donors_pre: np.ndarray) -> float:
    """SDID's ``sigma``: standard deviation of the donors' period-to-period changes.

    ``donors_pre`` is ``(J, T0)``; all first differences are pooled (R ``synthdid``:
    ``sd(apply(Y[1:N0, 1:T0], 1, diff))``).
    """
    d = np.diff(np.asarray(donors_pre, dtype=float), axis=1).ravel()
    return float(np.std(d, ddof=1)) if d.size > 1 else 0.0


def _ridge_simplex(A: np.ndarray, b: np.ndarray, penalty: float) -> tuple[float, np.ndarray]:
    """``min_{c, w in simplex} ||c + A w - b||^2 + penalty ||w||^2``: (intercept, weights).

    The free intercept is removed by centring the rows' columns.
    """
    Ac = A - A.mean(axis=0)
    bc = b - b.mean()
    P = Ac.T @ Ac + penalty * np.eye(A.shape[1])
    w = simplex_qp(P, Ac.T @ bc)
    return float(np.mean(b - A @ w)), w


def sdid_unit_weights(
    donors_pre: np.ndarray, treated_pre: np.ndarray, zeta: float
) -> tuple[float, np.ndarray]:
    """SDID unit weights (Arkhangelsky et al. 2021, eq. 4): intercept and ``omega``.

    Minimises ``sum_t (omega_0 + sum_j omega_j Y_jt - y_t)^2 + zeta^2 T0 ||omega||^2`` over
    the pre-period, ``omega`` on the simplex. ``donors_pre`` is ``(J, T0)``.
    """
    A = np.asarray(donors_pre, dtype=float).T
    b = np.asarray(treated_pre, dtype=float)
    return _ridge_simplex(A, b, zeta**2 * A.shape[0])


def sdid_time_weights(
    donors_pre: np.ndarray, donors_post_mean: np.ndarray, zeta: float
) -> tuple[float, np.ndarray]:
    """SDID time weights (Arkhangelsky et al. 2021, eq. 5): intercept and ``lambda``.

    Minimises ``sum_j (lambda_0 + sum_t lambda_t Y_jt - mean_post Y_j)^2 + zeta^2 J
    ||lambda||^2`` over the donors, ``lambda`` on the simplex of pre-periods.
    """
    A = np.asarray(donors_pre, dtype=float)
    b = np.asarray(donors_post_mean, dtype=float)
    return _ridge_simplex(A, b, zeta**2 * A.shape[0])


def sdid_estimate(
    y: np.ndarray,
    X: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    omega: np.ndarray,
    lam: np.ndarray,
) -> float:
    """The weighted double difference that the SDID regression estimates.

    ``(mean_post y - lambda' y_pre) - sum_j omega_j (mean_post Y_j - lambda' Y_j,pre)``:
    the coefficient of the treatment in the two-way fixed-effects regression weighted by
    ``omega_j lambda_t`` (treated series weight 1, post periods ``1 / T_post``). Uniform
    ``omega`` and ``lambda`` give the plain difference-in-differences.

    Parameters
    ----------
    y
        Treated series over all periods, ``(T,)``.
    X
        Donor series, ``(T, J)``.
    pre, post
        Boolean masks of the periods before the start and those averaged after it.
    omega, lam
        Unit weights ``(J,)`` and time weights over the pre periods ``(T0,)``.
    """
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    blend = X @ omega
    return float((y[post] - blend[post]).mean() - lam @ (y[pre] - blend[pre]))


def placebo_p_value(treated_stat: float, placebo_stats: Sequence[float] | np.ndarray) -> float:
    """Rank p-value: the share of all areas (treated included) whose statistic is at least
    the treated one, ``(1 + #{placebo >= treated}) / (1 + J)``.

    Ties count against the treated area (a relative tolerance of 1e-9 absorbs rounding).
    """
    s = np.asarray(placebo_stats, dtype=float)
    s = s[~np.isnan(s)]
    tie = 1e-9 * max(abs(treated_stat), 1.0) if math.isfinite(treated_stat) else 0.0
    above = int(np.sum(s >= treated_stat - tie))
    return (1 + above) / (1 + s.size)


# --------------------------------------------------------------------------------------
# One fit
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class _Fit:
    """One synthetic control (for the treated area or a placebo), on the per-area scale."""

    weights: np.ndarray  # over the donors used
    synthetic: np.ndarray  # over all periods: the counterfactual
    gap: np.ndarray  # observed - synthetic
    att: float  # mean gap over the post periods used
    pre_rmspe: float
    post_rmspe: float
    intercept: float = 0.0
    time_weights: np.ndarray | None = None
    zeta: float | None = None
    noise: float | None = None

    @property
    def ratio(self) -> float:
        if self.pre_rmspe > 0:
            return self.post_rmspe / self.pre_rmspe
        return math.inf if self.post_rmspe > 0 else math.nan

    @property
    def standardised(self) -> float:
        if self.pre_rmspe > 0:
            return self.att / self.pre_rmspe
        return math.nan


def _fit_one(
    y: np.ndarray,
    X: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    method: Method,
    n_treated: int,
    eta_lambda: float,
) -> _Fit:
    """Fit the treated series ``y`` (T,) on donors ``X`` (T, J)."""
    if method == "synthetic_control":
        w = sc_weights(y[pre], X[pre])
        synthetic = X @ w
        extra: dict[str, Any] = {}
    else:
        Xpre = X[pre].T  # (J, T0)
        sigma = noise_level(Xpre)
        zeta = (n_treated * int(post.sum())) ** 0.25 * sigma
        omega0, w = sdid_unit_weights(Xpre, y[pre], zeta)
        _, lam = sdid_time_weights(Xpre, X[post].mean(axis=0), eta_lambda * sigma)
        # the level shift that makes SDID a double difference: the lambda-weighted
        # pre-period difference between the treated series and the blend, so that the
        # mean post-period gap is sdid_estimate(...)
        blend = X @ w
        synthetic = blend + float(lam @ (y[pre] - blend[pre]))
        extra = {"intercept": omega0, "time_weights": lam, "zeta": zeta, "noise": sigma}
    gap = y - synthetic
    return _Fit(
        weights=w,
        synthetic=synthetic,
        gap=gap,
        att=float(gap[post].mean()),
        pre_rmspe=float(np.sqrt(np.mean(gap[pre] ** 2))),
        post_rmspe=float(np.sqrt(np.mean(gap[post] ** 2))),
        **extra,
    )


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class SyntheticControlResults:
    """A synthetic control (or SDID) fit with placebo-in-space inference.

    Series are per period; ``observed`` and ``synthetic`` are on the reported scale (the
    treated areas' total when ``factor`` is their number, per area when it is 1). The
    ``placebos`` table is per area (the treated row is the treated areas' average) so that
    its RMSPEs compare like with like.
    """

    method: Method
    level: float
    treated: tuple[str, ...]
    donors: tuple[str, ...]
    periods: pd.Index
    start: Any
    pre: np.ndarray  # boolean over periods: fitted
    post: np.ndarray  # boolean over periods: averaged into the effect
    factor: float
    observed: np.ndarray
    synthetic: np.ndarray
    weights: pd.Series  # donor -> weight
    att: float
    se: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    placebo_p: float | None
    pre_rmspe: float
    post_rmspe: float
    placebos: pd.DataFrame  # area, role, pre_rmspe, post_rmspe, ratio, att, standardised
    time_weights: pd.Series | None = None
    intercept: float = 0.0
    zeta: float | None = None
    noise: float | None = None
    notes: tuple[str, ...] = ()
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def gap(self) -> np.ndarray:
        """Observed minus synthetic per period (reported scale)."""
        return self.observed - self.synthetic

    @property
    def n_placebos(self) -> int:
        return int((self.placebos["role"] == "placebo").sum()) if len(self.placebos) else 0

    @property
    def ratio(self) -> float:
        """Post/pre RMSPE ratio of the treated fit."""
        return self.post_rmspe / self.pre_rmspe if self.pre_rmspe > 0 else math.inf

    @property
    def observed_post_mean(self) -> float:
        return float(self.observed[self.post].mean())

    @property
    def synthetic_post_mean(self) -> float:
        return float(self.synthetic[self.post].mean())

    @property
    def rate_ratio(self) -> float | None:
        """Observed / synthetic over the post period (None when the synthetic is not positive)."""
        s = self.synthetic_post_mean
        return self.observed_post_mean / s if s > 0 else None

    def _rr_bound(self, gap: float | None) -> float | None:
        if gap is None:
            return None
        s = self.observed_post_mean - gap
        return self.observed_post_mean / s if s > 0 else None

    @property
    def method_words(self) -> str:
        """One line naming the estimator and the inference, for reports."""
        est = (
            "synthetic control on the pre-period outcome path (Abadie, Diamond & Hainmueller "
            "2010), weights by quadratic programming on the simplex"
            if self.method == "synthetic_control"
            else "synthetic difference-in-differences (Arkhangelsky et al. 2021): regularised "
            "unit weights, time weights, weighted two-way fixed effects"
        )
        return f"{est}; placebo-in-space inference over {self.n_placebos} donor areas"

    def estimates(self) -> list[Estimate]:
        """``att``, ``rate_ratio_sc``, ``cumulative_effect``, ``placebo_p``, ``pre_rmspe``."""
        n_post = int(self.post.sum())
        interval = (
            f"interval: estimate +/- z x the root mean square of the {self.n_placebos} "
            "placebo effects standardised by their pre-period RMSPE, x the treated RMSPE"
        )
        where = "the treated areas' total" if self.factor > 1 else "the treated area"
        out = [
            Estimate(
                name="att",
                estimate=self.att,
                se=self.se,
                ci_low=self.ci_low,
                ci_high=self.ci_high,
                p_value=self.p_value,
                scale="count_per_period",
                method=f"{self.method_words}; {interval}",
                label=f"Average monthly gap after the start, observed minus synthetic, for {where}",
                level=self.level,
            )
        ]
        if self.rate_ratio is not None:
            out.append(
                Estimate(
                    name="rate_ratio_sc",
                    estimate=self.rate_ratio,
                    ci_low=self._rr_bound(self.ci_low),
                    ci_high=self._rr_bound(self.ci_high),
                    p_value=self.p_value,
                    scale="rate_ratio",
                    method=f"{self.method_words}; observed / synthetic after the start, "
                    "interval mapped from the gap's interval",
                    label="Crimes after the start relative to the synthetic area (0.85 = 15% fewer)",
                    level=self.level,
                )
            )

        def times(v: float | None) -> float | None:
            return None if v is None else v * n_post

        out += [
            Estimate(
                name="cumulative_effect",
                estimate=self.att * n_post,
                se=times(self.se),
                ci_low=times(self.ci_low),
                ci_high=times(self.ci_high),
                p_value=self.p_value,
                scale="count",
                method=f"the average gap times the {n_post} post-period months",
                label=f"Crimes after the start relative to the synthetic area, for {where} "
                "(negative = prevented)",
                level=self.level,
            ),
            Estimate(
                name="placebo_p",
                estimate=self.placebo_p,
                scale="p_value",
                method="rank of the treated post/pre RMSPE ratio among the treated and "
                f"{self.n_placebos} placebo areas (Abadie et al. 2010)",
                label="Placebo test: share of areas with a post/pre fit ratio at least as large",
                level=self.level,
            ),
            Estimate(
                name="pre_rmspe",
                estimate=self.pre_rmspe,
                scale="count_per_period",
                method="root mean squared gap between observed and synthetic before the start",
                label=f"Pre-period fit (RMSPE) for {where}: crimes per month",
                level=self.level,
            ),
        ]
        return out

    def weights_table(self, threshold: float = 0.0) -> pd.DataFrame:
        """Donor weights above ``threshold``, largest first."""
        w = self.weights[self.weights > threshold].sort_values(ascending=False)
        return pd.DataFrame({"area": w.index, "weight": w.to_numpy()})

    def series_frame(self) -> pd.DataFrame:
        """Observed, synthetic and gap per period (reported scale)."""
        return pd.DataFrame(
            {"observed": self.observed, "synthetic": self.synthetic, "gap": self.gap},
            index=self.periods,
        )


# --------------------------------------------------------------------------------------
# The design
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticControl:
    """Synthetic control or synthetic DiD for treated areas with a common start.

    Parameters
    ----------
    method
        ``"synthetic_control"`` (Abadie et al. 2010) or ``"sdid"`` (Arkhangelsky et al.
        2021).
    outcome, unit, period
        Columns of the long panel passed to :meth:`fit`.
    level
        Interval level.
    placebos
        Refit with each donor as the pseudo-treated area (the inference); False skips it
        (no interval, no p-values).
    phase_in
        Periods after the start left out of both the fit and the effect (still shown).
    report
        ``"total"``: effects for the treated areas' sum; ``"average"``: per treated area.
    eta_lambda
        SDID time-weight regularisation relative to the noise level.
    """

    method: Method = "synthetic_control"
    outcome: str = "outcome"
    unit: str = "unit"
    period: str = "period"
    level: float = DEFAULT_LEVEL
    placebos: bool = True
    phase_in: int = 0
    report: Literal["total", "average"] = "total"
    eta_lambda: float = ETA_LAMBDA

    def _check(self) -> None:
        if self.method not in ("synthetic_control", "sdid"):
            raise InputError(_SOURCE, "method must be synthetic_control or sdid", key="method")
        if not 0.5 < self.level < 1:
            raise InputError(_SOURCE, "level must be between 0.5 and 1", key="level")
        if self.phase_in < 0:
            raise InputError(_SOURCE, "phase_in must be 0 or more", key="phase_in")
        if self.report not in ("total", "average"):
            raise InputError(_SOURCE, "report must be total or average", key="report")

    def _wide(self, data: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in (self.unit, self.period, self.outcome) if c not in data]
        if missing:
            raise InputError(_SOURCE, f"no column '{missing[0]}'", key=missing[0])
        if data[[self.unit, self.period]].isna().any().any():
            raise InputError(_SOURCE, "unit or period has missing values", key=self.unit)
        if data.duplicated([self.unit, self.period]).any():
            raise InputError(
                _SOURCE, "a unit appears more than once in a period: aggregate first", key=self.unit
            )
        y = pd.to_numeric(data[self.outcome], errors="coerce")
        if not np.isfinite(y.to_numpy(float)).all():
            raise InputError(_SOURCE, "outcome has missing or non-numeric values", key=self.outcome)
        frame = data.assign(**{self.outcome: y.astype(float)})
        wide = frame.pivot(index=self.period, columns=self.unit, values=self.outcome).sort_index()
        if wide.isna().any().any():
            unit = str(wide.columns[wide.isna().any()][0])
            raise InputError(
                _SOURCE, f"unit {unit!r} lacks some periods: the panel must be balanced", key=unit
            )
        wide.columns = wide.columns.astype(str)
        return wide

    def fit(
        self,
        data: pd.DataFrame,
        treated: Sequence[str],
        start: Any,
        donors: Sequence[str] | None = None,
    ) -> SyntheticControlResults:
        """Fit to a long panel (one row per unit and period).

        Parameters
        ----------
        data
            Columns ``unit``, ``period``, ``outcome``; balanced.
        treated
            The treated units (averaged into one treated series).
        start
            The first treated period.
        donors
            The donor pool; all other units when None.

        Raises
        ------
        InputError
            On an unknown or overlapping unit, a start without enough periods either side,
            an unbalanced panel, or fewer than two donors.
        """
        self._check()
        wide = self._wide(data)
        treated = [str(t) for t in treated]
        if not treated:
            raise InputError(_SOURCE, "no treated unit", key="treated")
        units = set(wide.columns)
        unknown = [t for t in treated if t not in units]
        if unknown:
            raise InputError(
                _SOURCE, f"treated unit {unknown[0]!r} is not in the data", key="treated"
            )
        pool = (
            [u for u in wide.columns if u not in set(treated)]
            if donors is None
            else [str(d) for d in donors]
        )
        clash = sorted(set(pool) & set(treated))
        if clash:
            raise InputError(_SOURCE, f"{clash[0]!r} is both treated and a donor", key="donors")
        unknown = [d for d in pool if d not in units]
        if unknown:
            raise InputError(_SOURCE, f"donor {unknown[0]!r} is not in the data", key="donors")
        if len(pool) < 2:
            raise InputError(_SOURCE, "at least 2 donor units are needed", key="donors")
        periods = pd.Index(wide.index)
        pre = np.asarray(periods < start)
        after = np.asarray(periods >= start)
        post = after.copy()
        post[np.flatnonzero(after)[: self.phase_in]] = False
        if pre.sum() < 2 or post.sum() < 1:
            raise InputError(
                _SOURCE,
                f"the start leaves {int(pre.sum())} period(s) before and {int(post.sum())} "
                "after (phase-in excluded): at least 2 before and 1 after are needed",
                key="start",
            )
        y = wide[treated].to_numpy(float).mean(axis=1)
        X = wide[pool].to_numpy(float)
        main = _fit_one(y, X, pre, post, self.method, len(treated), self.eta_lambda)
        table, inference, notes = self._placebos(wide, treated, pool, pre, post, main)
        factor = float(len(treated)) if self.report == "total" else 1.0
        scaled = {k: None if v is None else v * factor for k, v in inference.items()}
        time_weights = (
            pd.Series(main.time_weights, index=periods[pre], name="time_weight")
            if main.time_weights is not None
            else None
        )
        return SyntheticControlResults(
            method=self.method,
            level=self.level,
            treated=tuple(treated),
            donors=tuple(pool),
            periods=periods,
            start=start,
            pre=pre,
            post=post,
            factor=factor,
            observed=y * factor,
            synthetic=main.synthetic * factor,
            weights=pd.Series(main.weights, index=pool, name="weight"),
            att=main.att * factor,
            se=scaled["se"],
            ci_low=scaled["ci_low"],
            ci_high=scaled["ci_high"],
            p_value=inference["p_value"],
            placebo_p=inference["placebo_p"],
            pre_rmspe=main.pre_rmspe * factor,
            post_rmspe=main.post_rmspe * factor,
            placebos=table,
            time_weights=time_weights,
            intercept=main.intercept * factor,
            zeta=main.zeta,
            noise=main.noise,
            notes=tuple(notes),
            balance=_balance(wide, treated, pool, main.synthetic, pre),
        )

    def _placebos(
        self,
        wide: pd.DataFrame,
        treated: list[str],
        pool: list[str],
        pre: np.ndarray,
        post: np.ndarray,
        main: _Fit,
    ) -> tuple[pd.DataFrame, dict[str, float | None], list[str]]:
        """Refit with each donor as the pseudo-treated unit; the rank p-value and interval."""
        label = treated[0] if len(treated) == 1 else " + ".join(treated) + " (average)"
        rows = [_row(label, "treated", main)]
        none: dict[str, float | None] = dict.fromkeys(
            ("se", "ci_low", "ci_high", "p_value", "placebo_p")
        )
        notes: list[str] = []
        if not self.placebos:
            return pd.DataFrame(rows), none, notes
        if len(pool) < 3:
            notes.append("Too few donor areas for placebo tests (each placebo needs 2 donors).")
            return pd.DataFrame(rows), none, notes
        for j, area in enumerate(pool):
            others = [d for k, d in enumerate(pool) if k != j]
            fit = _fit_one(
                wide[area].to_numpy(float),
                wide[others].to_numpy(float),
                pre,
                post,
                self.method,
                1,
                self.eta_lambda,
            )
            rows.append(_row(area, "placebo", fit))
        table = pd.DataFrame(rows)
        plc = table[table["role"] == "placebo"]
        out = dict(none)
        out["placebo_p"] = placebo_p_value(main.ratio, plc["ratio"].to_numpy(float))
        t = plc["standardised"].to_numpy(float)
        t = t[np.isfinite(t)]
        if t.size < MIN_PLACEBOS or not main.pre_rmspe > 0:
            notes.append(
                f"Only {t.size} usable placebo areas: no placebo interval (at least "
                f"{MIN_PLACEBOS} are needed)."
            )
            return table, out, notes
        se = float(np.sqrt(np.mean(t**2))) * main.pre_rmspe
        z = float(dist.norm_ppf(0.5 + self.level / 2))
        out.update(
            se=se,
            ci_low=main.att - z * se,
            ci_high=main.att + z * se,
            p_value=float(2 * dist.norm_sf(abs(main.att) / se)) if se > 0 else None,
        )
        return table, out, notes


def _row(area: str, role: str, fit: _Fit) -> dict[str, Any]:
    return {
        "area": area,
        "role": role,
        "pre_rmspe": fit.pre_rmspe,
        "post_rmspe": fit.post_rmspe,
        "ratio": fit.ratio,
        "att": fit.att,
        "standardised": fit.standardised,
    }


def _trend(values: np.ndarray) -> float:
    """Log-linear trend per 12 periods (a year of months)."""
    if values.size < 3:
        return math.nan
    t = np.arange(values.size) / 12.0
    return float(np.polyfit(t, np.log(np.clip(values, 0.0, None) + 0.5), 1)[0])


def _balance(
    wide: pd.DataFrame,
    treated: list[str],
    pool: list[str],
    synthetic: np.ndarray,
    pre: np.ndarray,
) -> pd.DataFrame:
    """Pre-period level and trend, per area: treated average, synthetic, donors' average."""
    y = wide[treated].to_numpy(float).mean(axis=1)[pre]
    synth = synthetic[pre]
    donors = wide[pool].to_numpy(float)[pre].mean(axis=1)
    last = slice(-12, None)
    rows = []
    for label, f in (
        ("mean per month, whole pre-period", lambda v: float(v.mean())),
        ("mean per month, last 12 pre-period months", lambda v: float(v[last].mean())),
        ("yearly trend (log scale)", _trend),
    ):
        rows.append(
            {
                "measure": label,
                "treated": round(f(y), 4),
                "synthetic": round(f(synth), 4),
                "donor_average": round(f(donors), 4),
            }
        )
    return pd.DataFrame(rows)
