"""Staggered-adoption workflow: Callaway & Sant'Anna ATT(g,t) for a roll-out area by area.

With few treated areas the analytical (cluster-robust) standard errors are too small, so
the headline interval comes from randomisation inference: the roll-out's start dates are
reassigned at random among all areas, and the interval inverts a constant-effect null.
Because the unconditional estimator is linear in the outcome for a given assignment, the
inversion needs only two estimates per placebo assignment.

Each placebo estimate comes from :func:`~evaluation.designs.staggered.simple_att`: one pass
over the outcome matrix, built once (a 30-ward, 8-year monthly roll-out: 999 placebos in
under a second). For national panels, with ``EVALUATION_SCHEDULER`` set (see
:mod:`evaluation.distributed`), they run on the Dask cluster in chunks of
:data:`PLACEBO_CHUNK`. The reassignments are drawn here first, in the same order as
always, so the interval is the same wherever the estimates ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evaluation import config, distributed
from evaluation.designs.staggered import CallawaySantAnna, StaggeredResults, simple_att
from evaluation.errors import InputError
from evaluation.inference.inversion import inversion_bound
from evaluation.params import StaggeredParams
from evaluation.results import Estimate, EvaluationResults, Outcome, Periods, Series
from evaluation.workflows import common
from evaluation.workflows.common import AreaCounts, RunContext

#: placebo assignments for randomisation inference (each costs two estimator fits)
MAX_PLACEBOS = 999
#: treated clusters below which the analytical interval is not the headline
FEW_CLUSTERS = 10
#: placebo reassignments per chunk of work (a cluster task)
PLACEBO_CHUNK = 25
#: placebo reassignments x panel cells from which the estimates go to a Dask cluster when
#: one is set: about 5 s of work here (100 ns a cell), e.g. 12 placebos of 35,000 x 120
DISTRIBUTE_MIN_CELLS = 50_000_000


@dataclass(frozen=True)
class StaggeredData:
    """The checked panel and the roll-out."""

    counts: AreaCounts
    panel: pd.DataFrame  # unit, period, outcome, first_treat
    starts: dict[str, pd.Timestamp]


def prepare(ctx: RunContext) -> StaggeredData:
    """Load counts and check the roll-out's areas and dates."""
    params = ctx.params
    assert isinstance(params, StaggeredParams)
    if params.model.family != "gaussian":
        raise InputError(
            ctx.params_path,
            "staggered_did estimates effects in counts: use family gaussian",
            key="model.family",
        )
    starts_raw = params.intervention.starts or {}
    if not starts_raw:
        raise InputError(ctx.params_path, "give each area's start month", key="intervention.starts")
    counts = common.load_outcome(ctx)
    common.check_areas(ctx, counts, list(starts_raw), "intervention.starts")
    periods = pd.Index(sorted(counts.frame["period"].unique()))
    starts = {a: pd.Timestamp(s) for a, s in starts_raw.items()}
    for area, start in starts.items():
        common.check_start(ctx, periods, start, key=f"intervention.starts.{area}")
        if int((periods < start).sum()) < config.MIN_PRE_PERIODS:
            raise InputError(
                ctx.params_path,
                f"fewer than {config.MIN_PRE_PERIODS} periods before {area}'s start",
                key=f"intervention.starts.{area}",
            )
    frame = counts.frame
    panel = pd.DataFrame(
        {
            "unit": frame["area"].to_numpy(),
            "period": frame["period"].to_numpy(),
            "outcome": frame["count"].to_numpy(float),
        }
    )
    panel["first_treat"] = pd.to_datetime(panel["unit"].map(starts))
    if panel["first_treat"].isna().all():
        raise InputError(ctx.params_path, "no area is treated", key="intervention.starts")
    return StaggeredData(counts, panel, starts)


def _estimator(params: StaggeredParams) -> CallawaySantAnna:
    control = "never" if params.model.control_group == "never_treated" else "not_yet"
    return CallawaySantAnna(
        first_treat="first_treat", control_group=control, level=params.model.level
    )


def randomization_interval(
    panel: pd.DataFrame, estimator: CallawaySantAnna, draws: int, seed: int, level: float
) -> dict[str, Any]:
    """Randomisation inference for the simple ATT over reassigned start dates.

    Under the sharp null "the effect is d in every treated area-month", outcomes without
    the effect are ``y - d D``; for a placebo assignment ``pi`` the estimate is
    ``a_pi - d b_pi`` with ``a_pi = ATT(y; pi)`` and ``b_pi = ATT(D; pi)``, because the
    estimator is linear in the outcome. The p-value of ``d`` is the share of placebo
    statistics at least as large in absolute value as the actual one; the interval is the
    set of ``d`` not rejected at ``1 - level``.
    """
    rng = np.random.default_rng(seed)
    units = panel["unit"].drop_duplicates().to_numpy()
    D = (panel["period"] >= panel["first_treat"]).to_numpy(float)  # NaT compares False
    actual = estimator.fit(panel).simple.estimate
    b_actual = estimator.fit(panel.assign(outcome=D)).simple.estimate
    Y, gpos, labels = estimator.arrays(panel)
    YD, _, _ = estimator.arrays(panel.assign(outcome=D))
    rows = pd.Index(labels).get_indexer(units)  # row of Y for each unit, in ``units`` order
    # every reassignment drawn first, in order: the same draws wherever the fits run.
    # Permuting the start positions permutes the start dates (same length, same draws).
    reassigned = [rng.permutation(gpos[rows]) for _ in range(draws)]
    chunks = [reassigned[lo:hi] for lo, hi in distributed.spans(draws, PLACEBO_CHUNK)]
    done = distributed.map_chunks(
        _placebo_fits,
        chunks,
        _PlaceboJob(Y, YD, rows, estimator.control_group),
        name="staggered-randomization",
        distribute=draws * Y.size >= DISTRIBUTE_MIN_CELLS,
    )
    pairs = [pair for fits in done for pair in fits if pair is not None]
    a_arr = np.asarray([x for x, _ in pairs])
    b_arr = np.asarray([y for _, y in pairs])

    def p_value(d: float) -> float:
        stat = abs(actual - d * b_actual)
        return float((1 + np.sum(np.abs(a_arr - d * b_arr) >= stat - 1e-12)) / (1 + len(a_arr)))

    alpha = 1 - level
    spread = float(np.std(a_arr)) or 1.0
    return {
        "p_value": p_value(0.0),
        "ci_low": inversion_bound(p_value, actual, spread, alpha, -1),
        "ci_high": inversion_bound(p_value, actual, spread, alpha, +1),
        "draws": len(a_arr),
    }


@dataclass(frozen=True)
class _PlaceboJob:
    """What every chunk of placebo fits needs (sent once to a cluster)."""

    Y: np.ndarray  # outcomes, units x periods
    YD: np.ndarray  # the actual treatment indicator, units x periods
    rows: np.ndarray  # the row of Y of each reassigned unit
    control_group: str


def _placebo_fits(
    job: _PlaceboJob, reassigned: list[np.ndarray]
) -> list[tuple[float, float] | None]:
    """``(ATT(y; pi), ATT(D; pi))`` for each reassignment ``pi`` of the start positions, or
    None for an assignment with no estimable cell (not a valid placebo)."""
    out: list[tuple[float, float] | None] = []
    gpos = np.empty(job.Y.shape[0], dtype=np.int64)
    for starts in reassigned:
        gpos[job.rows] = starts
        a = simple_att(job.Y, gpos, job.control_group)
        b = simple_att(job.YD, gpos, job.control_group)
        out.append(None if a is None or b is None else (a, b))
    return out


def _series(data: StaggeredData, res: StaggeredResults, unit: str, label: str) -> Series:
    """Treated areas' monthly total; counterfactual = observed minus the simple ATT in
    each treated area-month (a picture of the headline, not a separate model)."""
    p = data.panel
    treated = p[p["first_treat"].notna()]
    obs = treated.groupby("period")["outcome"].sum()
    n_on = (
        treated.assign(on=treated["period"] >= treated["first_treat"]).groupby("period")["on"].sum()
    )
    never = p[p["first_treat"].isna()].groupby("period")["outcome"].mean()
    cf = obs - res.simple.estimate * n_on
    cf[n_on == 0] = np.nan

    def col(s: pd.Series) -> list[float | None]:
        return [None if pd.isna(v) else float(v) for v in s]

    n_treated = treated["unit"].nunique()
    return Series(
        periods=[common.period_label(x) for x in obs.index],
        observed=col(obs),
        counterfactual=col(cf),
        comparison=col(never * n_treated),
        label=label,
        unit=unit,
    )


def run(ctx: RunContext) -> EvaluationResults:
    """Fit ATT(g,t), aggregate, and put randomisation inference on the headline."""
    params = ctx.params
    assert isinstance(params, StaggeredParams)
    data = prepare(ctx)
    estimator = _estimator(params)
    try:
        res = estimator.fit(data.panel)
    except InputError as err:
        raise InputError(ctx.params_path, err.message, key="intervention.starts") from None
    estimates = [_per_area(e) for e in res.estimates()]
    n_treated = res.n_treated_clusters
    ri = None
    if params.model.inference in ("auto", "randomization") and (
        n_treated < FEW_CLUSTERS or params.model.inference == "randomization"
    ):
        draws = min(params.model.replications, MAX_PLACEBOS)
        ri = randomization_interval(
            data.panel, estimator, draws, params.model.seed, params.model.level
        )
        estimates = _headline_ri(estimates, ri, n_treated)
    unit = "crimes per month" if not params.data.is_csv else "count per period"
    first = data.panel["period"].min()
    periods = sorted(data.panel["period"].unique())
    gt = res.att_gt_table()
    gt["group"] = [common.period_label(g) for g in gt["group"]]
    gt["time"] = [common.period_label(t) for t in gt["time"]]
    return EvaluationResults(
        name=ctx.name,
        title=params.title,
        design="staggered_did",
        synthetic=data.counts.synthetic,
        outcome=Outcome(
            label=params.outcome.label,
            crime_types=params.data.crime_types or [],
            areas=sorted(data.starts),
            comparison_areas=sorted(set(data.panel["unit"]) - set(data.starts)),
            unit=unit,
            measure=params.outcome.measure,
        ),
        periods=Periods(
            frequency=data.counts.frequency,  # type: ignore[arg-type]
            data_start=common.period_label(first),
            data_end=common.period_label(periods[-1]),
            intervention_start=common.period_label(min(data.starts.values())),
            pre_periods=int(sum(p < min(data.starts.values()) for p in periods)),
            post_periods=int(sum(p >= min(data.starts.values()) for p in periods)),
        ),
        headline="att",
        estimates=estimates,
        series={
            "primary": _series(data, res, unit, f"{params.outcome.label} in the roll-out areas")
        },
        tables={
            "att_gt": common.records(gt),
            "event_study": common.records(res.event_table().assign(scale="count", unit="month")),
            "groups": common.records(
                res.group_table().assign(
                    group=lambda t: [common.period_label(g) for g in t["group"]]
                )
            ),
            "roll_out": [
                {"area": a, "start": common.period_label(s)} for a, s in sorted(data.starts.items())
            ],
        },
        diagnostics={
            "n_treated_clusters": n_treated,
            "n_units": res.n_units,
            "control_group": res.control_group,
            "randomization": ri,
        },
        data_quality={"records_without_location": data.counts.no_location},
        warnings=list(data.counts.notes) + list(res.notes),
        notes=_notes(params, ri is not None, n_treated),
        truth=_truth(ctx, data),
        provenance=common.provenance(ctx, data.counts, data.panel),
    )


def _per_area(e: Estimate) -> Estimate:
    """ATTs in counts are per treated area per month: say so in the scale."""
    return e.model_copy(update={"scale": "count_per_area_period"}) if e.scale == "count" else e


def _headline_ri(estimates: list[Estimate], ri: dict[str, Any], n_treated: int) -> list[Estimate]:
    """Put the randomisation interval on ``att`` and keep the analytical one beside it."""
    out = []
    for e in estimates:
        if e.name == "att":
            out.append(
                e.model_copy(
                    update={
                        "ci_low": ri["ci_low"],
                        "ci_high": ri["ci_high"],
                        "p_value": ri["p_value"],
                        "method": (
                            f"Callaway & Sant'Anna simple ATT; randomisation inference over {ri['draws']} "
                            "reassignments of the start dates (interval by inverting a constant effect)"
                        ),
                    }
                )
            )
            out.append(
                e.model_copy(
                    update={
                        "name": "att_analytical",
                        "method": e.method
                        + f" (analytical, unit-clustered; not the headline with {n_treated} treated areas)",
                    }
                )
            )
        else:
            out.append(e)
    return out


def _truth(ctx: RunContext, data: StaggeredData) -> dict[str, float] | None:
    """The planted effect in counts: a rate ratio r turns an expected count m into r m, so
    the effect per treated area-month is m (1 - 1/r) with m the mean count with the
    effect; m is taken from the treated post-start cells (an approximation whose error,
    the sampling error of that mean, is far below the estimate's uncertainty)."""
    planted = common.truth_for(ctx, data.counts.synthetic)
    rr = common.planted_rate_ratio(planted, ctx.params.data.crime_types or [])
    if rr is None:
        return None
    p = data.panel
    on = p[p["period"] >= p["first_treat"]]
    return {"att": float(on["outcome"].mean() * (1 - 1 / rr))}


def _notes(params: StaggeredParams, used_ri: bool, n_treated: int) -> list[str]:
    control = (
        "never-treated" if params.model.control_group == "never_treated" else "not-yet-treated"
    )
    notes = [
        "Staggered difference-in-differences (Callaway & Sant'Anna 2021): each roll-out cohort is "
        f"compared with {control} areas, month by month; a single two-way fixed-effects "
        "regression would be biased when effects differ between cohorts or grow over time.",
        "The headline averages the effect over every treated area-month (simple aggregation); "
        "the event-time and cohort aggregations are in the tables.",
        "Assumption: without the roll-out, areas would have followed parallel trends in counts.",
    ]
    if used_ri:
        notes.append(
            f"With only {n_treated} treated areas, analytical standard errors are too small; the "
            "interval comes from randomisation inference over reassigned start dates."
        )
    return notes
