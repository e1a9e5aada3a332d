"""Cost per crime prevented and benefit-cost ratio, from Home Office unit costs.

Unit costs are Heeks et al. (2018), Home Office Research Report 99, per crime in 2015/16
prices (``resources/unit_costs_2015_16.csv``; see ``resources/README.md`` for what was
confirmed and what was left out). Unit costs are per *actual* crime; applying them to
recorded crimes prevented makes the benefit conservative.

Sign convention: "prevented" counts are positive when crimes were prevented. A design's
count effect (negative = fewer crimes) is turned round by :func:`prevented_from_effect`.

Intervals are carried from the effect's interval, never invented: the cost per crime
prevented is ``programme cost / crimes prevented``, so its interval runs from
``cost / most prevented`` to ``cost / fewest prevented``. When the effect's interval
includes (about) zero crimes prevented the upper cost bound does not exist; it is reported
as unbounded (``ci_high`` None, ``upper_unbounded`` True), never as a huge number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.config import RESOURCES
from evaluation.errors import InputError
from evaluation.report.text import cost_sentence, format_gbp, format_number
from evaluation.results import Estimate

UNIT_COSTS_FILE = "unit_costs_2015_16.csv"
PRICE_BASE = "2015/16"
COLUMNS = ("crime_category", "police_uk_crime_type", "unit_cost_gbp_2015_16", "note")

#: police.uk type -> {category: share}. Cheapest confirmed component, so benefits are a
#: lower bound; params replace these with a documented local mix.
DEFAULT_MIX: dict[str, dict[str, float]] = {
    "Vehicle crime": {"theft_from_vehicle": 1.0},
    "Criminal damage and arson": {"criminal_damage_other": 1.0},
    "Robbery": {"robbery": 1.0},
}

#: Crime types that are never given a money value, and why.
NEVER_MONETISED: dict[str, str] = {
    "Drugs": (
        "drug offences are never monetised: they are an activity measure that rises with "
        "enforcement, and the Home Office gives no unit cost for them"
    ),
}

#: Categories deliberately absent from the CSV because their figures were not confirmed.
UNCONFIRMED: dict[str, str] = {
    "domestic_burglary": "Burglary",
    "violence_without_injury": "Violence and sexual offences",
    "theft_from_the_person": "Theft from the person",
}

_SOURCE = "unit costs"


# --------------------------------------------------------------------------------------
# Unit costs
# --------------------------------------------------------------------------------------


def load_unit_costs(
    path: str | Path | None = None,
    *,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Read the unit-cost table, optionally adding evaluator-checked categories.

    Parameters
    ----------
    path
        CSV to read; defaults to the packaged ``unit_costs_2015_16.csv``.
    extra
        ``{crime_category: {"police_uk_crime_type": ..., "unit_cost_gbp_2015_16": ...,
        "note": "<source>"}}`` from params, e.g. a domestic burglary cost checked against
        the report. ``note`` must name the source.

    Returns
    -------
    pandas.DataFrame
        One row per category with the columns in :data:`COLUMNS`.

    Raises
    ------
    InputError
        On missing columns, duplicated or non-positive costs, a Drugs row, or an extra
        row without a source.
    """
    source = Path(path) if path is not None else RESOURCES / UNIT_COSTS_FILE
    table = pd.read_csv(source, dtype={"crime_category": str, "police_uk_crime_type": str})
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(source, f"missing column(s) {missing}")
    table = table[list(COLUMNS)]
    if extra:
        table = pd.concat([table, _extra_rows(extra)], ignore_index=True)
    _validate_table(table, source)
    return table


def _extra_rows(extra: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for category, spec in extra.items():
        key = f"costs.extra_unit_costs.{category}"
        if not isinstance(spec, Mapping):
            raise InputError(None, "must be a mapping", key=key)
        note = str(spec.get("note", "")).strip()
        if not note:
            raise InputError(None, "give the source of this unit cost in 'note'", key=key)
        rows.append(
            {
                "crime_category": str(category),
                "police_uk_crime_type": str(spec.get("police_uk_crime_type", "")),
                "unit_cost_gbp_2015_16": spec.get("unit_cost_gbp_2015_16"),
                "note": note,
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _validate_table(table: pd.DataFrame, source: Any) -> None:
    if table["crime_category"].duplicated().any():
        dup = table.loc[table["crime_category"].duplicated(), "crime_category"].tolist()
        raise InputError(source, f"crime categories given twice: {dup}")
    costs = pd.to_numeric(table["unit_cost_gbp_2015_16"], errors="coerce")
    if costs.isna().any() or (costs <= 0).any():
        raise InputError(source, "every unit cost must be a positive number")
    drugs = table["police_uk_crime_type"].isin(NEVER_MONETISED)
    if drugs.any():
        raise InputError(source, NEVER_MONETISED["Drugs"])


@dataclass(frozen=True)
class UnitCost:
    """The money value of one crime of a police.uk type, with how it was reached.

    ``value_gbp`` is None when the type cannot be valued; ``reason`` then says why.
    """

    crime_type: str
    value_gbp: float | None
    price_base: str = PRICE_BASE
    mix: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""


def unit_cost_for(
    crime_type: str,
    *,
    table: pd.DataFrame | None = None,
    mix: Mapping[str, float] | None = None,
) -> UnitCost:
    """Unit cost of one police.uk crime type in 2015/16 prices.

    Parameters
    ----------
    crime_type
        A data.police.uk crime type, e.g. ``"Vehicle crime"``.
    table
        Unit costs from :func:`load_unit_costs` (default: the packaged table).
    mix
        ``{crime_category: share}`` summing to 1, overriding :data:`DEFAULT_MIX`.

    Returns
    -------
    UnitCost
        The weighted unit cost, or ``value_gbp`` None with the reason (always for Drugs).

    Raises
    ------
    InputError
        If a mix is given for Drugs, names an unknown category or one of another crime
        type, or its shares are negative or do not sum to 1.
    """
    if crime_type in NEVER_MONETISED:
        if mix:
            raise InputError(None, NEVER_MONETISED[crime_type], key=f"costs.mix.{crime_type}")
        return UnitCost(crime_type, None, reason=NEVER_MONETISED[crime_type])
    table = load_unit_costs() if table is None else table
    costs = table.set_index("crime_category")
    if mix is not None:
        chosen, how = _check_mix(crime_type, mix, costs), "the mix given in params"
    elif crime_type in DEFAULT_MIX:
        chosen, how = DEFAULT_MIX[crime_type], "the default mix (see resources/README.md)"
    else:
        own = costs.index[costs["police_uk_crime_type"] == crime_type].tolist()
        if len(own) != 1:
            return UnitCost(crime_type, None, reason=_no_cost_reason(crime_type, own))
        chosen, how = {own[0]: 1.0}, f"its only category, {own[0]}"
    value = sum(
        share * float(costs.at[cat, "unit_cost_gbp_2015_16"]) for cat, share in chosen.items()
    )
    parts = ", ".join(f"{share:g} x {cat}" for cat, share in chosen.items())
    return UnitCost(crime_type, value, mix=dict(chosen), reason=f"valued by {how}: {parts}")


def _check_mix(crime_type: str, mix: Mapping[str, float], costs: pd.DataFrame) -> dict[str, float]:
    key = f"costs.mix.{crime_type}"
    out = {}
    for cat, share in mix.items():
        if cat not in costs.index:
            hint = (
                " (its cost is not confirmed; add it as an extra unit cost)"
                if cat in UNCONFIRMED
                else ""
            )
            raise InputError(None, f"unknown cost category {cat!r}{hint}", key=key)
        if costs.at[cat, "police_uk_crime_type"] != crime_type:
            raise InputError(None, f"category {cat!r} is not part of {crime_type!r}", key=key)
        share = float(share)
        if not math.isfinite(share) or share < 0:
            raise InputError(None, f"share of {cat!r} must be non-negative", key=key)
        out[cat] = share
    if not math.isclose(sum(out.values()), 1.0, abs_tol=1e-9):
        raise InputError(None, f"shares must sum to 1, not {sum(out.values()):g}", key=key)
    return out


def _no_cost_reason(crime_type: str, own: list[str]) -> str:
    unconfirmed = [c for c, t in UNCONFIRMED.items() if t == crime_type]
    if own:
        return (
            f"{crime_type} spans several cost categories ({', '.join(own)}) and no mix was "
            "given in params"
            + (f"; {', '.join(unconfirmed)} has no confirmed unit cost" if unconfirmed else "")
        )
    if unconfirmed:
        return f"no confirmed unit cost for {', '.join(unconfirmed)}; add one with its source"
    return f"no unit cost for {crime_type}"


@dataclass(frozen=True)
class Deflator:
    """GDP deflator index values for the unit costs' year and the target year."""

    deflator_from: float
    deflator_to: float
    label_from: str = PRICE_BASE
    label_to: str = ""


def uprate(value: float, deflator_from: float, deflator_to: float) -> float:
    """Move a money value between price years with a GDP deflator.

    ``value * deflator_to / deflator_from``; e.g. £1,000 at index 100 is £1,100 at 110.

    Raises
    ------
    InputError
        If an index value is not positive.
    """
    for name, v in (("deflator_from", deflator_from), ("deflator_to", deflator_to)):
        if v is None or not math.isfinite(v) or v <= 0:
            raise InputError(
                None, f"GDP deflator index must be positive, got {v!r}", key=f"costs.{name}"
            )
    return value * deflator_to / deflator_from


def _as_deflator(deflator: Deflator | tuple[float, float]) -> Deflator:
    if isinstance(deflator, Deflator):
        return deflator
    if isinstance(deflator, tuple | list) and len(deflator) == 2:
        return Deflator(float(deflator[0]), float(deflator[1]))
    raise InputError(
        None, "deflator must be Deflator(from, to) or a (from, to) pair", key="costs.deflator"
    )


# --------------------------------------------------------------------------------------
# Crimes prevented
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prevented:
    """Crimes prevented (positive = prevented) with its interval."""

    estimate: float
    ci_low: float | None = None
    ci_high: float | None = None
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.estimate is None or not math.isfinite(self.estimate):
            raise InputError(None, "crimes prevented must be a number")
        if (self.ci_low is None) != (self.ci_high is None):
            raise InputError(None, "give both interval bounds of crimes prevented or neither")
        b = self.bounds()
        if b is not None and not b[0] <= self.estimate <= b[1]:
            raise InputError(None, f"interval {b[0]}..{b[1]} does not contain {self.estimate}")

    def bounds(self) -> tuple[float, float] | None:
        """``(ci_low, ci_high)``, or None when there is no interval."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low, self.ci_high


def prevented_from_effect(effect: Estimate) -> Prevented:
    """Turn a count-scale effect (negative = fewer crimes) into crimes prevented.

    Raises
    ------
    InputError
        If the effect is not on the ``count`` scale or has no estimate.
    """
    if effect.scale != "count":
        raise InputError(None, f"{effect.name}: crimes prevented need a count, not {effect.scale}")
    if effect.estimate is None:
        raise InputError(None, f"{effect.name}: no estimate")
    lo = -effect.ci_high if effect.ci_high is not None else None
    hi = -effect.ci_low if effect.ci_low is not None else None
    return Prevented(-effect.estimate, lo, hi, effect.level)


def _as_prevented(x: Prevented | Estimate | Mapping[str, Any] | tuple) -> Prevented:
    if isinstance(x, Prevented):
        return x
    if isinstance(x, Estimate):
        return Prevented(_number(x.estimate), x.ci_low, x.ci_high, x.level)
    if isinstance(x, Mapping):
        return Prevented(
            _number(x.get("estimate")), x.get("ci_low"), x.get("ci_high"), x.get("level", 0.95)
        )
    if isinstance(x, tuple | list) and len(x) == 3:
        lo, hi = (None if v is None else float(v) for v in x[1:])
        return Prevented(_number(x[0]), lo, hi)
    raise InputError(None, "crimes prevented must be (estimate, ci_low, ci_high) or an Estimate")


def _number(v: Any) -> float:
    if v is None:
        raise InputError(None, "crimes prevented must be a number, got nothing")
    return float(v)


# --------------------------------------------------------------------------------------
# Cost per crime prevented and benefit-cost ratio
# --------------------------------------------------------------------------------------


def cost_per_crime_prevented(
    programme_cost: float,
    prevented: Prevented | Estimate | Mapping[str, Any] | tuple,
    *,
    min_prevented: float = 1.0,
) -> dict[str, Any]:
    """Programme cost divided by crimes prevented, with the effect's interval carried over.

    Parameters
    ----------
    programme_cost
        Total cost of the programme in pounds (positive).
    prevented
        Crimes prevented (positive = prevented) with its interval: a :class:`Prevented`,
        an Estimate, a mapping or a ``(estimate, ci_low, ci_high)`` tuple.
    min_prevented
        Fewer crimes prevented than this count as none: dividing by (nearly) zero gives
        a meaningless cost.

    Returns
    -------
    dict
        ``estimate``: Estimate ``cost_per_crime_prevented`` (scale ``gbp``);
        ``upper_unbounded``: True when the interval includes no crimes prevented (then
        ``ci_high`` is None); ``text``: the plain-English sentence.
    """
    if programme_cost is None or not math.isfinite(programme_cost) or programme_cost <= 0:
        raise InputError(
            None, "programme cost must be a positive number", key="costs.programme_cost"
        )
    p = _as_prevented(prevented)

    def per(n: float | None) -> float | None:
        return programme_cost / n if n is not None and n >= min_prevented else None

    b = p.bounds()
    upper_unbounded = b is not None and b[1] >= min_prevented and b[0] < min_prevented
    est = Estimate(
        name="cost_per_crime_prevented",
        estimate=per(p.estimate),
        ci_low=per(b[1]) if b is not None else None,
        ci_high=per(b[0]) if b is not None else None,
        scale="gbp",
        method=(
            "programme cost / crimes prevented; interval = programme cost / the bounds of the "
            "crimes-prevented interval (unbounded above when that interval reaches zero)"
        ),
        label="Cost per crime prevented",
        level=p.level,
    )
    return {
        "estimate": est,
        "upper_unbounded": upper_unbounded,
        "text": cost_sentence(est, upper_unbounded=upper_unbounded),
    }


def _unit_value(
    crime_type: str, unit_costs: Mapping[str, UnitCost | float | None] | None
) -> tuple[float | None, str]:
    if crime_type in NEVER_MONETISED:
        return None, NEVER_MONETISED[crime_type]
    if unit_costs is None:
        uc = unit_cost_for(crime_type)
        return uc.value_gbp, uc.reason
    if crime_type not in unit_costs:
        return None, "no unit cost given"
    v = unit_costs[crime_type]
    if isinstance(v, UnitCost):
        return v.value_gbp, v.reason
    if v is None:
        return None, "no unit cost given"
    return float(v), "unit cost given"


def benefit_cost_ratio(
    prevented_by_type: Mapping[str, Prevented | Estimate | Mapping[str, Any] | tuple],
    unit_costs: Mapping[str, UnitCost | float | None] | None,
    programme_cost: float,
    deflator: Deflator | tuple[float, float],
) -> dict[str, Any]:
    """Monetised benefit of crimes prevented divided by the programme cost.

    Parameters
    ----------
    prevented_by_type
        ``{police.uk crime type: crimes prevented with interval}``.
    unit_costs
        ``{crime type: UnitCost or £ per crime in 2015/16 prices}``; None values each type
        with :func:`unit_cost_for` and the default mixes.
    programme_cost
        Programme cost in the target year's prices.
    deflator
        GDP deflator index values (2015/16, target year) used to uprate unit costs.

    Returns
    -------
    dict
        ``estimate``: Estimate ``benefit_cost_ratio`` (scale ``ratio``); ``benefit``:
        Estimate ``monetised_benefit`` (scale ``gbp``); ``valued``: £ per crime used for
        each type (target prices); ``excluded``: types left out and why (always Drugs);
        ``text``: a sentence.

    Notes
    -----
    The interval adds the types' lower bounds and their upper bounds, i.e. it treats the
    types' errors as perfectly correlated: wider, never narrower, than the truth under
    any positive correlation. Types left out make the benefit, and the ratio, a lower bound.
    """
    if programme_cost is None or not math.isfinite(programme_cost) or programme_cost <= 0:
        raise InputError(
            None, "programme cost must be a positive number", key="costs.programme_cost"
        )
    d = _as_deflator(deflator)
    valued: dict[str, float] = {}
    excluded: dict[str, str] = {}
    total = [0.0, 0.0, 0.0]
    has_interval, levels = True, set()
    for crime_type, prev in prevented_by_type.items():
        value, reason = _unit_value(crime_type, unit_costs)
        if value is None:
            excluded[crime_type] = reason
            continue
        p = _as_prevented(prev)
        levels.add(p.level)
        per_crime = uprate(value, d.deflator_from, d.deflator_to)
        valued[crime_type] = per_crime
        total[0] += p.estimate * per_crime
        b = p.bounds()
        if b is None:
            has_interval = False
        else:
            total[1] += b[0] * per_crime
            total[2] += b[1] * per_crime
    if len(levels) > 1:
        raise InputError(
            None, f"crimes-prevented intervals have different levels: {sorted(levels)}"
        )
    level = levels.pop() if levels else 0.95
    any_valued = bool(valued)
    lo, hi = (total[1], total[2]) if (has_interval and any_valued) else (None, None)
    method = (
        f"sum of crimes prevented x Heeks et al. (2018) unit cost uprated from {d.label_from} "
        f"by GDP deflator {d.deflator_to:g}/{d.deflator_from:g}; interval sums the types' bounds"
    )
    benefit = Estimate(
        name="monetised_benefit",
        estimate=total[0] if any_valued else None,
        ci_low=lo,
        ci_high=hi,
        scale="gbp",
        method=method,
        label="Monetised benefit of crimes prevented",
        level=level,
    )
    ratio = Estimate(
        name="benefit_cost_ratio",
        estimate=total[0] / programme_cost if any_valued else None,
        ci_low=lo / programme_cost if lo is not None else None,
        ci_high=hi / programme_cost if hi is not None else None,
        scale="ratio",
        method=method + "; divided by programme cost",
        label="Benefit-cost ratio",
        level=level,
    )
    return {
        "estimate": ratio,
        "benefit": benefit,
        "valued": valued,
        "excluded": excluded,
        "text": _bcr_text(ratio, benefit, excluded),
    }


def _bcr_text(ratio: Estimate, benefit: Estimate, excluded: Mapping[str, str]) -> str:
    if ratio.estimate is None or benefit.estimate is None:
        text = "No benefit could be put in money terms, so there is no benefit-cost ratio."
    elif ratio.estimate <= 0:
        text = (
            "On the central estimate no crimes were prevented, so there were no avoided costs "
            f"of crime to set against the spending (benefit-cost ratio {format_number(ratio.estimate)})."
        )
    else:
        text = (
            f"Each £1 spent returned about £{format_number(ratio.estimate)} in avoided costs of "
            f"crime (benefit about {format_gbp(benefit.estimate)}"
        )
        if ratio.ci_low is not None and ratio.ci_high is not None:
            text += (
                f"; {round(ratio.level * 100):d}% interval £{format_number(ratio.ci_low)} to "
                f"£{format_number(ratio.ci_high)} per £1"
            )
        text += ")."
    if excluded:
        text += " Not valued: " + "; ".join(f"{k} ({v})" for k, v in excluded.items()) + "."
    return text


def costs_payload(
    cost: Mapping[str, Any] | None = None, bcr: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON-ready ``results.costs`` mapping the text module and dashboards read."""
    out: dict[str, Any] = {"price_base": PRICE_BASE}
    if cost is not None:
        out["cost_per_crime_prevented"] = cost["estimate"].model_dump(mode="json")
        out["cost_per_crime_prevented_upper_unbounded"] = bool(cost["upper_unbounded"])
    if bcr is not None:
        out["benefit_cost_ratio"] = bcr["estimate"].model_dump(mode="json")
        out["monetised_benefit"] = bcr["benefit"].model_dump(mode="json")
        out["unit_costs_used_gbp"] = dict(bcr["valued"])
        out["excluded_from_benefits"] = dict(bcr["excluded"])
    return out
