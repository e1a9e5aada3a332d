"""Synthetic-control workflow: one treated area (or a few, averaged) against a weighted
blend of donor areas.

params -> area x month counts -> treated, buffer and donor areas checked -> synthetic
control or synthetic DiD (:mod:`evaluation.designs.synthetic_control`) -> placebo-in-space
inference -> the results contract (observed vs synthetic, donor weights, placebos, balance).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evaluation import config
from evaluation.designs.synthetic_control import SyntheticControl, SyntheticControlResults
from evaluation.errors import InputError
from evaluation.params import SyntheticControlParams
from evaluation.report import costs as costs_mod
from evaluation.results import Estimate, EvaluationResults, Outcome, Periods, Series
from evaluation.workflows import common
from evaluation.workflows.common import AreaCounts, RunContext
from evaluation.workflows.did import adjacent_areas, match_comparison

#: minimum pre-intervention periods: the blend is fitted on them
MIN_PRE = config.MIN_PRE_PERIODS
#: donor weights under this are shown as zero in the notes (they are exact in the table)
SHOWN_WEIGHT = 0.005


@dataclass(frozen=True)
class ScData:
    """Everything the fit needs, checked."""

    counts: AreaCounts
    panel: pd.DataFrame  # unit, period, outcome: treated and donor areas only
    treated: list[str]
    donors: list[str]
    buffer: list[str]
    start: Any


def _buffer(
    ctx: RunContext, params: SyntheticControlParams, counts: AreaCounts, treated: list[str]
) -> list[str]:
    buffer = list(params.buffer.areas or [])
    if params.buffer.adjacent and not buffer:
        buffer = adjacent_areas(ctx, treated)
    common.check_areas(ctx, counts, buffer, "buffer.areas")
    clash = sorted(set(buffer) & set(treated))
    if clash:
        raise InputError(
            ctx.params_path, f"{clash[0]!r} is both treated and a buffer area", key="buffer.areas"
        )
    return buffer


def _donors(
    ctx: RunContext,
    params: SyntheticControlParams,
    counts: AreaCounts,
    treated: list[str],
    buffer: list[str],
    start: Any,
) -> list[str]:
    """Listed donors, or all eligible areas (optionally the nearest ``comparison.n``)."""
    comp = params.comparison
    if comp.areas:
        common.check_areas(ctx, counts, comp.areas, "comparison.areas")
        for other, what in ((treated, "treated"), (buffer, "a buffer area")):
            clash = [a for a in comp.areas if a in set(other)]
            if clash:
                raise InputError(
                    ctx.params_path,
                    f"{clash[0]!r} is both {what} and a donor (comparison) area",
                    key="comparison.areas",
                )
        donors = list(dict.fromkeys(comp.areas))
    elif comp.method == "listed":
        raise InputError(
            ctx.params_path,
            "comparison.method is listed but no areas are listed",
            key="comparison.areas",
        )
    else:
        common.check_areas(ctx, counts, comp.exclude, "comparison.exclude")
        out = set(treated) | set(buffer) | set(comp.exclude)
        donors = [a for a in sorted(set(counts.frame["area"].unique())) if a not in out]
        if comp.method == "matched" and len(donors) > comp.n:
            if counts.frequency == "period":
                raise InputError(
                    ctx.params_path,
                    "matching donors needs calendar periods; list comparison.areas or use method: all",
                    key="comparison.method",
                )
            donors, _ = match_comparison(counts.frame, treated, donors, start, comp.n)
    if len(donors) < 2:
        raise InputError(
            ctx.params_path,
            f"{len(donors)} donor area(s) left after removing the treated and buffer areas; "
            "a synthetic control needs at least 2",
            key="comparison",
        )
    return donors


def prepare(ctx: RunContext) -> ScData:
    """Load the counts and check the treated, buffer and donor areas and the start."""
    params = ctx.params
    assert isinstance(params, SyntheticControlParams)
    counts = common.load_outcome(ctx)
    treated = list(dict.fromkeys(params.intervention.treated or []))
    if not treated:
        raise InputError(ctx.params_path, "list the treated areas", key="intervention.treated")
    common.check_areas(ctx, counts, treated, "intervention.treated")
    start = common.intervention_start(ctx, counts.frequency, "a synthetic control")
    buffer = _buffer(ctx, params, counts, treated)
    donors = _donors(ctx, params, counts, treated, buffer, start)
    used = treated + donors
    counts = common.complete_periods(
        ctx, counts, used, count_model=params.model.family != "gaussian"
    )
    periods = pd.Index(sorted(counts.frame["period"].unique()))
    common.check_start(ctx, periods, start)
    n_pre = int((periods < start).sum())
    if n_pre < MIN_PRE:
        raise InputError(
            ctx.params_path,
            f"only {n_pre} pre-intervention periods; a synthetic control needs at least {MIN_PRE} "
            "to fit the blend",
            key="intervention.start",
        )
    n_post = int((periods >= start).sum()) - params.intervention.phase_in
    if n_post < 1:
        raise InputError(
            ctx.params_path,
            "no periods after the start are left once the phase-in is excluded",
            key="intervention.phase_in",
        )
    keep = counts.frame[counts.frame["area"].isin(used)]
    panel = pd.DataFrame(
        {
            "unit": keep["area"].astype(str).to_numpy(),
            "period": keep["period"].to_numpy(),
            "outcome": keep["count"].to_numpy(float),
        }
    )
    return ScData(counts, panel, treated, donors, buffer, start)


def _fit(ctx: RunContext, data: ScData) -> SyntheticControlResults:
    params = ctx.params
    assert isinstance(params, SyntheticControlParams)
    spec = SyntheticControl(
        method=params.method,
        level=params.model.level,
        phase_in=params.intervention.phase_in,
        report="total",
    )
    try:
        return spec.fit(data.panel, data.treated, data.start, donors=data.donors)
    except InputError as err:  # a design error as a params error
        key = {"treated": "intervention.treated", "donors": "comparison.areas"}.get(
            err.key or "", "intervention.start" if err.key == "start" else err.key
        )
        raise InputError(ctx.params_path, err.message, key=key) from None


def _clean(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return round(float(v), 6) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in table.to_dict("records")]


def _series(fit: SyntheticControlResults, label: str, unit: str) -> Series:
    """Observed total against the synthetic area: the blend before the start ("fitted")
    and after it (the counterfactual, with the placebo interval of its average level)."""

    def col(values: np.ndarray, keep: np.ndarray | None = None) -> list[float | None]:
        return [
            None if (keep is not None and not k) or not np.isfinite(v) else float(v)
            for v, k in zip(values, keep if keep is not None else [True] * len(values), strict=True)
        ]

    half = None
    if fit.ci_low is not None and fit.ci_high is not None:
        half = (fit.ci_high - fit.ci_low) / 2
    after = np.asarray(fit.periods >= fit.start)
    return Series(
        periods=[common.period_label(p) for p in fit.periods],
        observed=col(fit.observed),
        fitted=col(fit.synthetic, fit.pre),
        counterfactual=col(fit.synthetic),
        counterfactual_low=None if half is None else col(fit.synthetic - half, after),
        counterfactual_high=None if half is None else col(fit.synthetic + half, after),
        label=label,
        unit=unit,
    )


def _planted(ctx: RunContext, data: ScData) -> dict[str, Any] | None:
    """The planted effect on the synthetic default: by this params file's name, else the
    intervention planted in the same areas from the same month (another design's params
    evaluating the same scheme)."""
    planted = common.truth_for(ctx, data.counts.synthetic)
    if planted is not None or not data.counts.synthetic:
        return planted
    path = config.synthetic_dir() / "truth.json"
    if not path.exists():
        return None
    start = common.period_label(data.start)[:7]
    for entry in json.loads(path.read_text()).get("interventions", {}).values():
        if set(entry.get("wards", ())) == set(data.treated) and entry.get("start") == start:
            rr = common.planted_rate_ratio(entry, ctx.params.data.crime_types or [])
            if rr is not None:
                return dict(entry)
    return None


def _truth(ctx: RunContext, data: ScData) -> dict[str, float] | None:
    rr = common.planted_rate_ratio(_planted(ctx, data), ctx.params.data.crime_types or [])
    return None if rr is None else {"rate_ratio_sc": rr}


def _costs(ctx: RunContext, cumulative: Estimate | None) -> tuple[list[Estimate], dict[str, Any]]:
    cost = ctx.params.intervention.cost_gbp
    if cost is None or cumulative is None or cumulative.estimate is None:
        return [], {}
    if "Drugs" in (ctx.params.data.crime_types or []):
        return [], {"note": "Drug offences are never monetised: they measure police activity."}
    result = costs_mod.cost_per_crime_prevented(cost, costs_mod.prevented_from_effect(cumulative))
    payload = costs_mod.costs_payload(result, None)
    payload["programme_cost_gbp"] = cost
    est = result["estimate"]
    return ([est] if isinstance(est, Estimate) else []), payload


def _donor_words(fit: SyntheticControlResults) -> str:
    w = fit.weights[fit.weights >= SHOWN_WEIGHT].sort_values(ascending=False)
    parts = [f"{a} {v:.0%}" for a, v in w.items()]
    rest = int((fit.weights < SHOWN_WEIGHT).sum())
    tail = f"; the other {rest} donor areas have (almost) no weight" if rest else ""
    return ", ".join(parts) + tail


def _fit_words(fit: SyntheticControlResults, unit: str) -> str:
    level = float(np.mean(fit.observed[fit.pre]))
    share = f"; {fit.pre_rmspe / level:.0%} of the average of {level:.1f}" if level > 0 else ""
    return (
        f"Fit before the start: the synthetic area was typically {fit.pre_rmspe:.1f} {unit} "
        f"away from the observed counts (root mean squared error{share}). Month-to-month "
        "chance variation in the counts sets a floor under this; the closer the fit, the more "
        "the comparison after the start can be trusted."
    )


def _notes(
    params: SyntheticControlParams, data: ScData, fit: SyntheticControlResults, unit: str
) -> list[str]:
    comp = params.comparison
    if comp.areas:
        pool = "the areas listed in the params"
    elif comp.method == "matched" and len(data.donors) == comp.n:
        pool = f"the {comp.n} areas most similar in pre-period level and trend"
    else:
        pool = "all other areas except the treated and buffer areas"
    what = (
        "Synthetic control: the 'synthetic area' is a weighted blend of donor areas "
        f"({pool}), with weights that are zero or positive and add up to one, chosen so that "
        "its monthly counts before the start match the treated areas' as closely as possible. "
        f"Blend: {_donor_words(fit)}."
    )
    if fit.method == "sdid":
        what = (
            "Synthetic difference-in-differences (Arkhangelsky et al. 2021): donor areas are "
            f"weighted ({pool}) so that their trend before the start matches the treated "
            "areas' (a constant difference in level is allowed), and the months before the "
            "start are weighted to those most like the months after it; the effect is the "
            "weighted difference-in-differences. "
            f"Donor weights: {_donor_words(fit)}."
        )
    notes = [what]
    if len(data.treated) > 1:
        notes.append(
            f"{_join(data.treated)} are averaged into one treated series for the fit (so that "
            "one blend of single areas can match its level); effects are reported for their "
            "total."
        )
    buffer = (
        f"the buffer areas ({_join(data.buffer)}) are excluded from the donors because crime "
        "could move into them, or they could benefit too"
        if data.buffer
        else "no buffer areas were named, so a donor next to the treated areas could be affected"
    )
    notes += [
        "Assumptions: the intervention did not change crime in the donor areas (no spillover: "
        f"{buffer}); nothing else that affected only the treated areas changed at the start; "
        "and the blend would have kept tracking the treated areas after the start as it did "
        "before.",
        _fit_words(fit, unit),
        "Uncertainty comes from placebo tests: the same method is applied to each donor area "
        f"as if it had been treated ({fit.n_placebos} placebos). The p-value is the treated "
        "areas' rank among all areas by the ratio of the gap after the start to the gap "
        "before it (the smallest possible is "
        f"1 in {fit.n_placebos + 1}). The {params.model.level:.0%} interval is the estimate "
        "plus or minus about two placebo standard errors: the spread of the placebo areas' "
        "gaps after the start, each scaled by how well its own blend fitted before the start, "
        "applied to the treated areas' fit. The two answer different questions: the ratio "
        "test asks whether the gap became unusually large in any direction, and with noisy "
        "monthly counts it has little power against a modest change in level; the interval "
        "is about the average gap.",
        "The counts are used directly: model.family, seasonality and Covid interruptions do "
        "not apply, because seasons and city-wide shocks shared with the donor areas cancel "
        "out in the blend.",
    ]
    return notes


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _warnings(data: ScData, fit: SyntheticControlResults) -> list[str]:
    out = list(data.counts.notes) + list(fit.notes)
    pre = fit.pre
    panel = data.panel[data.panel["period"].isin(fit.periods[pre])]
    means = panel.groupby("unit")["outcome"].mean()
    level = float(means[data.treated].mean())
    donors = means[data.donors]
    if level > donors.max() or level < donors.min():
        side = "above" if level > donors.max() else "below"
        if fit.method == "synthetic_control":
            out.append(
                f"Before the start the treated areas averaged {level:.1f} a month, {side} every "
                "donor area: no blend can match that level, so the synthetic area is biased; "
                "synthetic difference-in-differences (method: sdid) allows for a level difference."
            )
    if fit.placebo_p is not None and fit.n_placebos < 19:
        out.append(
            f"Only {fit.n_placebos} placebo areas: the placebo p-value cannot go below "
            f"{1 / (fit.n_placebos + 1):.2f}, and the interval is rough."
        )
    if data.counts.no_location:
        out.append(
            f"{data.counts.no_location:,} records of these crime types had no location and are "
            "not in any area."
        )
    return out


def _tables(fit: SyntheticControlResults) -> dict[str, list[dict[str, Any]]]:
    weights = fit.weights.sort_values(ascending=False, kind="stable")
    tables = {
        "donor_weights": _records(
            pd.DataFrame({"area": weights.index, "weight": weights.to_numpy()})
        ),
        "placebos": _records(
            fit.placebos[["area", "role", "pre_rmspe", "post_rmspe", "ratio", "att"]].rename(
                columns={"att": "mean_gap"}
            )
        ),
        "balance": _records(fit.balance),
    }
    if fit.time_weights is not None:
        tw = fit.time_weights[fit.time_weights > 0]
        tables["time_weights"] = _records(
            pd.DataFrame(
                {"period": [common.period_label(p) for p in tw.index], "weight": tw.to_numpy()}
            )
        )
    return tables


def _diagnostics(fit: SyntheticControlResults) -> dict[str, Any]:
    w = fit.weights.to_numpy()
    plc = fit.placebos[fit.placebos["role"] == "placebo"]
    diag: dict[str, Any] = {
        "method": fit.method,
        "n_donors": len(fit.donors),
        "n_placebos": fit.n_placebos,
        "pre_rmspe_total": fit.pre_rmspe,
        "post_rmspe_total": fit.post_rmspe,
        "rmspe_ratio": fit.ratio if math.isfinite(fit.ratio) else None,
        "largest_weight": float(w.max()),
        "effective_donors": float(1 / np.sum(w**2)),
        "treated_areas_averaged": len(fit.treated),
    }
    if len(plc):
        diag["placebo_median_pre_rmspe_per_area"] = float(plc["pre_rmspe"].median())
    if fit.zeta is not None:
        diag["sdid_zeta"] = fit.zeta
        diag["sdid_noise_level"] = fit.noise
    return {k: _clean(v) for k, v in diag.items()}


def run(ctx: RunContext) -> EvaluationResults:
    """Fit the synthetic control and fill in the contract."""
    params = ctx.params
    assert isinstance(params, SyntheticControlParams)
    data = prepare(ctx)
    fit = _fit(ctx, data)
    unit = "crimes per month" if not params.data.is_csv else f"count per {data.counts.frequency}"
    label = f"{params.outcome.label} in the treated areas"
    estimates = fit.estimates()
    cumulative = next((e for e in estimates if e.name == "cumulative_effect"), None)
    cost_est, cost_payload = _costs(ctx, cumulative)
    estimates += cost_est
    n_pre = int(fit.pre.sum())
    return EvaluationResults(
        name=ctx.name,
        title=params.title,
        design="synthetic_control",
        synthetic=data.counts.synthetic,
        outcome=Outcome(
            label=params.outcome.label,
            crime_types=params.data.crime_types or [],
            areas=data.treated,
            comparison_areas=data.donors,
            buffer_areas=data.buffer,
            unit=unit,
            measure=params.outcome.measure,
        ),
        periods=Periods(
            frequency=data.counts.frequency,  # type: ignore[arg-type]
            data_start=common.period_label(fit.periods.min()),
            data_end=common.period_label(fit.periods.max()),
            intervention_start=common.period_label(data.start),
            pre_periods=n_pre,
            post_periods=len(fit.periods) - n_pre,
        ),
        headline="att",
        estimates=estimates,
        series={"primary": _series(fit, label, unit)},
        tables=_tables(fit),
        diagnostics=_diagnostics(fit),
        costs=cost_payload,
        data_quality={"records_without_location": data.counts.no_location},
        warnings=_warnings(data, fit),
        notes=_notes(params, data, fit, unit),
        truth=_truth(ctx, data),
        provenance=common.provenance(ctx, data.counts, data.panel),
    )
