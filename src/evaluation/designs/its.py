"""Interrupted time series: segmented regression on a count series (Lopez Bernal et al. 2017).

Model, for period ``t = 1..n`` with the intervention starting at ``t0``::

    g(E[y_t]) = b0 + b1 t + b2 post_t + b3 (t - t0) post_t
                + seasonality + interruptions + covariates (+ log offset)

``post_t = 1`` from ``t0`` on, so ``b2`` is the step at ``t0`` and ``b3`` the change of slope
after it. Count families (Poisson, quasi-Poisson, negative binomial) use the log link:
``exp(b2)`` is a rate ratio. The Gaussian family uses the identity link; with an offset it
models the rate ``y / offset * 1000`` (crimes per 1,000 of the offset, usually population),
so its coefficients are additive on that rate.

Controlled ITS (a ``comparison`` series given): the two series are stacked with a group
indicator ``group`` (1 = evaluated series) and its interactions with ``time``, ``post`` and
``time_since``; seasonality, interruptions and covariates are shared. The intervention
effects are the group interactions ``group:post`` and ``group:time_since``: the change in
the evaluated series over and above the change in the comparison series.

The counterfactual is the fitted model with the intervention terms set to zero; its
interval is for the mean (delta method on the linear predictor, ``exp(eta +/- z se)``).

Standard errors
---------------
``se="model"``: the GLM's own covariance. Poisson and negative binomial use scale 1;
quasi-Poisson is the Poisson GLM with the Pearson scale (``scale="X2"``: the covariance is
``phi (X'WX)^-1`` with ``phi = Pearson chi2 / df``); Gaussian uses the residual variance.

``se="hac"``: statsmodels' sandwich ``H^-1 S H^-1`` with a Newey-West (Bartlett) meat,
``cov_type="HAC"``, ``maxlags = hac_lags`` (default ``floor(4 (n/100)^(2/9))`` with ``n``
the number of fitted periods), no small-sample correction (as R's
``sandwich::NeweyWest(adjust = FALSE)``; no prewhitening). The HAC covariance is **not**
multiplied by the quasi-Poisson dispersion: the score and the Hessian each carry ``1/phi``,
so the sandwich is invariant to the scale, and its meat already estimates the actual
variance of the scores, overdispersion included; multiplying by ``phi`` would count the
overdispersion twice (R's ``sandwich`` package behaves the same way). Quasi-Poisson and
Poisson therefore share HAC standard errors; the tests check this and the agreement with a
direct ``smf.glm(...).fit(cov_type="HAC")``. For a controlled ITS the rows are two stacked
series, so the HAC is Driscoll-Kraay (``cov_type="hac-groupsum"``): scores are summed
within each period across the two series, then Newey-West across periods, which allows
for correlation between the series in the same period as well as over time.

Negative binomial: with ``negbin_alpha=None`` the NB2 dispersion ``alpha`` is the maximum
likelihood estimate from statsmodels' discrete ``NegativeBinomial`` on the same design; the
GLM is then fitted with that alpha held fixed (its uncertainty is not propagated).

Inference is on the normal scale (z), as in the published Sicily analysis.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal, NoReturn

import numpy as np
import pandas as pd
import statsmodels.base.covtype  # noqa: F401 - loaded by the first GLM fit; preloaded here
from statsmodels.discrete.discrete_model import NegativeBinomial as DiscreteNegBin
from statsmodels.genmod import families as sm_families
from statsmodels.genmod.generalized_linear_model import GLM

from evaluation.config import DEFAULT_SEED, MIN_PRE_PERIODS, Interruption
from evaluation.errors import InputError
from evaluation.inference.timeseries import (
    linear_combination,
    newey_west_lags,
    normal_p_value,
    prediction_se,
    residual_diagnostics,
    z_value,
)
from evaluation.results import Estimate, Series

Family = Literal["poisson", "quasipoisson", "negbin", "gaussian"]
FAMILIES: tuple[str, ...] = ("poisson", "quasipoisson", "negbin", "gaussian")

_FAMILY_TEXT = {
    "poisson": "Poisson GLM",
    "quasipoisson": "quasi-Poisson GLM",
    "negbin": "negative binomial GLM",
    "gaussian": "Gaussian GLM (least squares)",
}

#: A rate per this many units of the offset in the Gaussian model (crimes per 1,000).
RATE_PER = 1000.0


# --------------------------------------------------------------------------------------
# Specification
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItsSpec:
    """What to fit. Validated on construction; bad values raise :class:`InputError`.

    Parameters
    ----------
    family
        ``"quasipoisson"`` (default), ``"poisson"``, ``"negbin"`` or ``"gaussian"``.
    seasonality
        ``"none"``, ``"month"`` (one dummy per season position) or ``"fourier:K"`` (K
        sine/cosine pairs ``sin/cos(2 pi k s / season_length)``, ``s`` the season position,
        e.g. the calendar month, as ``tsModel::harmonic`` in R).
    season_length
        Periods per year: 12 monthly, 4 quarterly.
    slope_change
        Include ``b3`` (change of slope after the start).
    phase_in
        Periods from the start left out of the fit (a transition); still in the frame.
        The step ``b2`` is still measured at the start period.
    se
        ``"hac"`` (Newey-West; Driscoll-Kraay for a controlled ITS) or ``"model"``.
    hac_lags
        HAC truncation lag; ``None`` uses ``floor(4 (n/100)^(2/9))``.
    level
        Confidence level of intervals.
    interruptions
        Dated shocks (e.g. ``config.WELSH_COVID_LOCKDOWNS``) entered as covariates: the
        share of each period's days inside ``[start, end]``. Needs dated periods.
    negbin_alpha
        Fixed NB2 dispersion; ``None`` estimates it by maximum likelihood.
    """

    family: Family = "quasipoisson"
    seasonality: str = "fourier:2"
    season_length: int = 12
    slope_change: bool = True
    phase_in: int = 0
    se: Literal["hac", "model"] = "hac"
    hac_lags: int | None = None
    level: float = 0.95
    interruptions: tuple[Interruption, ...] = ()
    negbin_alpha: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "interruptions", tuple(self.interruptions))
        if self.family not in FAMILIES:
            _bad("its.family", f"family must be one of {', '.join(FAMILIES)}, not {self.family!r}")
        if not isinstance(self.season_length, int | np.integer) or self.season_length < 2:
            _bad(
                "its.season_length",
                f"season_length must be an integer >= 2, not {self.season_length!r}",
            )
        self.seasonal_terms  # noqa: B018  (parses and validates the seasonality string)
        if not isinstance(self.phase_in, int | np.integer) or self.phase_in < 0:
            _bad("its.phase_in", f"phase_in must be an integer >= 0, not {self.phase_in!r}")
        if self.se not in ("hac", "model"):
            _bad("its.se", f"se must be 'hac' or 'model', not {self.se!r}")
        if self.hac_lags is not None and (
            not isinstance(self.hac_lags, int | np.integer) or self.hac_lags < 0
        ):
            _bad("its.hac_lags", f"hac_lags must be an integer >= 0 or None, not {self.hac_lags!r}")
        if not 0.0 < float(self.level) < 1.0:
            _bad("its.level", f"level must be between 0 and 1, not {self.level!r}")
        if self.negbin_alpha is not None and not (
            math.isfinite(self.negbin_alpha) and self.negbin_alpha > 0
        ):
            _bad("its.negbin_alpha", f"negbin_alpha must be > 0 or None, not {self.negbin_alpha!r}")
        for intr in self.interruptions:
            if not isinstance(intr, Interruption) or intr.end < intr.start:
                _bad("its.interruptions", f"not a valid interruption (end before start?): {intr!r}")
        names = [intr.name for intr in self.interruptions]
        if len(set(names)) < len(names):
            _bad("its.interruptions", f"interruption names must differ: {names}")

    @property
    def seasonal_terms(self) -> tuple[str, int]:
        """The parsed seasonality: ``("none", 0)``, ``("month", 0)`` or ``("fourier", K)``."""
        text = str(self.seasonality).strip().lower()
        if text in ("none", "month"):
            return text, 0
        match = re.fullmatch(r"fourier:(\d+)", text)
        if not match:
            _bad(
                "its.seasonality",
                f"seasonality must be 'none', 'month' or 'fourier:K', not {self.seasonality!r}",
            )
        k = int(match.group(1))
        if not 1 <= k <= self.season_length // 2:
            _bad(
                "its.seasonality",
                f"fourier:K needs 1 <= K <= season_length/2 = {self.season_length // 2}, not {k}",
            )
        return "fourier", k

    @property
    def log_link(self) -> bool:
        """Whether the family is a count family with the log link."""
        return self.family != "gaussian"


def _bad(key: str, message: str) -> NoReturn:
    raise InputError(None, message, key=key)


# --------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Periods:
    """The validated period index of the evaluated series."""

    index: pd.Index
    dated: bool  # Timestamps (True) or integers
    step: int  # months between periods (dated) or integer step
    season: np.ndarray  # season position 1..season_length of each period

    @property
    def n(self) -> int:
        return len(self.index)

    @property
    def unit(self) -> str:
        if self.dated and self.step == 1:
            return "month"
        if self.dated and self.step == 3:
            return "quarter"
        if self.dated and self.step == 12:
            return "year"
        return "period"

    def bounds(self, i: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[start, end)`` of period ``i`` (dated periods only)."""
        start = self.index[i]
        return start, start + pd.DateOffset(months=self.step)

    def iso(self) -> list[str]:
        if self.dated:
            return [ts.date().isoformat() for ts in self.index]
        return [str(v) for v in self.index]


def _periods(y: pd.Series, season_length: int) -> _Periods:
    idx = y.index
    if isinstance(idx, pd.PeriodIndex):
        idx = idx.to_timestamp(how="start")
    if len(idx) == 0:
        _bad("outcome", "the outcome series is empty")
    if not idx.is_unique:
        _bad("outcome", "the outcome series has repeated periods")
    if not idx.is_monotonic_increasing:
        _bad("outcome", "the outcome series is not in time order")
    if isinstance(idx, pd.DatetimeIndex):
        if idx.tz is not None or (idx != idx.normalize()).any():
            _bad("outcome", "periods must be dates (period starts) without a time of day")
        if len(set(idx.day)) > 1:
            _bad("outcome", "periods must all start on the same day of the month")
        months = np.asarray(idx.year * 12 + idx.month - 1, dtype=int)
        steps = np.diff(months)
        step = int(steps[0]) if steps.size else 1
        if steps.size and step < 1:
            _bad("outcome", "dated periods must be months, quarters or years apart")
        if steps.size and (steps != step).any():
            _bad(
                "outcome",
                "periods are not equally spaced: a period with no crime must be a zero count, "
                "not a gap",
            )
        if step * season_length == 12:  # calendar season: month (monthly) or quarter
            season = (months // step) % season_length + 1
        else:
            season = np.arange(len(idx)) % season_length + 1
        return _Periods(pd.DatetimeIndex(idx), True, step, season)
    if pd.api.types.is_integer_dtype(idx):
        values = np.asarray(idx, dtype=int)
        steps = np.diff(values)
        step = int(steps[0]) if steps.size else 1
        if steps.size and (steps != step).any():
            _bad(
                "outcome",
                "periods are not equally spaced: a period with no crime must be a zero count, "
                "not a gap",
            )
        season = (values // step - 1) % season_length + 1
        return _Periods(pd.Index(values), False, step, season)
    _bad("outcome", "the outcome series must be indexed by period-start dates or integers")


def _locate_start(start: Any, periods: _Periods) -> int:
    """0-based position of the first post period: the period that contains ``start``."""
    key = "intervention.start"
    if periods.dated:
        if isinstance(start, int | np.integer) and not isinstance(start, bool):
            _bad(key, f"the series is dated, so the start must be a date, not {start!r}")
        if isinstance(start, pd.Period):
            start = start.to_timestamp(how="start")
        try:
            when = pd.Timestamp(start)
        except (TypeError, ValueError):
            _bad(key, f"not a date: {start!r}")
        first = periods.index[0]
        last_end = periods.bounds(periods.n - 1)[1]
        if when < first or when >= last_end:
            _bad(
                key,
                f"the start {when.date()} is outside the data "
                f"({first.date()} to {(last_end - pd.Timedelta(days=1)).date()})",
            )
        return int(np.searchsorted(periods.index, when, side="right") - 1)
    if not isinstance(start, int | np.integer) or isinstance(start, bool):
        _bad(key, f"the series has integer periods, so the start must be an integer, not {start!r}")
    values = np.asarray(periods.index)
    if start < values[0] or start >= values[-1] + periods.step:
        _bad(key, f"the start {start} is outside the data ({values[0]} to {values[-1]})")
    return int(np.searchsorted(values, start, side="right") - 1)


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _aligned(series: pd.Series | None, periods: _Periods, key: str) -> np.ndarray | None:
    """Values of ``series`` on the outcome's periods (extra periods ignored)."""
    if series is None:
        return None
    if not isinstance(series, pd.Series):
        _bad(key, f"{key} must be a pandas Series indexed like the outcome")
    s = series
    if isinstance(s.index, pd.PeriodIndex):
        s = s.set_axis(s.index.to_timestamp(how="start"))
    if not s.index.is_unique:
        _bad(key, f"{key} has repeated periods")
    try:
        values = pd.to_numeric(s.reindex(periods.index), errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        _bad(key, f"{key} must be numeric")
    missing = ~np.isfinite(values)
    if missing.any():
        first = periods.iso()[int(np.argmax(missing))]
        _bad(
            key, f"{key} is missing or not finite for {int(missing.sum())} periods (first {first})"
        )
    return values


def _check_counts(values: np.ndarray, key: str, count: bool) -> None:
    if count:
        if (values < 0).any():
            _bad(key, f"{key} has negative counts")
        if (np.abs(values - np.round(values)) > 1e-8).any():
            _bad(key, f"{key} has non-integer counts; a count model needs whole numbers")
    if not values.any():
        _bad(key, f"{key} is zero in every period: there is nothing to model")


def _check_offset(values: np.ndarray | None, key: str) -> None:
    if values is not None and (values <= 0).any():
        _bad(key, f"{key} must be positive in every period (it is an exposure, e.g. population)")


def _share_of_days(intr: Interruption, periods: _Periods) -> np.ndarray:
    """Share of each period's days inside ``[intr.start, intr.end]`` (both days included)."""
    lo = pd.Timestamp(intr.start)
    hi = pd.Timestamp(intr.end + timedelta(days=1))  # end is inclusive
    out = np.zeros(periods.n)
    for i in range(periods.n):
        a, b = periods.bounds(i)
        overlap = (min(hi, b) - max(lo, a)).days
        out[i] = max(overlap, 0) / (b - a).days
    return out


def _covariate_frame(covariates: pd.DataFrame | None, periods: _Periods) -> pd.DataFrame:
    if covariates is None:
        return pd.DataFrame(index=range(periods.n))
    if not isinstance(covariates, pd.DataFrame):
        _bad("covariates", "covariates must be a pandas DataFrame indexed like the outcome")
    cols = {str(name): _aligned(covariates[name], periods, "covariates") for name in covariates}
    if len(cols) < covariates.shape[1]:
        _bad("covariates", "covariate names must differ")
    return pd.DataFrame(cols)


# --------------------------------------------------------------------------------------
# Design
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Design:
    """Model matrices and vectors for every row (fitted or not); stacked when controlled."""

    periods: _Periods
    t0: int  # 0-based position of the first post period
    exog: pd.DataFrame  # all rows
    exog_cf: pd.DataFrame  # intervention terms set to zero
    endog: np.ndarray  # model-scale response: counts, or the rate for Gaussian + offset
    log_offset: np.ndarray | None  # log link with an offset only
    count_factor: np.ndarray  # model-scale mean * factor = expected count
    observed: np.ndarray  # counts as given
    in_fit: np.ndarray
    post: np.ndarray
    treated: np.ndarray  # rows of the evaluated series
    time_code: np.ndarray  # 0..T-1 over fitted periods (for Driscoll-Kraay)
    controlled: bool
    has_offset: bool
    interruptions_used: tuple[str, ...]
    interruptions_dropped: tuple[str, ...]


def _base_columns(periods: _Periods, t0: int, spec: ItsSpec, extra: pd.DataFrame) -> pd.DataFrame:
    """Columns of one series: trend, step, slope change, seasonality, extra covariates."""
    t = np.arange(1, periods.n + 1, dtype=float)
    post = (t >= t0 + 1).astype(float)
    cols: dict[str, np.ndarray] = {"const": np.ones(periods.n), "time": t, "post": post}
    if spec.slope_change:
        cols["time_since"] = (t - (t0 + 1)) * post
    kind, k = spec.seasonal_terms
    s = periods.season.astype(float)
    if kind == "month":
        for level in range(2, spec.season_length + 1):
            cols[f"season_{level}"] = (periods.season == level).astype(float)
    elif kind == "fourier":
        for j in range(1, k + 1):
            angle = 2.0 * np.pi * j * s / spec.season_length
            if 2 * j != spec.season_length:  # sin(pi s) is identically zero
                cols[f"sin{j}"] = np.sin(angle)
            cols[f"cos{j}"] = np.cos(angle)
    for name in extra.columns:
        if name in cols or name.startswith("group"):
            _bad(
                "its.interruptions" if name in _interruption_names(spec) else "covariates",
                f"the name {name!r} is already a model term",
            )
        cols[name] = extra[name].to_numpy()
    return pd.DataFrame(cols)


def _interruption_names(spec: ItsSpec) -> set[str]:
    """Names of the spec's interruptions."""
    return {intr.name for intr in spec.interruptions}


def _build_design(
    y: pd.Series,
    start: Any,
    spec: ItsSpec,
    offset: pd.Series | None,
    comparison: pd.Series | None,
    comparison_offset: pd.Series | None,
    covariates: pd.DataFrame | None,
) -> _Design:
    if not isinstance(y, pd.Series):
        _bad("outcome", "the outcome must be a pandas Series indexed by period")
    periods = _periods(y, spec.season_length)
    count = spec.log_link
    yv = _aligned(y, periods, "outcome")
    assert yv is not None
    _check_counts(yv, "outcome", count)

    t0 = _locate_start(start, periods)
    if t0 < MIN_PRE_PERIODS:
        _bad(
            "intervention.start",
            f"only {t0} periods before the start; an interrupted time series needs at least "
            f"{MIN_PRE_PERIODS}",
        )
    n_post_fit = periods.n - t0 - spec.phase_in
    need = 2 if spec.slope_change else 1
    if n_post_fit < need:
        _bad(
            "its.phase_in" if spec.phase_in else "intervention.start",
            f"{n_post_fit} post-intervention periods left to fit (after a phase-in of "
            f"{spec.phase_in}); at least {need} needed",
        )

    off = _aligned(offset, periods, "offset")
    _check_offset(off, "offset")
    cv = _aligned(comparison, periods, "comparison")
    coff = _aligned(comparison_offset, periods, "comparison_offset")
    if cv is None and coff is not None:
        _bad("comparison_offset", "comparison_offset given without a comparison series")
    if cv is not None:
        _check_counts(cv, "comparison", count)
        if (off is None) != (coff is None):
            _bad(
                "comparison_offset" if coff is None else "offset",
                "give an offset for both the evaluated and the comparison series, or neither",
            )
        _check_offset(coff, "comparison_offset")

    extra = _covariate_frame(covariates, periods)
    used, dropped = [], []
    if spec.interruptions and not periods.dated:
        _bad("its.interruptions", "interruptions need a series indexed by dates")
    fit_period = np.ones(periods.n, dtype=bool)
    fit_period[t0 : t0 + spec.phase_in] = False
    for intr in spec.interruptions:
        if intr.name in extra:
            _bad("its.interruptions", f"interruption name {intr.name!r} is also a covariate")
        share = _share_of_days(intr, periods)
        if not share[fit_period].any():  # outside the fitted data: nothing to estimate
            dropped.append(intr.name)
            continue
        extra[intr.name] = share
        used.append(intr.name)

    base = _base_columns(periods, t0, spec, extra)
    n = periods.n
    post = base["post"].to_numpy() > 0
    in_fit = fit_period.copy()
    factor = np.ones(n)
    if not count and off is not None:
        factor = off / RATE_PER

    if cv is None:
        exog = base
        endog = yv / factor
        observed = yv
        log_off = np.log(off) if (count and off is not None) else None
        treated = np.ones(n, dtype=bool)
        time_code = np.cumsum(in_fit) - 1
    else:
        g1 = _with_group(base, 1.0, spec)
        g0 = _with_group(base, 0.0, spec)
        exog = pd.concat([g1, g0], ignore_index=True)
        cfactor = np.ones(n) if (count or coff is None) else coff / RATE_PER
        factor = np.concatenate([factor, cfactor])
        observed = np.concatenate([yv, cv])
        endog = observed / factor
        log_off = None
        if count and off is not None and coff is not None:
            log_off = np.log(np.concatenate([off, coff]))
        post = np.concatenate([post, post])
        in_fit = np.concatenate([in_fit, in_fit])
        treated = np.concatenate([np.ones(n, dtype=bool), np.zeros(n, dtype=bool)])
        code = np.cumsum(fit_period) - 1
        time_code = np.concatenate([code, code])

    effect_terms = ["post", "time_since"] if spec.slope_change else ["post"]
    if cv is not None:
        effect_terms = [f"group:{t}" for t in effect_terms]
    exog_cf = exog.copy()
    exog_cf[effect_terms] = 0.0
    design = _Design(
        periods=periods,
        t0=t0,
        exog=exog,
        exog_cf=exog_cf,
        endog=endog,
        log_offset=log_off,
        count_factor=factor,
        observed=observed,
        in_fit=in_fit,
        post=post,
        treated=treated,
        time_code=time_code,
        controlled=cv is not None,
        has_offset=off is not None,
        interruptions_used=tuple(used),
        interruptions_dropped=tuple(dropped),
    )
    if count:
        for key, mask in (("outcome", treated), ("comparison", ~treated)):
            for label, part in (("before", ~post), ("after", post)):
                rows = mask & in_fit & part
                if rows.any() and not observed[rows].any():
                    _bad(
                        key,
                        f"{key} is zero in every fitted period {label} the start: the rate "
                        "ratio cannot be estimated (aggregate areas or crime types)",
                    )
    _check_rank(design)
    return design


def _with_group(base: pd.DataFrame, g: float, spec: ItsSpec) -> pd.DataFrame:
    """One block of the stacked design: shared terms plus the group interactions."""
    frame = base.copy()
    frame.insert(1, "group", g)
    frame.insert(2, "group:time", g * base["time"])
    frame.insert(3, "group:post", g * base["post"])
    if spec.slope_change:
        frame.insert(4, "group:time_since", g * base["time_since"])
    return frame


def _check_rank(design: _Design) -> None:
    x = design.exog.to_numpy()[design.in_fit]
    n, p = x.shape
    if n - p < 1:
        _bad("outcome", f"{n} fitted rows for {p} model terms: too few periods for this model")
    if np.linalg.matrix_rank(x) == p:
        return
    redundant, kept = [], np.empty((n, 0))
    for j, name in enumerate(design.exog.columns):
        trial = np.column_stack([kept, x[:, j]])
        if np.linalg.matrix_rank(trial) > kept.shape[1]:
            kept = trial
        else:
            redundant.append(name)
    first = redundant[0]
    if first in design.interruptions_used:
        key = "its.interruptions"
    elif first.startswith(("season_", "sin", "cos")):
        key = "its.seasonality"
    elif first in ("post", "time_since", "group:post", "group:time_since"):
        key = "intervention.start"
    else:
        key = "covariates"
    _bad(key, f"model terms {', '.join(redundant)} are collinear with earlier terms in the fit")


# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------


def _family(spec: ItsSpec, alpha: float | None) -> sm_families.Family:
    if spec.family in ("poisson", "quasipoisson"):
        return sm_families.Poisson()
    if spec.family == "negbin":
        return sm_families.NegativeBinomial(alpha=alpha)
    return sm_families.Gaussian()


#: below this the data show no overdispersion worth a Newton polish (alpha is then floored)
MIN_ALPHA = 1e-4


def _estimate_alpha(
    x: pd.DataFrame, y: np.ndarray, log_off: np.ndarray | None
) -> tuple[float, bool]:
    """NB2 alpha by maximum likelihood (statsmodels' discrete NegativeBinomial).

    BFGS from statsmodels' Poisson start values, then a Newton polish from there; the
    best finite fit wins (Newton alone can step to a negative alpha and return nan).
    """
    model = DiscreteNegBin(y, x, loglike_method="nb2", offset=log_off)
    best: tuple[float, float, bool] = (-math.inf, float("nan"), False)  # llf, alpha, converged
    start = None
    for method in ("bfgs", "newton"):
        if method == "newton" and best[1] < MIN_ALPHA:
            # no overdispersion: Newton's polygamma at 1/alpha ~ 1e8 can run for minutes
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = model.fit(method=method, start_params=start, maxiter=1000, disp=0)
            except (np.linalg.LinAlgError, ValueError):
                continue
        alpha, llf = float(np.asarray(res.params)[-1]), float(res.llf)
        if math.isfinite(alpha) and alpha > 0 and math.isfinite(llf) and llf > best[0]:
            best = (llf, alpha, bool(res.mle_retvals.get("converged", False)))
            start = np.asarray(res.params)
    _, alpha, converged = best
    if math.isfinite(alpha) and 0 < alpha < MIN_ALPHA:
        alpha = MIN_ALPHA  # effectively Poisson; keeps the GLM away from a degenerate scale
    if not (math.isfinite(alpha) and alpha > 0):
        raise InputError(
            None,
            "the negative binomial dispersion could not be estimated; set negbin_alpha or "
            "use quasipoisson",
            key="its.negbin_alpha",
        )
    return alpha, converged


def fit_its(
    y: pd.Series,
    start: pd.Timestamp | int,
    spec: ItsSpec,
    *,
    offset: pd.Series | None = None,
    comparison: pd.Series | None = None,
    comparison_offset: pd.Series | None = None,
    covariates: pd.DataFrame | None = None,
) -> ItsResults:
    """Fit a (controlled) interrupted time series.

    Parameters
    ----------
    y
        The evaluated series, indexed by period start (monthly or quarterly Timestamps, a
        PeriodIndex, or equally spaced integers). Counts for the count families.
    start
        The intervention start: the period containing it is the first post period.
    spec
        The model specification.
    offset
        Exposure of ``y`` (e.g. population), same index; enters as ``log(offset)`` with the
        log link, or turns a Gaussian outcome into the rate per 1,000.
    comparison, comparison_offset
        A comparison series (and its exposure) for a controlled ITS.
    covariates
        Extra period-level regressors (shared by both series in a controlled ITS).

    Returns
    -------
    ItsResults

    Raises
    ------
    InputError
        With ``source=None`` (the caller knows the file) and the key at fault.
    """
    design = _build_design(y, start, spec, offset, comparison, comparison_offset, covariates)
    rows = design.in_fit
    x = design.exog.loc[rows].reset_index(drop=True)
    endog = design.endog[rows]
    log_off = design.log_offset[rows] if design.log_offset is not None else None
    notes: list[str] = []
    warns: list[str] = []

    alpha, alpha_estimated = spec.negbin_alpha, False
    if spec.family == "negbin" and alpha is None:
        alpha, ok = _estimate_alpha(x, endog, log_off)
        alpha_estimated = True
        if not ok:
            warns.append("the negative binomial alpha estimate did not fully converge")

    n_periods_fit = int(design.time_code[rows].max()) + 1
    lags = None
    fit_kwargs: dict[str, Any] = {}
    if spec.family == "quasipoisson":
        fit_kwargs["scale"] = "X2"
    if spec.se == "hac":
        lags = spec.hac_lags if spec.hac_lags is not None else newey_west_lags(n_periods_fit)
        if lags >= n_periods_fit:
            _bad("its.hac_lags", f"{lags} HAC lags for {n_periods_fit} fitted periods: too many")
        notes.append(
            f"Standard errors are heteroscedasticity- and autocorrelation-robust "
            f"({'Driscoll-Kraay' if design.controlled else 'Newey-West'}, {lags} lags); the "
            "sandwich already allows for overdispersion, so it is not multiplied by the "
            "dispersion."
        )
        if design.controlled:
            fit_kwargs["cov_type"] = "hac-groupsum"
            fit_kwargs["cov_kwds"] = {
                "time": design.time_code[rows],
                "maxlags": lags,
                "use_correction": False,
            }
        else:
            fit_kwargs["cov_type"] = "HAC"
            fit_kwargs["cov_kwds"] = {"maxlags": lags, "use_correction": False}

    model = GLM(endog, x, family=_family(spec, alpha), offset=log_off)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(**fit_kwargs)
    if not getattr(res, "converged", True):
        warns.append("the GLM did not converge; treat the estimates with caution")

    if spec.family == "gaussian" and design.has_offset:
        notes.append(
            f"Gaussian model of the rate per {RATE_PER:,.0f} (count / offset x {RATE_PER:,.0f}); "
            "counts in the frame and the cumulative effect are converted back with the offset."
        )
    if design.interruptions_dropped:
        notes.append(
            "interruptions outside the fitted periods, not modelled: "
            + ", ".join(design.interruptions_dropped)
        )
    if spec.phase_in:
        notes.append(
            f"{spec.phase_in} transition period(s) from the start are left out of the fit; "
            "the cumulative effect covers the fitted post periods only."
        )
    return ItsResults(
        spec=spec,
        design=design,
        fit_result=res,
        negbin_alpha=alpha,
        alpha_estimated=alpha_estimated,
        hac_lags=lags,
        notes=tuple(notes),
        warnings=tuple(warns),
    )


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ItsResults:
    """A fitted ITS. Frozen; derived quantities are cached properties, returned as copies."""

    spec: ItsSpec
    design: _Design = field(repr=False)
    fit_result: Any = field(repr=False)  # statsmodels GLMResults
    negbin_alpha: float | None = None
    alpha_estimated: bool = False
    hac_lags: int | None = None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    # ---- coefficients -------------------------------------------------------------
    @cached_property
    def _params(self) -> pd.Series:
        return pd.Series(np.asarray(self.fit_result.params), index=self.design.exog.columns)

    @cached_property
    def _cov(self) -> pd.DataFrame:
        cols = self.design.exog.columns
        return pd.DataFrame(np.asarray(self.fit_result.cov_params()), index=cols, columns=cols)

    @property
    def params(self) -> pd.Series:
        """Coefficients on the link scale, named by model term."""
        return self._params.copy()

    @property
    def cov(self) -> pd.DataFrame:
        """The covariance used for every interval (HAC or model-based, per ``spec.se``)."""
        return self._cov.copy()

    @property
    def bse(self) -> pd.Series:
        """Standard errors: ``sqrt(diag(cov))``."""
        return pd.Series(np.sqrt(np.diag(self._cov.to_numpy())), index=self._cov.index)

    @cached_property
    def model_summary(self) -> str:
        """statsmodels' text summary of the GLM."""
        text = str(self.fit_result.summary().as_text())
        # statsmodels stamps the current date and time: blank them so the text is reproducible
        return re.sub(
            r"(?m)^((?:Date|Time):\s+)(.+?)(\s{2,})",
            lambda m: m.group(1) + " " * len(m.group(2)) + m.group(3),
            text,
        )

    @property
    def controlled(self) -> bool:
        """Whether a comparison series was used."""
        return self.design.controlled

    @property
    def dispersion(self) -> float:
        """Pearson chi2 / residual df."""
        res = self.fit_result
        return float(res.pearson_chi2 / res.df_resid)

    # ---- predictions --------------------------------------------------------------
    def _mean(self, exog: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Linear predictor and expected count for ``rows`` of a design matrix."""
        eta = exog[rows] @ self._params.to_numpy()
        if self.design.log_offset is not None:
            eta = eta + self.design.log_offset[rows]
        mean = np.exp(eta) if self.spec.log_link else eta
        return eta, mean * self.design.count_factor[rows]

    def _inverse(self, eta: np.ndarray, rows: np.ndarray) -> np.ndarray:
        mean = np.exp(eta) if self.spec.log_link else eta
        return mean * self.design.count_factor[rows]

    @cached_property
    def _frame(self) -> pd.DataFrame:
        d = self.design
        rows = np.flatnonzero(d.treated)
        x, x_cf = d.exog.to_numpy(), d.exog_cf.to_numpy()
        _, fitted = self._mean(x, rows)
        eta_cf, cf = self._mean(x_cf, rows)
        se = prediction_se(x_cf[rows], self._cov.to_numpy())
        z = z_value(self.spec.level)
        frame = pd.DataFrame(
            {
                "period": d.periods.index,
                "observed": d.observed[rows],
                "fitted": fitted,
                "counterfactual": cf,
                "cf_low": self._inverse(eta_cf - z * se, rows),
                "cf_high": self._inverse(eta_cf + z * se, rows),
                "post": d.post[rows],
                "in_fit": d.in_fit[rows],
            }
        )
        if d.controlled:
            crow = np.flatnonzero(~d.treated)
            frame["comparison_observed"] = d.observed[crow]
            frame["comparison_fitted"] = self._mean(x, crow)[1]
        return frame

    @property
    def frame(self) -> pd.DataFrame:
        """One row per period of the evaluated series, in counts.

        Columns: ``period, observed, fitted, counterfactual, cf_low, cf_high, post, in_fit``
        (plus ``comparison_observed, comparison_fitted`` when controlled). ``fitted`` and
        ``counterfactual`` are model means (equal before the start); ``cf_low/cf_high`` is
        the ``spec.level`` interval for the counterfactual *mean*. Phase-in periods
        (``post`` and not ``in_fit``) are predictions, not fitted.
        """
        return self._frame.copy()

    # ---- estimates ----------------------------------------------------------------
    def _weights(self, terms: dict[str, float]) -> np.ndarray:
        w = pd.Series(0.0, index=self._params.index)
        for name, value in terms.items():
            w[name] = value
        return w.to_numpy()

    @property
    def _se_text(self) -> str:
        if self.spec.se == "hac":
            kind = "Driscoll-Kraay HAC SE" if self.controlled else "Newey-West HAC SE"
            return f"{kind} ({self.hac_lags} lags)"
        if self.spec.family == "quasipoisson":
            return f"model-based SE (Pearson dispersion {self.dispersion:.3g})"
        return "model-based SE"

    @property
    def method(self) -> str:
        """Family and SE type in words, e.g. ``quasi-Poisson GLM, Newey-West HAC SE (3 lags)``."""
        fam = _FAMILY_TEXT[self.spec.family]
        if self.spec.family == "negbin":
            how = "estimated" if self.alpha_estimated else "fixed"
            fam += f" (alpha {self.negbin_alpha:.3g}, {how})"
        if self.spec.family == "gaussian" and self.design.has_offset:
            fam += f" on the rate per {RATE_PER:,.0f}"
        prefix = "controlled ITS, " if self.controlled else ""
        return f"{prefix}{fam}, {self._se_text}"

    def _coefficient_estimate(
        self, name: str, terms: dict[str, float], scale: str, label: str, z: float, level: float
    ) -> Estimate:
        b, se = linear_combination(self._weights(terms), self._params, self._cov)
        est, lo, hi = b, b - z * se, b + z * se
        if self.spec.log_link:
            est, lo, hi = math.exp(est), math.exp(lo), math.exp(hi)
        return Estimate(
            name=name,
            estimate=est,
            se=se,
            ci_low=lo,
            ci_high=hi,
            p_value=normal_p_value(b, se),
            scale=scale,  # type: ignore[arg-type]
            method=self.method,
            label=label,
            level=level,
        )

    def cumulative_effect(self) -> tuple[float, float, np.ndarray]:
        """Sum over fitted post periods of (fitted - counterfactual), in counts.

        Returns
        -------
        tuple
            ``(effect, se, gradient)``; ``se`` by the delta method,
            ``sqrt(g' V g)`` with ``g = sum_t c_t (mu_t x_t - mu_cf_t x_cf_t)`` under the log
            link (``c_t (x_t - x_cf_t)`` under the identity link), ``c_t`` the count factor.
        """
        d = self.design
        rows = np.flatnonzero(d.treated & d.post & d.in_fit)
        all_x, all_cf = d.exog.to_numpy(), d.exog_cf.to_numpy()
        _, mu = self._mean(all_x, rows)
        _, mu_cf = self._mean(all_cf, rows)
        x, x_cf = all_x[rows], all_cf[rows]
        # d(sum)/d(beta): mu x - mu_cf x_cf under the log link, c (x - x_cf) under identity
        grad = mu @ x - mu_cf @ x_cf if self.spec.log_link else d.count_factor[rows] @ (x - x_cf)
        effect = float(np.sum(mu - mu_cf))
        var = float(grad @ self._cov.to_numpy() @ grad)
        return effect, math.sqrt(max(var, 0.0)), grad

    def cumulative_effect_simulated(
        self, *, n_draws: int = 10_000, seed: int = DEFAULT_SEED, level: float | None = None
    ) -> tuple[float, float]:
        """Interval for the cumulative effect from draws of ``N(params, cov)`` (quantiles).

        A check on the symmetric delta-method interval: with noisy series (log-scale SEs
        around 0.1) the sampling distribution of a sum of exponentials is skewed and the two
        differ by a few tenths of an SE.
        """
        level = self.spec.level if level is None else float(level)
        d = self.design
        rows = np.flatnonzero(d.treated & d.post & d.in_fit)
        x, x_cf = d.exog.to_numpy()[rows], d.exog_cf.to_numpy()[rows]
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(self._params.to_numpy(), self._cov.to_numpy(), n_draws)
        eta, eta_cf = draws @ x.T, draws @ x_cf.T
        if d.log_offset is not None:
            eta, eta_cf = eta + d.log_offset[rows], eta_cf + d.log_offset[rows]
        if self.spec.log_link:
            eta, eta_cf = np.exp(eta), np.exp(eta_cf)
        effect = (eta - eta_cf) @ d.count_factor[rows]
        lo, hi = np.quantile(effect, [0.5 - level / 2, 0.5 + level / 2])
        return float(lo), float(hi)

    def estimates(self, level: float | None = None) -> list[Estimate]:
        """``pre_trend``, ``level_change``, ``slope_change`` (if modelled), ``cumulative_effect``."""
        level = self.spec.level if level is None else float(level)
        z = z_value(level)
        unit = self.design.periods.unit
        log = self.spec.log_link
        g = "group:" if self.controlled else ""
        vs = " relative to the comparison series" if self.controlled else ""
        additive = "rate" if self.design.has_offset else "count"
        per = f" per {RATE_PER:,.0f}" if (not log and self.design.has_offset) else ""

        trend_terms = {"time": 1.0, "group:time": 1.0} if self.controlled else {"time": 1.0}
        out = [
            self._coefficient_estimate(
                "pre_trend",
                trend_terms,
                "rate_ratio_per_period" if log else "count_per_period",
                f"Trend per {unit} before the start"
                + (" (ratio)" if log else f" (crimes{per} per {unit})"),
                z,
                level,
            ),
            self._coefficient_estimate(
                "level_change",
                {f"{g}post": 1.0},
                "rate_ratio" if log else additive,
                "Immediate change in level at the start"
                + (" (ratio to the counterfactual)" if log else f" (crimes{per})")
                + vs,
                z,
                level,
            ),
        ]
        if self.spec.slope_change:
            out.append(
                self._coefficient_estimate(
                    "slope_change",
                    {f"{g}time_since": 1.0},
                    "rate_ratio_per_period" if log else "count_per_period",
                    f"Change in the trend per {unit} after the start"
                    + (" (ratio)" if log else f" (crimes{per} per {unit})")
                    + vs,
                    z,
                    level,
                )
            )
        effect, se, _ = self.cumulative_effect()
        n_post = int((self.design.treated & self.design.post & self.design.in_fit).sum())
        out.append(
            Estimate(
                name="cumulative_effect",
                estimate=effect,
                se=se,
                ci_low=effect - z * se,
                ci_high=effect + z * se,
                p_value=normal_p_value(effect, se),
                scale="count",
                method=f"{self.method}, delta-method interval",
                label=(
                    f"Crimes above (+) or below (-) the counterfactual over {n_post} "
                    f"post-start {unit}s (model fit minus counterfactual)"
                ),
                level=level,
            )
        )
        return out

    # ---- diagnostics --------------------------------------------------------------
    def diagnostics(self) -> dict[str, Any]:
        """Fit and autocorrelation checks, JSON-ready (``None`` where undefined).

        Residual checks (Ljung-Box at lags 6 and 12, Durbin-Watson, ACF lags 1-12) use the
        Pearson residuals of the evaluated series over the whole fit (pre and post), in time
        order; for a controlled ITS the comparison series' are under ``comparison_residuals``.
        """
        d, res, spec = self.design, self.fit_result, self.spec
        fit_rows = d.in_fit
        pearson = np.asarray(res.resid_pearson)
        treated_fit = d.treated[fit_rows]
        n_pre = d.t0
        aic = None
        if spec.family != "quasipoisson":
            aic = float(res.aic) + (2.0 if self.alpha_estimated else 0.0)
        out: dict[str, Any] = {
            "family": spec.family,
            "se": spec.se,
            "method": self.method,
            "frequency": d.periods.unit,
            "n": int(fit_rows.sum()),
            "n_periods": d.periods.n,
            "pre_periods": n_pre,
            "post_periods": d.periods.n - n_pre,
            "post_periods_fitted": int((d.treated & d.post & d.in_fit).sum()),
            "phase_in": spec.phase_in,
            "dispersion": _finite(self.dispersion),
            "aic": _finite(aic) if aic is not None else None,
            "hac_lags": self.hac_lags,
            "negbin_alpha": self.negbin_alpha,
            "negbin_alpha_estimated": self.alpha_estimated,
            "converged": bool(getattr(res, "converged", True)),
            "residuals": "Pearson, whole fit",
            **residual_diagnostics(pearson[treated_fit]),
            "interruptions_used": list(d.interruptions_used),
            "interruptions_dropped": list(d.interruptions_dropped),
            "observed_minus_counterfactual": self._observed_minus_counterfactual(),
            "cumulative_effect_simulated_interval": list(self.cumulative_effect_simulated()),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }
        if self.controlled:
            out["comparison_residuals"] = residual_diagnostics(pearson[~treated_fit])
            z = z_value(spec.level)
            est, se = linear_combination(
                self._weights({"group:time": 1.0}), self._params, self._cov
            )
            conv = math.exp if spec.log_link else float
            out["pre_trend_difference"] = {
                "estimate": conv(est),
                "ci_low": conv(est - z * se),
                "ci_high": conv(est + z * se),
                "p_value": normal_p_value(est, se),
                "scale": "rate_ratio_per_period" if spec.log_link else "count_per_period",
            }
        return out

    def _observed_minus_counterfactual(self) -> float:
        f = self._frame
        rows = f["post"] & f["in_fit"]
        return float((f.loc[rows, "observed"] - f.loc[rows, "counterfactual"]).sum())

    def to_series(self, label: str = "", unit: str | None = None) -> Series:
        """The frame as a ``results.Series`` for ``results.json``."""
        f = self._frame
        unit = unit or f"crimes per {self.design.periods.unit}"

        def col(name: str) -> list[float | None]:
            return [_finite(v) for v in f[name].to_numpy(dtype=float)]

        return Series(
            periods=self.design.periods.iso(),
            observed=col("observed"),
            fitted=col("fitted"),
            counterfactual=col("counterfactual"),
            counterfactual_low=col("cf_low"),
            counterfactual_high=col("cf_high"),
            comparison=col("comparison_observed") if self.controlled else None,
            label=label,
            unit=unit,
        )


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


__all__ = ["FAMILIES", "ItsResults", "ItsSpec", "fit_its"]
