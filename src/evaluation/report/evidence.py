"""How strong is this evidence? A rating derived from the results, never asserted by hand.

:func:`rate` reads a results object and returns the evidence block of ``results.json``:

- ``msms_level`` (1-5, or None when not rated), ``msms_label`` and ``msms_reason``: the
  Maryland Scientific Methods Scale level the *design* can reach, lowered when a check it
  depends on did not pass. The rules (one per design, :data:`RULES`):

  ============================  =====================================================
  design                        level
  ============================  =====================================================
  ITS, no comparison series     2 with at least 12 pre-start periods (a before/after
                                comparison controlling for trend and seasonality), else 1;
                                never 3: nothing shows what else changed at the start
  controlled ITS                3 if the pre-trend test passed and the comparison is
                                balanced, else 2
  difference-in-differences     3 if comparison areas exist, the pre-trend test passed
                                and the comparison is balanced, else 2 (1 without any
                                comparison areas)
  staggered DiD                 3 with never-treated controls, passed pre-trends (and
                                balance when a balance table exists), else 2
  synthetic control             3 with a good pre-period fit, else 2
  power analysis, profile       not rated: they estimate no effect
  ============================  =====================================================

  *Pre-trend test passed*: the joint test of the pre-start event-study estimates (or the
  controlled ITS's difference in pre-trends) has ``p >= 0.05``; without a joint test, a
  Bonferroni test of the pre-start rows of ``tables["event_study"]``. *Balanced*: every
  standardised difference between treated and comparison areas in ``tables["balance"]``
  is below :data:`BALANCE_LIMIT` in size (0.25: the What Works Clearinghouse limit for
  baseline equivalence). A check that cannot be run does not pass.
- ``checks``: every check, ``{name, passed, detail, required}`` (``required``: whether
  the level depends on it).
- ``emmie_effect``: the Effect part of EMMIE (Johnson, Tilley & Bowers 2015) for the
  headline: direction, whether the interval excludes no change, and strength words that
  combine the two with the design's level.
- ``mde``: the minimum detectable effect (an estimate named ``mde_*``), when present,
  as an :class:`~evaluation.results.Estimate` payload; ``mde_sentence`` says it in words.
- ``limitations``: the failed checks in words, for the "what this cannot show" list.

:func:`attach` returns a copy of the results with this block filled in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from evaluation.config import MIN_PRE_PERIODS
from evaluation.inference import distributions as dist
from evaluation.report import text
from evaluation.results import Estimate, EvaluationResults

#: Largest acceptable |standardised difference| between treated and comparison areas.
BALANCE_LIMIT = 0.25
#: A pre-trend test "passes" when its p-value is at least this.
PRETREND_ALPHA = 0.05
#: A synthetic control fits well when the pre-period RMSPE is at most this share of the
#: treated pre-period mean ...
PREFIT_RELATIVE = 0.10
#: ... or at most this multiple of the Poisson noise ``sqrt(mean)`` (no fit beats noise).
PREFIT_NOISE_MULTIPLE = 1.5
#: Treated clusters from which CR1 standard errors are trusted (as inference.cluster).
FEW_TREATED = 10

#: Short labels of the Maryland Scientific Methods Scale levels.
MSMS_LABELS: dict[int, str] = {
    1: "Level 1: before and after, or one point in time, without a comparison",
    2: "Level 2: before and after with controls, no well-matched comparison group",
    3: "Level 3: comparison with similar areas whose trends matched before the start",
    4: "Level 4: comparison that also rules out hidden differences between areas",
    5: "Level 5: areas assigned at random",
}

#: Designs that estimate no effect, and why they are not rated.
NOT_RATED: dict[str, str] = {
    "power": "A power analysis plans an evaluation: it estimates no effect, so it is not "
    "rated; it says how large an effect the planned evaluation could detect.",
    "profile": "A descriptive profile compares periods without a comparison group or a "
    "model of what would otherwise have happened; it estimates no effect of an "
    "intervention, so it is not rated.",
}

_RR_SCALES = ("rate_ratio", "rate_ratio_per_period")
_EFFECT_SCALES: tuple[str, ...] = (
    *_RR_SCALES,
    *("count", "count_per_period", "count_per_area_period", "rate", "level", "proportion"),
)
_RMSPE_NAMES = ("pre_rmspe_total", "pre_rmspe", "rmspe_pre", "pre_fit_rmspe")


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def _check(name: str, passed: bool, detail: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail, "required": required}


def _number(value: Any) -> float | None:
    """A finite plain float (numpy scalars included), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    return float(value) if math.isfinite(value) else None


def _primary(results: EvaluationResults) -> dict[str, Any]:
    """The primary outcome's diagnostics (ITS nests them under ``primary``)."""
    nested = results.diagnostics.get("primary")
    return nested if isinstance(nested, dict) else results.diagnostics


def pre_periods_check(results: EvaluationResults) -> dict[str, Any]:
    """At least :data:`~evaluation.config.MIN_PRE_PERIODS` periods before the start."""
    n = results.periods.pre_periods
    unit = f"{results.periods.frequency}s"
    if n is None:
        return _check("pre_periods", False, "the number of periods before the start is unknown")
    ok = n >= MIN_PRE_PERIODS
    return _check(
        "pre_periods",
        ok,
        f"{n} {unit} before the start ({'at least' if ok else 'fewer than'} the "
        f"{MIN_PRE_PERIODS} needed to estimate the trend and seasonality)",
    )


def comparison_check(results: EvaluationResults) -> dict[str, Any]:
    """Comparison areas are named in the results."""
    areas = results.outcome.comparison_areas
    if areas:
        return _check("comparison_group", True, f"{len(areas)} comparison area(s)")
    return _check(
        "comparison_group",
        False,
        "no comparison areas: anything else that changed at the start cannot be ruled out",
    )


def _pretrend_from_results(results: EvaluationResults) -> tuple[float, str] | None:
    for est in results.estimates:
        if est.name in text.PRETREND_NAMES:
            p = est.estimate if est.scale == "p_value" else est.p_value
            if p is not None:
                return p, "joint test of the pre-start event-study estimates"
    for source in (results.diagnostics, _primary(results)):
        for name in text.PRETREND_NAMES:
            p = _number(source.get(name))
            if p is not None:
                return p, "joint test of the pre-start event-study estimates"
    diff = _primary(results).get("pre_trend_difference")
    if isinstance(diff, dict) and _number(diff.get("p_value")) is not None:
        return float(diff["p_value"]), "test of a difference in trend from the comparison series"
    return None


def _lead_z(row: dict[str, Any], level: float) -> float | None:
    """z statistic of one pre-start event-study row (from its se, else its interval)."""
    est, se, scale = _number(row.get("estimate")), _number(row.get("se")), row.get("scale")
    lo, hi = _number(row.get("ci_low")), _number(row.get("ci_high"))
    ratio = scale in _RR_SCALES
    if est is None or (ratio and est <= 0):
        return None
    centre = math.log(est) if ratio else est
    if se is None or se <= 0:
        if lo is None or hi is None or hi <= lo or (ratio and lo <= 0):
            return None
        width = math.log(hi / lo) if ratio else hi - lo
        se = width / (2 * dist.norm_ppf(0.5 + level / 2))
    return centre / se if se > 0 else None


def _pretrend_from_table(results: EvaluationResults) -> tuple[float, str] | None:
    """Bonferroni joint test of the pre-start rows of ``tables["event_study"]``: valid
    whatever their correlation (the p-value is ``k`` times the smallest)."""
    rows = results.tables.get("event_study") or []
    level = _number(results.provenance.params.get("model", {}).get("level")) or 0.95
    zs = [
        z
        for row in rows
        if (_number(row.get("event_time")) or 0) < 0
        and (z := _lead_z(row, level)) is not None
        and z != 0
    ]
    if not zs:
        return None
    p_min = min(2.0 * float(dist.norm_sf(abs(z))) for z in zs)
    p = min(1.0, len(zs) * p_min)
    return p, f"Bonferroni joint test of the {len(zs)} pre-start event-study estimates"


def pretrend_check(results: EvaluationResults) -> dict[str, Any]:
    """Treated and comparison areas moved alike before the start (``p >= 0.05``)."""
    found = _pretrend_from_results(results) or _pretrend_from_table(results)
    if found is None:
        return _check(
            "pre_trends", False, "no test of differing trends before the start is in the results"
        )
    p, how = found
    ok = p >= PRETREND_ALPHA
    verdict = "similar trends" if ok else "the trends already differed"
    return _check(
        "pre_trends",
        ok,
        f"{how}: {text.format_p(p)} ({verdict}; the rule needs p >= {PRETREND_ALPHA:g}). A test "
        "that passes does not prove parallel trends: such tests often have little power.",
    )


def balance_check(results: EvaluationResults, *, required: bool = True) -> dict[str, Any]:
    """Every standardised difference in ``tables["balance"]`` below :data:`BALANCE_LIMIT`."""
    rows = results.tables.get("balance") or []
    diffs = [
        (str(row.get("measure", "?")), d)
        for row in rows
        if (d := _number(row.get("std_diff_comparison"))) is not None
    ]
    if not diffs:
        return _check(
            "balance", False, "no balance table of treated against comparison areas", required
        )
    worst = max(abs(d) for _, d in diffs)
    shown = ", ".join(f"{m} {d:+.2f}" for m, d in diffs)
    ok = worst < BALANCE_LIMIT
    return _check(
        "balance",
        ok,
        f"standardised differences before the start: {shown}; the rule needs every one "
        f"below {BALANCE_LIMIT:g} in size (What Works Clearinghouse baseline equivalence)",
        required,
    )


def autocorrelation_check(results: EvaluationResults) -> dict[str, Any]:
    """Residual autocorrelation is allowed for (HAC) or absent (Ljung-Box p >= 0.05)."""
    d = _primary(results)
    lb = _number(d.get("ljung_box_p_lag12"))
    if d.get("se") == "hac":
        detail = "Newey-West standard errors allow for autocorrelated residuals"
        if lb is not None:
            detail += f" (Ljung-Box at 12 lags: {text.format_p(lb)})"
        return _check("autocorrelation", True, detail, required=False)
    if lb is None:
        return _check("autocorrelation", False, "no residual autocorrelation check", False)
    return _check(
        "autocorrelation",
        lb >= 0.05,
        f"Ljung-Box at 12 lags: {text.format_p(lb)} with model-based standard errors",
        required=False,
    )


def inference_check(results: EvaluationResults) -> dict[str, Any]:
    """With few treated areas the interval must not come from CR1 standard errors."""
    d = results.diagnostics
    n = d.get("n_treated_clusters")
    method = str(d.get("inference", ""))
    if not isinstance(n, int):
        return _check("few_treated_areas", True, "number of treated areas not reported", False)
    if n >= FEW_TREATED:
        return _check("few_treated_areas", True, f"{n} treated areas: CR1 is reliable", False)
    ok = method in ("wild", "randomization")
    detail = (
        f"{n} treated areas: the interval comes from "
        + ("the wild cluster bootstrap" if method == "wild" else method or "an unnamed method")
        + ("" if ok else ", which is too narrow with so few treated areas")
    )
    return _check("few_treated_areas", ok, detail, required=False)


def control_group_check(results: EvaluationResults) -> dict[str, Any]:
    """A staggered roll-out compared with never-treated areas."""
    group = str(results.diagnostics.get("control_group", ""))
    ok = group in ("never", "never_treated")
    detail = (
        "compared with never-treated areas"
        if ok
        else f"compared with {group.replace('_', '-') or 'unreported'} areas, not never-treated ones"
    )
    return _check("never_treated_controls", ok, detail)


def _rmspe(results: EvaluationResults) -> tuple[float, float] | None:
    """Pre-period RMSPE and the treated pre-period mean (diagnostics first, else series)."""
    series = results.series.get("primary")
    start = results.periods.intervention_start
    obs, synth = [], []
    if series is not None:
        path = series.counterfactual or series.comparison or []
        for period, o, s in zip(series.periods, series.observed, path, strict=False):
            if (start is None or period < start) and o is not None and s is not None:
                obs.append(o)
                synth.append(s)
    mean = sum(obs) / len(obs) if obs else None
    for source in (results.diagnostics, _primary(results)):
        for name in _RMSPE_NAMES:
            value = _number(source.get(name))
            if value is not None and mean:
                return value, mean
    if not obs or not mean:
        return None
    return math.sqrt(sum((o - s) ** 2 for o, s in zip(obs, synth, strict=True)) / len(obs)), mean


def prefit_check(results: EvaluationResults) -> dict[str, Any]:
    """The synthetic control tracks the treated areas before the start."""
    found = _rmspe(results)
    if found is None:
        return _check("pre_fit", False, "no pre-period fit of the synthetic control in the results")
    rmspe, mean = found
    limit = max(PREFIT_RELATIVE * mean, PREFIT_NOISE_MULTIPLE * math.sqrt(max(mean, 0.0)))
    ok = rmspe <= limit
    return _check(
        "pre_fit",
        ok,
        f"root mean squared gap before the start {rmspe:.1f} against a mean of {mean:.1f} "
        f"({rmspe / mean:.0%}); the rule needs at most {limit:.1f} (the larger of "
        f"{PREFIT_RELATIVE:.0%} of the mean and {PREFIT_NOISE_MULTIPLE:g} times the Poisson "
        "noise)",
    )


# --------------------------------------------------------------------------------------
# Rules: design -> checks and the level they allow
# --------------------------------------------------------------------------------------


def _level(checks: list[dict[str, Any]], ladder: list[tuple[int, tuple[str, ...]]]) -> int:
    """The highest level of ``ladder`` whose named checks all passed (the last is the floor)."""
    passed = {c["name"] for c in checks if c["passed"]}
    for level, needs in ladder:
        if set(needs) <= passed:
            return level
    return ladder[-1][0]


def _rule_its(results: EvaluationResults) -> tuple[int, list[dict[str, Any]], str]:
    if results.outcome.comparison_areas:
        return _rule_controlled(results, "a controlled interrupted time series")
    checks = [
        pre_periods_check(results),
        _check(
            "comparison_group",
            False,
            "no comparison series: anything else that changed at the start (policing, "
            "recording, the economy) cannot be ruled out, so an ITS is level 2 at most",
        ),
        autocorrelation_check(results),
    ]
    level = _level(checks, [(2, ("pre_periods",)), (1, ())])
    reason = (
        "An interrupted time series without a comparison series is a before-and-after "
        "comparison that controls for the trend and seasonality before the start: level 2 "
        "at most, because nothing shows what would have happened without the intervention."
    )
    if level == 1:
        reason += " Too few periods before the start to estimate the trend: level 1."
    return level, checks, reason


def _rule_controlled(
    results: EvaluationResults, what: str, *, balance_required: bool = True
) -> tuple[int, list[dict[str, Any]], str]:
    checks = [
        comparison_check(results),
        pretrend_check(results),
        balance_check(results, required=balance_required),
        pre_periods_check(results),
    ]
    if results.design == "did":
        checks.append(inference_check(results))
    top = ("comparison_group", "pre_trends", "pre_periods") + (
        ("balance",) if balance_required else ()
    )
    level = _level(checks, [(3, top), (2, ("comparison_group",)), (1, ())])
    failed = [c["name"].replace("_", " ") for c in checks if c["required"] and not c["passed"]]
    if level == 3:
        reason = (
            f"{what.capitalize()} with comparison areas that were balanced and moved alike "
            "before the start: level 3."
        )
    elif level == 2:
        reason = (
            f"{what.capitalize()} with comparison areas, but level 3 needs every check to "
            f"pass and these did not: {', '.join(failed)}; level 2."
        )
    else:
        reason = f"{what.capitalize()} without comparison areas: level 1."
    return level, checks, reason


def _rule_did(results: EvaluationResults) -> tuple[int, list[dict[str, Any]], str]:
    return _rule_controlled(results, "a difference-in-differences")


def _rule_staggered(results: EvaluationResults) -> tuple[int, list[dict[str, Any]], str]:
    has_balance = bool(results.tables.get("balance"))
    checks = [control_group_check(results), pretrend_check(results)]
    if has_balance:
        checks.append(balance_check(results))
    checks.append(pre_periods_check(results))
    needs = ("never_treated_controls", "pre_trends") + (("balance",) if has_balance else ())
    level = _level(checks, [(3, needs), (2, ())])
    failed = [c["name"].replace("_", " ") for c in checks if c["required"] and not c["passed"]]
    if level == 3:
        reason = (
            "A staggered difference-in-differences comparing each roll-out cohort with "
            "never-treated areas that moved alike before the start: level 3."
        )
    else:
        reason = (
            "A staggered difference-in-differences; level 3 needs never-treated controls and "
            f"similar pre-trends, and these checks did not pass: {', '.join(failed)}; level 2."
        )
    return level, checks, reason


def _rule_synthetic(results: EvaluationResults) -> tuple[int, list[dict[str, Any]], str]:
    checks = [prefit_check(results), pre_periods_check(results)]
    level = _level(checks, [(3, ("pre_fit", "pre_periods")), (2, ())])
    reason = (
        "A synthetic control that tracked the treated areas closely before the start: level 3."
        if level == 3
        else "A synthetic control whose pre-period fit is not close enough (or unknown) to "
        "stand for the treated areas: level 2."
    )
    return level, checks, reason


#: design -> rule (level, checks, reason).
RULES: dict[str, Callable[[EvaluationResults], tuple[int, list[dict[str, Any]], str]]] = {
    "its": _rule_its,
    "did": _rule_did,
    "staggered_did": _rule_staggered,
    "synthetic_control": _rule_synthetic,
}


# --------------------------------------------------------------------------------------
# EMMIE effect, minimum detectable effect
# --------------------------------------------------------------------------------------


def _null(scale: str) -> float:
    return 1.0 if scale in _RR_SCALES else 0.0


def emmie_effect(results: EvaluationResults, level: int | None) -> dict[str, Any] | None:
    """The EMMIE *Effect* summary of the headline estimate (None when it is no effect)."""
    est = results.headline_estimate()
    if est is None or est.estimate is None or est.scale not in _EFFECT_SCALES:
        return None
    null = _null(est.scale)
    value = est.estimate
    direction = "fall" if value < null else "rise" if value > null else "no change"
    has_ci = est.ci_low is not None and est.ci_high is not None
    excludes = bool(has_ci and (est.ci_high < null or est.ci_low > null))  # type: ignore[operator]
    if not has_ci:
        strength = "no interval: the uncertainty is unknown"
    elif not excludes:
        strength = "no clear effect: the interval includes no change"
    elif level is None:
        strength = f"a {direction} whose interval excludes no change (design not rated)"
    else:
        word = {1: "very weak", 2: "weak", 3: "moderate", 4: "strong", 5: "very strong"}[level]
        strength = f"{word} evidence of a {direction} (design at level {level})"
    out: dict[str, Any] = {
        "estimate_name": est.name,
        "scale": est.scale,
        "estimate": value,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "level": est.level,
        "direction": direction,
        "interval_excludes_no_change": excludes,
        "strength": strength,
    }
    if est.scale in _RR_SCALES and value > 0:
        out["percent_change"] = (value - 1.0) * 100.0
    if results.outcome.measure == "activity":
        out["caveat"] = (
            f"{results.outcome.label} measure police activity: a rise can mean more "
            "enforcement rather than more crime."
        )
    interval = f" ({text.format_interval(est)})" if has_ci else ""
    if est.scale in _RR_SCALES and value > 0:
        size = (
            f"a {text.format_percent_change(value)} {direction}"
            if direction != "no change"
            else "no change"
        )
    else:
        size = f"a {direction} of {text.format_number(abs(value - null))}"
    out["summary"] = f"Effect: {size}{interval}; {strength}."
    return out


def _mde_estimate(results: EvaluationResults) -> Estimate | None:
    mdes = [e for e in results.estimates if e.name.startswith("mde_")]
    head = next((e for e in mdes if e.name == results.headline), None)
    if head is not None or mdes:
        return head or mdes[0]
    raw = results.diagnostics.get("mde")
    if isinstance(raw, dict) and "scale" in raw:
        try:
            return Estimate.model_validate({"name": "mde", "method": "", **raw})
        except ValueError:
            return None
    return None


def _article(phrase: str) -> str:
    """``a`` or ``an`` before a number said in words ("an 11% fall", "an 8% fall")."""
    lead = phrase.split("%")[0].split(".")[0]
    return "an" if lead.startswith("8") or lead in ("11", "18") else "a"


def _fall(rate_ratio: float) -> str:
    pct = text.format_percent_change(rate_ratio)
    return f"{_article(pct)} {pct} fall"


def mde_sentence(
    post_periods: int,
    mde: float | None,
    target_power: float,
    frequency: str = "month",
    *,
    design: str = "this design",
    outcome: str = "",
    largest_fall: float | None = None,
) -> str:
    """A minimum detectable effect in words.

    E.g. ``"With 24 months after the start, this design detects a 12% fall with 80%
    power; smaller falls could well be missed."``
    """
    unit = frequency if post_periods == 1 else f"{frequency}s"
    what = f" in {outcome}" if outcome else ""
    power = f"{target_power:.0%}"
    if mde is None:
        largest = (
            _fall(largest_fall)
            if largest_fall is not None and 0 < largest_fall < 1
            else "the largest fall simulated"
        )
        return (
            f"With {post_periods} {unit} after the start, {design} would not detect even "
            f"{largest}{what} with {power} power."
        )
    return (
        f"With {post_periods} {unit} after the start, {design} detects {_fall(mde)}{what} "
        f"with {power} power; smaller falls could well be missed."
    )


def power_headline(results: EvaluationResults) -> str:
    """The headline of a power analysis (design ``power``): its headline MDE in words."""
    est = results.headline_estimate()
    match = re.fullmatch(r"mde_(\d+)", est.name) if est is not None else None
    if est is None or match is None:
        return f"{results.title}: no minimum detectable effect was simulated."
    d = results.diagnostics
    target = _number(d.get("target_power")) or 0.8
    planned = d.get("planned_design")
    n_comp = len(results.outcome.comparison_areas)
    design = (
        f"a difference-in-differences against {n_comp} comparison areas"
        if planned == "did"
        else "an interrupted time series"
        if planned == "its"
        else "the planned evaluation"
    )
    areas = results.outcome.areas
    where = f" in {' and '.join(areas)}" if 0 < len(areas) <= 2 else ""
    effects = [e for e in d.get("effects", []) if isinstance(e, int | float) and e < 1]
    return mde_sentence(
        int(match.group(1)),
        est.estimate,
        target,
        results.periods.frequency,
        design=design,
        outcome=f"{text._lower_first(results.outcome.label)}{where}",
        largest_fall=min(effects) if effects else None,
    )


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def rate(results: EvaluationResults) -> dict[str, Any]:
    """The evidence block for ``results`` (see the module docstring).

    Parameters
    ----------
    results
        Any results object; its ``design`` chooses the rule.

    Returns
    -------
    dict
        ``msms_level`` (int or None), ``msms_label``, ``msms_reason``, ``checks``,
        ``emmie_effect`` (dict or None), ``limitations`` and, when the results carry a
        minimum detectable effect, ``mde`` and ``mde_sentence``.
    """
    design = results.design
    level: int | None
    checks: list[dict[str, Any]]
    if design in NOT_RATED:
        level, checks, reason = None, [], NOT_RATED[design]
    elif design in RULES:
        level, checks, reason = RULES[design](results)
    else:
        level, checks = None, []
        reason = f"There is no rating rule for the design {design!r}, so it is not rated."
    out: dict[str, Any] = {
        "msms_level": level,
        "msms_label": MSMS_LABELS[level] if level is not None else "Not rated",
        "msms_reason": reason,
        "checks": checks,
        "emmie_effect": emmie_effect(results, level) if level is not None else None,
        "limitations": [
            c["detail"][0].upper() + c["detail"][1:] + "."
            for c in checks
            if c["required"] and not c["passed"]
        ],
    }
    mde = _mde_estimate(results)
    if mde is not None:
        out["mde"] = mde.model_dump(mode="json")
        match = re.fullmatch(r"mde_(\d+)", mde.name)
        if match:
            target = _number(results.diagnostics.get("target_power")) or 0.8
            out["mde_sentence"] = mde_sentence(
                int(match.group(1)), mde.estimate, target, results.periods.frequency
            )
    return out


def attach(results: EvaluationResults) -> EvaluationResults:
    """A copy of ``results`` with ``evidence`` filled in by :func:`rate` (other keys kept)."""
    return results.model_copy(update={"evidence": {**results.evidence, **rate(results)}})
