"""Spatial displacement and diffusion of benefits around a treated area.

Notation (Bowers & Johnson 2003): R treated (response) area, D buffer (displacement) area,
C control area; ``b`` before and ``a`` after the start.

* Weighted displacement quotient
  ``WDQ = (Da/Ca - Db/Cb) / (Ra/Ca - Rb/Cb)``, meaningful only when the denominator (the
  "success measure") is negative, i.e. crime in R fell relative to C. WDQ > 0: diffusion of
  benefits; 0 to -1: some displacement, but a net benefit; < -1: displacement outweighs the
  direct effect.
* Total net effect ``TNE = [Rb(Ca/Cb) - Ra] + [Db(Ca/Cb) - Da]``: crimes prevented in R
  and D together after allowing for the change in C (positive = fewer crimes).
* Weighted displacement difference (Wheeler & Ratcliffe 2018, *Crime Science* 7:11):
  ``WDD = (T1 - T0) - (Ct1 - Ct0) + (D1 - D0) - (Cd1 - Cd0)`` with a control Ct for the
  treated area and a control Cd for the displacement area, and ``Var = T0 + T1 + Ct0 + Ct1
  + D0 + D1 + Cd0 + Cd1`` (each count treated as Poisson, so its variance is itself), tested
  with ``z = WDD / sqrt(Var)``. Negative WDD = fewer crimes. Unequal pre and post lengths
  divide each count by its number of periods and its variance by the square
  (as in Wheeler's ``ptools::wdd`` ``time_weights``).

  With a *common* control C used for both areas (``common_control=True``) the statistic is
  ``(T1 - T0) + (D1 - D0) - 2 (C1 - C0)``; C then enters with coefficient 2, so its counts
  add ``4 (C0 + C1)`` to the variance. That extension is derived here from the same Poisson
  argument, not taken from the paper, and assumes C is comparable to each area in size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evaluation.config import DEFAULT_LEVEL
from evaluation.errors import InputError
from evaluation.inference import distributions as dist
from evaluation.report.text import format_count, format_interval, format_number, format_p
from evaluation.results import Estimate

_SOURCE = "displacement"


@dataclass(frozen=True)
class DisplacementResult:
    """An estimate with the sentence that explains it and the pieces behind it."""

    estimate: Estimate
    interpretation: str
    details: dict[str, Any]


def _counts(**kwargs: float) -> dict[str, float]:
    out = {}
    for name, v in kwargs.items():
        if v is None or not math.isfinite(float(v)) or float(v) < 0:
            raise InputError(_SOURCE, f"{name} must be a non-negative count, got {v!r}")
        out[name] = float(v)
    return out


def _pair(name: str, pair: tuple[float, float] | None) -> tuple[float, float]:
    if pair is None:
        return 0.0, 0.0
    if len(pair) != 2:
        raise InputError(_SOURCE, f"{name} must be a (before, after) pair")
    c = _counts(**{f"{name} before": pair[0], f"{name} after": pair[1]})
    return c[f"{name} before"], c[f"{name} after"]


# --------------------------------------------------------------------------------------
# Bowers & Johnson (2003)
# --------------------------------------------------------------------------------------


def wdq(rb: float, ra: float, db: float, da: float, cb: float, ca: float) -> DisplacementResult:
    """Weighted displacement quotient (Bowers & Johnson 2003).

    Parameters
    ----------
    rb, ra, db, da, cb, ca
        Counts before (b) and after (a) in the treated (R), buffer (D) and control (C) areas.

    Returns
    -------
    DisplacementResult
        Estimate ``wdq`` (scale ``ratio``; None when the quotient is not meaningful) and
        its interpretation; ``details`` hold the success and buffer measures.

    Raises
    ------
    InputError
        On negative counts or a control area with no crime before or after.
    """
    c = _counts(rb=rb, ra=ra, db=db, da=da, cb=cb, ca=ca)
    if c["cb"] == 0 or c["ca"] == 0:
        raise InputError(_SOURCE, "the control area needs crimes before and after (Cb, Ca > 0)")
    success = c["ra"] / c["ca"] - c["rb"] / c["cb"]
    buffer = c["da"] / c["ca"] - c["db"] / c["cb"]
    details = {"success_measure": success, "buffer_measure": buffer}
    if success >= 0:
        text = (
            "The weighted displacement quotient is not meaningful here: crime in the treated "
            "area did not fall relative to the control area (Ra/Ca - Rb/Cb = "
            f"{format_number(success)}, not below zero), so there is no benefit whose "
            "displacement could be measured."
        )
        value = None
    else:
        value = buffer / success
        text = _wdq_words(value)
    est = Estimate(
        name="wdq",
        estimate=value,
        scale="ratio",
        method="Bowers & Johnson (2003) weighted displacement quotient",
        label="Weighted displacement quotient",
    )
    return DisplacementResult(est, text, details)


def _wdq_words(value: float) -> str:
    shown = format_number(value)
    if value > 0:
        return (
            f"WDQ = {shown}: a diffusion of benefits; crime in the surrounding area also fell "
            "relative to the control area."
        )
    if value == 0:
        return f"WDQ = {shown}: no sign of displacement or diffusion of benefits."
    if value >= -1:
        return (
            f"WDQ = {shown}: some crime appears to have moved to the surrounding area, but "
            "less than was prevented in the treated area, so there is still a net benefit."
        )
    return (
        f"WDQ = {shown}: the rise in the surrounding area outweighs the fall in the treated "
        "area; displacement cancels the benefit."
    )


def total_net_effect(
    rb: float, ra: float, db: float, da: float, cb: float, ca: float
) -> DisplacementResult:
    """Total net effect (Bowers & Johnson 2003): net crimes prevented in R and D.

    ``TNE = [Rb(Ca/Cb) - Ra] + [Db(Ca/Cb) - Da]``; positive = fewer crimes than the control
    area's change implies.

    Returns
    -------
    DisplacementResult
        Estimate ``total_net_effect`` (scale ``count``); ``details`` hold the treated and
        buffer parts.
    """
    c = _counts(rb=rb, ra=ra, db=db, da=da, cb=cb, ca=ca)
    if c["cb"] == 0:
        raise InputError(_SOURCE, "the control area needs crimes before the start (Cb > 0)")
    growth = c["ca"] / c["cb"]
    treated = c["rb"] * growth - c["ra"]
    buffer = c["db"] * growth - c["da"]
    value = treated + buffer
    est = Estimate(
        name="total_net_effect",
        estimate=value,
        scale="count",
        method="Bowers & Johnson (2003) total net effect; positive = crimes prevented",
        label="Net crimes prevented in treated and buffer areas (positive = fewer crimes)",
    )
    if value > 0:
        text = f"Net of any displacement, about {format_count(value)} fewer crimes"
    elif value < 0:
        text = f"Net of any displacement, about {format_count(value)} more crimes"
    else:
        text = "Net of any displacement, no change in crimes"
    text += (
        " in the treated and surrounding areas together than the control area's trend implies "
        "(no interval: this measure has no standard error; see the WDD)."
    )
    return DisplacementResult(est, text, {"treated_part": treated, "buffer_part": buffer})


# --------------------------------------------------------------------------------------
# Wheeler & Ratcliffe (2018)
# --------------------------------------------------------------------------------------


def wdd(
    treated: tuple[float, float],
    control: tuple[float, float],
    displacement: tuple[float, float] | None = None,
    displacement_control: tuple[float, float] | None = None,
    *,
    common_control: bool = False,
    periods: tuple[float, float] = (1.0, 1.0),
    level: float = DEFAULT_LEVEL,
) -> DisplacementResult:
    """Weighted displacement difference test (Wheeler & Ratcliffe 2018).

    Parameters
    ----------
    treated, control
        ``(before, after)`` counts in the treated area and its control area.
    displacement, displacement_control
        ``(before, after)`` counts in the displacement (buffer) area and its own control
        area. Leave ``displacement`` None for the local test only.
    common_control
        Compare the displacement area with ``control`` too (then leave
        ``displacement_control`` None); see the module notes for the variance.
    periods
        Number of periods (e.g. months) before and after; counts become per-period rates.
    level
        Confidence level of the interval.

    Returns
    -------
    DisplacementResult
        Estimate ``wdd`` (scale ``count``; negative = fewer crimes) with Poisson SE,
        interval and two-sided z-test p-value; ``details`` hold the local and displacement
        parts with their SEs and z.

    Raises
    ------
    InputError
        On negative counts, non-positive periods, or inconsistent control choices.
    """
    t0, t1 = _pair("treated", treated)
    c0, c1 = _pair("control", control)
    w0, w1 = _periods(periods)
    if common_control and displacement_control is not None:
        raise InputError(
            _SOURCE, "common_control uses the treated area's control; give no displacement_control"
        )
    if displacement is None and (displacement_control is not None or common_control):
        raise InputError(_SOURCE, "a displacement control needs displacement-area counts")
    if displacement is not None and displacement_control is None and not common_control:
        raise InputError(_SOURCE, "give displacement_control or set common_control=True")

    local = (t1 / w1 - t0 / w0) - (c1 / w1 - c0 / w0)
    var_local = t1 / w1**2 + t0 / w0**2 + c1 / w1**2 + c0 / w0**2
    disp = var_disp = cov = 0.0
    if displacement is not None:
        d0, d1 = _pair("displacement", displacement)
        e0, e1 = (c0, c1) if common_control else _pair("displacement_control", displacement_control)
        disp = (d1 / w1 - d0 / w0) - (e1 / w1 - e0 / w0)
        var_disp = d1 / w1**2 + d0 / w0**2 + e1 / w1**2 + e0 / w0**2
        if common_control:
            # Both parts subtract the same change in C: Cov(local, disp) = Var(change in C),
            # so C's counts enter the total variance four times (coefficient 2, squared).
            cov = c1 / w1**2 + c0 / w0**2
    total, var_total = local + disp, var_local + var_disp + 2 * cov
    se = math.sqrt(var_total)
    z = total / se if se > 0 else None
    p = 2 * dist.norm_sf(abs(z)) if z is not None else None
    crit = dist.norm_ppf(0.5 + level / 2)
    which = "common control" if common_control else "separate controls"
    est = Estimate(
        name="wdd",
        estimate=total,
        se=se,
        ci_low=total - crit * se,
        ci_high=total + crit * se,
        p_value=p,
        scale="count",
        method=(
            "Wheeler & Ratcliffe (2018) weighted displacement difference, Poisson variance "
            f"(sum of counts), z-test; {which}"
            + ("" if (w0, w1) == (1.0, 1.0) else f"; per period ({w0:g} before, {w1:g} after)")
        ),
        label="Change in crimes relative to control, treated plus displacement area "
        "(negative = fewer crimes)",
        level=level,
    )
    details = {
        "local": local,
        "local_se": math.sqrt(var_local),
        "displacement": disp if displacement is not None else None,
        "displacement_se": math.sqrt(var_disp) if displacement is not None else None,
        "z": z,
    }
    return DisplacementResult(est, _wdd_words(est, displacement is not None), details)


def _periods(periods: tuple[float, float]) -> tuple[float, float]:
    if len(periods) != 2 or any(not math.isfinite(w) or w <= 0 for w in periods):
        raise InputError(_SOURCE, f"periods must be two positive numbers, got {periods!r}")
    return float(periods[0]), float(periods[1])


def _wdd_words(est: Estimate, with_displacement: bool) -> str:
    where = (
        "the treated and displacement areas together" if with_displacement else "the treated area"
    )
    x = est.estimate if est.estimate is not None else 0.0
    if x < 0:
        change = f"about {format_count(x)} fewer crimes"
    elif x > 0:
        change = f"about {format_count(x)} more crimes"
    else:
        change = "no change in crimes"
    interval = format_interval(est)
    if est.p_value is None or est.ci_low is None or est.ci_high is None:
        verdict = "no test is possible with no crimes at all"
    elif est.ci_low <= 0 <= est.ci_high:
        verdict = f"this could be chance ({format_p(est.p_value)})"
    else:
        verdict = f"this is unlikely to be chance alone ({format_p(est.p_value)})"
    return f"WDD: {change} in {where} than the control trend implies ({interval}); {verdict}."
