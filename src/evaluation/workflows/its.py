"""Interrupted time-series workflow: params -> series -> segmented regression -> results."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evaluation import config
from evaluation.designs.its import ItsResults, ItsSpec, fit_its
from evaluation.designs.its import _build_design as _design_checks
from evaluation.errors import InputError
from evaluation.inference import distributions as dist
from evaluation.inference.timeseries import newey_west_lags
from evaluation.params import ItsParams
from evaluation.results import (
    Estimate,
    EvaluationResults,
    Outcome,
    Periods,
    Series,
)
from evaluation.workflows import common
from evaluation.workflows.common import AreaCounts, RunContext

SEASON_LENGTH = {"month": 12, "quarter": 4}


def spec_from(params: ItsParams, frequency: str) -> ItsSpec:
    """The design spec the params describe (Covid interruptions only for calendar months)."""
    m = params.model
    interruptions: tuple[config.Interruption, ...] = ()
    if m.interruptions == "welsh_covid" and frequency in SEASON_LENGTH:
        interruptions = config.WELSH_COVID_LOCKDOWNS
    seasonality = m.seasonality if frequency in SEASON_LENGTH else "none"
    return ItsSpec(
        family=m.family,
        seasonality=seasonality,
        season_length=SEASON_LENGTH.get(frequency, 12),
        slope_change=m.slope_change,
        phase_in=params.intervention.phase_in,
        se=m.se,
        hac_lags=m.hac_lags,
        level=m.level,
        interruptions=interruptions,
    )


def _comparison_units(ctx: RunContext, params: ItsParams) -> list[str] | None:
    if params.comparison is None:
        return None
    if not params.comparison.areas:
        raise InputError(
            ctx.params_path,
            "a controlled ITS needs comparison.areas listed",
            key="comparison.areas",
        )
    return params.comparison.areas


def prepare(ctx: RunContext) -> dict[str, Any]:
    """Load and check everything the fit needs; raises InputError before any output."""
    params = ctx.params
    assert isinstance(params, ItsParams)
    counts = common.load_outcome(ctx)
    units = params.data.units or params.intervention.treated
    common.check_areas(ctx, counts, units, "data.units")
    comparison = _comparison_units(ctx, params)
    common.check_areas(ctx, counts, comparison, "comparison.areas")
    _check_apart(ctx, units, comparison)
    count_model = params.model.family != "gaussian"
    used = None if units is None else [*units, *(comparison or [])]
    counts = common.complete_periods(ctx, counts, used, count_model=count_model)
    y = counts.series(units)
    start = common.intervention_start(ctx, counts.frequency, "an ITS")
    common.check_start(ctx, y.index, start)
    n_pre = int((y.index < start).sum())
    if n_pre < config.MIN_PRE_PERIODS:
        raise InputError(
            ctx.params_path,
            f"only {n_pre} pre-intervention periods; an ITS needs at least {config.MIN_PRE_PERIODS}",
            key="intervention.start",
        )
    checks = {
        c.name: common.complete_periods(
            ctx, common.load_outcome(ctx, c.crime_types), used, count_model=count_model
        )
        for c in params.checks
    }
    prepared = {
        "counts": counts,
        "units": units,
        "comparison": comparison,
        "start": start,
        "checks": checks,
    }
    # everything the design itself refuses (too few post periods, an all-zero series,
    # collinear terms ...) is refused now, before any output, not in the notebook
    _check_design(ctx, counts, prepared, _outcome_key(ctx, units))
    for c in params.checks:
        _check_design(ctx, checks[c.name], prepared, f"checks.{c.name}")
    return prepared


def _check_apart(ctx: RunContext, units: list[str] | None, comparison: list[str] | None) -> None:
    """The evaluated and the comparison areas must not overlap."""
    if not comparison:
        return
    if units is None:
        raise InputError(
            ctx.params_path,
            "a controlled ITS needs the evaluated areas listed: without them the evaluated "
            "series is every area, comparison areas included",
            key="data.units",
        )
    both = [a for a in units if a in set(comparison)]
    if both:
        raise InputError(
            ctx.params_path,
            f"{both[0]!r} is both evaluated (data.units) and a comparison area",
            key="comparison.areas",
        )


def _outcome_key(ctx: RunContext, units: list[str] | None) -> str:
    if units:
        return "data.units"
    return "data.outcome" if ctx.params.data.is_csv else "data.crime_types"


#: Keys the design names -> the params keys the evaluator wrote.
DESIGN_KEYS = {
    "its.family": "model.family",
    "its.seasonality": "model.seasonality",
    "its.season_length": "model.seasonality",
    "its.phase_in": "intervention.phase_in",
    "its.se": "model.se",
    "its.hac_lags": "model.hac_lags",
    "its.level": "model.level",
    "its.interruptions": "model.interruptions",
    "comparison": "comparison.areas",
    "comparison_offset": "comparison.areas",
}


def _design_error(ctx: RunContext, err: InputError, outcome_key: str) -> InputError:
    """A design error naming the params file and the params key (the design knows neither)."""
    if err.key == "outcome":
        key: str | None = outcome_key
    elif err.key == "offset":
        key = "data.offset" if ctx.params.data.is_csv else "data.population_offset"
    else:
        key = DESIGN_KEYS.get(err.key or "", err.key)
    return InputError(ctx.params_path, err.message, key=key, line=err.line)


def _design_inputs(counts: AreaCounts, prepared: dict[str, Any]) -> dict[str, Any]:
    """The series the design is given (shared by the checks and the fit)."""
    units, comparison = prepared["units"], prepared["comparison"]
    return {
        "y": counts.series(units),
        "start": prepared["start"],
        "offset": counts.offset(units),
        "comparison": counts.series(comparison) if comparison else None,
        "comparison_offset": counts.offset(comparison) if comparison else None,
    }


def _check_design(
    ctx: RunContext, counts: AreaCounts, prepared: dict[str, Any], outcome_key: str
) -> None:
    """Build the design matrices without fitting, to raise its input errors early."""
    params = ctx.params
    assert isinstance(params, ItsParams)
    try:
        spec = spec_from(params, counts.frequency)
        inputs = _design_inputs(counts, prepared)
        design = _design_checks(
            inputs["y"],
            inputs["start"],
            spec,
            inputs["offset"],
            inputs["comparison"],
            inputs["comparison_offset"],
            None,
        )
    except InputError as err:
        raise _design_error(ctx, err, outcome_key) from None
    if spec.se == "hac":  # as fit_its counts them: fitted periods
        n_fit = int(design.time_code[design.in_fit].max()) + 1
        lags = spec.hac_lags if spec.hac_lags is not None else newey_west_lags(n_fit)
        if lags >= n_fit:
            raise InputError(
                ctx.params_path,
                f"{lags} HAC lags for {n_fit} fitted periods: too many",
                key="model.hac_lags",
            )


def _fit(ctx: RunContext, counts: AreaCounts, prepared: dict[str, Any]) -> ItsResults:
    params = ctx.params
    assert isinstance(params, ItsParams)
    inputs = _design_inputs(counts, prepared)
    try:
        return fit_its(
            inputs.pop("y"), inputs.pop("start"), spec_from(params, counts.frequency), **inputs
        )
    except InputError as err:  # the design does not know the file: add it
        raise _design_error(ctx, err, _outcome_key(ctx, prepared["units"])) from None


def _series(fit: ItsResults, label: str, unit: str) -> Series:
    f = fit.frame
    as_list = lambda col: [None if pd.isna(v) else float(v) for v in f[col]]  # noqa: E731
    return Series(
        periods=[common.period_label(p) for p in f["period"]],
        observed=as_list("observed"),
        fitted=as_list("fitted"),
        counterfactual=as_list("counterfactual"),
        counterfactual_low=as_list("cf_low"),
        counterfactual_high=as_list("cf_high"),
        comparison=as_list("comparison") if "comparison" in f else None,
        label=label,
        unit=unit,
    )


def _truth(ctx: RunContext, synthetic: bool) -> dict[str, float] | None:
    """Planted values on each estimate's scale: the level change is the planted rate ratio,
    and no change in slope was planted."""
    planted = common.truth_for(ctx, synthetic)
    params = ctx.params
    outcomes = [("", params.data.crime_types or [])]
    outcomes += [(f"{c.name}:", c.crime_types) for c in params.checks]
    truth: dict[str, float] = {}
    for prefix, types in outcomes:
        rr = common.planted_rate_ratio(planted, types)
        if rr is not None:
            truth[f"{prefix}level_change"] = rr
            if params.model.slope_change:
                truth[f"{prefix}slope_change"] = 1.0
    return truth or None


#: power at which the minimum detectable effect is stated
MDE_POWER = 0.8
#: a fall smaller than this is too small to matter for a local programme: when the design
#: cannot detect a fall this large and the interval includes no change, it cannot conclude
EFFECT_OF_INTEREST = 0.8


def _find(estimates: list[Estimate], name: str) -> Estimate | None:
    return next((e for e in estimates if e.name == name), None)


def minimum_detectable(estimates: list[Estimate], level: float) -> Estimate | None:
    """Smallest fall in level the design detects with 80% power (Bloom 1995):
    ``exp(-(z_{1-alpha/2} + z_{power}) se)`` with ``se`` the level change's log-scale SE."""
    level_change = _find(estimates, "level_change")
    if level_change is None or level_change.scale != "rate_ratio" or not level_change.se:
        return None
    z = dist.norm_ppf(0.5 + level / 2) + dist.norm_ppf(MDE_POWER)
    return Estimate(
        name="mde",
        estimate=float(np.exp(-z * level_change.se)),
        scale="rate_ratio",
        method=f"closed form from the level change's standard error ({int(MDE_POWER * 100)}% power, "
        f"{int(round((1 - level) * 100))}% two-sided test)",
        label="Smallest fall in level this evaluation could reliably detect",
        level=level,
    )


def conclusion(level_change: Estimate | None, mde: Estimate, label: str) -> dict[str, Any]:
    """Whether the data support a conclusion, and the plain sentence when they do not."""
    if level_change is None or level_change.ci_low is None or level_change.ci_high is None:
        return {}
    includes_none = level_change.ci_low <= 1 <= level_change.ci_high
    weak = mde.estimate is not None and mde.estimate < EFFECT_OF_INTEREST
    if not (includes_none and weak):
        return {"conclusive": True}
    fall = round((1 - (mde.estimate or 0)) * 100)
    low = round((1 - level_change.ci_low) * 100)
    high = round((level_change.ci_high - 1) * 100)
    return {
        "conclusive": False,
        "conclusion": (
            f"The data cannot support a conclusion about {label}: the counts are too small "
            f"for this evaluation to detect any fall smaller than about {fall}%, and the estimate's "
            f"interval runs from a {low}% fall to "
            + (f"a {high}% rise." if high >= 1 else "no change.")
        ),
    }


def run(ctx: RunContext) -> EvaluationResults:
    """Fit the ITS (and any checks) and fill in the results contract."""
    params = ctx.params
    assert isinstance(params, ItsParams)
    prepared = prepare(ctx)
    counts: AreaCounts = prepared["counts"]
    fit = _fit(ctx, counts, prepared)
    noun = "count" if params.data.is_csv else "crimes"
    unit = f"{noun} per {counts.frequency}"
    estimates: list[Estimate] = list(fit.estimates())
    series = {"primary": _series(fit, params.outcome.label, unit)}
    diagnostics: dict[str, Any] = {"primary": fit.diagnostics()}
    mde = minimum_detectable(estimates, params.model.level)
    if mde is not None:
        estimates.append(mde)
        diagnostics.update(conclusion(_find(estimates, "level_change"), mde, params.outcome.label))
    for check in params.checks:
        check_fit = _fit(ctx, prepared["checks"][check.name], prepared)
        estimates += [
            e.model_copy(
                update={"name": f"{check.name}:{e.name}", "label": f"{check.label}: {e.label}"}
            )
            for e in check_fit.estimates()
        ]
        series[check.name] = _series(check_fit, check.label, unit)
        diagnostics[check.name] = check_fit.diagnostics()
    frame = fit.frame
    pre = int((~frame["post"]).sum())
    analysed = counts.frame
    return EvaluationResults(
        name=ctx.name,
        title=params.title,
        design="its",
        synthetic=counts.synthetic,
        outcome=Outcome(
            label=params.outcome.label,
            crime_types=params.data.crime_types or [],
            areas=prepared["units"] or [],
            comparison_areas=prepared["comparison"] or [],
            unit=unit,
            measure=params.outcome.measure,
        ),
        periods=Periods(
            frequency=counts.frequency,  # type: ignore[arg-type]
            data_start=common.period_label(frame["period"].min()),
            data_end=common.period_label(frame["period"].max()),
            intervention_start=common.period_label(prepared["start"]),
            pre_periods=pre,
            post_periods=len(frame) - pre,
        ),
        headline="level_change",
        estimates=estimates,
        series=series,
        diagnostics=diagnostics,
        data_quality={"records_without_location": counts.no_location},
        warnings=_warnings(fit, counts),
        notes=_notes(params),
        truth=_truth(ctx, counts.synthetic),
        provenance=common.provenance(ctx, counts, analysed),
    )


def _warnings(fit: ItsResults, counts: AreaCounts) -> list[str]:
    out: list[str] = list(counts.notes)
    diag = fit.diagnostics()
    out += [str(w) for w in diag.get("warnings", [])]
    lb = diag.get("ljung_box_p_lag12")
    if lb is not None and lb < 0.05:
        out.append(
            f"Residuals remain autocorrelated (Ljung-Box p = {lb:.3f} at 12 lags); "
            + (
                "the Newey-West standard errors allow for this, but in series this short they "
                "can be too small: read the interval as approximate."
                if diag.get("se") == "hac"
                else "model-based standard errors ignore this, so the interval may be too "
                "narrow; consider model.se: hac."
            )
        )
    if counts.no_location:
        out.append(
            f"{counts.no_location:,} records of these crime types had no location and could not "
            "be placed in an area; they are excluded from area series."
        )
    return out


def _notes(params: ItsParams) -> list[str]:
    m = params.model
    notes = [
        "Interrupted time series (segmented regression, Lopez Bernal, Cummins & Gasparrini 2017): "
        "the trend before the start, projected forward, is the counterfactual.",
        f"Model: {m.family} regression with seasonality '{m.seasonality}'"
        + (", Welsh Covid-19 lockdowns as covariates" if m.interruptions == "welsh_covid" else "")
        + (
            f", a {params.intervention.phase_in}-month phase-in left out"
            if params.intervention.phase_in
            else ""
        )
        + ".",
        "Assumption: without the intervention, the pre-existing trend and seasonal pattern would "
        "have continued; anything else that changed at the same time is confounded with it.",
    ]
    if params.outcome.measure == "activity":
        notes.append(
            "This outcome measures police activity: more enforcement records more offences, so a "
            "rise can mean the operation worked rather than that crime increased."
        )
    return notes
