"""Difference-in-differences: 2x2, two-way fixed effects, Poisson fixed effects, event study.

Each design is a frozen spec whose ``fit(data)`` returns a frozen results object:

- :class:`DiD2x2` -- treated-group x post regression on a panel or repeated cross-sections.
- :class:`TwoWayFE` -- ``y_it = a_i + g_t + b D_it (+ X_it d)`` by the within transformation.
- :class:`PoissonFE` -- the same with a log link (PPML), reported as a rate ratio.
- :class:`EventStudy` -- leads and lags around each unit's first treated period, with a joint
  Wald test of the leads.

The within transformation absorbs unit and period effects without a dummy column per
unit. With product weights (balanced, unweighted panels) one sweep of unit then period
demeaning is exact, and that closed form is used. Otherwise the weighted two-way
projection is solved exactly rather than by alternating projections until convergence:
the unit effects are eliminated in closed form and the small system of normal equations
for the period effects (its Schur complement, ``periods x periods``) is factorised once
per weight vector. That gives the limit that alternating projections converge to, to
machine precision, at the cost of one ``units x periods^2`` matrix product; the roles swap
when there are more periods than units, and conjugate gradients take over when both
dimensions are large. The Poisson model is fitted by iteratively reweighted least squares
with that exact weighted within transformation inside every iteration (as fixest and
pyfixest do with alternating projections). The event study's dummies are sparse (one per
treated row): on a balanced, unweighted panel its partialled normal equations and CR1
scores come from unit and period sums of the dummies, with no rows x event-times matrix.

Inference: CR1 clustered by unit (or a coarser cluster), conventional OLS, the wild cluster
restricted bootstrap, or randomisation inference; :func:`choose_inference` refuses CR1 as
the headline with fewer than 10 treated clusters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import LinearOperator, cg

from evaluation.config import DEFAULT_LEVEL, DEFAULT_SEED
from evaluation.errors import InputError
from evaluation.inference import distributions as dist
from evaluation.inference.cluster import (
    MIN_TREATED_CLUSTERS_FOR_CR1,
    choose_inference,
    cluster_codes,
    cluster_sums,
    cr1_factor,
    cr1_vcov,
    fe_nested,
    iid_vcov,
    wald_test,
)
from evaluation.inference.randomization import (
    DEFAULT_MAX_ASSIGNMENTS,
    RandomizationResult,
    placebo_assignments,
    randomization_inference,
)
from evaluation.inference.wild import DEFAULT_REPS, WildBootstrapResult, wild_cluster_bootstrap
from evaluation.results import Estimate

_SOURCE = "<data>"
# Solve the period (or unit) normal equations directly up to this many levels.
_DIRECT_MAX = 3000
# Cap on observations x assignment clusters for the randomisation-inference projection.
_RI_MAX_CELLS = 60_000_000


# --------------------------------------------------------------------------------------
# Panel index
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class PanelIndex:
    """Integer codes of a panel's rows, sorted by unit then period.

    ``balanced`` means every unit is observed in every period exactly once, so row
    ``i * n_periods + t`` holds unit ``i`` in period ``t`` and arrays can be reshaped to a
    ``(n_units, n_periods)`` grid.
    """

    unit: np.ndarray
    period: np.ndarray
    n_units: int
    n_periods: int
    unit_labels: pd.Index
    period_labels: pd.Index
    balanced: bool

    @property
    def n_obs(self) -> int:
        return int(self.unit.size)

    def subset(self, keep: np.ndarray) -> PanelIndex:
        """The index of the rows in ``keep`` (boolean), with codes renumbered."""
        u_used = np.unique(self.unit[keep])
        t_used = np.unique(self.period[keep])
        u_map = np.full(self.n_units, -1, dtype=np.intp)
        u_map[u_used] = np.arange(u_used.size)
        t_map = np.full(self.n_periods, -1, dtype=np.intp)
        t_map[t_used] = np.arange(t_used.size)
        unit, period = u_map[self.unit[keep]], t_map[self.period[keep]]
        balanced = unit.size == u_used.size * t_used.size
        return PanelIndex(
            unit,
            period,
            int(u_used.size),
            int(t_used.size),
            self.unit_labels[u_used],
            self.period_labels[t_used],
            bool(balanced),
        )

    def sums(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sums of a column within units and within periods."""
        if self.balanced:
            grid = v.reshape(self.n_units, self.n_periods)
            return grid.sum(axis=1), grid.sum(axis=0)
        return (
            np.bincount(self.unit, weights=v, minlength=self.n_units),
            np.bincount(self.period, weights=v, minlength=self.n_periods),
        )

    def subtract(
        self, v: np.ndarray, unit_vals: np.ndarray, period_vals: np.ndarray, out: np.ndarray
    ) -> None:
        """``out[:] = v - unit_vals[unit] - period_vals[period]`` (out contiguous)."""
        if self.balanced:
            grid = out.reshape(self.n_units, self.n_periods)
            np.subtract(v.reshape(self.n_units, self.n_periods), unit_vals[:, None], out=grid)
            grid -= period_vals[None, :]
        else:
            np.subtract(v, unit_vals[self.unit], out=out)
            out -= period_vals[self.period]

    def weight_matrix(self, w: np.ndarray):
        """The (n_units, n_periods) matrix of weights: dense when it is small, else sparse."""
        if self.balanced:
            return w.reshape(self.n_units, self.n_periods)
        cells = self.n_units * self.n_periods
        if cells <= max(4 * self.n_obs, 1_000_000) and cells <= 50_000_000:
            key = self.unit * self.n_periods + self.period
            return np.bincount(key, weights=w, minlength=cells).reshape(
                self.n_units, self.n_periods
            )
        return sp.csr_matrix((w, (self.unit, self.period)), shape=(self.n_units, self.n_periods))


def factorize_sorted(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes 0..L-1 in sorted label order (-1 for missing), and the labels.

    Integer labels with a modest range (unit ids, years, month numbers) take an O(n)
    path; a categorical whose categories are all used is already coded; text whose equal
    values come in runs (a panel sorted by unit) is factorised one run at a time; numbers or
    times that repeat one increasing block (the periods of a sorted balanced panel) are
    coded by position in the block; anything else goes through ``pandas.factorize``.
    Every path gives ``pandas.factorize``'s answer.
    """
    if isinstance(values.dtype, pd.CategoricalDtype) and len(values.cat.categories):
        codes = values.cat.codes.to_numpy()
        n_cat = len(values.cat.categories)
        if (np.bincount(codes[codes >= 0], minlength=n_cat) > 0).all():
            # pandas.factorize keeps the categories' order: with all of them used, the
            # codes are the categorical's own
            labels = pd.CategoricalIndex(
                pd.Categorical.from_codes(np.arange(n_cat), dtype=values.dtype)
            )
            return codes.astype(np.intp), labels
    elif values.dtype == object and len(values):
        runs = factorize_runs(values.to_numpy())
        if runs is not None:  # object labels, as pandas.factorize keeps a Series' dtype
            return runs[0], pd.Index(runs[1], dtype=object)
    elif isinstance(values.dtype, np.dtype) and values.dtype.kind in "fmM" and len(values):
        tiled = _factorize_tiled(values.to_numpy())
        if tiled is not None:
            return tiled[0], pd.Index(tiled[1])
    if not (isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu" and len(values)):
        codes, labels = pd.factorize(values, sort=True)
        return codes.astype(np.intp), pd.Index(labels)
    arr = values.to_numpy()
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo <= 4 * arr.size + 1_000:
            shifted = (arr - lo) if lo else arr
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            labels = pd.Index(np.flatnonzero(present) + lo)
            if present.all():  # labels lo..hi all used: the shifted values are the codes
                return shifted.astype(np.intp, copy=False), labels
            lookup = np.cumsum(present) - 1
            return lookup[shifted].astype(np.intp, copy=False), labels
    codes, labels = pd.factorize(values, sort=True)
    return codes.astype(np.intp), pd.Index(labels)


def factorize_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``pandas.factorize(values, sort=True)`` of a 1-D object array whose equal values
    mostly come in runs (area names of a panel sorted by area), or None when they do not.

    Hashing millions of strings is the slow part of factorising them; here only the first
    value of each run is hashed, and run boundaries come from comparing neighbours (the
    names of one area are usually one string object, which compares equal to itself at
    once).
    A boundary between equal values only splits a run, which does not change the codes.
    """
    n = values.size
    if n < 2:
        return None
    head = values[: min(n, 10_000)]
    try:
        if np.count_nonzero(head[1:] != head[:-1]) > head.size // 4:
            return None  # not in runs: hashing every value is cheaper
        change = values[1:] != values[:-1]
    except (TypeError, ValueError):  # values without a plain truth value for "!="
        return None
    if change.dtype != bool:
        return None
    starts = np.flatnonzero(change)
    if starts.size > n // 4:
        return None
    starts = np.concatenate(([0], starts + 1))
    run_codes, labels = pd.factorize(values[starts], sort=True)
    codes = np.repeat(run_codes.astype(np.intp), np.diff(np.append(starts, n)))
    return codes, labels


def _factorize_tiled(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes and labels of an array that repeats one strictly increasing block (the
    periods of a balanced panel sorted by unit and period), or None when it does not.

    Missing values (NaN, NaT) compare unequal to everything, so they never pass.
    """
    n = values.size
    drop = np.flatnonzero(values[1:] <= values[:-1])  # where the block starts again
    width = int(drop[0]) + 1 if drop.size else n
    if n % width or (drop.size and drop.size != n // width - 1):
        return None
    block = values[:width]
    if not (values.reshape(-1, width) == block).all() or not (block[1:] > block[:-1]).all():
        return None
    return np.tile(np.arange(width, dtype=np.intp), n // width), block


def _take(v: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``v[order]``, where None means the rows are already in panel order."""
    return v if order is None else v[order]


def _positions(order: np.ndarray | None, n: int) -> np.ndarray:
    return np.arange(n) if order is None else order


def index_panel(data: pd.DataFrame, unit: str, period: str) -> tuple[PanelIndex, np.ndarray | None]:
    """Index a long panel: returns the index and the row order (positions into ``data``).

    The order is None when the rows are already sorted by unit and period.

    Raises
    ------
    InputError
        On missing unit or period labels, or a unit observed twice in one period.
    """
    _require_columns(data, [unit, period])
    u, u_labels = factorize_sorted(data[unit])
    t, t_labels = factorize_sorted(data[period])
    if (u < 0).any() or (t < 0).any():
        col = unit if (u < 0).any() else period
        raise InputError(_SOURCE, f"column '{col}' has missing values", key=col)
    nu, nt = len(u_labels), len(t_labels)
    key = u * nt + t
    n = key.size
    is_sorted = n <= 1 or bool(np.all(key[1:] > key[:-1]))  # strictly: no duplicates
    if is_sorted:
        dup = False
    elif nu * nt <= 50_000_000:
        dup = np.bincount(key, minlength=nu * nt).max(initial=0) > 1
    else:
        dup = pd.Series(key).duplicated().any()
    if dup:
        raise InputError(
            _SOURCE,
            f"some '{unit}' appear more than once in a '{period}': aggregate to one row per "
            "unit and period first",
            key=unit,
        )
    balanced = n == nu * nt
    order: np.ndarray | None
    if is_sorted:
        order = None
    elif balanced:
        order = np.empty(n, dtype=np.intp)
        order[key] = np.arange(n)
    else:
        order = np.argsort(key, kind="stable")
    panel = PanelIndex(
        _take(u, order),
        _take(t, order),
        nu,
        nt,
        pd.Index(u_labels),
        pd.Index(t_labels),
        bool(balanced),
    )
    return panel, order


def drop_singletons(panel: PanelIndex) -> np.ndarray:
    """Boolean mask of rows to keep after iteratively dropping units or periods seen once.

    Singletons are fitted perfectly by their own effect and carry no information about the
    slope; dropping them (as reghdfe, fixest and pyfixest do) keeps ``N`` honest in the
    small-sample factor.
    """
    keep = np.ones(panel.n_obs, dtype=bool)
    while True:
        cu = np.bincount(panel.unit[keep], minlength=panel.n_units)
        ct = np.bincount(panel.period[keep], minlength=panel.n_periods)
        bad = keep & ((cu[panel.unit] == 1) | (ct[panel.period] == 1))
        if not bad.any():
            return keep
        keep &= ~bad


# --------------------------------------------------------------------------------------
# The within transformation
# --------------------------------------------------------------------------------------


class WithinTransform:
    """Exact (weighted) projection off unit and period effects.

    Parameters
    ----------
    panel
        The panel index (rows sorted by unit, then period).
    weights
        Observation weights, or None for equal weights.
    """

    def __init__(
        self,
        panel: PanelIndex,
        weights: np.ndarray | None = None,
        n_components: int | None = None,
    ) -> None:
        self.panel = panel
        self.n_components = n_components
        self.closed_form = weights is None and panel.balanced
        if self.closed_form:
            return
        w = np.ones(panel.n_obs) if weights is None else np.asarray(weights, dtype=float)
        self.w = w
        B = panel.weight_matrix(w)
        # Eliminate the larger dimension in closed form; solve for the smaller one.
        self.solve_periods = panel.n_periods <= panel.n_units
        Ba = B if self.solve_periods else B.T
        if sp.issparse(Ba):
            Ba = sp.csr_matrix(Ba)
            ra = np.asarray(Ba.sum(axis=1)).ravel()
            cb = np.asarray(Ba.sum(axis=0)).ravel()
        else:
            ra, cb = Ba.sum(axis=1), Ba.sum(axis=0)
        self.Ba = Ba
        self.inv_ra = np.divide(1.0, ra, out=np.zeros_like(ra), where=ra > 0)
        self.cb = cb
        self._prepare_solver()

    def _schur(self) -> np.ndarray:
        Ba, s = self.Ba, np.sqrt(self.inv_ra)
        if sp.issparse(Ba):
            Bs = sp.diags(s) @ Ba
            gram = (Bs.T @ Bs).toarray()
        else:
            Bs = Ba * s[:, None]
            gram = Bs.T @ Bs
        S = -gram
        S[np.diag_indices_from(S)] += self.cb
        return S

    def _prepare_solver(self) -> None:
        nb = self.cb.size
        active = np.flatnonzero(self.cb > 0)
        self.active = active
        self.mode = "direct" if nb <= _DIRECT_MAX else "cg"
        if self.mode == "cg":
            return
        S = self._schur()[np.ix_(active, active)]
        if self.n_components is None:
            self.n_components = n_components(self.panel)
        if self.n_components == 1 and active.size > 0:
            # Connected: the null space is the constant; pin the last effect at zero.
            try:
                self.chol = sla.cho_factor(S[:-1, :-1], check_finite=False)
                self.mode = "chol"
                return
            except np.linalg.LinAlgError:
                pass
        self.pinv = sla.pinvh(S)
        self.mode = "pinv"

    def _solve(self, rhs: np.ndarray) -> np.ndarray:
        nb = self.cb.size
        out = np.zeros((nb, rhs.shape[1]))
        act = self.active
        if self.mode == "chol":
            out[act[:-1]] = sla.cho_solve(self.chol, rhs[act[:-1]], check_finite=False)
        elif self.mode == "pinv":
            out[act] = self.pinv @ rhs[act]
        else:
            out = self._solve_cg(rhs)
        return out

    def _solve_cg(self, rhs: np.ndarray) -> np.ndarray:
        Ba, inv_ra, cb = self.Ba, self.inv_ra, self.cb
        nb = cb.size
        op = LinearOperator((nb, nb), matvec=lambda v: cb * v - Ba.T @ (inv_ra * (Ba @ v)))
        inv_cb = np.divide(1.0, cb, out=np.zeros_like(cb), where=cb > 0)
        prec = LinearOperator((nb, nb), matvec=lambda v: inv_cb * v)
        out = np.zeros((nb, rhs.shape[1]))
        for j in range(rhs.shape[1]):
            scale = max(float(np.abs(rhs[:, j]).max()), 1e-300)
            sol, info = cg(op, rhs[:, j] / scale, rtol=1e-13, atol=0.0, M=prec, maxiter=20_000)
            if info != 0:
                raise RuntimeError("the within transformation did not converge")
            out[:, j] = sol * scale
        return out

    def __call__(self, V: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Residuals of the columns of V after projecting off both sets of effects.

        ``V`` is an (n, k) array (Fortran order avoids strided reads) or a list of 1-D
        columns; the result is a Fortran-ordered (n, k) array (1-D for a 1-D input).
        """
        if isinstance(V, np.ndarray) and V.ndim == 1:
            return self([V])[:, 0]
        if isinstance(V, np.ndarray):
            cols = [V[:, j] for j in range(V.shape[1])]
        else:
            cols = [c for part in V for c in (part.T if part.ndim == 2 else [part])]
        cols = [np.asarray(c, dtype=float) for c in cols]
        p, k = self.panel, len(cols)
        out = np.empty((p.n_obs, k), order="F")
        if self.closed_form:
            for j, v in enumerate(cols):
                grid = v.reshape(p.n_units, p.n_periods)
                rows, colm = grid.mean(axis=1), grid.mean(axis=0)
                p.subtract(v, rows, colm - rows.mean(), out[:, j])
            return out
        su = np.empty((p.n_units, k))
        st = np.empty((p.n_periods, k))
        for j, v in enumerate(cols):
            su[:, j], st[:, j] = p.sums(v * self.w)
        sa, sb = (su, st) if self.solve_periods else (st, su)
        rhs = sb - self.Ba.T @ (self.inv_ra[:, None] * sa)
        gb = self._solve(rhs)
        ga = self.inv_ra[:, None] * (sa - self.Ba @ gb)
        au, gt = (ga, gb) if self.solve_periods else (gb, ga)
        for j, v in enumerate(cols):
            p.subtract(v, au[:, j], gt[:, j], out[:, j])
        return out


def n_components(panel: PanelIndex) -> int:
    """Connected components of the unit-period graph (1 for any balanced panel).

    With more than one, unit and period effects are identified only within components and
    the normal equations have extra null directions (handled by a pseudo-inverse).
    """
    if panel.balanced:
        return 1
    g = sp.csr_matrix(
        (np.ones(panel.n_obs), (panel.unit, panel.period)), shape=(panel.n_units, panel.n_periods)
    )
    return int(connected_components(sp.bmat([[None, g], [g.T, None]]), directed=False)[0])


def _fe_params(
    panel: PanelIndex, codes: np.ndarray, n_regressors: int, unit_clusters: bool = False
) -> int:
    """``K`` of the CR1 factor: regressors plus absorbed effects not nested in clusters.

    Mirrors fixest's ``fixef.K = "nested"`` (pyfixest's default): the two sets of effects
    contribute ``n_units + n_periods - 1`` parameters, less those of a set nested in the
    clusters, plus one for each nested set.
    """
    k = n_regressors + panel.n_units + panel.n_periods - 1
    if unit_clusters or fe_nested(panel.unit, codes):
        k -= panel.n_units - 1
    # With unit clusters, periods are nested only if each holds a single unit.
    period_nested = (
        panel.n_obs == panel.n_periods if unit_clusters else fe_nested(panel.period, codes)
    )
    if period_nested:
        k -= panel.n_periods - 1
    return k


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _require_columns(data: pd.DataFrame, cols: Sequence[str | None]) -> None:
    if not isinstance(data, pd.DataFrame):
        raise InputError(_SOURCE, "expected a pandas DataFrame")
    for c in cols:
        if c is not None and c not in data.columns:
            raise InputError(_SOURCE, f"column '{c}' is missing", key=c)


def _numeric(data: pd.DataFrame, col: str, order: np.ndarray | None = None) -> np.ndarray:
    s = data[col]
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        raise InputError(_SOURCE, f"column '{col}' must be numeric", key=col)
    v = _take(s.to_numpy(dtype=float, na_value=np.nan), order)
    if not np.isfinite(v).all():
        raise InputError(
            _SOURCE, f"column '{col}' has {int((~np.isfinite(v)).sum())} missing values", key=col
        )
    return v


def _binary(v: np.ndarray, col: str) -> np.ndarray:
    if not np.isin(v, (0.0, 1.0)).all():
        raise InputError(_SOURCE, f"column '{col}' must be 0/1", key=col)
    return v


def _weights(data: pd.DataFrame, col: str | None, order: np.ndarray | None) -> np.ndarray | None:
    if col is None:
        return None
    w = _numeric(data, col, order)
    if (w <= 0).any():
        raise InputError(_SOURCE, f"column '{col}' must be positive weights", key=col)
    return w


def _clusters(
    data: pd.DataFrame, col: str | None, default: np.ndarray | None
) -> tuple[np.ndarray, int]:
    if col is None:
        if default is None:
            return np.arange(len(data)), len(data)  # each row its own cluster: HC1
        return cluster_codes(default)
    _require_columns(data, [col])
    vals = data[col].to_numpy()
    if pd.isna(vals).any():
        raise InputError(_SOURCE, f"column '{col}' has missing values", key=col)
    return cluster_codes(vals)


def _drop_collinear(
    X: np.ndarray,
    names: list[str],
    keep_first: int = 1,
    tol: float = 1e-9,
    gram: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str], list[str], list[int]]:
    """Drop columns that are (numerically) linear combinations of earlier ones.

    A sequential Cholesky on ``X'X``: a column whose residual sum of squares after the
    kept earlier columns is below ``tol`` times its own is dropped (as pyfixest does).
    """
    gram = X.T @ X if gram is None else gram
    kept, dropped = _collinear_gram(gram, names, keep_first, tol)
    X = X if len(kept) == X.shape[1] else X[:, kept]
    return X, [names[j] for j in kept], dropped, kept


def _collinear_gram(
    gram: np.ndarray, names: list[str], keep_first: int = 1, tol: float = 1e-9
) -> tuple[list[int], list[str]]:
    """The columns :func:`_drop_collinear` keeps (indices) and drops (names), from ``X'X``."""
    kept: list[int] = []
    dropped: list[str] = []
    for j in range(gram.shape[0]):
        if gram[j, j] <= 0:
            dropped.append(names[j])
            continue
        if kept:
            g = gram[np.ix_(kept, kept)]
            b = gram[kept, j]
            resid = gram[j, j] - b @ np.linalg.solve(g, b)
        else:
            resid = gram[j, j]
        if resid <= tol * gram[j, j]:
            dropped.append(names[j])
        else:
            kept.append(j)
    if any(names.index(d) < keep_first for d in dropped):
        raise InputError(
            _SOURCE,
            f"'{dropped[0]}' is collinear with the fixed effects or other regressors: "
            "the treatment needs variation within units over time",
        )
    return kept, dropped


def _residual(y: np.ndarray, X: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``y - X beta``, column by column (faster than a matrix product for few columns)."""
    if X.shape[1] > 8:
        return y - X @ beta
    out = X[:, 0] * -beta[0] if X.shape[1] else np.zeros_like(y)
    for j in range(1, X.shape[1]):
        out -= beta[j] * X[:, j]
    out += y
    return out


def _scores(pdat: _PanelData, X: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Cluster scores ``X_g' e_g``; by reshaping when clusters are units of a balanced panel."""
    p = pdat.panel
    if pdat.unit_clusters and p.balanced:
        return np.column_stack(
            [
                (X[:, j] * resid).reshape(p.n_units, p.n_periods).sum(axis=1)
                for j in range(X.shape[1])
            ]
        )
    return cluster_sums(X * resid[:, None], pdat.codes, pdat.n_clusters)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class _Fit:
    """A fitted linear (or linearised) model on transformed data."""

    beta: np.ndarray
    names: list[str]
    bread: np.ndarray
    Xs: np.ndarray  # transformed design times sqrt(weights)
    ys: np.ndarray
    resid: np.ndarray  # on the scale of Xs
    n_params: int  # K for small-sample factors


def _wls(X: np.ndarray, y: np.ndarray, w: np.ndarray | None, names, n_params_extra, keep_first=1):
    sw = None if w is None else np.sqrt(w)
    Xs = X if sw is None else X * sw[:, None]
    ys = y if sw is None else y * sw
    gram = Xs.T @ Xs
    Xs, names, dropped, kept = _drop_collinear(Xs, list(names), keep_first, gram=gram)
    bread = np.linalg.inv(gram[np.ix_(kept, kept)])
    beta = bread @ (Xs.T @ ys)
    resid = _residual(ys, Xs, beta)
    fit = _Fit(beta, names, bread, Xs, ys, resid, Xs.shape[1] + n_params_extra)
    return fit, dropped


@dataclass(frozen=True)
class Interval:
    """A coefficient's standard error, interval and p-value under one inference method."""

    se: float  # CR1 (or conventional) standard error of the coefficient
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str


def _t_interval(b: float, se: float, df: float | None, level: float, method: str) -> Interval:
    q = 0.5 + level / 2
    if df is None:
        crit = float(dist.norm_ppf(q))
        p = float(2 * dist.norm_sf(abs(b / se))) if se > 0 else float("nan")
    else:
        crit = float(dist.t_ppf(q, df))
        p = float(2 * dist.t_sf(abs(b / se), df)) if se > 0 else float("nan")
    return Interval(se, b - crit * se, b + crit * se, p, method)


def _treated_clusters(D: np.ndarray, codes: np.ndarray, n_clusters: int) -> int:
    return int((np.bincount(codes[D != 0], minlength=n_clusters) > 0).sum())


def _stack(*cols: np.ndarray, n: int) -> np.ndarray:
    """Columns (1-D or 2-D arrays) side by side in a Fortran-ordered (n, k) array."""
    parts = [c[:, None] if c.ndim == 1 else c for c in cols]
    out = np.empty((n, sum(p.shape[1] for p in parts)), order="F")
    j = 0
    for part in parts:
        out[:, j : j + part.shape[1]] = part
        j += part.shape[1]
    return out


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class DiDResults:
    """One difference-in-differences effect with its uncertainty.

    ``estimate``, ``ci_low`` and ``ci_high`` are on ``scale`` (a rate ratio for the Poisson
    model, the outcome's units otherwise); ``coef`` and ``se`` are on the fitted scale (log
    for the Poisson model). The interval and p-value are those of ``inference``; the CR1 (or
    conventional) ones are always in ``cr1`` for comparison, and ``wild`` /
    ``randomization`` hold those results when they were computed.
    """

    design: str
    estimate: float
    coef: float
    se: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    level: float
    scale: str
    inference: str
    inference_reason: str
    method: str
    n_obs: int
    n_units: int | None
    n_periods: int | None
    n_clusters: int
    n_treated_clusters: int
    cr1: Interval
    coefficients: pd.DataFrame
    wild: WildBootstrapResult | None = None
    randomization: RandomizationResult | None = None
    notes: tuple[str, ...] = ()
    diagnostics: dict = field(default_factory=dict)

    def estimates(self) -> list[Estimate]:
        """The headline ``att`` as an :class:`~evaluation.results.Estimate`."""
        label = (
            "Rate ratio: treated areas after the start relative to their counterfactual"
            if self.scale == "rate_ratio"
            else "Average effect on the treated after the start"
        )
        return [
            Estimate(
                name="att",
                estimate=self.estimate,
                se=self.se,
                ci_low=self.ci_low,
                ci_high=self.ci_high,
                p_value=self.p_value,
                scale=self.scale,  # type: ignore[arg-type]
                method=self.method,
                label=label,
                level=self.level,
            )
        ]


#: Scales a linear (additive) effect can be reported on.
LINEAR_SCALES = ("count", "level", "rate", "proportion")


def check_linear_scale(scale: str) -> str:
    """Validate the reporting scale of an additive effect."""
    if scale not in LINEAR_SCALES:
        raise InputError(_SOURCE, f"scale must be one of {', '.join(LINEAR_SCALES)}", key="scale")
    return scale


def _select_inference(
    requested: str,
    n_treated: int,
    allowed: Sequence[str],
) -> tuple[str, str]:
    if requested not in ("auto", "cr1", "wild", "randomization", "conventional"):
        raise InputError(
            _SOURCE,
            "inference must be one of auto, cr1, wild, randomization, conventional",
            key="inference",
        )
    method, reason = choose_inference(n_treated, requested)
    if method not in allowed:
        raise InputError(
            _SOURCE, f"inference '{method}' is not available for this design", key="inference"
        )
    return method, reason


def _headline(
    fit: _Fit,
    spec: DiD2x2 | TwoWayFE | PoissonFE,
    *,
    method: str,
    cr1: Interval,
    codes: np.ndarray,
    n_clusters: int,
    ri: RandomizationResult | None = None,
) -> tuple[Interval, WildBootstrapResult | None]:
    """The interval reported as the headline for the treatment effect (the first
    coefficient), and the bootstrap result if one was run; ``spec`` gives the level, the
    replications and the seed."""
    if method == "wild":
        wb = wild_cluster_bootstrap(
            fit.Xs,
            fit.ys,
            codes,
            n_clusters,
            0,
            reps=spec.reps,
            seed=spec.seed,
            level=spec.level,
            n_params=fit.n_params,
        )
        return Interval(cr1.se, wb.ci_low, wb.ci_high, wb.p_value, wb.method), wb
    if method == "randomization":
        assert ri is not None
        return Interval(cr1.se, ri.ci_low, ri.ci_high, ri.p_value, ri.method), None
    return cr1, None


def _coef_table(fit: _Fit, vcov: np.ndarray) -> pd.DataFrame:
    se = np.sqrt(np.diag(vcov))
    return pd.DataFrame({"term": fit.names, "coef": fit.beta, "se": se})


# --------------------------------------------------------------------------------------
# 2x2
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiD2x2:
    """The canonical 2x2 difference-in-differences regression.

    ``y = b0 + b1 treated + b2 post + b3 treated x post (+ covariates)``; ``b3`` is the
    effect. Works on a panel (give ``unit``: errors are clustered by unit) or on repeated
    cross-sections (no ``unit``: each row is its own cluster unless ``cluster`` is given).

    Parameters
    ----------
    outcome, treated, post
        Outcome column and 0/1 columns for the treated group and the post period.
    unit
        Unit column of a panel (the default cluster).
    cluster
        Cluster column (e.g. area); overrides ``unit`` for clustering.
    covariates, weights
        Extra regressors; analytic weights.
    inference
        ``"auto"``, ``"cr1"``, ``"conventional"`` (homoskedastic OLS standard errors),
        ``"wild"`` or ``"randomization"``.
    scale
        What the outcome measures (``"count"``, ``"level"``, ``"rate"``,
        ``"proportion"``): the scale of the reported estimate.
    """

    outcome: str = "outcome"
    treated: str = "treated"
    post: str = "post"
    unit: str | None = None
    cluster: str | None = None
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    inference: str = "auto"
    scale: str = "count"
    level: float = DEFAULT_LEVEL
    reps: int = DEFAULT_REPS
    seed: int = DEFAULT_SEED
    max_assignments: int = DEFAULT_MAX_ASSIGNMENTS

    def fit(self, data: pd.DataFrame) -> DiDResults:
        """Estimate the effect on ``data``."""
        check_linear_scale(self.scale)
        cols = [self.outcome, self.treated, self.post, self.unit, self.weights, *self.covariates]
        _require_columns(data, cols)
        y = _numeric(data, self.outcome)
        g = _binary(_numeric(data, self.treated), self.treated)
        post = _binary(_numeric(data, self.post), self.post)
        w = _weights(data, self.weights, None)
        covs = [_numeric(data, c) for c in self.covariates]
        D = g * post
        X = np.column_stack([D, np.ones_like(y), g, post, *covs])
        names = [f"{self.treated}:{self.post}", "const", self.treated, self.post, *self.covariates]
        for arr, col in ((g, self.treated), (post, self.post)):
            if arr.min() == arr.max():
                raise InputError(_SOURCE, f"column '{col}' has no variation", key=col)
        default = data[self.unit].to_numpy() if self.unit is not None else None
        codes, G = _clusters(data, self.cluster, default)
        n_treated = _treated_clusters(D, codes, G)
        method, reason = _select_inference(
            self.inference, n_treated, ("cr1", "wild", "randomization", "conventional")
        )
        fit, dropped = _wls(X, y, w, names, 0)
        if method == "conventional":
            vcov = iid_vcov(fit.Xs, fit.resid, bread=fit.bread)
            df = fit.Xs.shape[0] - fit.Xs.shape[1]
            base = _t_interval(
                fit.beta[0], math.sqrt(vcov[0, 0]), df, self.level, "conventional OLS"
            )
        else:
            vcov = cr1_vcov(fit.Xs, fit.resid, codes, G, bread=fit.bread)
            base = _t_interval(
                fit.beta[0], math.sqrt(vcov[0, 0]), G - 1, self.level, "CR1 cluster-robust"
            )
        ri = None
        if method == "randomization":
            if self.covariates:
                raise InputError(
                    _SOURCE,
                    "randomisation inference for the 2x2 design does not take covariates; "
                    "use TwoWayFE",
                    key="inference",
                )
            ri = _ri_2x2(y, g, post, w, codes, G, self)
        head, wb = _headline(fit, self, method=method, cr1=base, codes=codes, n_clusters=G, ri=ri)
        notes = tuple(f"dropped collinear term '{d}'" for d in dropped)
        units = int(pd.Series(default).nunique()) if default is not None else None
        return DiDResults(
            design="did_2x2",
            estimate=float(fit.beta[0]),
            coef=float(fit.beta[0]),
            se=float(base.se),
            ci_low=head.ci_low,
            ci_high=head.ci_high,
            p_value=head.p_value,
            level=self.level,
            scale=self.scale,
            inference=method,
            inference_reason=reason,
            method=f"2x2 difference-in-differences (OLS); {head.method}",
            n_obs=int(y.size),
            n_units=units,
            n_periods=2,
            n_clusters=G,
            n_treated_clusters=n_treated,
            cr1=base,
            coefficients=_coef_table(fit, vcov),
            wild=wb,
            randomization=ri,
            notes=notes,
        )


def _ri_2x2(y, g, post, w, codes, G, spec: DiD2x2) -> RandomizationResult:
    """Placebo 2x2 estimates from cluster-level cell sums (the 2x2 is saturated)."""
    w = np.ones_like(y) if w is None else w
    by = pd.DataFrame({"c": codes, "g": g}).groupby("c")["g"].agg(["min", "max"])
    if (by["min"] != by["max"]).any():
        raise InputError(
            _SOURCE,
            "randomisation inference assigns treatment by cluster, but some clusters mix "
            "treated and untreated rows",
            key="cluster",
        )
    sums = {}
    for p in (0, 1):
        m = post == p
        sums[p] = (
            np.bincount(codes[m], weights=(w * y)[m], minlength=G),
            np.bincount(codes[m], weights=w[m], minlength=G),
        )
    treated_cl = np.flatnonzero(by["max"].reindex(range(G)).to_numpy() > 0)
    A, exhaustive = placebo_assignments(
        G, treated_cl, max_assignments=spec.max_assignments, seed=spec.seed
    )
    Af = A.astype(float)
    Cf = 1.0 - Af

    def did(S1, N1, S0, N0):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (Af @ S1 / (Af @ N1) - Af @ S0 / (Af @ N0)) - (
                Cf @ S1 / (Cf @ N1) - Cf @ S0 / (Cf @ N0)
            )

    e = did(sums[1][0], sums[1][1], sums[0][0], sums[0][1])
    d_post = np.zeros(G)
    d_post[treated_cl] = sums[1][1][treated_cl]  # the actual D summed in post cells
    f = did(d_post, sums[1][1], np.zeros(G), sums[0][1])
    ok = np.isfinite(e) & np.isfinite(f)
    return randomization_inference(
        e[ok], f[ok], level=spec.level, exhaustive=exhaustive and ok.all(), seed=spec.seed
    )


# --------------------------------------------------------------------------------------
# Two-way fixed effects (linear)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class _PanelData:
    panel: PanelIndex
    y: np.ndarray
    D: np.ndarray
    covs: np.ndarray  # (n, p)
    w: np.ndarray | None
    codes: np.ndarray
    n_clusters: int
    order: np.ndarray | None  # rows of the original frame in panel order (None: as is)
    notes: tuple[str, ...]
    unit_clusters: bool  # clustered by unit (codes are the unit codes)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class _PanelArrays:
    """A panel's validated columns in unit-period order, before any rows are dropped."""

    panel: PanelIndex
    order: np.ndarray | None
    y: np.ndarray
    D: np.ndarray
    covs: np.ndarray
    w: np.ndarray | None
    cl: np.ndarray | None  # cluster labels (None: cluster by unit)
    cluster_key: str  # the column an error about too few clusters names


def _panel_arrays(
    data: pd.DataFrame, spec: TwoWayFE | PoissonFE | EventStudy, treat: str | None = None
) -> _PanelArrays:
    """Index the panel and read its columns in unit-period order.

    ``spec`` is a design (:class:`TwoWayFE`, :class:`PoissonFE`, :class:`EventStudy`): its
    ``outcome``, ``unit``, ``period``, ``covariates``, ``weights`` and ``cluster`` name the
    columns; ``treat`` overrides its treatment column.
    """
    outcome, unit, period = spec.outcome, spec.unit, spec.period
    covariates, weights, cluster = spec.covariates, spec.weights, spec.cluster
    treat = spec.treat if treat is None else treat
    _require_columns(data, [outcome, treat, unit, period, weights, cluster, *covariates])
    panel, order = index_panel(data, unit, period)
    y = _numeric(data, outcome, order)
    D = _numeric(data, treat, order)
    covs = (
        _stack(*[_numeric(data, c, order) for c in covariates], n=y.size)
        if covariates
        else np.empty((y.size, 0))
    )
    w = _weights(data, weights, order)
    cl = _take(data[cluster].to_numpy(), order) if cluster is not None else None
    if cl is not None and pd.isna(cl).any():
        raise InputError(_SOURCE, f"column '{cluster}' has missing values", key=cluster)
    return _PanelArrays(panel, order, y, D, covs, w, cl, cluster or unit)


def _select_rows(
    arrays: _PanelArrays,
    *,
    singletons: bool = True,
    keep: np.ndarray | None = None,
    drop_zero_groups: bool = False,
) -> tuple[_PanelData, np.ndarray]:
    """The panel after the requested row drops, and the kept rows (boolean, panel order).

    ``keep`` is in panel order. The same indexed arrays can be selected from more than
    once (the event study's two passes index the panel once).
    """
    panel, order = arrays.panel, arrays.order
    y, D, covs, w, cl = arrays.y, arrays.D, arrays.covs, arrays.w, arrays.cl
    mask = np.ones(y.size, dtype=bool) if keep is None else keep.copy()
    notes: list[str] = []
    if drop_zero_groups:
        # Poisson effects of units or periods with no events are -infinity: drop them.
        tu = np.bincount(panel.unit[mask], weights=y[mask], minlength=panel.n_units)
        tt = np.bincount(panel.period[mask], weights=y[mask], minlength=panel.n_periods)
        zero = mask & ((tu[panel.unit] <= 0) | (tt[panel.period] <= 0))
        if zero.any():
            notes.append(f"dropped {int(zero.sum())} rows of units or periods with no events")
            mask &= ~zero
    if singletons and not (
        panel.balanced and mask.all() and min(panel.n_units, panel.n_periods) > 1
    ):
        sub = panel if mask.all() else panel.subset(mask)
        k2 = drop_singletons(sub)
        if not k2.all():
            notes.append(f"dropped {int((~k2).sum())} singleton observations")
            idx = np.flatnonzero(mask)
            mask = np.zeros_like(mask)
            mask[idx[k2]] = True
    if not mask.all():
        panel = panel.subset(mask)
        y, D, covs = y[mask], D[mask], covs[mask]
        order = _positions(order, mask.size)[mask]
        w = None if w is None else w[mask]
        cl = None if cl is None else cl[mask]
    if cl is None:
        codes, G = panel.unit, panel.n_units
    else:
        codes, G = cluster_codes(cl)
    if G < 2:
        raise InputError(_SOURCE, "need at least two clusters", key=arrays.cluster_key)
    pdat = _PanelData(panel, y, D, covs, w, codes, G, order, tuple(notes), cl is None)
    return pdat, mask


def _panel_data(
    data: pd.DataFrame, spec: TwoWayFE | PoissonFE | EventStudy, *, drop_zero_groups: bool = False
) -> _PanelData:
    """Validated panel arrays of ``spec``'s columns in unit-period order, singletons (and,
    with ``drop_zero_groups``, units and periods without events) dropped."""
    return _select_rows(_panel_arrays(data, spec), drop_zero_groups=drop_zero_groups)[0]


@dataclass(frozen=True)
class TwoWayFE:
    """Two-way fixed-effects DiD ``y_it = a_i + g_t + b D_it (+ X_it d) + e_it``.

    Unit and period effects are absorbed by the within transformation (see module notes).
    Errors are clustered by unit unless ``cluster`` names a coarser column. With staggered
    adoption and effects that change over time, the TWFE coefficient is a badly weighted
    average (Goodman-Bacon 2021): use :class:`~evaluation.designs.staggered.CallawaySantAnna`.

    Parameters
    ----------
    outcome, treat, unit, period
        Columns: outcome, 0/1 (or any numeric) treatment indicator ``D_it``, unit, period.
    covariates, weights, cluster
        Time-varying controls, analytic weights, cluster column.
    inference
        ``"auto"``, ``"cr1"``, ``"conventional"``, ``"wild"`` or ``"randomization"``
        (randomisation needs a common start date).
    scale
        What the outcome measures (``"count"``, ``"level"``, ``"rate"``,
        ``"proportion"``): the scale of the reported estimate.
    """

    outcome: str = "outcome"
    treat: str = "treat"
    unit: str = "unit"
    period: str = "period"
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    inference: str = "auto"
    scale: str = "count"
    level: float = DEFAULT_LEVEL
    reps: int = DEFAULT_REPS
    seed: int = DEFAULT_SEED
    max_assignments: int = DEFAULT_MAX_ASSIGNMENTS

    def fit(self, data: pd.DataFrame) -> DiDResults:
        """Estimate the effect on ``data`` (long format, one row per unit and period)."""
        check_linear_scale(self.scale)
        pdat = _panel_data(data, self)
        p = pdat.panel
        n_treated = _treated_clusters(pdat.D, pdat.codes, pdat.n_clusters)
        method, reason = _select_inference(
            self.inference, n_treated, ("cr1", "wild", "randomization", "conventional")
        )
        within = WithinTransform(p, pdat.w)
        V = within([pdat.y, pdat.D, pdat.covs])
        names = [self.treat, *self.covariates]
        fe_k = _fe_params(p, pdat.codes, 0, pdat.unit_clusters)
        fit, dropped = _wls(V[:, 1:], V[:, 0], pdat.w, names, fe_k)
        G = pdat.n_clusters
        if method == "conventional":
            k_all = fit.Xs.shape[1] + p.n_units + p.n_periods - 1
            vcov = iid_vcov(fit.Xs, fit.resid, n_params=k_all, bread=fit.bread)
            base = _t_interval(
                fit.beta[0], math.sqrt(vcov[0, 0]), p.n_obs - k_all, self.level, "conventional OLS"
            )
        else:
            vcov = cr1_vcov(
                fit.Xs,
                fit.resid,
                pdat.codes,
                G,
                n_params=fit.n_params,
                bread=fit.bread,
                scores=_scores(pdat, fit.Xs, fit.resid),
            )
            base = _t_interval(
                fit.beta[0], math.sqrt(vcov[0, 0]), G - 1, self.level, "CR1 cluster-robust"
            )
        ri = None
        if method == "randomization":
            ri = _ri_twfe(pdat, within, self)
        head, wb = _headline(
            fit, self, method=method, cr1=base, codes=pdat.codes, n_clusters=G, ri=ri
        )
        notes = pdat.notes + tuple(f"dropped collinear term '{d}'" for d in dropped)
        return DiDResults(
            design="twfe",
            estimate=float(fit.beta[0]),
            coef=float(fit.beta[0]),
            se=float(base.se),
            ci_low=head.ci_low,
            ci_high=head.ci_high,
            p_value=head.p_value,
            level=self.level,
            scale=self.scale,
            inference=method,
            inference_reason=reason,
            method=f"two-way fixed effects DiD (within transformation); {head.method}",
            n_obs=p.n_obs,
            n_units=p.n_units,
            n_periods=p.n_periods,
            n_clusters=G,
            n_treated_clusters=n_treated,
            cr1=base,
            coefficients=_coef_table(fit, vcov),
            wild=wb,
            randomization=ri,
            notes=notes,
        )


def _common_timing(pdat: _PanelData) -> tuple[np.ndarray, np.ndarray]:
    """Treated units (bool per unit) and post periods (bool per period) of a D = T x P design."""
    p = pdat.panel
    Dpos = pdat.D != 0
    if not np.isin(pdat.D, (0.0, 1.0)).all() or not Dpos.any():
        raise InputError(_SOURCE, "randomisation inference needs a 0/1 treatment", key="treat")
    treated_u = np.zeros(p.n_units, dtype=bool)
    treated_u[p.unit[Dpos]] = True
    start = int(p.period[Dpos].min())
    post_t = np.arange(p.n_periods) >= start
    if not np.array_equal(Dpos, treated_u[p.unit] & post_t[p.period]):
        raise InputError(
            _SOURCE,
            "randomisation inference needs all treated units to start in the same period "
            "and stay treated; use CallawaySantAnna for staggered adoption",
            key="treat",
        )
    return treated_u, post_t


def _ri_twfe(pdat: _PanelData, within: WithinTransform, spec) -> RandomizationResult:
    """Placebo TWFE estimates by Frisch-Waugh-Lovell, one projected column per cluster."""
    p = pdat.panel
    treated_u, post_t = _common_timing(pdat)
    G = pdat.n_clusters
    if p.n_obs * G > _RI_MAX_CELLS:
        raise InputError(
            _SOURCE,
            f"randomisation inference over {G} clusters of {p.n_obs} rows is too large; "
            "assign treatment at a coarser cluster",
            key="cluster",
        )
    cl_treat = np.bincount(pdat.codes, weights=treated_u[p.unit].astype(float), minlength=G)
    cl_size = np.bincount(pdat.codes, minlength=G)
    if ((cl_treat > 0) & (cl_treat < cl_size)).any():
        raise InputError(
            _SOURCE,
            "randomisation inference assigns treatment by cluster, but some clusters mix "
            "treated and untreated units",
            key="cluster",
        )
    post_obs = post_t[p.period].astype(float)
    P = np.zeros((p.n_obs, G), order="F")
    P[np.arange(p.n_obs), pdat.codes] = post_obs
    Pt = within(P)
    yt = within(pdat.y)
    w = np.ones(p.n_obs) if pdat.w is None else pdat.w
    if pdat.covs.shape[1]:
        Xc = within(pdat.covs)
        XtW = (Xc * w[:, None]).T
        proj = np.linalg.solve(XtW @ Xc, XtW @ np.column_stack([Pt, yt]))
        res = np.column_stack([Pt, yt]) - Xc @ proj
        Pt, yt = res[:, :G], res[:, G]
    PtW = Pt * w[:, None]
    m = PtW.T @ yt
    gram = PtW.T @ Pt
    A, exhaustive = placebo_assignments(
        G, np.flatnonzero(cl_treat > 0), max_assignments=spec.max_assignments, seed=spec.seed
    )
    Af = A.astype(float)
    den = np.einsum("mi,ij,mj->m", Af, gram, Af)
    e = (Af @ m) / den
    f = (Af @ (gram @ Af[0])) / den
    return randomization_inference(e, f, level=spec.level, exhaustive=exhaustive, seed=spec.seed)


# --------------------------------------------------------------------------------------
# Poisson fixed effects (PPML)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoissonFE:
    """Poisson (PPML) DiD with unit and period effects, reported as a rate ratio.

    ``E[y_it] = exp(a_i + g_t + b D_it (+ X_it d))``, fitted by iteratively reweighted least
    squares with the exact weighted within transformation in each iteration. Units (and
    periods) whose outcome is zero throughout carry no information and are dropped, as are
    singletons. CR1 standard errors cluster by unit (or ``cluster``) and use the normal
    distribution, like fixest and pyfixest for GLMs. With few treated clusters the headline
    interval comes from the wild cluster restricted bootstrap applied to the converged
    IRLS linearisation (a score bootstrap in the sense of Kline & Santos 2012).

    Parameters
    ----------
    tol
        Convergence tolerance on the relative change in deviance (fixest's criterion).
    max_iter
        Maximum IRLS iterations.
    """

    outcome: str = "outcome"
    treat: str = "treat"
    unit: str = "unit"
    period: str = "period"
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    inference: str = "auto"
    level: float = DEFAULT_LEVEL
    reps: int = DEFAULT_REPS
    seed: int = DEFAULT_SEED
    tol: float = 1e-10
    max_iter: int = 100

    def fit(self, data: pd.DataFrame) -> DiDResults:
        """Estimate the rate ratio on ``data`` (long format, counts in ``outcome``)."""
        pdat = _panel_data(data, self, drop_zero_groups=True)
        if (pdat.y < 0).any():
            raise InputError(_SOURCE, "Poisson outcomes must be non-negative", key=self.outcome)
        notes = pdat.notes
        p = pdat.panel
        n_treated = _treated_clusters(pdat.D, pdat.codes, pdat.n_clusters)
        method, reason = _select_inference(self.inference, n_treated, ("cr1", "wild"))
        names = [self.treat, *self.covariates]
        X = _stack(pdat.D, pdat.covs, n=p.n_obs)
        fit, dropped, n_iter, _, dev = _irls(p, pdat.y, X, pdat.w, names, self.tol, self.max_iter)
        fit = _Fit(
            fit.beta,
            fit.names,
            fit.bread,
            fit.Xs,
            fit.ys,
            fit.resid,
            fit.Xs.shape[1] + _fe_params(p, pdat.codes, 0, pdat.unit_clusters),
        )
        G = pdat.n_clusters
        vcov = cr1_vcov(
            fit.Xs,
            fit.resid,
            pdat.codes,
            G,
            n_params=fit.n_params,
            bread=fit.bread,
            scores=_scores(pdat, fit.Xs, fit.resid),
        )
        base = _t_interval(
            fit.beta[0], math.sqrt(vcov[0, 0]), None, self.level, "CR1 cluster-robust"
        )
        head, wb = _headline(fit, self, method=method, cr1=base, codes=pdat.codes, n_clusters=G)
        b = float(fit.beta[0])
        notes = notes + tuple(f"dropped collinear term '{d}'" for d in dropped)

        def rr(x):
            return None if x is None else float(np.exp(x))

        method_text = "Poisson fixed-effects DiD (PPML, IRLS with within transformation); "
        if method == "wild":
            method_text += head.method + " on the IRLS linearisation (score bootstrap)"
        else:
            method_text += head.method + " (normal approximation)"
        return DiDResults(
            design="ppml",
            estimate=float(np.exp(b)),
            coef=b,
            se=float(base.se),
            ci_low=rr(head.ci_low),
            ci_high=rr(head.ci_high),
            p_value=head.p_value,
            level=self.level,
            scale="rate_ratio",
            inference=method,
            inference_reason=reason,
            method=method_text,
            n_obs=p.n_obs,
            n_units=p.n_units,
            n_periods=p.n_periods,
            n_clusters=G,
            n_treated_clusters=n_treated,
            cr1=base,
            coefficients=_coef_table(fit, vcov),
            wild=wb,
            notes=notes,
            diagnostics={"iterations": n_iter, "deviance": dev},
        )


def _irls(panel: PanelIndex, y, X, w, names, tol: float, max_iter: int):
    """Poisson regression with two-way effects by IRLS; returns the linearised fit.

    Each iteration regresses the working outcome ``z = eta + (y - mu) / mu`` on X with
    weights ``mu`` after the weighted within transformation; the new linear predictor is
    ``z`` minus the working residual. Convergence uses fixest's criterion on the
    deviance, computed here without logarithms: with ``log mu = eta``,
    ``D = 2 [sum y log y - sum y eta + sum mu - sum y]``.
    """
    uw = np.ones_like(y) if w is None else w
    ylogy = float(np.sum(uw * np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)))
    wy = uw * y
    sum_wy = float(wy.sum())

    def deviance(eta: np.ndarray, mu: np.ndarray) -> float:
        return 2.0 * (ylogy - float(wy @ eta) + float(uw @ mu) - sum_wy)

    mu = (y + y.mean()) / 2.0
    eta = np.log(mu)
    last = deviance(eta, mu)
    n_comp = n_components(panel)
    keep = list(range(X.shape[1]))
    dropped: list[str] = []
    for it in range(1, max_iter + 1):
        z = eta + (y - mu) / mu
        wt = mu if w is None else mu * w
        within = WithinTransform(panel, wt, n_comp)
        V = within([z, X[:, keep]])
        Xt, zt = V[:, 1:], V[:, 0]
        if it == 1:
            sw = np.sqrt(wt)
            _, kept_names, dropped, _ = _drop_collinear(Xt * sw[:, None], list(names))
            keep = [names.index(nm) for nm in kept_names]
            Xt = Xt[:, keep]
        XtW = Xt.T * wt
        beta = np.linalg.solve(XtW @ Xt, XtW @ zt)
        resid = _residual(zt, Xt, beta)
        eta = z - resid
        mu = np.exp(eta)
        dev = deviance(eta, mu)
        crit = abs(dev - last) / (0.1 + abs(dev))
        last = dev
        if crit < tol:
            sw = np.sqrt(wt)
            Xs = Xt * sw[:, None]
            bread = np.linalg.inv(Xs.T @ Xs)
            fit = _Fit(beta, [names[j] for j in keep], bread, Xs, zt * sw, resid * sw, len(keep))
            return fit, dropped, it, mu, dev
    raise InputError(
        _SOURCE,
        f"the Poisson model did not converge in {max_iter} iterations (is an outcome "
        "always zero for the treated after the start?)",
    )


# --------------------------------------------------------------------------------------
# Event study
# --------------------------------------------------------------------------------------


def first_treat_positions(
    values: np.ndarray, period_labels: pd.Index, column: str
) -> tuple[np.ndarray, int]:
    """Positions (in the sorted periods) of each unit's first treated period.

    Missing values, infinity and 0 mean never treated (the R ``did`` convention; 0 is
    refused when it is also a period label). Values between periods map to the next
    period. Returns the positions, with ``n_periods`` (beyond the last period) for never
    treated, and how many units were treated only after the last period (counted as never
    treated in this window).
    """
    nt = len(period_labels)
    vals = pd.Series(values)
    never = vals.isna().to_numpy().copy()
    numeric = pd.api.types.is_numeric_dtype(vals)
    if numeric:
        arr = vals.to_numpy(dtype=float, na_value=np.nan)
        zero = arr == 0
        if zero.any() and 0 in period_labels:
            raise InputError(
                _SOURCE,
                f"'{column}' uses 0, which is also a period: mark never-treated units with an "
                "empty value instead",
                key=column,
            )
        never |= zero | np.isinf(arr)
    pos = np.full(vals.size, nt, dtype=np.intp)
    if (~never).any():
        try:
            pos[~never] = period_labels.searchsorted(vals[~never].to_numpy(), side="left")
        except TypeError as err:
            raise InputError(
                _SOURCE, f"'{column}' values are not comparable with the periods", key=column
            ) from err
    late = int(((~never) & (pos >= nt)).sum())
    return pos, late


def _event_positions(pdat: _PanelData, data: pd.DataFrame, spec) -> tuple[np.ndarray, list[str]]:
    """First treated position per unit (``n_periods`` = never) from first_treat or treat."""
    p = pdat.panel
    notes: list[str] = []
    if spec.first_treat is not None:
        vals = _take(data[spec.first_treat].to_numpy(), pdat.order)
        # rows are sorted by unit and every unit has some: unit i's rows start at starts[i]
        starts = np.flatnonzero(np.diff(p.unit, prepend=-1))
        g, _ = pd.factorize(vals)  # missing values share code -1: one value, as in nunique
        if (np.minimum.reduceat(g, starts) != np.maximum.reduceat(g, starts)).any():
            raise InputError(
                _SOURCE,
                f"'{spec.first_treat}' must be constant within each unit",
                key=spec.first_treat,
            )
        g_vals = vals[starts]
        pos, late = first_treat_positions(g_vals, p.period_labels, spec.first_treat)
        if late:
            notes.append(
                f"{late} units first treated after the last period are treated as never treated"
            )
        return pos, notes
    D = pdat.D != 0
    pos = np.full(p.n_units, p.n_periods, dtype=np.intp)
    if D.any():
        uu, first = np.unique(p.unit[D], return_index=True)
        pos[uu] = p.period[D][first]
    # Absorbing: once treated, treated in every later observed period.
    expected = p.period >= pos[p.unit]
    if not np.array_equal(D, expected):
        raise InputError(
            _SOURCE,
            f"'{spec.treat}' must stay 1 once a unit is treated (absorbing treatment); give "
            "first_treat instead",
            key=spec.treat,
        )
    return pos, notes


def _event_fit_sparse(
    pdat: _PanelData,
    within: WithinTransform,
    rows: np.ndarray,
    cols: np.ndarray,
    names: list[str],
) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Event-study coefficients and their CR1 covariance (clusters = units) on a balanced,
    unweighted panel without covariates, from the sparse event dummies.

    Row ``rows[m]`` has dummy ``cols[m]`` (one per row). The closed-form within
    transformation of a dummy ``x`` is ``x - r_i - c_t`` with ``r_i`` its unit means and
    ``c_t`` its period means less the overall mean, so the normal equations of the
    partialled regression (Frisch-Waugh-Lovell) follow from unit and period sums:
    ``x~'x~ = x'x - R'R / T - C'C / N + S S' / (N T)``, and ``x~'y~`` likewise. The
    residuals are the within transformation of ``y - X b`` (one column), and each unit's
    score is ``sum_t x~_it e_it = sum_(x_it = 1) e_it - r_i sum_t e_it - sum_t c_t e_it``.
    Equal to :func:`_wls` on the transformed dense dummies up to rounding.
    """
    p = pdat.panel
    N, T, n, k = p.n_units, p.n_periods, p.n_obs, len(names)
    unit_col = p.unit[rows] * k + cols
    R = np.bincount(unit_col, minlength=N * k).reshape(N, k).astype(float)  # unit sums
    C = np.bincount(p.period[rows] * k + cols, minlength=T * k).reshape(T, k).astype(float)
    S = R.sum(axis=0)
    gram = np.diag(S) - R.T @ R / T - C.T @ C / N + np.outer(S, S) / n
    ru, ct = p.sums(pdat.y)
    xy = np.bincount(cols, weights=pdat.y[rows], minlength=k)
    xty = xy - R.T @ ru / T - C.T @ ct / N + S * ct.sum() / n
    kept, dropped = _collinear_gram(gram, names, keep_first=0)
    bread = np.linalg.inv(gram[np.ix_(kept, kept)])
    beta = bread @ xty[kept]
    b_all = np.zeros(k)
    b_all[kept] = beta
    r = pdat.y.copy()
    r[rows] -= b_all[cols]
    e = within(r)
    grid = e.reshape(N, T)
    c = C / N - S / n  # period means less the overall mean, per dummy
    scores = (
        np.bincount(unit_col, weights=e[rows], minlength=N * k).reshape(N, k)
        - grid.sum(axis=1)[:, None] * (R / T)
        - grid @ c
    )[:, kept]
    n_params = len(kept) + _fe_params(p, pdat.codes, 0, pdat.unit_clusters)
    vcov = cr1_factor(n, n_params, pdat.n_clusters) * (bread @ (scores.T @ scores) @ bread)
    return beta, [names[j] for j in kept], dropped, vcov


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class EventStudyResults:
    """Event-study coefficients relative to the period before treatment (-1)."""

    table: pd.DataFrame
    pretrend_stat: float | None
    pretrend_p: float | None
    pretrend_df: tuple[int, int] | None
    vcov: np.ndarray
    level: float
    inference: str
    inference_reason: str
    method: str
    n_obs: int
    n_units: int
    n_periods: int
    n_clusters: int
    n_treated_clusters: int
    scale: str = "count"
    notes: tuple[str, ...] = ()

    def event_table(self) -> pd.DataFrame:
        """Columns event_time, estimate, se, ci_low, ci_high, p_value, n_obs, reference."""
        return self.table.copy()

    def estimates(self) -> list[Estimate]:
        """``event_time_<k>`` for each event time and ``pretrend_wald_p``."""
        out = []
        for row in self.table.itertuples(index=False):
            k = int(row.event_time)
            label = (
                "reference period (fixed at 0)"
                if row.reference
                else (
                    f"{abs(k)} periods before the start"
                    if k < 0
                    else f"{k} periods after the start"
                )
            )
            out.append(
                Estimate(
                    name=f"event_time_{k}",
                    estimate=row.estimate,
                    se=None if row.reference else row.se,
                    ci_low=None if row.reference else row.ci_low,
                    ci_high=None if row.reference else row.ci_high,
                    p_value=None if row.reference else row.p_value,
                    scale=self.scale,  # type: ignore[arg-type]
                    method=self.method,
                    label=label,
                    level=self.level,
                )
            )
        if self.pretrend_p is not None:
            out.append(
                pretrend_estimate(
                    self.pretrend_p,
                    "joint Wald test that all leads are zero (CR1 covariance, F(q, G-1))",
                    self.level,
                )
            )
        return out


def pretrend_estimate(p_value: float, method: str, level: float) -> Estimate:
    """A pre-trend test's p-value as an estimate (``pretrend_wald_p``), as dashboards read it."""
    return Estimate(
        name="pretrend_wald_p",
        estimate=p_value,
        p_value=p_value,
        scale="p_value",
        method=method,
        label="Pre-trend test: a small p-value means the groups were already diverging",
        level=level,
    )


@dataclass(frozen=True)
class EventStudy:
    """Leads and lags of treatment in a two-way fixed-effects regression.

    Event time ``k = period - first treated period`` (in positions of the sorted observed
    periods); ``k = -1`` is the reference. Never-treated units anchor the period effects.
    ``leads`` / ``lags`` limit the window to ``-leads..lags``; with ``bin_endpoints`` the
    event times beyond are binned into the end points, otherwise those treated-unit rows
    are dropped. With staggered adoption and heterogeneous effects TWFE leads and lags are
    contaminated (Sun & Abraham 2021): prefer the dynamic aggregation of
    :class:`~evaluation.designs.staggered.CallawaySantAnna`.

    Parameters
    ----------
    first_treat
        Column holding each unit's first treated period (empty / 0 for never treated).
        When None, timing is read from the absorbing 0/1 column ``treat``.
    inference
        ``"auto"``, ``"cr1"`` or ``"wild"`` (per-coefficient wild cluster restricted
        bootstrap intervals). The pre-trend Wald test always uses the CR1 covariance.
    scale
        What the outcome measures (``"count"``, ``"level"``, ``"rate"``,
        ``"proportion"``).
    """

    outcome: str = "outcome"
    unit: str = "unit"
    period: str = "period"
    first_treat: str | None = "first_treat"
    treat: str = "treat"
    leads: int | None = None
    lags: int | None = None
    bin_endpoints: bool = False
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    inference: str = "auto"
    scale: str = "count"
    level: float = DEFAULT_LEVEL
    reps: int = DEFAULT_REPS
    seed: int = DEFAULT_SEED

    def fit(self, data: pd.DataFrame) -> EventStudyResults:
        """Estimate the event-study coefficients on ``data``."""
        check_linear_scale(self.scale)
        treat_col = self.treat if self.first_treat is None else self.first_treat
        frame = data
        if self.first_treat is not None:
            _require_columns(data, [self.first_treat])
            frame = data.assign(_es_zero_=0.0)
            treat_col = "_es_zero_"
        # Index the panel once; timing comes from all rows, the fit from the kept ones.
        arrays = _panel_arrays(frame, self, treat=treat_col)
        pdat, _ = _select_rows(arrays, singletons=False)
        pos, notes = _event_positions(pdat, frame, self)
        p = pdat.panel
        ever = pos < p.n_periods
        if not ever.any():
            raise InputError(_SOURCE, "no unit is ever treated", key=self.first_treat or self.treat)
        rel_full = np.where(ever[p.unit], p.period - pos[p.unit], np.iinfo(np.int64).min)
        keep = np.ones(p.n_obs, dtype=bool)
        lo = -self.leads if self.leads is not None else None
        hi = self.lags if self.lags is not None else None
        treated_row = ever[p.unit]
        if self.bin_endpoints:
            if lo is not None:
                rel_full = np.where(treated_row & (rel_full < lo), lo, rel_full)
            if hi is not None:
                rel_full = np.where(treated_row & (rel_full > hi), hi, rel_full)
        else:
            out_of_window = treated_row & (
                ((rel_full < lo) if lo is not None else False)
                | ((rel_full > hi) if hi is not None else False)
            )
            if np.any(out_of_window):
                keep &= ~out_of_window
                notes.append(
                    f"dropped {int(out_of_window.sum())} treated rows outside the event window"
                )
        # The kept rows (drops singletons too).
        pdat, kept_rows = _select_rows(arrays, keep=keep)
        notes = notes + list(pdat.notes)
        p = pdat.panel
        rel = rel_full if kept_rows.all() else rel_full[kept_rows]
        treated_row = rel != np.iinfo(np.int64).min
        ks = np.unique(rel[treated_row])
        ref = [-1]
        never_any = (~treated_row).any()
        if not never_any and ks.size and ks.min() < -1:
            ref.append(int(ks.min()))
            notes.append(
                f"no never-treated units: event time {int(ks.min())} is a second reference period"
            )
        ks_est = [int(k) for k in ks if k not in ref]
        if not ks_est:
            raise InputError(_SOURCE, "no event times to estimate")
        ks_arr = np.asarray(ks_est, dtype=np.int64)
        rows = np.flatnonzero(treated_row & np.isin(rel, ks_arr))
        cols = np.searchsorted(ks_arr, rel[rows])
        names = [f"event_time_{k}" for k in ks_est]
        G = pdat.n_clusters
        D_any = treated_row & (rel >= 0)
        n_treated = _treated_clusters(D_any.astype(float), pdat.codes, G)
        method, reason = _select_inference(self.inference, n_treated, ("cr1", "wild"))
        within = WithinTransform(p, pdat.w)
        dense: _Fit | None = None
        if within.closed_form and pdat.unit_clusters and not self.covariates and method == "cr1":
            # The dummies are sparse: no (rows x event times) matrix is needed.
            beta, fit_names, dropped, vcov = _event_fit_sparse(pdat, within, rows, cols, names)
        else:
            Dm = np.zeros((p.n_obs, len(ks_est)))
            Dm[rows, cols] = 1.0
            V = within([pdat.y, Dm, pdat.covs])
            dense, dropped = _wls(
                V[:, 1:],
                V[:, 0],
                pdat.w,
                names + list(self.covariates),
                _fe_params(p, pdat.codes, 0, pdat.unit_clusters),
                0,
            )
            vcov = cr1_vcov(
                dense.Xs,
                dense.resid,
                pdat.codes,
                G,
                n_params=dense.n_params,
                bread=dense.bread,
                scores=_scores(pdat, dense.Xs, dense.resid),
            )
            beta, fit_names = dense.beta, dense.names
        notes += [f"dropped collinear term '{d}'" for d in dropped]
        counts = pd.Series(rel[treated_row]).value_counts()
        records = []
        for j, name in enumerate(fit_names):
            if not name.startswith("event_time_"):
                continue
            k = int(name.removeprefix("event_time_"))
            iv = _t_interval(beta[j], math.sqrt(vcov[j, j]), G - 1, self.level, "CR1")
            if method == "wild":
                assert dense is not None
                wb = wild_cluster_bootstrap(
                    dense.Xs,
                    dense.ys,
                    pdat.codes,
                    G,
                    j,
                    reps=self.reps,
                    seed=self.seed,
                    level=self.level,
                    n_params=dense.n_params,
                )
                iv = Interval(iv.se, wb.ci_low, wb.ci_high, wb.p_value, wb.method)
            records.append(
                (
                    k,
                    float(beta[j]),
                    iv.se,
                    iv.ci_low,
                    iv.ci_high,
                    iv.p_value,
                    int(counts.get(k, 0)),
                    False,
                )
            )
        for k in ref:
            records.append((k, 0.0, 0.0, 0.0, 0.0, None, int(counts.get(k, 0)), True))
        table = pd.DataFrame(
            records,
            columns=[
                "event_time",
                "estimate",
                "se",
                "ci_low",
                "ci_high",
                "p_value",
                "n_obs",
                "reference",
            ],
        ).sort_values("event_time", ignore_index=True)
        lead_idx = [
            j
            for j, n in enumerate(fit_names)
            if n.startswith("event_time_") and int(n.removeprefix("event_time_")) <= -2
        ]
        stat = pval = dfs = None
        if lead_idx and n_treated < MIN_TREATED_CLUSTERS_FOR_CR1:
            notes.append(
                f"the pre-trend Wald test uses the CR1 covariance, which rejects too often "
                f"with only {n_treated} treated areas: read its p-value as optimistic"
            )
        if lead_idx:
            stat, pval, q = wald_test(beta[lead_idx], vcov[np.ix_(lead_idx, lead_idx)], G - 1)
            dfs = (q, G - 1)
        inf_text = (
            "wild cluster restricted bootstrap intervals per coefficient"
            if method == "wild"
            else "CR1 cluster-robust intervals"
        )
        return EventStudyResults(
            table=table,
            pretrend_stat=stat,
            pretrend_p=pval,
            pretrend_df=dfs,
            vcov=vcov,
            level=self.level,
            inference=method,
            inference_reason=reason,
            method=f"event study, two-way fixed effects (reference period -1); {inf_text}",
            n_obs=p.n_obs,
            n_units=p.n_units,
            n_periods=p.n_periods,
            n_clusters=G,
            n_treated_clusters=n_treated,
            scale=self.scale,
            notes=tuple(notes),
        )
