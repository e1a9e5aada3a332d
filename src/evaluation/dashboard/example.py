"""Hand-built results for previewing the dashboards without running an evaluation.

Used by the tests and the benchmark, and handy when styling pages. The numbers are
invented (seeded) and flagged ``synthetic`` unless asked otherwise.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.results import (
    Estimate,
    EvaluationResults,
    Outcome,
    Periods,
    Provenance,
    Series,
    write_results,
)


def _values(array: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in array]


def _months(start: str, end: str) -> list[str]:
    return [p.strftime("%Y-%m-%d") for p in pd.date_range(start, end, freq="MS")]


def its_example(
    name: str = "operation_talon",
    *,
    synthetic: bool = True,
    mean: float = 160.0,
    seed: int = 1,
) -> EvaluationResults:
    """An interrupted time series on monthly drug offences (a 15% fall at June 2021).

    Parameters
    ----------
    name
        The report name.
    synthetic
        Whether the results say the data are synthetic.
    mean
        Average monthly count (small values give small counts to suppress).
    seed
        Seed of the simulated observed counts.
    """
    rng = np.random.default_rng(seed)
    periods = _months("2016-04-01", "2024-03-01")
    t = np.arange(len(periods))
    t0 = periods.index("2021-06-01")
    post = t >= t0
    counterfactual = mean * np.exp(0.002 * t + 0.08 * np.sin(2 * np.pi * t / 12))
    fitted = counterfactual * np.where(post, 0.85 * np.exp(-0.003 * (t - t0)), 1.0)
    observed = rng.poisson(fitted).astype(float)
    series = Series(
        periods=periods,
        observed=_values(observed),
        fitted=_values(fitted),
        counterfactual=_values(counterfactual),
        counterfactual_low=_values(counterfactual * 0.9),
        counterfactual_high=_values(counterfactual * 1.1),
        label="Drug offences",
    )
    check = series.model_copy(update={"label": "Shoplifting and other theft (victim-based check)"})
    method = "quasi-Poisson segmented regression, Newey-West SEs"
    estimates = [
        Estimate(
            name="level_change",
            estimate=0.85,
            ci_low=0.78,
            ci_high=0.93,
            se=0.045,
            p_value=0.001,
            scale="rate_ratio",
            method=method,
            label="Immediate change at the start",
        ),
        Estimate(
            name="slope_change",
            estimate=0.997,
            ci_low=0.993,
            ci_high=1.001,
            se=0.002,
            p_value=0.12,
            scale="rate_ratio_per_period",
            method=method,
            label="Change in the monthly trend",
        ),
        Estimate(
            name="cumulative_effect",
            estimate=-1210,
            ci_low=-1800,
            ci_high=-600,
            scale="count",
            method=method,
            label="Crimes over the post period vs expected",
        ),
        Estimate(
            name="victim_based:level_change",
            estimate=1.02,
            ci_low=0.94,
            ci_high=1.11,
            se=0.04,
            p_value=0.6,
            scale="rate_ratio",
            method=method,
            label="Victim-based check: immediate change",
        ),
    ]
    return EvaluationResults(
        name=name,
        title="Operation Talon",
        design="its",
        synthetic=synthetic,
        outcome=Outcome(label="Drug offences", crime_types=["Drugs"], measure="activity"),
        periods=Periods(
            data_start=periods[0],
            data_end=periods[-1],
            intervention_start=periods[t0],
            pre_periods=t0,
            post_periods=len(periods) - t0,
        ),
        headline="level_change",
        estimates=estimates,
        series={"primary": series, "victim_based": check},
        diagnostics={"primary": {"ljung_box_p_lag12": 0.03}},
        data_quality={"records_without_location": 292},
        warnings=[
            "Residuals remain autocorrelated (Ljung-Box p = 0.030 at 12 lags); the "
            "Newey-West standard errors allow for this."
        ],
        notes=[
            "Interrupted time series (segmented regression): the trend before the start, "
            "projected forward, is the counterfactual.",
            "Model: quasipoisson regression with seasonality 'fourier:2', Welsh Covid-19 "
            "lockdowns as covariates.",
        ],
        truth={"level_change": 0.85} if synthetic else None,
        provenance=Provenance(
            data_files={"2016-04-south-wales-street.csv": "ab" * 32},
            data_hash="cd" * 32,
            params_file=f"{name}.yaml",
            params_hash="ef" * 32,
            params={"model": {"interruptions": "welsh_covid", "seasonality": "fourier:2"}},
            versions={"evaluation": "0.1.0"},
            git_commit="0123456789abcdef",
            run_started="2025-01-01T12:00:00+00:00",
            run_finished="2025-01-01T12:00:40+00:00",
            seed=20240401,
        ),
    )


def did_example(name: str = "yef_neighbourhood_fund", *, seed: int = 2) -> EvaluationResults:
    """A difference-in-differences on violence with an event study and an evidence rating."""
    rng = np.random.default_rng(seed)
    periods = _months("2018-01-01", "2023-12-01")
    event_study = []
    for k in range(-12, 13):
        if k == -1:
            continue  # the reference period
        est = float(rng.normal(0.0 if k < 0 else -3.0, 1.0))
        event_study.append(
            {
                "event_time": k,
                "estimate": est,
                "ci_low": est - 2.5,
                "ci_high": est + 2.5,
                "scale": "count_per_period",
            }
        )
    series = Series(
        periods=periods,
        observed=_values(rng.poisson(40, len(periods)).astype(float)),
        comparison=_values(rng.poisson(38, len(periods)).astype(float)),
        label="Violence and sexual offences",
    )
    return EvaluationResults(
        name=name,
        title="YEF Neighbourhood Fund",
        design="did",
        synthetic=True,
        outcome=Outcome(
            label="Violence and sexual offences",
            crime_types=["Violence and sexual offences"],
            areas=["Butetown", "Grangetown"],
            comparison_areas=["Splott", "Adamsdown", "Riverside"],
            measure="victim",
        ),
        periods=Periods(
            data_start=periods[0],
            data_end=periods[-1],
            intervention_start="2021-09-01",
            pre_periods=44,
            post_periods=28,
        ),
        headline="att",
        estimates=[
            Estimate(
                name="att",
                estimate=-3.1,
                ci_low=-6.0,
                ci_high=-0.2,
                p_value=0.04,
                scale="count_per_period",
                method="two-way fixed effects, wild cluster bootstrap",
                label="Average change per month",
            ),
            Estimate(
                name="pretrend_wald_p",
                estimate=0.41,
                scale="p_value",
                method="Wald test",
                label="Test of differing trends before the start",
            ),
        ],
        series={"primary": series},
        tables={"event_study": event_study},
        evidence={"msms_level": 3},
    )


def write_report(
    reports_dir: Path, results: EvaluationResults, run_id: str = "20250101T120000-abcdef"
) -> Path:
    """Write ``results`` as the runner publishes a report: a run folder and a symlink.

    Returns
    -------
    Path
        ``reports_dir/<name>`` (the symlink).
    """
    reports = Path(reports_dir)
    run = reports / ".runs" / f"{results.name}-{run_id}"
    run.mkdir(parents=True, exist_ok=True)
    write_results(results, run)
    link = reports / results.name
    if link.is_symlink():
        link.unlink()
    os.symlink(os.path.relpath(run, reports), link)
    return link
