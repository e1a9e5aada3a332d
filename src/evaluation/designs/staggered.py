"""Staggered adoption: Callaway & Sant'Anna (2021) group-time effects and aggregations.

For each cohort ``g`` (units first treated in period ``g``) and period ``t``, ``ATT(g,t)``
is a 2x2 comparison of mean changes between the cohort and a control group:

- post periods (``t >= g``): change from the base period ``g - 1``;
- pre periods (``t < g``): change from ``t - 1`` (R ``did``'s default "varying" base), so
  the pre-period estimates are placebo tests period by period;
- controls: never-treated units, or not-yet-treated units (never treated or first treated
  after ``t``).

Without covariates, the outcome-regression, IPW and doubly robust estimators of R ``did``
all reduce to that difference of mean changes, with influence function
``D (dY - m1) / p - (1 - D) (dY - m0) / (1 - p)`` on the cell's units. Standard errors are
analytical from the influence functions (R ``did`` with ``bstrap = FALSE``); summing the
influence functions within clusters gives cluster-robust ones. Aggregations (simple,
dynamic / event time, group) carry the extra influence-function term for the estimated
group shares, as in ``did::aggte``.

Panels must be balanced: units missing any period are dropped (as R ``did`` does), and
so are units already treated in the first period. Without never-treated units, the
periods from the last cohort's start on are dropped and (for never-treated controls) the
last cohort becomes the control group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evaluation.config import DEFAULT_LEVEL
from evaluation.designs.did import (
    check_linear_scale,
    first_treat_positions,
    index_panel,
    pretrend_estimate,
)
from evaluation.errors import InputError
from evaluation.inference import distributions as dist
from evaluation.inference.cluster import MIN_TREATED_CLUSTERS_FOR_CR1, cluster_codes
from evaluation.results import Estimate

_SOURCE = "<data>"
#: Cohort position of never-treated units.
_NEVER = np.iinfo(np.int64).max // 2


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Aggregate:
    """One aggregated effect with its influence function (per unit)."""

    estimate: float
    se: float
    influence: np.ndarray


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class StaggeredResults:
    """Callaway & Sant'Anna group-time effects and their aggregations."""

    groups: np.ndarray  # cohort label per ATT(g,t)
    times: np.ndarray  # period label per ATT(g,t)
    att: np.ndarray
    se: np.ndarray
    simple: Aggregate
    dynamic: Aggregate
    group: Aggregate
    event_times: np.ndarray
    event_att: np.ndarray
    event_se: np.ndarray
    group_labels: np.ndarray
    group_att: np.ndarray
    group_se: np.ndarray
    pretrend_stat: float | None
    pretrend_p: float | None
    pretrend_df: int | None
    level: float
    control_group: str
    headline: str
    method: str
    n_units: int
    n_periods: int
    n_clusters: int
    n_treated_units: int
    n_treated_clusters: int
    influence: np.ndarray = field(repr=False)  # (n_units, n_cells)
    scale: str = "count"
    notes: tuple[str, ...] = ()

    def _crit(self) -> float:
        return float(dist.norm_ppf(0.5 + self.level / 2))

    def att_gt_table(self) -> pd.DataFrame:
        """ATT(g,t) with standard errors and pointwise normal intervals."""
        c = self._crit()
        return pd.DataFrame(
            {
                "group": self.groups,
                "time": self.times,
                "att": self.att,
                "se": self.se,
                "ci_low": self.att - c * self.se,
                "ci_high": self.att + c * self.se,
            }
        )

    def event_table(self) -> pd.DataFrame:
        """Dynamic aggregation by event time ``e = t - g`` (for an event-study plot)."""
        c = self._crit()
        return pd.DataFrame(
            {
                "event_time": self.event_times,
                "estimate": self.event_att,
                "se": self.event_se,
                "ci_low": self.event_att - c * self.event_se,
                "ci_high": self.event_att + c * self.event_se,
            }
        )

    def group_table(self) -> pd.DataFrame:
        """Average post-treatment effect of each cohort."""
        c = self._crit()
        return pd.DataFrame(
            {
                "group": self.group_labels,
                "estimate": self.group_att,
                "se": self.group_se,
                "ci_low": self.group_att - c * self.group_se,
                "ci_high": self.group_att + c * self.group_se,
            }
        )

    def _est(self, name: str, agg: Aggregate, label: str) -> Estimate:
        c = self._crit()
        z = agg.estimate / agg.se if agg.se > 0 else np.nan
        return Estimate(
            name=name,
            estimate=agg.estimate,
            se=agg.se,
            ci_low=agg.estimate - c * agg.se,
            ci_high=agg.estimate + c * agg.se,
            p_value=float(2 * dist.norm_sf(abs(z))) if np.isfinite(z) else None,
            scale=self.scale,  # type: ignore[arg-type]
            method=self.method,
            label=label,
            level=self.level,
        )

    def estimates(self) -> list[Estimate]:
        """``att`` (the headline aggregation), ``att_simple``, ``att_dynamic``,
        ``att_group``, ``event_time_<e>`` and ``pretrend_wald_p``."""
        labels = {
            "simple": "Average effect over all treated areas and post periods",
            "dynamic": "Average effect over event times 0, 1, ... (dynamic aggregation)",
            "group": "Average of each cohort's effect, weighted by cohort size",
        }
        aggs = {"simple": self.simple, "dynamic": self.dynamic, "group": self.group}
        out = [self._est("att", aggs[self.headline], labels[self.headline])]
        out += [self._est(f"att_{k}", v, labels[k]) for k, v in aggs.items()]
        c = self._crit()
        for e, a, s in zip(self.event_times, self.event_att, self.event_se, strict=True):
            out.append(
                Estimate(
                    name=f"event_time_{int(e)}",
                    estimate=a,
                    se=s,
                    ci_low=a - c * s,
                    ci_high=a + c * s,
                    p_value=float(2 * dist.norm_sf(abs(a / s))) if s > 0 else None,
                    scale=self.scale,  # type: ignore[arg-type]
                    method=self.method,
                    label=f"event time {int(e)} (periods since the start)",
                    level=self.level,
                )
            )
        if self.pretrend_p is not None:
            out.append(
                pretrend_estimate(
                    self.pretrend_p,
                    "Wald pre-test that all pre-period ATT(g,t) are zero (chi-squared)",
                    self.level,
                )
            )
        return out


@dataclass(frozen=True)
class CallawaySantAnna:
    """Callaway & Sant'Anna (2021) staggered DiD, unconditional (no covariates).

    Parameters
    ----------
    outcome, unit, period
        Columns of the long panel.
    first_treat
        Column with each unit's first treated period; empty, infinite or 0 means never
        treated (R ``did``'s convention).
    control_group
        ``"never"`` (never-treated units) or ``"not_yet"`` (also units not yet treated).
    cluster
        Column to cluster standard errors on (coarser than unit); by unit when None.
    headline
        Which aggregation is reported as ``att``: ``"simple"``, ``"dynamic"`` or
        ``"group"``.
    scale
        What the outcome measures (``"count"``, ``"level"``, ``"rate"``,
        ``"proportion"``).
    """

    outcome: str = "outcome"
    unit: str = "unit"
    period: str = "period"
    first_treat: str = "first_treat"
    control_group: str = "never"
    cluster: str | None = None
    headline: str = "simple"
    scale: str = "count"
    level: float = DEFAULT_LEVEL

    def fit(self, data: pd.DataFrame) -> StaggeredResults:
        """Estimate all ATT(g,t) and the aggregations on ``data``."""
        if self.control_group not in ("never", "not_yet"):
            raise InputError(
                _SOURCE, "control_group must be 'never' or 'not_yet'", key="control_group"
            )
        check_linear_scale(self.scale)
        if self.headline not in ("simple", "dynamic", "group"):
            raise InputError(_SOURCE, "headline must be simple, dynamic or group", key="headline")
        Y, gpos, periods, cl, notes = self._wide(data)
        n = Y.shape[0]
        gpos, Y, notes = _no_never_treated(gpos, Y, periods, self.control_group, notes)
        T = Y.shape[1]
        cells = _att_gt(Y, gpos, self.control_group)
        if not cells:
            raise InputError(
                _SOURCE,
                "no group-time effect can be estimated (no treated cohort with a control group)",
            )
        g_idx = np.array([c[0] for c in cells])
        t_idx = np.array([c[1] for c in cells])
        att = np.array([c[2] for c in cells])
        IF = np.column_stack([c[3] for c in cells])
        codes, G = cluster_codes(cl) if cl is not None else (np.arange(n), n)
        se_fun = _se_function(codes, G, n)
        se = np.array([se_fun(IF[:, j]) for j in range(IF.shape[1])])
        # Group shares P(G = g) over all units (never-treated included), as did::aggte.
        cohorts = np.unique(g_idx)
        pg = np.array([np.mean(gpos == g) for g in cohorts])
        pg_cell = pg[np.searchsorted(cohorts, g_idx)]
        post = t_idx >= g_idx
        if not post.any():
            raise InputError(_SOURCE, "no post-treatment group-time effect can be estimated")
        simple = _aggregate(att, IF, np.flatnonzero(post), pg_cell, gpos, g_idx, se_fun, wif=True)
        # Dynamic: by event time, then the mean over e >= 0.
        e_all = t_idx - g_idx
        e_vals = np.unique(e_all)
        dyn = [
            _aggregate(att, IF, np.flatnonzero(e_all == e), pg_cell, gpos, g_idx, se_fun, wif=True)
            for e in e_vals
        ]
        e_pos = e_vals >= 0
        dyn_if = np.column_stack([d.influence for d in dyn])
        dyn_att = np.array([d.estimate for d in dyn])
        overall_dyn_if = dyn_if[:, e_pos] @ np.full(e_pos.sum(), 1.0 / e_pos.sum())
        dynamic = Aggregate(float(dyn_att[e_pos].mean()), se_fun(overall_dyn_if), overall_dyn_if)
        # Group: each cohort's mean over its post periods, then weighted by cohort share.
        grp = []
        has_post = np.array([((g_idx == g) & post).any() for g in cohorts])
        for g in cohorts[has_post]:
            sel = np.flatnonzero((g_idx == g) & post)
            w = np.full(sel.size, 1.0 / sel.size)
            inf = IF[:, sel] @ w
            grp.append(Aggregate(float(att[sel] @ w), se_fun(inf), inf))
        grp_att = np.array([a.estimate for a in grp])
        grp_if = np.column_stack([a.influence for a in grp])
        all_c = np.arange(grp_att.size)
        group = _aggregate(
            grp_att, grp_if, all_c, pg[has_post], gpos, cohorts[has_post], se_fun, wif=True
        )
        # Wald pre-test of all pre-period ATT(g,t) (did's "pre-test of parallel trends").
        stat = pval = q = None
        pre = np.flatnonzero(~post)
        if pre.size and cl is None:
            V = IF[:, pre].T @ IF[:, pre] / n
            if np.linalg.matrix_rank(V, hermitian=True) == pre.size:  # V is symmetric
                stat = float(n * att[pre] @ np.linalg.solve(V, att[pre]))
                q = int(pre.size)
                pval = float(dist.chi2_sf(stat, q))
        elif pre.size:
            notes.append("the Wald pre-test is not computed when clustering above the unit")
        control = "never-treated" if self.control_group == "never" else "not-yet-treated"
        treated_units = gpos < T
        n_tc = int(np.unique(codes[treated_units]).size)
        if n_tc < MIN_TREATED_CLUSTERS_FOR_CR1:
            notes.append(
                f"only {n_tc} treated areas: influence-function standard errors behave like "
                "CR1 ones and are too small with so few (Cameron, Gelbach & Miller 2008); "
                "read the intervals as optimistic"
            )
        clus = "unit" if cl is None else f"'{self.cluster}'"
        return StaggeredResults(
            groups=periods[g_idx],
            times=periods[t_idx],
            att=att,
            se=se,
            simple=simple,
            dynamic=dynamic,
            group=group,
            event_times=e_vals,
            event_att=dyn_att,
            event_se=np.array([d.se for d in dyn]),
            group_labels=periods[cohorts[has_post]],
            group_att=grp_att,
            group_se=np.array([a.se for a in grp]),
            pretrend_stat=stat,
            pretrend_p=pval,
            pretrend_df=q,
            level=self.level,
            control_group=self.control_group,
            headline=self.headline,
            method=(
                f"Callaway & Sant'Anna (2021) ATT(g,t), {control} controls, no covariates; "
                f"analytical influence-function standard errors clustered by {clus}"
            ),
            n_units=n,
            n_periods=T,
            n_clusters=G,
            n_treated_units=int(treated_units.sum()),
            n_treated_clusters=n_tc,
            influence=IF,
            scale=self.scale,
            notes=tuple(notes),
        )

    def _wide(self, data: pd.DataFrame):
        """Balanced wide outcome matrix, cohort positions, period labels, cluster labels."""
        cols = [self.outcome, self.unit, self.period, self.first_treat, self.cluster]
        for c in cols:
            if c is not None and c not in data.columns:
                raise InputError(_SOURCE, f"column '{c}' is missing", key=c)
        panel, order = index_panel(data, self.unit, self.period)
        order = np.arange(len(data)) if order is None else order
        y = data[self.outcome].to_numpy(dtype=float, na_value=np.nan)[order]
        if not np.isfinite(y).all():
            raise InputError(
                _SOURCE, f"column '{self.outcome}' has missing values", key=self.outcome
            )
        notes: list[str] = []
        counts = np.bincount(panel.unit, minlength=panel.n_units)
        complete = counts == panel.n_periods
        if not complete.all():
            notes.append(f"dropped {int((~complete).sum())} units not observed in every period")
            keep = complete[panel.unit]
            panel, order, y = panel.subset(keep), order[keep], y[keep]
        n, T = panel.n_units, panel.n_periods
        Y = y.reshape(n, T)
        gvals = pd.DataFrame({"u": panel.unit, "g": data[self.first_treat].to_numpy()[order]})
        per_unit = gvals.groupby("u")["g"]
        if (per_unit.nunique(dropna=False) > 1).any():
            raise InputError(
                _SOURCE,
                f"'{self.first_treat}' must be constant within each unit",
                key=self.first_treat,
            )
        periods = np.asarray(panel.period_labels)
        gpos, late = first_treat_positions(
            per_unit.first().to_numpy(), panel.period_labels, self.first_treat
        )
        if late:
            notes.append(f"{late} units first treated after the last period count as never treated")
        early = gpos == 0
        cl = None
        if self.cluster is not None:
            cdf = pd.DataFrame({"u": panel.unit, "c": data[self.cluster].to_numpy()[order]})
            if cdf["c"].isna().any():
                raise InputError(
                    _SOURCE, f"column '{self.cluster}' has missing values", key=self.cluster
                )
            cl = cdf.groupby("u")["c"].first().to_numpy()
            if (cdf.groupby("u")["c"].nunique() > 1).any():
                raise InputError(_SOURCE, "each unit must sit in one cluster", key=self.cluster)
        if early.any():
            notes.append(f"dropped {int(early.sum())} units already treated in the first period")
            Y, gpos = Y[~early], gpos[~early]
            cl = None if cl is None else cl[~early]
        if (gpos < T).sum() == 0:
            raise InputError(_SOURCE, "no unit is treated within the panel", key=self.first_treat)
        gpos = np.where(gpos >= T, _NEVER, gpos).astype(np.int64)
        return Y, gpos, periods, cl, notes

    def arrays(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The balanced outcome matrix (units x periods), each unit's start position
        (``T`` or more: never treated within the panel), before any unit is dropped, and
        the unit labels in row order.

        With :func:`simple_att` this re-estimates the simple ATT under reassigned start
        dates (a permutation of the positions) without rebuilding the panel each time.
        """
        panel, order = index_panel(data, self.unit, self.period)
        order = np.arange(len(data)) if order is None else order
        if np.bincount(panel.unit, minlength=panel.n_units).min() < panel.n_periods:
            raise InputError(_SOURCE, "the panel must be balanced for re-estimation")
        Y = data[self.outcome].to_numpy(dtype=float)[order].reshape(panel.n_units, panel.n_periods)
        g = pd.Series(data[self.first_treat].to_numpy()[order]).groupby(panel.unit).first()
        gpos, _ = first_treat_positions(g.to_numpy(), panel.period_labels, self.first_treat)
        return Y, np.asarray(gpos, dtype=np.int64), np.asarray(panel.unit_labels)


def simple_att(Y: np.ndarray, gpos: np.ndarray, control_group: str = "never") -> float | None:
    """The simple ATT of :meth:`CallawaySantAnna.fit`, without inference; None if no
    post-treatment cell can be estimated.

    ``Y`` and ``gpos`` are as :meth:`CallawaySantAnna.arrays` gives them. Each ATT(g,t)
    with ``t >= g`` is a difference of cohort means of ``Y[:, t] - Y[:, g - 1]``, so
    cohort sums per period suffice: one pass over ``Y``, then a few small arrays. Agrees
    with ``fit(...).simple.estimate`` to rounding (tested).
    """
    T = Y.shape[1]
    keep = gpos > 0  # units treated from the first period are dropped, as in fit
    Y, gpos = Y[keep], np.where(gpos[keep] >= T, _NEVER, gpos[keep])
    if not (gpos < T).any():
        return None
    gpos, Y, _ = _no_never_treated(gpos, Y, np.arange(T), control_group, [])
    T = Y.shape[1]
    cohorts, inverse, sizes = np.unique(gpos, return_inverse=True, return_counts=True)
    sums = np.zeros((cohorts.size, T))
    np.add.at(sums, inverse, Y)
    never = cohorts == _NEVER
    estimates, weights = [], []
    for c in np.flatnonzero(~never):
        g = int(cohorts[c])
        t = np.arange(g, T)
        if t.size == 0:
            continue
        treated = (sums[c, t] - sums[c, g - 1]) / sizes[c]
        if control_group == "never":
            ctrl = never[:, None] & np.ones(t.size, bool)[None, :]
        else:  # not yet treated by t (never treated included)
            ctrl = cohorts[:, None] > t[None, :]
        n0 = ctrl.T @ sizes
        ok = n0 > 0
        if not ok.any():
            continue
        s0 = (ctrl * (sums[:, t] - sums[:, [g - 1]])).sum(axis=0)
        estimates.append(treated[ok] - s0[ok] / n0[ok])
        weights.append(np.full(int(ok.sum()), float(sizes[c])))
    if not estimates:
        return None
    w = np.concatenate(weights)
    return float(np.concatenate(estimates) @ (w / w.sum()))


def _no_never_treated(gpos, Y, periods, control_group, notes):
    """R did's handling when no unit is never treated within the panel."""
    if (gpos == _NEVER).any():
        return gpos, Y, notes
    last = int(gpos.max())
    notes = [*notes, f"no never-treated units: periods from {periods[last]} on are dropped"]
    if control_group == "never":
        notes.append(
            f"the cohort first treated in {periods[last]} serves as the never-treated group"
        )
        gpos = np.where(gpos == last, _NEVER, gpos)
    # With not-yet-treated controls the last cohort keeps its (now out-of-panel) start, so
    # its pre-period placebo cells are still estimated, as in R did.
    return gpos, Y[:, :last], notes


def _att_gt(Y: np.ndarray, gpos: np.ndarray, control_group: str):
    """All estimable (g, t, ATT, influence function) cells, varying base period."""
    n, T = Y.shape
    never = gpos == _NEVER
    out = []
    for g in np.unique(gpos[~never]):
        treat = gpos == g
        for t in range(1, T):
            base = t - 1 if t < g else g - 1
            control = never if control_group == "never" else (never | (gpos > t))
            control = control & ~treat
            n1, n0 = int(treat.sum()), int(control.sum())
            if n1 == 0 or n0 == 0:
                continue
            dy = Y[:, t] - Y[:, base]
            m1, m0 = dy[treat].mean(), dy[control].mean()
            p = n1 / (n1 + n0)
            # Influence function of the cell's 2x2, rescaled to the full sample (n / n_cell).
            inf = np.zeros(n)
            inf[treat] = (dy[treat] - m1) / p
            inf[control] = -(dy[control] - m0) / (1 - p)
            inf *= n / (n1 + n0)
            out.append((int(g), t, float(m1 - m0), inf))
    return out


def _se_function(codes: np.ndarray, n_clusters: int, n: int):
    """SE from an influence function: sqrt(sum over clusters of (sum of IF)^2) / n."""
    if n_clusters == n and np.array_equal(codes, np.arange(n)):
        return lambda inf: float(np.sqrt(np.sum(inf**2)) / n)
    return lambda inf: float(
        np.sqrt(np.sum(np.bincount(codes, weights=inf, minlength=n_clusters) ** 2)) / n
    )


def _aggregate(att, IF, keep, pg, gpos, g_of, se_fun, wif: bool) -> Aggregate:
    """Weighted average of ``att[keep]`` with weights proportional to ``pg[keep]``.

    Adds the influence of estimating the group shares (did::aggte's ``wif``).
    """
    pk = pg[keep]
    w = pk / pk.sum()
    est = float(att[keep] @ w)
    inf = IF[:, keep] @ w
    if wif:
        # d/dpg of sum_k pg_k att_k / sum_k pg_k, with IF of pg_k = 1(G_i = g_k) - pg_k.
        ind = (gpos[:, None] == g_of[keep][None, :]).astype(float) - pk[None, :]
        if1 = ind / pk.sum()
        if2 = ind.sum(axis=1)[:, None] * (pk / pk.sum() ** 2)[None, :]
        inf = inf + (if1 - if2) @ att[keep]
    return Aggregate(est, se_fun(inf), inf)
