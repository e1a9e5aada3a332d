"""Power workflow: could the planned evaluation detect an effect at all?

params -> the data before ``intervention.start`` (all data when the start lies beyond
them) -> the planned design (ITS on the evaluated areas, or DiD of the treated areas
against comparison areas chosen as the DiD workflow chooses them) -> baseline and noise
from the pre-period -> simulated power for each (effect, post length) -> minimum
detectable effects -> the results contract.

The simulation itself is :mod:`evaluation.inference.power`; this module only loads and
checks the data, maps errors to params keys and words the results.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from evaluation import config
from evaluation.designs.its import ItsSpec
from evaluation.errors import InputError
from evaluation.inference import power as pw
from evaluation.inference.cluster import choose_inference
from evaluation.params import PowerParams
from evaluation.report import evidence
from evaluation.results import Estimate, EvaluationResults, Outcome, Periods, Series
from evaluation.workflows import common
from evaluation.workflows import did as did_workflow
from evaluation.workflows import its as its_workflow
from evaluation.workflows.common import AreaCounts, RunContext

SEASON_LENGTH = {"month": 12, "quarter": 4}
#: Longest post period simulated (ten years of months).
MAX_POST_PERIODS = 120
#: Headline post length when the params list it (two years of months).
PREFERRED_POST = 24


@dataclass(frozen=True)
class PowerData:
    """The checked pre-period data of a planned evaluation."""

    counts: AreaCounts  # pre-period rows only
    design: Literal["its", "did"]
    units: list[str] | None  # ITS: areas summed into the series (None: all)
    treated: list[str]
    comparison: list[str]
    buffer: list[str]
    start: Any
    balance: pd.DataFrame | None
    left_out: int  # periods from the start on, present in the data but not used


def _params(ctx: RunContext) -> PowerParams:
    params = ctx.params
    assert isinstance(params, PowerParams)
    return params


def its_spec(params: PowerParams, frequency: str) -> ItsSpec:
    """The planned ITS model (as :func:`evaluation.workflows.its.spec_from`)."""
    m = params.model
    calendar = frequency in SEASON_LENGTH
    return ItsSpec(
        family=m.family,
        seasonality=m.seasonality if calendar else "none",
        season_length=SEASON_LENGTH.get(frequency, 12),
        slope_change=m.slope_change,
        phase_in=params.intervention.phase_in,
        se=m.se,
        hac_lags=m.hac_lags,
        level=m.level,
        interruptions=config.WELSH_COVID_LOCKDOWNS
        if m.interruptions == "welsh_covid" and calendar
        else (),
    )


def _check_plan(ctx: RunContext, params: PowerParams) -> None:
    """Checks of the power keys that need no data."""
    spec = params.power
    if params.model.family == "gaussian":
        raise InputError(
            ctx.params_path,
            "power is simulated for counts: use poisson, quasipoisson or negbin",
            key="model.family",
        )
    posts = spec.post_periods
    if not posts or any(h < 1 or h > MAX_POST_PERIODS for h in posts):
        raise InputError(
            ctx.params_path,
            f"post lengths must be between 1 and {MAX_POST_PERIODS} periods, not {posts}",
            key="power.post_periods",
        )
    if len(set(posts)) < len(posts):
        raise InputError(ctx.params_path, "post lengths repeat", key="power.post_periods")
    need = 2 if spec.design == "its" and params.model.slope_change else 1
    need += params.intervention.phase_in if spec.design == "its" else 0
    if min(posts) < need:
        raise InputError(
            ctx.params_path,
            f"an ITS with this model needs at least {need} post periods, not {min(posts)}",
            key="power.post_periods",
        )
    if not any(e < 1 for e in spec.effects):
        raise InputError(
            ctx.params_path,
            "list at least one fall (a rate ratio below 1): the minimum detectable effect is a fall",
            key="power.effects",
        )
    if params.intervention.start is None:
        raise InputError(
            ctx.params_path,
            "required: the planned start of the intervention",
            key="intervention.start",
        )


def _pre_period(ctx: RunContext, counts: AreaCounts, start: Any) -> tuple[AreaCounts, int]:
    """The rows before the start; raises when there are too few of them."""
    periods = pd.Index(sorted(counts.frame["period"].unique()))
    if start <= periods[0]:
        raise InputError(
            ctx.params_path,
            f"{common.period_label(start)[:7]} is not after the first period of the data "
            f"({common.period_label(periods[0])[:7]}): a power analysis simulates from the "
            "data before the start",
            key="intervention.start",
        )
    n_pre = int((periods < start).sum())
    if n_pre < config.MIN_PRE_PERIODS:
        raise InputError(
            ctx.params_path,
            f"only {n_pre} periods before the start; at least {config.MIN_PRE_PERIODS} are "
            "needed to estimate the trend and seasonality",
            key="intervention.start",
        )
    frame = counts.frame[counts.frame["period"] < start].reset_index(drop=True)
    return replace(counts, frame=frame), int((periods >= start).sum())


def prepare(ctx: RunContext) -> PowerData:
    """Load the pre-period data and check everything the simulation needs."""
    params = _params(ctx)
    _check_plan(ctx, params)
    counts = common.load_outcome(ctx)
    start = common.intervention_start(ctx, counts.frequency, "a power analysis")
    counts, left_out = _pre_period(ctx, counts, start)
    if params.power.design == "its":
        return _prepare_its(ctx, params, counts, start, left_out)
    return _prepare_did(ctx, params, counts, start, left_out)


def _prepare_its(
    ctx: RunContext, params: PowerParams, counts: AreaCounts, start: Any, left_out: int
) -> PowerData:
    if params.comparison.areas:
        raise InputError(
            ctx.params_path,
            "the power of a controlled ITS is not simulated; plan it as power.design: did",
            key="comparison.areas",
        )
    units = params.data.units or params.intervention.treated
    common.check_areas(ctx, counts, units, "data.units")
    counts = common.complete_periods(ctx, counts, units, count_model=True)
    if not counts.series(units).any():
        raise InputError(
            ctx.params_path,
            "the outcome is zero in every period before the start",
            key="data.units" if units else "data.crime_types",
        )
    return PowerData(counts, "its", units, units or [], [], [], start, None, left_out)


def _prepare_did(
    ctx: RunContext, params: PowerParams, counts: AreaCounts, start: Any, left_out: int
) -> PowerData:
    if counts.frequency == "period":
        raise InputError(
            ctx.params_path,
            "a difference-in-differences needs dated periods (months or quarters), as the "
            "DiD evaluation does; plan an ITS (power.design: its) for integer periods",
            key="power.design",
        )
    treated = list(params.intervention.treated or [])
    if not treated:
        raise InputError(ctx.params_path, "list the treated areas", key="intervention.treated")
    common.check_areas(ctx, counts, treated, "intervention.treated")
    buffer = list(params.buffer.areas or [])
    if params.buffer.adjacent and not buffer:
        buffer = did_workflow.adjacent_areas(ctx, treated)
    common.check_areas(ctx, counts, buffer, "buffer.areas")
    clash = sorted(set(buffer) & set(treated))
    if clash:
        raise InputError(
            ctx.params_path, f"{clash[0]!r} is both treated and a buffer area", key="buffer.areas"
        )
    comparison, balance = did_workflow.choose_comparison(
        ctx, params, counts, treated, buffer, start
    )
    counts = common.complete_periods(ctx, counts, treated + comparison, count_model=True)
    return PowerData(counts, "did", None, treated, comparison, buffer, start, balance, left_out)


#: Keys the simulation names -> the params keys the evaluator wrote (the ITS map, plus the
#: DiD simulation's own).
_KEYS = {**its_workflow.DESIGN_KEYS, "model": "model.family"}


def _rel_error(ctx: RunContext, err: InputError) -> InputError:
    key = err.key
    if key == "outcome":
        key = "data.units" if ctx.params.data.units else "data.crime_types"
    else:
        key = _KEYS.get(key or "", key)
    return InputError(ctx.params_path, err.message, key=key, line=err.line)


def did_inference(params: PowerParams, n_treated: int) -> tuple[Literal["wild", "cr1"], str]:
    """The inference simulated for a DiD: the headline's (randomisation inference is
    replaced by the wild bootstrap, conventional by CR1), and a note when it differs."""
    requested = {"wild_bootstrap": "wild"}.get(params.model.inference, params.model.inference)
    method, _ = choose_inference(n_treated, requested)
    if method == "randomization":
        return "wild", (
            "The evaluation's headline uses randomisation inference, which is too slow to "
            "repeat in every simulation; the wild cluster restricted bootstrap stands in for it."
        )
    if method == "conventional":
        return "cr1", "Conventional standard errors are simulated as CR1 cluster-robust ones."
    return ("wild" if method == "wild" else "cr1"), ""


def _simulation(ctx: RunContext, data: PowerData) -> tuple[pw.Simulation, pw.Baseline, str]:
    params = _params(ctx)
    spec = its_spec(params, data.counts.frequency)
    kind: pw.NoiseKind = "negbin" if params.model.family == "negbin" else "quasipoisson"
    posts = params.power.post_periods
    note = ""
    try:
        if data.design == "its":
            y = data.counts.series(data.units)
            sim, base = pw.its_simulation(y, data.start, spec, posts, noise_kind=kind)
        else:
            frame = data.counts.frame
            wide = (
                frame[frame["area"].isin(data.treated + data.comparison)]
                .pivot_table(index="area", columns="period", values="count", aggfunc="sum")
                .reindex(data.treated + data.comparison)
                .fillna(0.0)
            )
            inference, note = did_inference(params, len(data.treated))
            sim, base = pw.did_simulation(
                wide,
                data.treated,
                data.start,
                spec,
                posts,
                inference=inference,
                reps=params.model.replications,
                seed=params.model.seed,
                noise_kind=kind,
            )
    except InputError as err:
        raise _rel_error(ctx, err) from None
    return sim, base, note


def _headline_post(posts: list[int]) -> int:
    ordered = sorted(posts)
    return PREFERRED_POST if PREFERRED_POST in ordered else ordered[len(ordered) // 2]


def _mde_estimate(
    h: int, mde: pw.Mde, curve: pw.PowerCurve, frequency: str, target: float
) -> Estimate:
    unit = frequency if h == 1 else f"{frequency}s"
    return Estimate(
        name=f"mde_{h}",
        estimate=mde.estimate,
        ci_low=mde.low,
        ci_high=mde.high,
        scale="rate_ratio",
        method=(
            f"simulated power ({curve.simulations:,} simulated evaluations per effect) of "
            f"{curve.method}, corrected to its nominal size when it rejects too often; "
            "interpolated between simulated effects; the interval is the Monte Carlo error "
            "of the simulation only"
        ),
        label=(
            f"Minimum detectable effect: the smallest fall detected with {target:.0%} power "
            f"with {h} {unit} after the start (rate ratio)"
        ),
        level=0.95,
    )


def _series(data: PowerData, base: pw.Baseline, label: str, unit: str, max_post: int) -> Series:
    tl = base.timeline
    n_obs, n_all = tl.n_observed, tl.n_pre + max_post

    def col(values: np.ndarray, lo: int, hi: int) -> list[float | None]:
        return [float(values[i - lo]) if lo <= i < hi else None for i in range(n_all)]

    comparison = None
    if base.comparison is not None and base.comparison.sum() > 0:
        scaled = base.comparison * (base.observed.sum() / base.comparison.sum())
        comparison = col(scaled, 0, n_obs)
    projected = base.projected[:n_all]
    return Series(
        periods=[common.period_label(p) for p in tl.index[:n_all]],
        observed=col(base.observed, 0, n_obs),
        fitted=col(base.fitted, 0, n_obs),
        counterfactual=[float(projected[i]) if i >= n_obs - 1 else None for i in range(n_all)],
        comparison=comparison,
        label=label,
        unit=unit,
    )


def _where(data: PowerData) -> str:
    areas = data.treated if data.design == "did" else (data.units or [])
    if not areas:
        return ""
    return " in " + (
        " and ".join(areas) if len(areas) <= 2 else ", ".join(areas[:-1]) + " and " + areas[-1]
    )


def _design_words(data: PowerData) -> str:
    if data.design == "did":
        return (
            f"a difference-in-differences of {len(data.treated)} treated against "
            f"{len(data.comparison)} comparison areas"
        )
    return "an interrupted time series"


def _terms_words(terms: tuple[str, ...]) -> str:
    """The baseline model's terms in words."""
    raw = [t.removeprefix("projection: ") for t in terms]
    words: list[str] = []
    if "unit effects" in raw:
        words.append(
            "area and period effects; beyond the data the periods' common level is projected from"
        )
    parts = []
    if "time" in raw:
        parts.append("a trend")
    pairs = sum(1 for t in raw if t.startswith("sin") or t.startswith("cos")) // 2
    if pairs:
        parts.append(f"seasonality ({pairs} Fourier pair{'s' if pairs > 1 else ''})")
    if any(t.startswith("season_") for t in raw):
        parts.append("month-of-year effects")
    if any(t.startswith("covid") for t in raw):
        parts.append("the Covid-19 lockdowns (off after them)")
    listed = (
        ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        if parts
        else "a constant"
    )
    return " ".join([*words, listed])


def _notes(
    params: PowerParams,
    data: PowerData,
    curve: pw.PowerCurve,
    mdes: dict[int, pw.Mde],
    base: pw.Baseline,
    inference_note: str,
) -> list[str]:
    spec = params.power
    label = params.outcome.label
    freq = data.counts.frequency
    falls = [e for e in curve.effects if e < 1]
    sentences = [
        evidence.mde_sentence(
            h,
            mde.estimate,
            spec.target_power,
            freq,
            outcome=f"{label[:1].lower()}{label[1:]}{_where(data)}",
            largest_fall=min(falls),
        )
        for h, mde in sorted(mdes.items())
    ]
    tl = base.timeline
    gap = (
        f", plus {tl.n_gap} {freq}s between the end of the data and the start simulated from "
        "the projected trend"
        if tl.n_gap
        else ""
    )
    notes = [
        *sentences,
        f"Power analysis of {_design_words(data)}, by simulation: the {tl.n_observed} "
        f"{freq}s before the start{gap} give the baseline ({_terms_words(base.terms)}) and the "
        f"noise around it ({base.noise.describe()}); {curve.simulations:,} evaluations were "
        f"simulated for every effect and post length, each analysed with "
        f"{curve.method}, testing at the {spec.alpha:g} level.",
        "Each effect is planted as a constant fall (or rise) from the start: every crime "
        "that would have happened in the treated areas is removed with the same probability. "
        "An effect that builds up slowly is harder to detect than this.",
        "The simulated data follow the baseline exactly (a continuing trend for an ITS, "
        "parallel trends for a DiD): the minimum detectable effect measures chance "
        "variation, not bias from other changes at the same time.",
        "The interval of each minimum detectable effect is the Monte Carlo error of the "
        "simulation only, not uncertainty about the data.",
    ]
    if inference_note:
        notes.append(inference_note)
    if params.model.family == "negbin":
        notes.append(
            "The negative binomial dispersion is held at its pre-period estimate in every "
            "simulated fit (the evaluation re-estimates it)."
        )
    sizes = ", ".join(f"{s:.1%}" for s in curve.size().values())
    notes.append(
        f"Without any effect the planned test rejected 'no change' in {sizes} of the "
        f"simulations (for {', '.join(map(str, curve.post_periods))} {freq}s after the start; "
        f"nominal {spec.alpha:.0%}); a test that rejects too often is corrected to its nominal "
        "size before the minimum detectable effect is read off, a conservative one is not."
    )
    if params.data.population_offset or params.data.offset:
        notes.append(
            "Population offsets are not used: the simulation models counts, and populations "
            "change too slowly over a few years to move the minimum detectable effect."
        )
    if data.left_out:
        notes.append(
            f"{data.left_out} {freq}s of data from the start on were left out: a power "
            "analysis uses only the data before the start."
        )
    if params.outcome.measure == "activity":
        notes.append(
            f"{label} measure police activity: more enforcement records more offences, so "
            "the effect a scheme has on them may be a rise rather than a fall."
        )
    return notes


def _oversized(params: PowerParams, curve: pw.PowerCurve) -> dict[int, float]:
    """Post lengths whose empirical size exceeds alpha by more than 2 Monte Carlo errors."""
    alpha = params.power.alpha
    band = 2.0 * float(np.sqrt(alpha * (1 - alpha) / curve.simulations))
    return {h: s for h, s in curve.size().items() if s > alpha + band}


def _warnings(
    params: PowerParams, data: PowerData, curve: pw.PowerCurve, mdes: dict[int, pw.Mde], head: int
) -> list[str]:
    out = list(data.counts.notes)
    alpha = params.power.alpha
    freq = data.counts.frequency
    for h, size in _oversized(params, curve).items():
        crit = float(curve.critical_p[curve.post_periods.index(h)])
        out.append(
            f"With {h} {freq}s after the start the planned test rejected 'no change' in "
            f"{size:.1%} of the simulations without any effect (it should be {alpha:.0%}): its "
            "intervals would be too narrow. The minimum detectable effect given is for the "
            f"test corrected to reject {alpha:.0%} of the time without an effect "
            f"(p <= {crit:.3g}); consider model-based standard errors or a longer post period."
        )
    if mdes[head].estimate is None:
        biggest = min(curve.effects)
        out.append(
            f"No simulated fall, up to {(1 - biggest):.0%}, reached {params.power.target_power:.0%} "
            f"power with {head} {data.counts.frequency}s after the start: this design is "
            "unlikely to detect any realistic effect."
        )
    return out


def run(ctx: RunContext) -> EvaluationResults:
    """Simulate the planned design's power and fill in the results contract."""
    params = _params(ctx)
    spec = params.power
    data = prepare(ctx)
    sim, base, inference_note = _simulation(ctx, data)
    try:
        curve = pw.simulate_power(
            sim,
            spec.effects,
            spec.post_periods,
            simulations=spec.simulations,
            alpha=spec.alpha,
            seed=params.model.seed,
        )
    except InputError as err:
        raise _rel_error(ctx, err) from None
    freq = data.counts.frequency
    mdes = {
        h: pw.minimum_detectable_effect(
            curve.effects,
            curve.power_adjusted[:, j],
            spec.target_power,
            simulations=curve.simulations,
        )
        for j, h in enumerate(curve.post_periods)
    }
    head = _headline_post(list(curve.post_periods))
    estimates = [_mde_estimate(h, mdes[h], curve, freq, spec.target_power) for h in sorted(mdes)]
    noun = "count" if params.data.is_csv else "crimes"
    unit = f"{noun} per {freq}"
    areas = data.treated if data.design == "did" else (data.units or [])
    frame = data.counts.frame
    tl = base.timeline
    return EvaluationResults(
        name=ctx.name,
        title=params.title,
        design="power",
        synthetic=data.counts.synthetic,
        outcome=Outcome(
            label=params.outcome.label,
            crime_types=params.data.crime_types or [],
            areas=areas,
            comparison_areas=data.comparison,
            buffer_areas=data.buffer,
            unit=unit,
            measure=params.outcome.measure,
        ),
        periods=Periods(
            frequency=freq,  # type: ignore[arg-type]
            data_start=common.period_label(frame["period"].min()),
            data_end=common.period_label(frame["period"].max()),
            intervention_start=common.period_label(data.start),
            pre_periods=tl.n_observed,
            post_periods=None,
        ),
        headline=f"mde_{head}",
        estimates=estimates,
        series={
            "primary": _series(
                data,
                base,
                f"{params.outcome.label}{_where(data)}",
                unit,
                max(curve.post_periods),
            )
        },
        tables={
            "power_curve": curve.rows(),
            **({"balance": data.balance.to_dict("records")} if data.balance is not None else {}),
        },
        diagnostics=_diagnostics(params, data, curve, mdes, base, head),
        data_quality={"records_without_location": data.counts.no_location},
        warnings=_warnings(params, data, curve, mdes, head),
        notes=_notes(params, data, curve, mdes, base, inference_note),
        truth=None,
        provenance=common.provenance(ctx, data.counts, frame),
    )


def _diagnostics(
    params: PowerParams,
    data: PowerData,
    curve: pw.PowerCurve,
    mdes: dict[int, pw.Mde],
    base: pw.Baseline,
    head: int,
) -> dict[str, Any]:
    spec = params.power
    tl = base.timeline
    out: dict[str, Any] = {
        "planned_design": data.design,
        "test": curve.method,
        "noise": {
            "kind": base.noise.kind,
            "dispersion": base.noise.dispersion,
            "rho": base.noise.rho,
            "description": base.noise.describe(),
        },
        "baseline_terms": list(base.terms),
        "simulations": curve.simulations,
        "alpha": spec.alpha,
        "target_power": spec.target_power,
        "seed": params.model.seed,
        "post_periods": list(curve.post_periods),
        "headline_post_periods": head,
        "effects": list(curve.effects),
        "empirical_size": {str(h): s for h, s in curve.size().items()},
        "critical_p": {
            str(h): float(c) for h, c in zip(curve.post_periods, curve.critical_p, strict=True)
        },
        "mde": {
            str(h): {"estimate": m.estimate, "mc_low": m.low, "mc_high": m.high}
            for h, m in sorted(mdes.items())
        },
        "mde_uncorrected": {
            str(h): pw.minimum_detectable_effect(
                curve.effects, curve.power[:, j], spec.target_power, simulations=curve.simulations
            ).estimate
            for j, h in enumerate(curve.post_periods)
        },
        "pre_periods_observed": tl.n_observed,
        "pre_periods_unobserved": tl.n_gap,
        "mean_pre_count": float(np.mean(base.observed)),
    }
    if data.design == "did":
        out["n_treated_clusters"] = len(data.treated)
        out["n_clusters"] = len(data.treated) + len(data.comparison) - len(base.dropped_units)
        if base.dropped_units:
            out["dropped_units"] = list(base.dropped_units)
    return out
