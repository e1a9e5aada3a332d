"""Difference-in-differences workflow: treated areas against matched comparison areas.

params -> area x month counts -> comparison areas (listed, or nearest neighbours on the
pre-period level and trend, excluding treated and buffer areas) -> Poisson or linear
two-way fixed effects with honest inference -> event study -> displacement and costs ->
the results contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evaluation import config
from evaluation.designs.did import EventStudy, PoissonFE, TwoWayFE, factorize_sorted
from evaluation.errors import InputError
from evaluation.params import DidParams, PowerParams
from evaluation.report import costs as costs_mod
from evaluation.report import displacement
from evaluation.results import Estimate, EvaluationResults, Outcome, Periods, Series
from evaluation.workflows import common
from evaluation.workflows.common import AreaCounts, RunContext

#: params ``model.inference`` -> the design modules' names
INFERENCE = {
    "auto": "auto",
    "cr1": "cr1",
    "wild_bootstrap": "wild",
    "randomization": "randomization",
    "conventional": "conventional",
}
#: pre-period months used to match comparison areas (the last three years before the start)
MATCH_MONTHS = 36
#: minimum pre-intervention periods for a monthly DiD
MIN_PRE = config.MIN_PRE_PERIODS


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class FrameCodes:
    """Integer codes of a frame's area and period columns, in sorted label order.

    A national frame has millions of rows of area names: they are factorised once and
    then selected and summed as integers (membership by a lookup table, not ``isin`` on
    strings).
    """

    area: np.ndarray  # per row: position in area_labels (-1 when missing)
    area_labels: pd.Index
    period: np.ndarray  # per row: position in period_labels (-1 when missing)
    period_labels: pd.Index

    def areas_in(self, areas: Iterable[Any]) -> np.ndarray:
        """Per row: is its area one of ``areas``."""
        return _rows_in(self.area, self.area_labels, areas)

    def periods_in(self, periods: Iterable[Any]) -> np.ndarray:
        """Per row: is its period one of ``periods``."""
        return _rows_in(self.period, self.period_labels, periods)


def _rows_in(codes: np.ndarray, labels: pd.Index, values: Iterable[Any]) -> np.ndarray:
    # one slot more than there are labels: code -1 (missing) reads the last, always False
    table = np.zeros(len(labels) + 1, dtype=bool)
    found = labels.get_indexer(_as_index(values, labels))
    table[found[found >= 0]] = True
    return table[codes]


def _as_index(values: Iterable[Any], labels: pd.Index) -> pd.Index:
    """``values`` as an index to look up in ``labels``: names stay Python objects when the
    labels are (pandas would read them as arrow strings and convert on every lookup)."""
    return pd.Index(list(values), dtype=object if labels.dtype == object else None)


def frame_codes(frame: pd.DataFrame) -> FrameCodes:
    """Codes of ``frame``'s ``area`` and ``period`` columns (see :class:`FrameCodes`)."""
    area, area_labels = factorize_sorted(frame["area"])
    # plain Python strings (as in the frame): an arrow-backed index converts on every read
    areas = pd.Index(np.asarray(area_labels, dtype=object), dtype=object)
    if not areas.is_monotonic_increasing:  # a categorical in its own order: sort the names
        area, labels = pd.factorize(frame["area"].to_numpy(dtype=object), sort=True)
        areas = pd.Index(labels, dtype=object)
    period, period_labels = factorize_sorted(frame["period"])
    periods = pd.Index(np.asarray(period_labels))
    if not periods.is_monotonic_increasing:
        period, labels = pd.factorize(frame["period"].to_numpy(), sort=True)
        periods = pd.Index(labels)
    return FrameCodes(area, areas, period, periods)


@dataclass(frozen=True)
class DidData:
    """Everything the fit needs, checked."""

    counts: AreaCounts
    # unit (categorical of the area names, sorted), period, outcome, treat, first_treat
    panel: pd.DataFrame
    treated: list[str]
    comparison: list[str]
    buffer: list[str]
    start: pd.Timestamp
    balance: pd.DataFrame
    codes: FrameCodes  # of counts.frame
    panel_codes: FrameCodes  # of panel (units and periods in the panel only)


def _rel_error(ctx: RunContext, err: InputError, key_prefix: str = "") -> InputError:
    """Re-raise a design's error against the params file."""
    key = err.key if not key_prefix else f"{key_prefix}.{err.key}" if err.key else key_prefix
    return InputError(ctx.params_path, err.message, key=key, line=err.line)


def adjacent_areas(ctx: RunContext, treated: list[str]) -> list[str]:
    """Areas adjoining the treated ones, from the synthetic default's adjacency list."""
    path = config.synthetic_dir() / "adjacency.csv"
    if not path.exists():
        raise InputError(
            ctx.params_path,
            "no adjacency list for this data; list buffer.areas",
            key="buffer.adjacent",
        )
    adj = pd.read_csv(path)
    near = set(adj.loc[adj["ward"].isin(treated), "neighbour"]) | set(
        adj.loc[adj["neighbour"].isin(treated), "ward"]
    )
    return sorted(near - set(treated))


def _features(
    frame: pd.DataFrame, start: pd.Timestamp, codes: FrameCodes | None = None
) -> pd.DataFrame:
    """Per area: mean monthly count and log-linear trend over the matching window.

    ``codes`` are ``frame``'s (computed here when not given).
    """
    codes = frame_codes(frame) if codes is None else codes
    labels = codes.period_labels
    in_window = (labels < start) & (labels >= start - pd.DateOffset(months=MATCH_MONTHS))
    window = np.append(np.asarray(in_window, dtype=bool), False)[codes.period]
    # least-squares slope of log(count + 0.5) on years since the window's first month,
    # per area, from sums per area (one pass, not a fit per area: 35,000 areas take 0.1 s)
    area = codes.area[window]
    present = np.bincount(area[area >= 0], minlength=len(codes.area_labels)) > 0
    areas = codes.area_labels[present]  # the areas in the window, sorted
    if not present.all():  # renumber 0..len(areas)-1 in the same order
        area = np.append(np.cumsum(present) - 1, -1)[area]
    count = frame["count"].to_numpy(float)[window]
    y = np.log(count + 0.5)
    t = _position_in_group(area).astype(float) / 12.0

    def per_area(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(area, weights=weights, minlength=len(areas))

    n = per_area().astype(float)
    st = per_area(t)
    sxx = per_area(t * t) - st**2 / n
    sxy = per_area(t * y) - st * per_area(y) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where((n > 2) & (sxx > 0), sxy / sxx, 0.0)
    index = pd.Index(np.asarray(areas, dtype=object), dtype=object, name="area")
    return pd.DataFrame({"level": per_area(count) / n, "trend": slope}, index=index)


def _position_in_group(codes: np.ndarray) -> np.ndarray:
    """Each row's position among the earlier rows of its group (``groupby.cumcount``)."""
    if codes.size and bool(np.all(codes[1:] >= codes[:-1])):  # groups in runs (sorted)
        starts = np.flatnonzero(np.diff(codes, prepend=codes[0] - 1))
        return np.arange(codes.size) - np.repeat(starts, np.diff(np.append(starts, codes.size)))
    return pd.Series(codes).groupby(codes).cumcount().to_numpy()


def match_comparison(
    frame: pd.DataFrame,
    treated: list[str],
    candidates: list[str],
    start: pd.Timestamp,
    n: int,
    codes: FrameCodes | None = None,
) -> tuple[list[str], pd.DataFrame]:
    """Nearest neighbours to the treated areas on standardised log level and trend.

    Each treated area picks its nearest candidates in turn (without replacement) until
    ``n`` are chosen, so a comparison group is not drawn only towards one treated area.
    Returns the chosen areas and a balance table. ``codes`` are ``frame``'s, when known.
    """
    feats = _features(frame, start, codes)
    z = pd.DataFrame({"level": np.log(feats["level"] + 0.5), "trend": feats["trend"]})
    z = (z - z.loc[candidates + treated].mean()) / z.loc[candidates + treated].std(ddof=0).replace(
        0, 1
    )
    chosen: list[str] = []
    pools = {
        t: list((((z.loc[candidates] - z.loc[t]) ** 2).sum(axis=1)).sort_values().index)
        for t in treated
    }
    while len(chosen) < min(n, len(candidates)):
        for t in treated:
            pick = next((c for c in pools[t] if c not in chosen), None)
            if pick is not None and len(chosen) < n:
                chosen.append(pick)
    return chosen, balance_table(feats, treated, chosen, candidates)


def balance_table(
    feats: pd.DataFrame, treated: list[str], chosen: list[str], pool: list[str]
) -> pd.DataFrame:
    """Pre-period level and trend: treated, chosen comparison, all eligible; standardised differences."""
    rows = []
    # each group's rows looked up once (35,000 names are not free), and once only when the
    # comparison is every eligible area
    groups = {"t": feats.loc[treated], "c": feats.loc[chosen]}
    groups["a"] = groups["c"] if pool == chosen else feats.loc[pool]
    for var, label in (("level", "mean crimes per month"), ("trend", "yearly trend (log scale)")):
        t, c, a = groups["t"][var], groups["c"][var], groups["a"][var]
        sd = (
            float(np.sqrt((t.var(ddof=1) + a.var(ddof=1)) / 2))
            if len(t) > 1
            else float(a.std(ddof=1))
        )
        rows.append(
            {
                "measure": label,
                "treated": round(float(t.mean()), 4),
                "comparison": round(float(c.mean()), 4),
                "all_eligible": round(float(a.mean()), 4),
                "std_diff_comparison": round(float((t.mean() - c.mean()) / sd), 3) if sd else None,
                "std_diff_all": round(float((t.mean() - a.mean()) / sd), 3) if sd else None,
            }
        )
    return pd.DataFrame(rows)


def choose_comparison(
    ctx: RunContext,
    params: DidParams | PowerParams,
    counts: AreaCounts,
    treated: list[str],
    buffer: list[str],
    start: pd.Timestamp,
    codes: FrameCodes | None = None,
) -> tuple[list[str], pd.DataFrame]:
    """Comparison areas (listed, all eligible, or matched) and the balance table; shared by
    the DiD and the power analysis that plans one. ``codes`` are ``counts.frame``'s, when
    known."""
    comp = params.comparison
    codes = frame_codes(counts.frame) if codes is None else codes
    areas = list(codes.area_labels)  # sorted
    if comp.areas:
        common.check_areas(ctx, counts, comp.areas, "comparison.areas", known=codes.area_labels)
        clash = sorted(set(comp.areas) & set(treated))
        if clash:
            raise InputError(
                ctx.params_path,
                f"{clash[0]!r} is both treated and a comparison area",
                key="comparison.areas",
            )
        listed = list(comp.areas)
        feats = _features(counts.frame, start, codes)
        return listed, balance_table(feats, treated, listed, listed)
    left_out = set(treated) | set(buffer) | set(comp.exclude)
    pool = [a for a in areas if a not in left_out]
    if len(pool) < 2:
        raise InputError(
            ctx.params_path, "fewer than 2 areas left to compare with", key="comparison"
        )
    if comp.method == "all":
        feats = _features(counts.frame, start, codes)
        return pool, balance_table(feats, treated, pool, pool)
    return match_comparison(counts.frame, treated, pool, start, comp.n, codes)


def prepare(ctx: RunContext) -> DidData:
    """Load the counts, check areas and dates, choose comparison areas."""
    params = ctx.params
    assert isinstance(params, DidParams)
    counts = common.load_outcome(ctx)
    codes = frame_codes(counts.frame)  # once: the area names are millions of strings
    treated = list(params.intervention.treated or [])
    if not treated:
        raise InputError(ctx.params_path, "list the treated areas", key="intervention.treated")
    common.check_areas(ctx, counts, treated, "intervention.treated", known=codes.area_labels)
    start = pd.Timestamp(params.intervention.start) if params.intervention.start else None
    if start is None:
        raise InputError(
            ctx.params_path, "required for a difference-in-differences", key="intervention.start"
        )
    periods = codes.period_labels  # sorted
    common.check_start(ctx, periods, start)
    n_pre = int((periods < start).sum())
    if n_pre < MIN_PRE:
        raise InputError(
            ctx.params_path,
            f"only {n_pre} pre-intervention periods; at least {MIN_PRE} are needed to check pre-trends",
            key="intervention.start",
        )
    buffer = list(params.buffer.areas or [])
    if params.buffer.adjacent and not buffer:
        buffer = adjacent_areas(ctx, treated)
    common.check_areas(ctx, counts, buffer, "buffer.areas", known=codes.area_labels)
    clash = sorted(set(buffer) & set(treated))
    if clash:
        raise InputError(
            ctx.params_path, f"{clash[0]!r} is both treated and a buffer area", key="buffer.areas"
        )
    comparison, balance = choose_comparison(ctx, params, counts, treated, buffer, start, codes)
    panel, panel_codes = _panel(counts, codes, treated, comparison, start)
    return DidData(counts, panel, treated, comparison, buffer, start, balance, codes, panel_codes)


def _panel(
    counts: AreaCounts,
    codes: FrameCodes,
    treated: list[str],
    comparison: list[str],
    start: pd.Timestamp,
) -> tuple[pd.DataFrame, FrameCodes]:
    """The rows of the treated and comparison areas as the designs' panel, and its codes.

    The unit column is categorical: the area names (sorted, only those in the panel) and
    an integer code per row, which the designs index without hashing millions of strings.
    """
    frame = counts.frame
    rows = codes.areas_in(treated + comparison)
    take = None if rows.all() else np.flatnonzero(rows)  # all areas: no copies

    def kept(values: np.ndarray) -> np.ndarray:
        return values if take is None else values[take]

    area, period = kept(codes.area), kept(codes.period)
    area_labels, period_labels = codes.area_labels, codes.period_labels
    if take is not None:  # the labels of the kept rows only, as factorising them gives
        area_labels, area = _compact(area, area_labels)
        period_labels, period = _compact(period, period_labels)
    is_treated = _rows_in(area, area_labels, treated)
    periods = kept(frame["period"].to_numpy())
    post = np.append(np.asarray(period_labels >= start, dtype=bool), False)[period]
    first = np.full(len(area), np.datetime64("NaT"), dtype=periods.dtype)
    first[is_treated] = start.to_datetime64()
    panel = pd.DataFrame(
        {
            "unit": pd.Categorical.from_codes(area, categories=area_labels),
            "period": periods,
            "outcome": kept(frame["count"].to_numpy(float)),
            "treat": (is_treated & post).astype(float),
            "first_treat": first,
        },
        copy=False,
    )
    return panel, FrameCodes(area, area_labels, period, period_labels)


def _compact(codes: np.ndarray, labels: pd.Index) -> tuple[pd.Index, np.ndarray]:
    """The labels ``codes`` use and the codes renumbered to them (order kept)."""
    used = np.bincount(codes[codes >= 0], minlength=len(labels)) > 0
    if used.all():
        return labels, codes
    return labels[used], np.append(np.cumsum(used) - 1, -1)[codes]


def _fit(ctx: RunContext, data: DidData) -> Any:
    m = ctx.params.model
    kw: dict[str, Any] = {
        "inference": INFERENCE[m.inference],
        "level": m.level,
        "reps": m.replications,
        "seed": m.seed,
    }
    design = (
        PoissonFE(**kw) if m.family in ("poisson", "quasipoisson", "negbin") else TwoWayFE(**kw)
    )
    try:
        return design.fit(data.panel)
    except InputError as err:
        raise _rel_error(ctx, err, "model") from None


COUNT_FAMILIES = ("poisson", "quasipoisson", "negbin")


def _event_panel(data: DidData, family: str) -> tuple[pd.DataFrame, bool]:
    """The event-study panel: quarters (monthly leads are too many for a joint test with
    few clusters), and log(count + 1) for count models so that the test asks the same
    multiplicative question as the Poisson headline."""
    p = data.panel
    # the panel's own codes (sorted labels, as pandas.factorize(..., sort=True) gives them)
    units, unit_labels = data.panel_codes.area, data.panel_codes.area_labels
    months, month_labels = data.panel_codes.period, data.panel_codes.period_labels
    # quarters of the distinct months and units only (a national panel has 4M rows)
    to_quarter, quarter_labels = pd.factorize(_quarter_start(month_labels), sort=True)
    quarters = to_quarter[months]
    n_u, n_q = len(unit_labels), len(quarter_labels)
    # unit x quarter cells, by unit then quarter
    key = units.astype(np.int64, copy=False) * n_q + quarters
    cells = np.flatnonzero(np.bincount(key, minlength=n_u * n_q))
    sums = np.bincount(key, weights=p["outcome"].to_numpy(float), minlength=n_u * n_q)
    if units.size and bool(np.all(units[1:] >= units[:-1])):  # rows by unit (as usual)
        first_row = np.searchsorted(units, np.arange(n_u))  # each unit's first row
    else:
        first_row = np.empty(n_u, dtype=np.int64)
        first_row[units[::-1]] = np.arange(len(units))[::-1]
    starts = _quarter_start(p["first_treat"].to_numpy()[first_row])  # constant within a unit
    unit, quarter = np.divmod(cells, n_q)
    q = pd.DataFrame(
        {
            "unit": unit,  # integer codes (in label order): the fit needs no strings
            "period": np.asarray(quarter_labels)[quarter],
            "outcome": sums[cells],
            "first_treat": starts[unit],
        },
        copy=False,
    )
    logged = family in COUNT_FAMILIES
    if logged:
        q["outcome"] = np.log1p(q["outcome"])
    return q, logged


def _quarter_start(values: Any) -> np.ndarray:
    """The first day of each date's quarter (NaT stays NaT)."""
    return pd.Series(values).dt.to_period("Q").dt.start_time.to_numpy()


def _event_study(ctx: RunContext, data: DidData) -> tuple[Any, bool]:
    m = ctx.params.model
    lo, hi = m.event_window
    panel, logged = _event_panel(data, m.family)
    es = EventStudy(
        first_treat="first_treat",
        leads=max(2, -(lo // 3)),
        lags=max(1, -(-hi // 3)),
        bin_endpoints=True,
        inference="cr1",
        level=m.level,
    )
    try:
        return es.fit(panel), logged
    except InputError as err:
        raise _rel_error(ctx, err, "model") from None


def _event_estimates(es: Any, logged: bool) -> tuple[list[Estimate], pd.DataFrame]:
    """Event-study estimates in quarters, as rate ratios when the outcome was logged."""
    out: list[Estimate] = []
    for e in es.estimates():
        if e.name.startswith("event_time_"):
            label = e.label.replace("periods", "quarters")
            if logged:
                f = lambda v: None if v is None else float(np.exp(v))  # noqa: E731
                e = e.model_copy(
                    update={
                        "estimate": f(e.estimate),
                        "ci_low": f(e.ci_low),
                        "ci_high": f(e.ci_high),
                        "scale": "rate_ratio",
                        "method": e.method + "; quarterly log(count + 1), shown as rate ratios",
                    }
                )
            e = e.model_copy(update={"label": label})
        out.append(e)
    table = es.event_table()
    if logged:
        for col in ("estimate", "ci_low", "ci_high"):
            table[col] = np.exp(table[col])
    table = table.assign(scale="rate_ratio" if logged else "count", unit="quarter")
    return out, table


def _group_series(data: DidData, fit: Any, unit: str, label: str) -> tuple[Series, pd.DataFrame]:
    """Treated total per month against the comparison areas scaled to the treated
    pre-period level, and the counterfactual implied by the estimate after the start."""
    treated, comp = _sums_by_period(
        data.panel_codes, data.panel["outcome"].to_numpy(), [data.treated, data.comparison]
    )
    pre = treated.index < data.start
    scale = treated[pre].sum() / comp[pre].sum() if comp[pre].sum() else np.nan
    post = ~pre
    cf = pd.Series(np.nan, index=treated.index)
    lo = cf.copy()
    hi = cf.copy()
    if fit.scale == "rate_ratio":
        cf[post] = treated[post] / fit.estimate
        if fit.ci_low and fit.ci_high:
            lo[post] = treated[post] / fit.ci_high
            hi[post] = treated[post] / fit.ci_low
    else:
        n = len(data.treated)
        cf[post] = treated[post] - fit.estimate * n
        if fit.ci_low is not None and fit.ci_high is not None:
            lo[post] = treated[post] - fit.ci_high * n
            hi[post] = treated[post] - fit.ci_low * n
    frame = pd.DataFrame(
        {"treated": treated, "comparison_scaled": comp * scale, "cf": cf, "lo": lo, "hi": hi}
    )

    def col(s: pd.Series) -> list[float | None]:
        return [None if pd.isna(v) else float(v) for v in s]

    series = Series(
        periods=[common.period_label(x) for x in frame.index],
        observed=col(frame["treated"]),
        counterfactual=col(frame["cf"]),
        counterfactual_low=col(frame["lo"]),
        counterfactual_high=col(frame["hi"]),
        comparison=col(frame["comparison_scaled"]),
        label=label,
        unit=unit,
    )
    return series, frame


def _sums_by_period(
    codes: FrameCodes, values: np.ndarray, groups: list[list[str]]
) -> list[pd.Series]:
    """Per group of areas (disjoint), the sum of ``values`` per period over the group's
    rows, for the periods those rows have: ``groupby("period").sum()`` of the group's
    rows, in one pass over the rows."""
    n = len(codes.period_labels)
    group = np.full(len(codes.area_labels) + 1, len(groups))  # + 1: code -1, in no group
    for g, areas in enumerate(groups):
        found = codes.area_labels.get_indexer(_as_index(areas, codes.area_labels))
        group[found[found >= 0]] = g
    key = group[codes.area] * n + codes.period  # (group, period) cells; the last: no group
    size = (len(groups) + 1) * n
    if (codes.period < 0).any():  # rows without a period are in no sum (as groupby drops them)
        key[codes.period < 0] = size
    total = np.bincount(key, weights=values, minlength=size + 1)[:size].reshape(-1, n)
    present = np.bincount(key, minlength=size + 1)[:size].reshape(-1, n) > 0
    return [
        pd.Series(
            total[g, present[g]],
            index=pd.Index(codes.period_labels[present[g]], name="period"),
            name="outcome",
        )
        for g in range(len(groups))
    ]


def cumulative_from(frame: pd.DataFrame, fit: Any, level: float) -> Estimate | None:
    """Crimes over the post period relative to the counterfactual (negative = prevented),
    with the interval carried from the effect's interval."""
    post = frame["cf"].notna()
    if not post.any():
        return None
    observed = float(frame.loc[post, "treated"].sum())
    est = observed - float(frame.loc[post, "cf"].sum())
    low = (
        observed - float(frame.loc[post, "hi"].sum())
        if frame.loc[post, "hi"].notna().all()
        else None
    )
    high = (
        observed - float(frame.loc[post, "lo"].sum())
        if frame.loc[post, "lo"].notna().all()
        else None
    )
    return Estimate(
        name="cumulative_effect",
        estimate=est,
        ci_low=low,
        ci_high=high,
        p_value=fit.p_value,
        scale="count",
        method="derived from the headline effect and its interval applied to the observed post-period counts",
        label="Crimes in the treated areas after the start relative to the counterfactual (negative = prevented)",
        level=level,
    )


def _displacement(data: DidData, level: float) -> tuple[list[Estimate], dict[str, Any]]:
    """WDQ, total net effect and WDD over equal windows before and after the start."""
    if not data.buffer:
        return [], {}
    codes = data.codes
    count = data.counts.frame["count"].to_numpy()
    periods = list(codes.period_labels)  # sorted
    post = [p for p in periods if p >= data.start]
    pre = [p for p in periods if p < data.start][-len(post) :]

    def total(areas: list[str], window: list[Any]) -> float:
        # the selected counts in row order, summed as pandas sums them (NaN skipped)
        return float(np.nansum(count[codes.areas_in(areas) & codes.periods_in(window)]))

    rb, ra = total(data.treated, pre), total(data.treated, post)
    db, da = total(data.buffer, pre), total(data.buffer, post)
    cb, ca = total(data.comparison, pre), total(data.comparison, post)
    q = displacement.wdq(rb, ra, db, da, cb, ca)
    tne = displacement.total_net_effect(rb, ra, db, da, cb, ca)
    wd = displacement.wdd((rb, ra), (cb, ca), (db, da), common_control=True, level=level)
    details = {
        "window_months": len(post),
        "counts": {"treated": [rb, ra], "buffer": [db, da], "comparison": [cb, ca]},
        "wdq_interpretation": q.interpretation,
        "total_net_effect_interpretation": tne.interpretation,
        "wdd_interpretation": wd.interpretation,
    }
    return [q.estimate, tne.estimate, wd.estimate], details


def _costs(
    ctx: RunContext, data: DidData, cumulative: Estimate | None
) -> tuple[list[Estimate], dict[str, Any]]:
    """Cost per crime prevented and the benefit-cost ratio, intervals carried from the
    effect's. Crimes prevented are shared between crime types in proportion to the treated
    areas' post-period counts (the model estimates one proportional effect for them all)."""
    iv = ctx.params.intervention
    if iv.cost_gbp is None or cumulative is None:
        return [], {}
    types = ctx.params.data.crime_types or []
    prevented = costs_mod.prevented_from_effect(cumulative)
    per_crime = costs_mod.cost_per_crime_prevented(iv.cost_gbp, prevented)
    shares = {} if ctx.params.data.is_csv else _post_shares(ctx, data, types)
    if not shares:  # no crime types to value: the cost per crime prevented only
        payload = costs_mod.costs_payload(per_crime, None)
        payload.update(programme_cost_gbp=iv.cost_gbp, cost_note=iv.cost_note)
        return [per_crime["estimate"]], payload
    by_type = {
        t: (
            prevented.estimate * share,
            None if prevented.ci_low is None else prevented.ci_low * share,
            None if prevented.ci_high is None else prevented.ci_high * share,
        )
        for t, share in shares.items()
    }
    deflator: tuple[float, float] = (
        (float(iv.deflator[0]), float(iv.deflator[1])) if iv.deflator else (1.0, 1.0)
    )
    bcr = costs_mod.benefit_cost_ratio(by_type, None, iv.cost_gbp, deflator)
    payload = costs_mod.costs_payload(per_crime, bcr)
    payload.update(
        programme_cost_gbp=iv.cost_gbp,
        cost_note=iv.cost_note,
        prices=(
            "uprated by the GDP deflator given in params"
            if iv.deflator
            else "2015/16 prices (no deflator given)"
        ),
        text=[per_crime["text"], bcr["text"]],
    )
    return [per_crime["estimate"], bcr["estimate"]], payload


def _post_shares(ctx: RunContext, data: DidData, types: list[str]) -> dict[str, float]:
    counts = {}
    for t in types:
        f = common.load_area_counts(ctx, [t]).frame
        f = f[f["area"].isin(data.treated) & (f["period"] >= data.start)]
        counts[t] = float(f["count"].sum())
    total = sum(counts.values())
    return {t: c / total for t, c in counts.items()} if total else {}


def _truth(ctx: RunContext, synthetic: bool, scale: str) -> dict[str, float] | None:
    planted = common.truth_for(ctx, synthetic)
    rr = common.planted_rate_ratio(planted, ctx.params.data.crime_types or [])
    if rr is None or scale != "rate_ratio":
        return None
    return {"att": rr}


def run(ctx: RunContext) -> EvaluationResults:
    """Fit the DiD, the event study, displacement and costs; fill in the contract."""
    params = ctx.params
    assert isinstance(params, DidParams)
    data = prepare(ctx)
    fit = _fit(ctx, data)
    es, logged = _event_study(ctx, data)
    unit = "crimes per month" if not params.data.is_csv else "count per period"
    series, frame = _group_series(data, fit, unit, f"{params.outcome.label} in the treated areas")
    cumulative = cumulative_from(frame, fit, params.model.level)
    estimates = [
        e.model_copy(update={"scale": "count_per_area_period"}) if e.scale == "count" else e
        for e in fit.estimates()
    ]
    cr1 = fit.cr1
    if fit.inference != "cr1":
        to_scale = np.exp if fit.scale == "rate_ratio" else (lambda x: x)
        estimates.append(
            Estimate(
                name="att_cr1",
                estimate=fit.estimate,
                se=cr1.se,
                ci_low=float(to_scale(cr1.ci_low)),
                ci_high=float(to_scale(cr1.ci_high)),
                p_value=cr1.p_value,
                scale="rate_ratio" if fit.scale == "rate_ratio" else "count_per_area_period",
                method=f"{cr1.method} (shown for comparison; not the headline: {fit.inference_reason})",
                label="The same effect with conventional cluster-robust standard errors",
                level=params.model.level,
            )
        )
    if cumulative is not None:
        estimates.append(cumulative)
    event_estimates, event = _event_estimates(es, logged)
    estimates += event_estimates
    disp_est, disp = _displacement(data, params.model.level)
    estimates += disp_est
    cost_est, cost_payload = _costs(ctx, data, cumulative)
    estimates += cost_est
    pre = int((frame.index < data.start).sum())
    return EvaluationResults(
        name=ctx.name,
        title=params.title,
        design="did",
        synthetic=data.counts.synthetic,
        outcome=Outcome(
            label=params.outcome.label,
            crime_types=params.data.crime_types or [],
            areas=data.treated,
            comparison_areas=data.comparison,
            buffer_areas=data.buffer,
            unit=unit,
            measure=params.outcome.measure,
        ),
        periods=Periods(
            frequency=data.counts.frequency,  # type: ignore[arg-type]
            data_start=common.period_label(frame.index.min()),
            data_end=common.period_label(frame.index.max()),
            intervention_start=common.period_label(data.start),
            pre_periods=pre,
            post_periods=len(frame) - pre,
        ),
        headline="att",
        estimates=estimates,
        series={"primary": series},
        tables={
            "balance": data.balance.to_dict("records"),
            "event_study": common.records(event),
        },
        diagnostics={
            "inference": fit.inference,
            "inference_reason": fit.inference_reason,
            "n_treated_clusters": fit.n_treated_clusters,
            "n_clusters": fit.n_clusters,
            "pretrend_wald_p": es.pretrend_p,
            "displacement": disp,
            **{k: v for k, v in fit.diagnostics.items() if isinstance(v, int | float | str)},
        },
        costs=cost_payload,
        data_quality={"records_without_location": data.counts.no_location},
        warnings=list(data.counts.notes) + list(fit.notes) + _warnings(es.pretrend_p, data),
        notes=_notes(params, fit),
        truth=_truth(ctx, data.counts.synthetic, fit.scale),
        provenance=common.provenance(ctx, data.counts, data.panel),
    )


def _warnings(pretrend_p: float | None, data: DidData) -> list[str]:
    out = []
    if pretrend_p is not None and pretrend_p < 0.05:
        out.append(
            f"The treated and comparison areas were already diverging before the start "
            f"(joint test of the leads p = {pretrend_p:.3f}); the parallel-trends assumption is doubtful."
        )
    if data.counts.no_location:
        out.append(
            f"{data.counts.no_location:,} records of these crime types had no location and are not in any area."
        )
    return out


def _notes(params: DidParams, fit: Any) -> list[str]:
    comp = params.comparison
    how = (
        "listed in the params"
        if comp.areas
        else f"the {comp.n} areas most similar in pre-period level and trend (nearest neighbours), "
        "excluding the treated and buffer areas"
        if comp.method == "matched"
        else "all other areas except the buffer"
    )
    return [
        "Difference-in-differences: the change in the treated areas is compared with the change "
        f"in comparison areas ({how}) over the same months.",
        "Assumption (parallel trends): without the intervention the treated areas would have "
        "followed the comparison areas; the event study's pre-start estimates test this.",
        f"Inference: {fit.inference_reason}",
        "Areas chosen because crime was high can regress to the mean; matching on the "
        "pre-period level and trend over three years reduces, but cannot rule out, this risk.",
    ]
