"""Plain-English wording of effects for funders.

Every sentence is built from an :class:`~evaluation.results.Estimate` and chosen by its
``scale`` (a registry keyed on :data:`~evaluation.results.Scale`), never by guessing what a
results object looks like. All functions are pure: the same results give the same words.

Conventions
-----------
* Rate ratios: percent change = (RR - 1) * 100, whole percent, one decimal when the change
  is under 1%. Falls are said as falls with the interval bounds reordered (smaller fall
  first); an interval that contains no change is said as such.
* Counts: negative = fewer crimes. "About" numbers: whole numbers under 100, two
  significant figures from 100 up.
* Whether an effect is distinguishable from no change is read from the interval, so the
  words always agree with the numbers printed beside them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from evaluation.errors import InputError
from evaluation.results import Estimate, EvaluationResults

#: How each design's counterfactual is described after the effect.
COMPARISON_PHRASES: dict[str, str] = {
    "its": "compared with the trend before the start",
    "cits": "compared with the trend before the start and a comparison series",
    "did": "compared with similar areas",
    "event_study": "compared with similar areas",
    "staggered_did": "compared with similar areas",
    "synthetic_control": "compared with a weighted blend of similar areas",
}
DEFAULT_COMPARISON = "compared with what would otherwise have been expected"

#: Estimate names read as the cumulative effect in :func:`plain_summary`.
CUMULATIVE_NAMES: tuple[str, ...] = ("cumulative_effect", "crimes_prevented")
#: Estimate / diagnostics names read as the joint pre-trend test p-value.
PRETREND_NAMES: tuple[str, ...] = ("pretrend_wald_p", "pretrend_p")

#: Maryland Scientific Methods Scale, in words a funder can read (levels as in the BRIEF).
MSMS_WORDS: dict[int, str] = {
    1: "a comparison at one point in time or before and after with no comparison group; "
    "it cannot show that the intervention caused the change",
    2: "a before-and-after comparison with some controls but no well-matched comparison "
    "group; it gives weak evidence that the intervention caused the change",
    3: "a before-and-after comparison with similar areas whose trends matched before the "
    "start; it gives moderate evidence that the intervention caused the change",
    4: "a comparison that also rules out hidden differences between the areas (for example "
    "a natural experiment); it gives strong evidence that the intervention caused the change",
    5: "areas assigned to the intervention at random; the strongest evidence that the "
    "intervention caused the change",
}

_ACTIVITY_CLAUSE = (
    "{label} are mostly recorded when police find them, so a rise can reflect more "
    "enforcement rather than more crime"
)


# --------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------


def _round_half_up(x: float, decimals: int = 0) -> float:
    """Round half away from zero (Python's ``round`` rounds half to even: 14.5 -> 14)."""
    q = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(float(abs(x)))).quantize(q, rounding=ROUND_HALF_UP)) * (
        1 if x >= 0 else -1
    )


def _percent_number(pct: float) -> str:
    """A percentage magnitude or signed value: whole percent, one decimal under 1%."""
    decimals = 1 if abs(pct) < 1 else 0
    value = _round_half_up(pct, decimals)
    if value == 0:
        value = 0.0  # no "-0%"
    return f"{value:.{decimals}f}%"


def format_percent_change(rate_ratio: float, *, signed: bool = False) -> str:
    """Percent change implied by a rate ratio, as text.

    Parameters
    ----------
    rate_ratio
        Multiplicative effect, e.g. 0.86.
    signed
        If True return the signed change ("-14%", "25%"); otherwise its size ("14%").

    Returns
    -------
    str
        Whole percent, or one decimal when the change is under 1% ("0.4%").

    Raises
    ------
    InputError
        If the rate ratio is not a positive finite number.
    """
    _check_rate_ratio(rate_ratio)
    pct = (rate_ratio - 1.0) * 100.0
    return _percent_number(pct if signed else abs(pct))


def _check_rate_ratio(rr: float) -> None:
    if rr is None or not math.isfinite(rr) or rr <= 0:
        raise InputError(None, f"a rate ratio must be a positive number, got {rr!r}")


def _round_sig(x: float, sig: int) -> float:
    if x == 0:
        return 0.0
    digits = sig - int(math.floor(math.log10(abs(x)))) - 1
    return _round_half_up(x, digits)


def format_count(x: float) -> str:
    """A count for an "about" sentence: one decimal under 1, whole under 100, else 2 s.f."""
    size = abs(x)
    if size < 1:
        return f"{_round_half_up(size, 1):.1f}"
    if size < 100:
        return f"{_round_half_up(size):,.0f}"
    return f"{_round_sig(size, 2):,.0f}"


def format_gbp(x: float) -> str:
    """Pounds: whole pounds under £1,000, three significant figures above ("£12,300")."""
    sign = "-" if x < 0 else ""
    size = abs(x)
    value = _round_half_up(size) if size < 1000 else _round_sig(size, 3)
    return f"{sign}£{value:,.0f}"


def format_number(x: float) -> str:
    """A generic number with about three significant figures."""
    if x == 0:
        return "0"
    size = abs(x)
    if size >= 1000:
        return f"{_round_half_up(x):,.0f}"
    decimals = max(0, 2 - int(math.floor(math.log10(size))))
    return f"{_round_half_up(x, decimals):,.{decimals}f}"


def format_p(p: float) -> str:
    """``p < 0.001``, ``p = 0.004`` or ``p = 0.42``."""
    _check_p(p)
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {_round_half_up(p, 2):.2f}"


def _check_p(p: float) -> None:
    if p is None or not math.isfinite(p) or not 0 <= p <= 1:
        raise InputError(None, f"a p-value must lie between 0 and 1, got {p!r}")


def _level_words(est: Estimate) -> str:
    pct = est.level * 100
    return f"{pct:.0f}%" if float(pct).is_integer() else f"{pct:g}%"


def _has_interval(est: Estimate) -> bool:
    return est.ci_low is not None and est.ci_high is not None


def _bounds(est: Estimate) -> tuple[float, float]:
    if est.ci_low is None or est.ci_high is None:
        raise InputError(None, f"{est.name}: the interval is missing")
    return est.ci_low, est.ci_high


def _value(est: Estimate) -> float:
    if est.estimate is None:
        raise InputError(None, f"{est.name}: no estimate")
    return est.estimate


def _join(items: Sequence[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------
# Intervals, one wording per scale
# --------------------------------------------------------------------------------------


def _rr_interval(est: Estimate) -> str:
    (lo, hi), lvl = _bounds(est), _level_words(est)
    _check_rate_ratio(lo)
    _check_rate_ratio(hi)
    if hi < 1:  # a fall throughout: smaller fall first
        return f"{lvl} interval {format_percent_change(hi)} to {format_percent_change(lo)}"
    if lo > 1:
        return f"{lvl} interval {format_percent_change(lo)} to {format_percent_change(hi)}"
    return f"{lvl} interval: {_rr_bound(lo)} to {_rr_bound(hi)}"


def _rr_bound(rr: float) -> str:
    if rr < 1:
        return f"a {format_percent_change(rr)} fall"
    if rr > 1:
        return f"a {format_percent_change(rr)} rise"
    return "no change"


def _count_interval(est: Estimate, unit: str = "") -> str:
    (lo, hi), lvl = _bounds(est), _level_words(est)
    suffix = f" {unit}" if unit else ""
    if hi < 0:
        return f"{lvl} interval {format_count(hi)} to {format_count(lo)} fewer{suffix}"
    if lo > 0:
        return f"{lvl} interval {format_count(lo)} to {format_count(hi)} more{suffix}"
    return f"{lvl} interval: {_count_bound(lo)} to {_count_bound(hi)}{suffix}"


def _count_bound(x: float) -> str:
    if x < 0:
        return f"{format_count(x)} fewer"
    if x > 0:
        return f"{format_count(x)} more"
    return "no change"


def _plain_interval(est: Estimate, fmt: Callable[[float], str]) -> str:
    lo, hi = _bounds(est)
    return f"{_level_words(est)} interval {fmt(lo)} to {fmt(hi)}"


def _pp_interval(est: Estimate) -> str:
    return _plain_interval(est, lambda v: f"{format_number(v * 100)} percentage points")


_INTERVALS: dict[str, Callable[[Estimate], str]] = {
    "rate_ratio": _rr_interval,
    "rate_ratio_per_period": _rr_interval,
    "count": _count_interval,
    "count_per_period": _count_interval,
    "count_per_area_period": _count_interval,
    "rate": _count_interval,
    "level": lambda e: _plain_interval(e, format_number),
    "proportion": _pp_interval,
    "ratio": lambda e: _plain_interval(e, format_number),
    "gbp": lambda e: _plain_interval(e, format_gbp),
    "p_value": lambda e: _plain_interval(e, format_number),
}


def format_interval(est: Estimate) -> str:
    """The interval of ``est`` in words, e.g. ``"95% interval 6% to 21%"``.

    Parameters
    ----------
    est
        The estimate; its ``scale`` chooses the wording.

    Returns
    -------
    str
        The interval phrase, or ``"no interval available"`` when a bound is missing.
    """
    if not _has_interval(est):
        return "no interval available"
    return _INTERVALS[est.scale](est)


def _includes_no_change(est: Estimate) -> bool:
    if not _has_interval(est):
        return False
    lo, hi = _bounds(est)
    null = 1.0 if est.scale in ("rate_ratio", "rate_ratio_per_period") else 0.0
    return lo <= null <= hi


def significance_phrase(p: float | None) -> str:
    """What a p-value means, in words.

    Parameters
    ----------
    p
        Two-sided p-value against "no effect", or None.

    Returns
    -------
    str
        E.g. ``"unlikely to be chance alone (p = 0.004)"`` or
        ``"could well be chance (p = 0.42)"``.
    """
    if p is None:
        return "no test of chance is available"
    _check_p(p)
    shown = format_p(p)
    if p < 0.001:
        return f"very unlikely to be chance alone ({shown})"
    if p < 0.05:
        return f"unlikely to be chance alone ({shown})"
    if p < 0.10:
        return f"weak evidence: it could be chance ({shown})"
    return f"could well be chance ({shown})"


def evidence_phrase(level: int) -> str:
    """A Maryland Scientific Methods Scale level in words.

    Parameters
    ----------
    level
        1 (weakest) to 5 (randomised).

    Raises
    ------
    InputError
        If ``level`` is not 1-5.
    """
    if isinstance(level, bool) or not isinstance(level, int) or level not in MSMS_WORDS:
        raise InputError(None, f"Maryland Scientific Methods Scale level must be 1-5: {level!r}")
    return (
        f"Strength of evidence: level {level} of 5 on the Maryland Scientific Methods Scale, "
        f"{MSMS_WORDS[level]}."
    )


# --------------------------------------------------------------------------------------
# Effect sentences, one builder per scale
# --------------------------------------------------------------------------------------


def _tail(comparison: str, period_phrase: str | None = None) -> str:
    parts = [p for p in (period_phrase, comparison) if p]
    return (" " + " ".join(parts)) if parts else ""


def _rr_sentence(est: Estimate, label: str, comparison: str, period: str | None) -> str:
    rr = _value(est)
    _check_rate_ratio(rr)
    per = " a month" if est.scale == "rate_ratio_per_period" else ""
    subject = f"After the start, the trend in {_lower_first(label)}" if per else label
    if not _has_interval(est):
        verb = _rr_verb(rr)
        return f"{subject} {verb}{per} (no interval available){_tail(comparison, period)}."
    interval = _rr_interval(est)
    if _includes_no_change(est):
        change = format_percent_change(rr, signed=True)
        return (
            f"{subject} changed by an estimated {change}{per} ({interval})"
            f"{_tail(comparison, period)}; the data cannot rule out no change."
        )
    return f"{subject} {_rr_verb(rr)}{per} ({interval}){_tail(comparison, period)}."


def _rr_verb(rr: float) -> str:
    if rr < 1:
        return f"fell by an estimated {format_percent_change(rr)}"
    if rr > 1:
        return f"rose by an estimated {format_percent_change(rr)}"
    return "did not change (an estimated 0%)"


def _count_sentence(
    est: Estimate, label: str, comparison: str, period: str | None, unit: str
) -> str:
    x = _value(est)
    amount = (
        f"about {format_count(x)} {'fewer' if x < 0 else 'more'} {unit}"
        if x != 0
        else f"no change in {unit}"
    )
    interval = f" ({format_interval(est)})" if _has_interval(est) else " (no interval available)"
    prefix = f"{label}: " if label else ""
    text = f"{prefix}{amount}{_tail('', period)}{interval}{_tail(comparison)}"
    if _includes_no_change(est):
        return text + "; the data cannot rule out no change."
    return text + "."


def _pp_sentence(est: Estimate, label: str, comparison: str, period: str | None) -> str:
    x = _value(est) * 100
    direction = "higher" if x > 0 else "lower"
    text = (
        f"{label}: {format_number(abs(x))} percentage points {direction} "
        f"({format_interval(est)}){_tail(comparison, period)}"
    )
    if _includes_no_change(est):
        return text + "; the data cannot rule out no change."
    return text + "."


def _plain_sentence(
    est: Estimate, label: str, comparison: str, period: str | None, fmt: Callable[[float], str]
) -> str:
    return f"{label}: {fmt(_value(est))} ({format_interval(est)}){_tail(comparison, period)}."


def _pvalue_sentence(est: Estimate, label: str, comparison: str, period: str | None) -> str:
    return f"{label}: {significance_phrase(est.estimate)}."


def _level_sentence(est: Estimate, label: str, comparison: str, period: str | None) -> str:
    x = _value(est)
    direction = "higher" if x > 0 else "lower"
    text = (
        f"{label}: {format_number(abs(x))} {direction} ({format_interval(est)})"
        f"{_tail(comparison, period)}"
    )
    if _includes_no_change(est):
        return text + "; the data cannot rule out no change."
    return text + "."


_SENTENCES: dict[str, Callable[[Estimate, str, str, str | None], str]] = {
    "rate_ratio": _rr_sentence,
    "rate_ratio_per_period": _rr_sentence,
    "count": lambda e, lab, c, p: _count_sentence(e, lab, c, p, "crimes"),
    "count_per_period": lambda e, lab, c, p: _count_sentence(e, lab, c, p, "crimes a month"),
    "count_per_area_period": lambda e, lab, c, p: _count_sentence(
        e, lab, c, p, "crimes per area per month"
    ),
    "rate": lambda e, lab, c, p: _count_sentence(e, lab, c, p, "crimes per 1,000 residents"),
    "level": _level_sentence,
    "proportion": _pp_sentence,
    "ratio": lambda e, lab, c, p: _plain_sentence(e, lab, c, p, format_number),
    "gbp": lambda e, lab, c, p: _plain_sentence(e, lab, c, p, format_gbp),
    "p_value": _pvalue_sentence,
}


def effect_sentence(
    est: Estimate,
    *,
    outcome_label: str,
    comparison: str,
    period_phrase: str | None = None,
) -> str:
    """One sentence saying an effect and its uncertainty.

    Parameters
    ----------
    est
        The estimate; its ``scale`` chooses the wording.
    outcome_label
        What was counted where, e.g. ``"Acquisitive crime in Butetown and Grangetown"``.
    comparison
        The counterfactual, e.g. ``"compared with similar areas"`` (may be empty).
    period_phrase
        Optional time frame, e.g. ``"over the 33 months after the start"``.

    Returns
    -------
    str
        E.g. ``"Acquisitive crime in the Safer Streets area fell by an estimated 14%
        (95% interval 6% to 21%) compared with similar areas."``
    """
    if est.estimate is None:
        return f"{outcome_label}: the effect could not be estimated."
    return _SENTENCES[est.scale](est, outcome_label, comparison, period_phrase)


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s


# --------------------------------------------------------------------------------------
# Whole-results wording
# --------------------------------------------------------------------------------------


#: ONS statistical-area codes (LSOA, ward, ...): named by their number, not read out
_ONS_CODE = re.compile(r"^[EWSN]\d{8}$")


def _areas_phrase(areas: Sequence[str]) -> str:
    if not areas:
        return ""
    if all(_ONS_CODE.match(a) for a in areas):
        return f"{len(areas)} small area{'s' if len(areas) > 1 else ''} (LSOA{'s' if len(areas) > 1 else ''})"
    if len(areas) > 3:
        return f"{len(areas)} areas"
    return _join(list(areas))


def _outcome_label(results: EvaluationResults) -> str:
    where = _areas_phrase(results.outcome.areas)
    return f"{results.outcome.label} in {where}" if where else results.outcome.label


def _period_phrase(results: EvaluationResults) -> str:
    p = results.periods
    if p.post_periods:
        unit = p.frequency if p.post_periods == 1 else f"{p.frequency}s"
        return f"over the {p.post_periods} {unit} after the start"
    return "after the start"


def comparison_phrase(design: str) -> str:
    """How the counterfactual of ``design`` is described (see :data:`COMPARISON_PHRASES`)."""
    return COMPARISON_PHRASES.get(design, DEFAULT_COMPARISON)


def _with_activity_clause(sentence: str, results: EvaluationResults) -> str:
    if results.outcome.measure != "activity":
        return sentence
    clause = _ACTIVITY_CLAUSE.format(label=results.outcome.label)
    return sentence.rstrip(".") + "; " + _lower_first(clause) + "."


def profile_sentence(results: EvaluationResults) -> str:
    """A descriptive profile's headline: the second year against the first."""
    years = {r["year"]: r for r in results.tables.get("years", [])}
    y1, y2 = years.get("year_1"), years.get("year_2")
    label = results.outcome.label
    if not y1 or not y2:
        return f"{results.title}: no years were compared."
    c1, c2 = int(y1["count"]), int(y2["count"])
    if c1 == 0:
        return f"{label}: {c2:,} recorded in {y2['label']}, none in {y1['label']}."
    if c1 == c2:
        change = "the same as"
    else:
        more = "fewer" if c2 < c1 else "more"
        change = f"{_percent_number(abs(c2 / c1 - 1) * 100)} {more} than"
    return f"{label}: {c2:,} recorded in {y2['label']}, {change} the {c1:,} in {y1['label']}."


def headline(results: EvaluationResults) -> str:
    """The headline sentence a funder reads first.

    Parameters
    ----------
    results
        A complete results object; ``results.headline`` names the estimate.

    Returns
    -------
    str
        The effect with its interval in plain words, the comparison used, a warning for
        activity measures, and a "synthetic data" label when the data are synthetic.
    """
    est = results.headline_estimate()
    if results.design == "profile":
        sentence = _with_activity_clause(profile_sentence(results), results)
    elif results.design == "power":
        from evaluation.report.evidence import power_headline  # late: evidence uses text

        sentence = power_headline(results)
    elif results.diagnostics.get("conclusive") is False:
        # small counts: a percentage would mislead; say what the data cannot show
        sentence = str(results.diagnostics.get("conclusion"))
    elif est is None:
        sentence = f"{results.title}: no headline effect was estimated."
    else:
        period = _period_phrase(results) if est.scale == "count" else None
        sentence = effect_sentence(
            est,
            outcome_label=_outcome_label(results),
            comparison=comparison_phrase(results.design),
            period_phrase=period,
        )
        sentence = _with_activity_clause(sentence, results)
    if results.synthetic:
        sentence = "Synthetic demonstration data, not real crime: " + sentence
    return sentence


def _find_estimate(results: EvaluationResults, names: Sequence[str]) -> Estimate | None:
    for name in names:
        for est in results.estimates:
            if est.name == name:
                return est
    return None


def _cumulative_sentence(results: EvaluationResults) -> str | None:
    est = _find_estimate(results, CUMULATIVE_NAMES)
    if est is None or est.name == results.headline or est.estimate is None:
        return None
    if est.scale != "count":
        return effect_sentence(est, outcome_label="In total", comparison="")
    body = effect_sentence(
        est,
        outcome_label="",
        comparison=comparison_phrase(results.design),
        period_phrase=_period_phrase(results),
    )
    return f"In total, {body}"


def _pretrend_p(results: EvaluationResults) -> float | None:
    est = _find_estimate(results, PRETREND_NAMES)
    if est is not None:
        return est.estimate if est.scale == "p_value" else est.p_value
    for name in PRETREND_NAMES:
        value = results.diagnostics.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def pretrend_sentence(p: float) -> str:
    """The joint pre-trend test in words (a small p means the trends already differed)."""
    _check_p(p)
    shown = format_p(p)
    if p < 0.05:
        return (
            "Warning: before the start, the treated and comparison areas were already "
            f"moving differently ({shown}), so the comparison may be biased."
        )
    if p < 0.10:
        return (
            "Before the start, the treated and comparison areas showed some sign of moving "
            f"differently ({shown}); read the effect with caution."
        )
    return (
        "Before the start, the treated and comparison areas followed similar trends "
        f"(test of differing trends: {shown})."
    )


def _as_estimate(value: Any) -> Estimate | None:
    if isinstance(value, Estimate):
        return value
    if isinstance(value, Mapping):
        return Estimate.model_validate(value)
    return None


def cost_sentence(est: Estimate, *, upper_unbounded: bool = False) -> str:
    """Cost per crime prevented in words, honest when the interval has no upper end.

    Parameters
    ----------
    est
        An estimate on the ``gbp`` scale (see :func:`evaluation.report.costs.cost_per_crime_prevented`).
    upper_unbounded
        True when the effect's interval includes no crimes prevented; ``ci_high`` is then
        None by convention.
    """
    lvl = _level_words(est)
    if est.estimate is None:
        return (
            "A cost per crime prevented cannot be given: the central estimate does not show "
            "crimes prevented."
        )
    head = f"Cost per crime prevented: about {format_gbp(est.estimate)}"
    if upper_unbounded or (est.ci_low is not None and est.ci_high is None):
        low = f" from {format_gbp(est.ci_low)}" if est.ci_low is not None else ""
        return (
            f"{head}; the {lvl} interval runs{low} upwards with no upper limit, because the "
            "data cannot rule out that no crimes were prevented."
        )
    if _has_interval(est):
        return f"{head} ({format_interval(est)})."
    return f"{head} (no interval available)."


def plain_summary(results: EvaluationResults) -> list[str]:
    """A few bullet sentences: headline, total effect, pre-trends, evidence, cost.

    Parameters
    ----------
    results
        The results to summarise.

    Returns
    -------
    list of str
        Sentences in reading order; items whose inputs are absent are left out.
    """
    bullets = [headline(results)]
    cumulative = _cumulative_sentence(results)
    if cumulative:
        bullets.append(cumulative)
    p = _pretrend_p(results)
    if p is not None:
        bullets.append(pretrend_sentence(p))
    level = results.evidence.get("msms_level")
    if level is not None:
        bullets.append(evidence_phrase(level))
    cost = _as_estimate(results.costs.get("cost_per_crime_prevented"))
    if cost is not None:
        unbounded = bool(results.costs.get("cost_per_crime_prevented_upper_unbounded", False))
        bullets.append(cost_sentence(cost, upper_unbounded=unbounded))
    return bullets
