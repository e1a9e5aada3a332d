"""The content of the dashboards, built from results objects only.

A :class:`Page` is a title and its parts in reading order: HTML fragments (``str``) and
charts (:class:`~evaluation.dashboard.charts.Chart`). :mod:`evaluation.dashboard.live`
displays the parts in a Voila page; :mod:`evaluation.dashboard.publish` writes them as one
static HTML file. Nothing here
refits a model or reads raw records, and every observed count passes through
:func:`evaluation.report.protect.protect` before it is drawn. Every value taken from a
results file is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

import pandas as pd

from evaluation.dashboard.catalog import ReportEntry
from evaluation.dashboard.charts import (
    Chart,
    event_study_chart,
    is_calendar,
    observed_chart,
    overlaps_covid,
    trend_chart,
)
from evaluation.dashboard.style import BADGE_COLOURS, NOT_RATED
from evaluation.report import text
from evaluation.report.protect import Protected, protect, safe_count
from evaluation.results import Estimate, EvaluationResults

Part = str | Chart

SYNTHETIC_BANNER = (
    "Synthetic data: these figures come from generated demonstration data, not real crime "
    "records. They show how the evaluation works, not what happened in Cardiff."
)

DESIGN_WORDS: dict[str, str] = {
    "its": "Interrupted time series",
    "cits": "Controlled interrupted time series",
    "did": "Difference-in-differences",
    "event_study": "Difference-in-differences (event study)",
    "staggered_did": "Staggered difference-in-differences",
    "synthetic_control": "Synthetic control",
    "power": "Power analysis",
    "profile": "Data profile",
}

DESIGN_EXPLAINED: dict[str, str] = {
    "its": (
        "The monthly counts before the start show the usual level, trend and seasonal "
        "pattern. Projected forward, they give what would have been expected without the "
        "intervention (the counterfactual); the effect is the gap between what was recorded "
        "and that projection."
    ),
    "cits": (
        "As an interrupted time series (the trend before the start, projected forward), "
        "with a comparison series alongside: the effect is the change in the evaluated "
        "area over and above the change in the comparison areas at the same time."
    ),
    "did": (
        "The change in the intervention areas from before to after the start is compared "
        "with the change over the same months in similar comparison areas; the comparison "
        "areas stand in for what would have happened without the intervention."
    ),
    "staggered_did": (
        "Areas started at different times. Each group of areas is compared with areas that "
        "had not (yet) started, month by month, and the comparisons are then averaged "
        "(Callaway and Sant'Anna's method, which avoids the bias of simpler approaches)."
    ),
    "synthetic_control": (
        "A weighted blend of other areas is built to match the intervention area before the "
        "start; after the start, the blend shows what would have been expected."
    ),
}

LIMITS_COMMON: tuple[str, ...] = (
    "Only crimes recorded by the police are counted; crime that is not reported or not "
    "recorded is not seen.",
    "It cannot say which part of the intervention made the difference, or why.",
)

LIMITS_BY_DESIGN: dict[str, tuple[str, ...]] = {
    "cits": (
        "Anything else that changed at the same time in the evaluated area but not in the "
        "comparison series cannot be told apart from the intervention.",
        "If crime moved into the comparison areas, or they benefited too, the effect is "
        "over- or under-stated.",
    ),
    "its": (
        "Anything else that changed at the same time (other initiatives, policing or "
        "recording practice, the economy) cannot be told apart from the intervention: "
        "there is no comparison area.",
        "A series for the whole area cannot show whether crime moved to nearby places "
        "(displacement) or whether nearby places also benefited.",
    ),
    "did": (
        "It relies on the comparison areas following the same trend as the intervention "
        "areas would have; this can be checked before the start but not proven after it.",
        "If crime moved into the comparison areas, or they benefited too, the effect is "
        "over- or under-stated.",
    ),
    "staggered_did": (
        "It relies on areas that started later (or never) following the same trend as "
        "those that started earlier would have.",
    ),
    "synthetic_control": (
        "It relies on the blend of areas tracking the intervention area after the start as "
        "closely as it did before.",
    ),
}

#: First month of police.uk files on 2021 LSOA boundaries (older ones use 2011 LSOAs).
LSOA_2021_FROM = date(2024, 1, 1)
#: Average monthly count under which a series is "small" for the pitfalls list.
SMALL_COUNT = 20
#: Pre-periods under which regression to the mean is harder to rule out (3 years of months).
LONG_PRE_PERIOD = 36


@dataclass(frozen=True)
class Page:
    """A dashboard page: its title, its headline in plain text, and its parts in order."""

    title: str
    headline: str
    parts: tuple[Part, ...]

    @property
    def charts(self) -> list[Chart]:
        """The charts of the page."""
        return [p for p in self.parts if isinstance(p, Chart)]

    @property
    def html(self) -> str:
        """All HTML fragments joined (charts left out): what a reader can read."""
        return "\n".join(p for p in self.parts if isinstance(p, str))


# --------------------------------------------------------------------------------------
# Small formatting helpers
# --------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _ul(items: Iterable[str], *, escaped: bool = False) -> str:
    rows = [f"<li>{i if escaped else _e(i)}</li>" for i in items if i]
    return f"<ul>{''.join(rows)}</ul>" if rows else ""


def _card(title: str, body: str, *, cls: str = "") -> str:
    head = f"<h2>{_e(title)}</h2>" if title else ""
    return f'<div class="ev"><section class="ev-card {cls}">{head}{body}</section></div>'


def _as_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return pd.Timestamp(value).date()
    except (ValueError, TypeError):
        return None


def month_words(value: str | None) -> str:
    """``"2021-06-01"`` as ``"June 2021"`` (other period labels as they are)."""
    d = _as_date(value)
    if d is None or (value or "").isdigit():
        return str(value or "")
    return d.strftime("%B %Y")


def period_words(results: EvaluationResults) -> str:
    """The data period, e.g. ``"April 2016 to March 2024"``."""
    p = results.periods
    return f"{month_words(p.data_start)} to {month_words(p.data_end)}"


def design_words(design: str) -> str:
    """A design key in words."""
    return DESIGN_WORDS.get(design, design.replace("_", " ").capitalize())


def _join(items: Sequence[str]) -> str:
    items = [i for i in items if i]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _areas(areas: Sequence[str]) -> str:
    return f"{len(areas)} areas" if len(areas) > 3 else _join(list(areas))


def _pretrend_p(results: EvaluationResults) -> float | None:
    """The joint pre-trend test's p-value, from the estimates or the diagnostics."""
    for name in text.PRETREND_NAMES:
        est = _find(results, name)
        if est is not None:
            return est.estimate if est.scale == "p_value" else est.p_value
        value = results.diagnostics.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _minus(s: str) -> str:
    return s.replace("-", "\u2212", 1) if s.startswith("-") else s


def _signed_pct(rr: float) -> str:
    s = text.format_percent_change(rr, signed=True)
    return _minus(s) if s.startswith("-") else ("+" + s if rr > 1 else s)


def _signed_count(x: float) -> str:
    s = text.format_count(x)
    return ("\u2212" if x < 0 else "+" if x > 0 else "") + s


_UNITS: dict[str, str] = {
    "rate_ratio_per_period": " a month",
    "count": " crimes",
    "count_per_period": " crimes a month",
    "rate": " per 1,000 residents",
}


def _format_value(scale: str, x: float) -> str:
    if scale in ("rate_ratio", "rate_ratio_per_period"):
        return _signed_pct(x) if x > 0 else "n/a"
    if scale in ("count", "count_per_period", "rate"):
        return _signed_count(x)
    if scale == "proportion":
        return f"{_minus(text.format_number(x * 100))} pp"
    if scale == "gbp":
        return _minus(text.format_gbp(x))
    if scale == "p_value":
        return text.format_p(x) if 0 <= x <= 1 else "n/a"
    return _minus(text.format_number(x))


def compact_effect(est: Estimate | None) -> tuple[str, str]:
    """An estimate as a short value and interval, e.g. ``("−15%", "95% interval −21% to −8%")``.

    Rate ratios are shown as percent changes; counts signed (negative = fewer crimes).
    """
    if est is None or est.estimate is None:
        return "not estimated", ""
    unit = _UNITS.get(est.scale, "")
    if est.scale == "count" and est.ci_low is None and float(est.estimate).is_integer():
        # a recorded total (a profile's counts), not an effect: exact and unsigned
        return f"{int(est.estimate):,}{unit}", ""
    value = _format_value(est.scale, est.estimate) + unit
    if est.ci_low is None or est.ci_high is None or est.scale == "p_value":
        return value, ""
    level = f"{est.level * 100:g}%"
    lo, hi = _format_value(est.scale, est.ci_low), _format_value(est.scale, est.ci_high)
    return value, f"{level} interval {lo} to {hi}"


def _evidence_level(results: EvaluationResults) -> int | None:
    level = results.evidence.get("msms_level")
    if isinstance(level, int) and not isinstance(level, bool) and 1 <= level <= 5:
        return level
    return None


def evidence_badge(results: EvaluationResults, *, compact: bool = False) -> str:
    """The evidence-strength badge (Maryland Scientific Methods Scale), as HTML."""
    level = _evidence_level(results)
    if level is None:
        label = "Not rated" if compact else "Evidence: not rated"
        return (
            f'<span class="ev-badge" style="background:{NOT_RATED}" '
            'title="No Maryland Scientific Methods Scale rating in the results">'
            f"{label}</span>"
        )
    word = {1: "very weak", 2: "weak", 3: "moderate", 4: "strong", 5: "very strong"}[level]
    label = f"Level {level} of 5" if compact else f"Evidence: level {level} of 5 ({word})"
    return (
        f'<span class="ev-badge" style="background:{BADGE_COLOURS[level]}" '
        f'title="Maryland Scientific Methods Scale, level {level} of 5: {word}">'
        f"{label}</span>" + (f'<div class="ev-small">{word}</div>' if compact else "")
    )


def synthetic_banner() -> str:
    """The red banner shown on every page whose data are synthetic."""
    return f'<div class="ev"><div class="ev-banner" role="alert">{_e(SYNTHETIC_BANNER)}</div></div>'


def _find(results: EvaluationResults, name: str) -> Estimate | None:
    try:
        return results.estimate(name)
    except KeyError:
        return None


def _effect_unit(results: EvaluationResults) -> str:
    est = results.headline_estimate()
    return _UNITS.get(est.scale, "").strip() if est else ""


# --------------------------------------------------------------------------------------
# Sections of an evaluation page
# --------------------------------------------------------------------------------------


def _header(results: EvaluationResults, index_href: str) -> str:
    o = results.outcome
    where = f" in {_areas(o.areas)}" if o.areas else ""
    start = month_words(results.periods.intervention_start)
    bits = [
        f"{design_words(_design_key(results))} · {o.label}{where}",
        f"Data {period_words(results)}" + (f" · started {start}" if start else ""),
    ]
    subs = "".join(f'<p class="ev-sub">{_e(b)}</p>' for b in bits)
    return (
        '<div class="ev">'
        f'<p class="ev-crumb"><a href="{_e(index_href)}">&larr; All evaluations</a></p>'
        f"<h1>{_e(results.title)}</h1>{subs}</div>"
    )


def _headline_card(results: EvaluationResults, headline: str) -> str:
    est = results.headline_estimate()
    value, interval = compact_effect(est)
    label = est.label if est and est.label else "Headline effect"
    keys = (
        '<div class="ev-keys">'
        f'<div class="ev-key"><div class="ev-label">{_e(label)}</div>'
        f'<div class="ev-value" id="headline-effect">{_e(value)}</div>'
        f'<div class="ev-note">{_e(interval)}</div></div>'
        f'<div class="ev-key"><div class="ev-label">Strength of evidence</div>'
        f'<div style="margin-top:8px">{evidence_badge(results)}</div></div>'
        "</div>"
    )
    summary = text.plain_summary(results)[1:]
    brief = f"<h3>In brief</h3>{_ul(summary)}" if summary else ""
    warn = ""
    warnings = [w for w in results.warnings if not _is_location_note(w)]
    if warnings:
        warn = f'<h3 class="ev-warn">Read with care</h3>{_ul(warnings)}'
    body = f'<p class="ev-headline" id="headline">{_e(headline)}</p>{keys}{brief}{warn}'
    return _card("", body)


def _is_location_note(warning: str) -> bool:
    """Warnings about records without a location, shown under data quality instead."""
    return "no location" in warning.lower()


def _caption(protected: Protected, key: str, *, observed: bool) -> str:
    results = protected.results
    series = results.series[key]
    parts = []
    if observed:
        parts.append("Dots: crimes recorded each month.")
        if series.comparison:
            parts.append("Grey line: the comparison areas.")
        if series.fitted:
            parts.append("Solid blue line: the model.")
        if series.counterfactual:
            parts.append(
                "Dashed red line: what the model expects without the intervention"
                + (", with its shaded interval." if series.counterfactual_low else ".")
            )
        if is_calendar(series) and overlaps_covid(results):
            parts.append("Grey bands: Covid-19 lockdowns in Wales.")
        parts.append("Hover for values; drag to zoom.")
        n = protected.hidden.get(key, 0)
        if n:
            parts.append(
                f"{n} month{'s' if n != 1 else ''} with small counts "
                f"({protected.threshold} crimes, or hidden so those cannot be worked out) "
                "are not shown, so the dots lean towards the busier months."
            )
    else:
        parts.append(
            "The model's estimate of the change compared with what was expected, each "
            "month: flat at 0% before the start, a step at the start (with its interval), "
            "then a drift if the trend changed. Seasonal swings cancel out here."
        )
    return f'<div class="ev"><p class="ev-caption">{_e(" ".join(parts))}</p></div>'


def _pretrend_words(results: EvaluationResults) -> str:
    p = _pretrend_p(results)
    if p is not None:
        return text.pretrend_sentence(p)
    if results.design in ("its",) and not results.outcome.comparison_areas:
        return (
            "There is no comparison group, so there is no test of parallel trends: the "
            "counterfactual rests on the trend before the start carrying on."
        )
    return "No test of trends before the start is reported."


def _design_key(results: EvaluationResults) -> str:
    """The design, telling a controlled ITS (one with comparison areas) from a plain one."""
    if results.design == "its" and results.outcome.comparison_areas:
        return "cits"
    return results.design


def _method_section(results: EvaluationResults) -> str:
    o = results.outcome
    items = []
    design = _design_key(results)
    explained = DESIGN_EXPLAINED.get(design)
    if explained:
        items.append(f"{design_words(design)}: {explained}")
    if o.comparison_areas:
        items.append(f"Comparison areas: {_join(list(o.comparison_areas))}.")
    if o.buffer_areas:
        items.append(
            f"Buffer areas left out of the comparison (to watch for displacement): "
            f"{_join(list(o.buffer_areas))}."
        )
    p = results.periods
    if p.pre_periods and p.post_periods:
        items.append(
            f"{p.pre_periods} {p.frequency}s before the start and {p.post_periods} after it."
        )
    items.append(_pretrend_words(results))
    level = _evidence_level(results)
    items.append(
        text.evidence_phrase(level)
        if level
        else "Strength of evidence: this evaluation has not been rated on the Maryland "
        "Scientific Methods Scale."
    )
    padlocks = results.evidence.get("padlocks")
    if isinstance(padlocks, int) and not isinstance(padlocks, bool) and 0 <= padlocks <= 5:
        items.append(f"Youth Endowment Fund evidence rating: {padlocks} of 5 padlocks.")
    mde = results.evidence.get("mde") or results.evidence.get("minimum_detectable_effect")
    if isinstance(mde, dict):
        value, _ = compact_effect(Estimate.model_validate(mde))
        items.append(f"Smallest effect the data could reliably detect: {value}.")
    items += list(results.notes)
    body = _ul(items)
    if results.synthetic and results.truth:
        body += _truth_check(results)
    return _card("How this was estimated", body)


def _truth_check(results: EvaluationResults) -> str:
    rows = []
    for name, planted in (results.truth or {}).items():
        est = _find(results, name)
        if est is None or est.estimate is None:
            continue
        got, interval = compact_effect(est)
        want, _ = compact_effect(
            est.model_copy(update={"estimate": planted, "ci_low": None, "ci_high": None})
        )
        tail = f" ({interval})" if interval else ""
        rows.append(f"{est.label or name}: planted {want}, estimated {got}{tail}")
    if not rows:
        return ""
    return "<h3>Check against the planted answer (synthetic data only)</h3>" + _ul(rows)


def _limits_section(results: EvaluationResults) -> str:
    items = list(LIMITS_BY_DESIGN.get(_design_key(results), ())) + list(LIMITS_COMMON)
    if results.outcome.measure == "activity":
        items.insert(
            0,
            f"{results.outcome.label} count what the police find, so this cannot show "
            "whether the underlying problem (for example drug supply) grew or shrank.",
        )
    extra = results.evidence.get("limitations")
    if isinstance(extra, list):
        items += [str(x) for x in extra]
    return _card("What this evidence cannot show", _ul(items))


def _covid_modelled(results: EvaluationResults) -> bool:
    model = results.provenance.params.get("model", {})
    if isinstance(model, dict) and model.get("interruptions") in ("welsh_covid", "covid"):
        return True
    return any("covid" in n.lower() for n in results.notes)


def _observed_mean(results: EvaluationResults) -> float | None:
    s = results.series.get("primary")
    vals = [v for v in (s.observed if s else []) if v is not None]
    return sum(vals) / len(vals) if vals else None


def pitfalls(results: EvaluationResults) -> list[str]:
    """The pitfalls that apply to this evaluation, in plain words."""
    o = results.outcome
    out = []
    if "Drugs" in o.crime_types:
        out.append(
            "Drug offences measure police activity, not drug dealing: they are recorded when "
            "police find drugs, so more enforcement records more offences. A rise can be a "
            "sign the operation was working, and a fall can mean less enforcement."
        )
    elif o.measure == "activity":
        out.append(
            f"{o.label} measure police activity: they are mostly recorded when police find "
            "them, so more enforcement records more offences, and a rise can be a sign the "
            "intervention was working."
        )
    if overlaps_covid(results):
        if _covid_modelled(results):
            out.append(
                "Covid-19: the lockdowns of 2020-21 changed crime sharply. The model treats "
                "each Welsh lockdown as a separate shock, so they are not counted as an "
                "effect of the intervention, but estimates near those months are less certain."
            )
        else:
            out.append(
                "Covid-19: the data include the 2020-21 lockdowns, which changed crime "
                "sharply, and the model does not allow for them; part of any change may be "
                "due to the pandemic."
            )
    out.append(
        "Regression to the mean: places are often chosen because crime was unusually high, "
        "and unusually high counts tend to fall back anyway. "
        + (
            f"Here {results.periods.pre_periods} months before the start help to show the "
            "usual level."
            if (results.periods.pre_periods or 0) >= LONG_PRE_PERIOD
            else "The period before the start is short (under 3 years), so this is harder "
            "to rule out."
        )
    )
    mean = _observed_mean(results)
    if mean is not None and mean < SMALL_COUNT:
        out.append(
            f"Small numbers: about {mean:.0f} crimes a month, so chance alone moves the "
            "counts a lot; the intervals show how much."
        )
    model = results.provenance.params.get("model", {})
    if (
        isinstance(model, dict)
        and model.get("seasonality") in ("none", None)
        and results.design == "its"
    ):
        out.append("Seasonality: the model has no seasonal pattern; crime varies by month of year.")
    return out


def _pitfalls_section(results: EvaluationResults) -> str:
    return _card("Pitfalls that apply here", _ul(pitfalls(results)))


def _lsoa_note(results: EvaluationResults) -> str:
    note = results.data_quality.get("lsoa_boundary_change")
    if isinstance(note, str) and note:
        return note
    start, end = _as_date(results.periods.data_start), _as_date(results.periods.data_end)
    if start is None or end is None:
        return ""
    if start < LSOA_2021_FROM <= end:
        return (
            "The data run across January 2024, when police.uk files moved from 2011 to 2021 "
            "neighbourhood (LSOA) boundaries; small-area counts either side of the change are "
            "comparable only after mapping them to one set of boundaries (ONS crosswalk)."
        )
    if end < LSOA_2021_FROM:
        return (
            "All months use the 2011 neighbourhood (LSOA) boundaries of police.uk files "
            "before 2024, so areas are the same throughout."
        )
    return "All months use the 2021 neighbourhood (LSOA) boundaries."


_DQ_HANDLED = {"records_without_location", "lsoa_boundary_change"}


def _data_quality_section(protected: Protected) -> str:
    results = protected.results
    dq = results.data_quality
    items = []
    if results.synthetic:
        items.append(
            "The data are synthetic: generated in the police.uk format with known planted "
            "effects, for demonstration. They are not real crime records."
        )
    n = dq.get("records_without_location")
    if isinstance(n, int | float) and not isinstance(n, bool):
        items.append(
            f"{safe_count(n)} records of these crime types had no location in police.uk and "
            "are not in any area's count."
            if n
            else "Every record of these crime types had a location."
        )
    items.append(_lsoa_note(results))
    for key, value in sorted(dq.items()):
        if key in _DQ_HANDLED or not isinstance(value, str | int | float | bool):
            continue
        shown = (
            safe_count(value) if isinstance(value, int) and not isinstance(value, bool) else value
        )
        items.append(f"{key.replace('_', ' ').capitalize()}: {shown}.")
    if protected.total_hidden:
        items.append(
            f"Privacy: months with {protected.threshold} recorded crimes are hidden in the "
            "charts, and so are further months where needed so hidden values cannot be "
            f"worked out from totals ({protected.total_hidden} month"
            f"{'s' if protected.total_hidden != 1 else ''} hidden)."
        )
    else:
        items.append(
            f"Privacy: counts of {protected.threshold} crimes in a month would be hidden; "
            "none occur in the charts. No individual records are shown."
        )
    return _card("Data quality", _ul(items))


def _estimates_section(results: EvaluationResults) -> str:
    rows = []
    for est in results.estimates:
        value, interval = compact_effect(est)
        p = text.format_p(est.p_value) if est.p_value is not None else ""
        rows.append(
            f"<tr><td>{_e(est.label or est.name)}</td><td class='ev-num'><b>{_e(value)}</b></td>"
            f"<td class='ev-num'>{_e(interval)}</td><td class='ev-num'>{_e(p)}</td>"
            f"<td class='ev-small'>{_e(est.method)}</td></tr>"
        )
    if not rows:
        return ""
    table = (
        '<table class="ev-table"><thead><tr><th style="width:34%">What</th>'
        '<th style="width:13%">Estimate</th><th style="width:22%">Interval</th>'
        '<th style="width:10%">p-value</th><th>Method</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="ev-caption">Percent changes are relative to what was expected without the '
        "intervention; negative numbers are fewer crimes.</p>"
    )
    return _card("All estimates", table)


#: Tables shown to funders, per design (aggregates only; never record-level rows)
SHOWN_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "profile": (
        ("years", "Year totals"),
        ("areas", "Areas ranked by count and change"),
        ("crime_types", "Crime types"),
        ("outcome_groups", "Last recorded outcomes"),
    ),
    "did": (("balance", "Treated and comparison areas before the start"),),
    "staggered_did": (("roll_out", "Roll-out"), ("groups", "Effect by roll-out cohort")),
    "synthetic_control": (("donor_weights", "The synthetic area: donor weights"),),
    "power": (("power_curve", "Power by effect size and follow-up"),),
}
#: columns holding counts of crimes: values 1-4 are never shown
_COUNT_WORDS = ("count", "year_1", "year_2", "total", "treated", "comparison")


def _is_count(column: str) -> bool:
    return not column.startswith("rank") and (column in _COUNT_WORDS or column.endswith("count"))


def _cell(column: str, value: object) -> str:
    if value is None:
        return "hidden" if _is_count(column) else ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int | float):
        x = float(value)
        if column == "percent_change":
            return _minus(f"{x * 100:+.0f}%")
        if column == "share":
            return f"{x * 100:.0f}%"
        if _is_count(column) and x.is_integer() and 1 <= x <= 4:
            return "fewer than 5"  # disclosure control
        if x.is_integer():
            return f"{int(x):,}"
        return f"{x:,.3g}" if abs(x) < 10 else f"{x:,.1f}"
    return str(value)


def _tables_section(results: EvaluationResults) -> str:
    """The design's summary tables, disclosure-controlled, from ``results.tables`` only."""
    blocks = []
    for key, title in SHOWN_TABLES.get(results.design, ()):
        rows = results.tables.get(key) or []
        if not rows:
            continue
        cols = [c for c in rows[0] if c not in ("suppressed", "suppression", "scale", "unit")]
        head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{_e(_cell(c, r.get(c)))}</td>" for c in cols) + "</tr>"
            for r in rows[:30]
        )
        blocks.append(
            f"<h3>{_e(title)}</h3><table class='ev-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    if not blocks:
        return ""
    note = (
        '<p class="ev-caption">Counts of 1 to 4 are never shown, and further cells are hidden '
        "where a hidden count could be worked out from the totals.</p>"
    )
    return _card("Tables", "".join(blocks) + note)


def _short(h: str | None, n: int = 12) -> str:
    return (h or "")[:n] or "not recorded"


def _provenance_section(results: EvaluationResults) -> str:
    pv = results.provenance
    items = [
        "This page is drawn from the saved results file only: nothing is refitted and no "
        "individual crime records are read or shown.",
        f"Run: started {pv.run_started or 'not recorded'}, finished {pv.run_finished or 'not recorded'}.",
        f"Settings file: {pv.params_file or 'not recorded'} (fingerprint {_short(pv.params_hash)}).",
        f"Data: {len(pv.data_files)} file{'s' if len(pv.data_files) != 1 else ''} "
        f"(fingerprint of the analysed counts {_short(pv.data_hash)}).",
        f"Code version: {_short(pv.git_commit, 10)}"
        + (f"; evaluation {pv.versions['evaluation']}" if "evaluation" in pv.versions else "")
        + ".",
    ]
    if pv.seed is not None:
        items.append(f"Random seed: {pv.seed}.")
    body = _ul(items)
    if pv.data_files:
        files = "".join(
            f"<li><code>{_e(name)}</code> <span class='ev-small'>{_e(_short(sha))}</span></li>"
            for name, sha in sorted(pv.data_files.items())
        )
        body += f"<details><summary>Data files</summary><ul>{files}</ul></details>"
    if pv.versions:
        vers = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(pv.versions.items()))
        body += (
            f"<details><summary>Software versions</summary><p class='ev-small'>{vers}</p></details>"
        )
    return _card("Where the numbers come from", body)


def _check_sections(protected: Protected) -> list[Part]:
    results = protected.results
    parts: list[Part] = []
    for key, series in results.series.items():
        if key == "primary":
            continue
        name = f"{key}:{results.headline}" if results.headline else ""
        est = _find(results, name)
        sentence = (
            text.effect_sentence(
                est,
                outcome_label=series.label or key,
                comparison=text.comparison_phrase(results.design),
            )
            if est is not None
            else ""
        )
        value, interval = compact_effect(est)
        body = (
            f'<p class="ev-headline" style="font-size:19px">{_e(sentence)}</p>' if sentence else ""
        )
        if est is not None:
            body += f'<p class="ev-sub">{_e(value)} ({_e(interval)})</p>'
        parts.append(_card(f"Check: {series.label or key}", body))
        parts.append(observed_chart(protected, key))
        parts.append(_caption(protected, key, observed=True))
    return parts


def _footer() -> str:
    return (
        '<div class="ev"><p class="ev-footer">Cardiff Community Safety Partnership · '
        "evaluations of community-safety interventions. Figures are drawn from saved "
        "results; small counts are hidden to protect privacy.</p></div>"
    )


def evaluation_page(results: EvaluationResults, *, index_href: str = "index.html") -> Page:
    """The page of one evaluation.

    Parameters
    ----------
    results
        The evaluation's results (as read from ``results.json``).
    index_href
        Link back to the index (relative, e.g. ``"index.html"`` or ``"index.ipynb"``).
    """
    protected = protect(results)
    safe = protected.results
    headline = text.headline(results)
    parts: list[Part] = []
    if results.synthetic:
        parts.append(synthetic_banner())
    parts.append(_header(results, index_href))
    parts.append(_headline_card(results, headline))
    if "primary" in safe.series:
        parts.append(observed_chart(protected, "primary"))
        parts.append(_caption(protected, "primary", observed=True))
    second = event_study_chart(safe, _effect_unit(results))
    if second is None and results.design == "its":
        second = trend_chart(safe, "primary")
        if second is not None:
            parts += [second, _caption(protected, "primary", observed=False)]
    elif second is not None:
        parts.append(second)
        parts.append(
            '<div class="ev"><p class="ev-caption">Each dot is the difference between the '
            "intervention and comparison areas in one period (month or quarter, as the axis "
            "says), relative to the period before the start, with its interval. Before the start (shaded) the dots should sit near the "
            "line if the areas were moving alike.</p></div>"
        )
    parts += _check_sections(protected)
    parts += [
        _method_section(results),
        _limits_section(results),
        _pitfalls_section(results),
        _data_quality_section(protected),
        _tables_section(safe),
        _estimates_section(results),
        _provenance_section(results),
        _footer(),
    ]
    return Page(title=results.title, headline=headline, parts=tuple(p for p in parts if p))


# --------------------------------------------------------------------------------------
# Index and refusal pages
# --------------------------------------------------------------------------------------

INDEX_TITLE = "Community-safety evaluations"


def _index_row(entry: ReportEntry, link: Callable[[str], str]) -> str:
    r = entry.results
    if r is None:
        cells = [_e(entry.name), "", "", "", "", "", _e(entry.status)]
        return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    value, interval = compact_effect(r.headline_estimate())
    tag = '<span class="ev-tag">synthetic</span>' if r.synthetic else ""
    status_cls = "ev-warn" if entry.last_run_failed else "ev-small"
    where = _areas(r.outcome.areas)
    return (
        "<tr>"
        f'<td><a href="{_e(link(entry.name))}"><b>{_e(r.title)}</b></a>{tag}</td>'
        f"<td>{_e(design_words(r.design))}</td>"
        f"<td>{_e(r.outcome.label)}"
        + (f'<div class="ev-small">{_e(where)}</div>' if where else "")
        + "</td>"
        f'<td class="ev-num"><span class="ev-effect">{_e(value)}</span>'
        f'<div class="ev-small">{_e(interval)}</div></td>'
        f"<td>{evidence_badge(r, compact=True)}</td>"
        f"<td>{_e(period_words(r))}</td>"
        f'<td class="{status_cls}">{_e(entry.status)}</td>'
        "</tr>"
    )


def index_page(entries: Sequence[ReportEntry], link: Callable[[str], str]) -> Page:
    """The list of all evaluations.

    Parameters
    ----------
    entries
        From :func:`evaluation.dashboard.catalog.entries`.
    link
        Maps an evaluation name to the href of its page.
    """
    n = len(entries)
    headline = (
        f"{n} evaluation{'s' if n != 1 else ''} of community-safety interventions in Cardiff. "
        "Choose one to see what changed, how sure we can be, and how strong the evidence is."
        if n
        else "No evaluations have been published yet."
    )
    parts: list[Part] = []
    if any(e.results is not None and e.results.synthetic for e in entries):
        parts.append(synthetic_banner())
    head = f'<h1>{_e(INDEX_TITLE)}</h1><p class="ev-headline ev-index-lead" id="headline">{_e(headline)}</p>'
    parts.append(f'<div class="ev">{head}</div>')
    if entries:
        rows = "".join(_index_row(e, link) for e in entries)
        table = (
            '<table class="ev-table" id="evaluations"><thead><tr><th>Evaluation</th><th>Design</th>'
            "<th>Outcome</th><th>Headline effect</th><th>Evidence</th><th>Data period</th>"
            f"<th>Status</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        parts.append(_card("", table))
    guide = _ul(
        [
            "Headline effect: the change in the outcome compared with what would have been "
            "expected without the intervention. Negative numbers mean fewer crimes.",
            "Interval: the range of effects the data are consistent with (95% unless "
            "stated). When it includes zero, the data cannot rule out no effect.",
            "Evidence: the Maryland Scientific Methods Scale, from 1 (a simple before and "
            "after) to 5 (a randomised trial). Level 3 or more is needed to say with some "
            "confidence that the intervention caused the change.",
        ]
    )
    parts.append(_card("How to read this", guide))
    parts.append(_footer())
    return Page(title=INDEX_TITLE, headline=headline, parts=tuple(parts))


def not_found_page(index_href: str) -> Page:
    """Shown when a request names no published evaluation (the name is not echoed)."""
    headline = "There is no published evaluation with that name."
    body = (
        f'<div class="ev"><h1>Evaluation not found</h1><p class="ev-headline" id="headline">'
        f'{_e(headline)}</p><p><a href="{_e(index_href)}">See all evaluations</a></p></div>'
    )
    return Page(title="Evaluation not found", headline=headline, parts=(body,))


def unavailable_page(index_href: str) -> Page:
    """Shown when a page cannot be built (the reason goes to the server log, not the viewer)."""
    headline = "This page cannot be shown at the moment."
    body = (
        f'<div class="ev"><h1>Not available</h1><p class="ev-headline" id="headline">'
        f"{_e(headline)}</p><p>The problem has been recorded in the server's log.</p>"
        f'<p><a href="{_e(index_href)}">See all evaluations</a></p></div>'
    )
    return Page(title="Not available", headline=headline, parts=(body,))
