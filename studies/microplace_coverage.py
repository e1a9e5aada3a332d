"""Across seeds: does the micro-place ITS recover the planted OSARA effects? (issue #8)

For each seed the two micro-place series (Tweedsmuir Road: Splott LSOAs W01990193-4, ASB +
drugs + public order, x0.60 from 2021-07; Burnham Avenue: Llanrumney LSOAs W01990122-3,
x0.65 from 2021-05) are simulated with the synthetic generator's DGP, *exactly*: the same
geography (``synthetic._build_geography(seed)``), intensities (``_intensities`` plus the
drug calibration of ``_build``) and the same per-month random stream and draw order as
``synthetic._month_csv`` (``default_rng([seed, 1, year, month])``: No-location draws,
gamma noise, Poisson counts, the calibrated drug multinomial). So the counts equal the LSOA
counts of ``synthetic.generate(seed)`` (tests/test_studies.py checks this) without writing
and re-reading 300,000 rows per seed.

The ITS is then fitted as the params files specify, through the workflow's own pieces:
``params.load_params`` -> ``workflows.its.spec_from(params, "quarter")`` (quarterly sums,
negative binomial, quarter-of-year seasonality, no slope change, a one-quarter phase-in,
Newey-West HAC, Welsh Covid interruptions) -> ``designs.its.fit_its`` on the summed series
from the quarter holding the start -> ``workflows.its.minimum_detectable`` and
``workflows.its.conclusion`` (the "cannot conclude" rule).

Truths: the planted rate ratio (0.60, 0.65), and the *pseudo-true* value the ITS estimates
in the limit of no noise: the same model (Poisson family, same design) fitted to the
expected counts. The two differ because the generator plants other effects in these
LSOAs that an ITS without a comparison series cannot separate: Operation Talon (drugs x1.25
city-wide from 2021-06), Area Based Working (ASB and drugs x0.85 in Splott from 2019-12,
in Llanrumney from 2022-10), and the ASB and public-order trends.

Run ``python studies/microplace_coverage.py --help``. Results are in studies/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation import config
from evaluation.data import synthetic as syn
from evaluation.designs.its import fit_its
from evaluation.params import ItsParams, load_params
from evaluation.workflows.its import conclusion, minimum_detectable, spec_from

REPO = Path(__file__).resolve().parents[1]
#: study name -> (params file, planted rate ratio, generator slots)
PLACES: dict[str, tuple[str, float, tuple[tuple[str, int], ...]]] = {
    "tweedsmuir_road": ("tweedsmuir_road.yaml", 0.60, syn.TWEEDSMUIR_SLOTS),
    "burnham_avenue": ("burnham_avenue.yaml", 0.65, syn.BURNHAM_SLOTS),
}
#: seconds before a fit is declared hung (a normal fit takes ~0.2 s)
FIT_TIME_LIMIT = 20
#: NB2 alpha for the refit of a hung fit (effectively Poisson, with HAC standard errors)
FALLBACK_ALPHA = 1e-6


@dataclass(frozen=True)
class Config:
    """One run over seeds."""

    n_seeds: int = 100
    first_seed: int = 1
    places: tuple[str, ...] = tuple(PLACES)
    time_limit: int = FIT_TIME_LIMIT


def _params(place: str) -> ItsParams:
    p = load_params(REPO / "params" / PLACES[place][0])
    assert isinstance(p, ItsParams)
    return p


def _expected(seed: int, months: list[tuple[int, int]]) -> tuple[Any, np.ndarray]:
    """Geography and the calibrated intensities mu[t, lsoa, type], as ``synthetic._build``."""
    geo = syn._build_geography(seed)
    mu = syn._intensities(geo, months)
    d = config.CRIME_TYPES.index(syn.DRUGS)
    window = syn._month_range(*syn.DRUG_WINDOW)
    mu[:, :, d] *= syn._calibrate_drugs(geo, syn._intensities(geo, window)[:, :, d])[None, :]
    return geo, mu


def simulate_counts(
    seed: int, start: str = "2016-04", end: str = "2024-03"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """LSOA x type counts as ``synthetic.generate(seed)`` draws them, and their expectation.

    Returns the month labels, counts (T, n_lsoa, n_types) and expected counts (same shape;
    for calibrated drug months the multinomial's expectation is not ``mu``, so the
    expectation there is ``mu`` rescaled to the month's calibrated LSOA total).
    """
    months = syn._month_range(start, end)
    geo, mu = _expected(seed, months)
    d = config.CRIME_TYPES.index(syn.DRUGS)
    win = syn._window_index(months)
    counts = np.empty(mu.shape, dtype=np.int64)
    expected = mu.copy()
    for t, (y, m0) in enumerate(months):
        # the first draws of synthetic._month_csv, in its order
        rng = np.random.default_rng([seed, 1, y, m0 + 1])
        city = mu[t].sum(0)
        k = win.get(t)
        if k is not None:
            city[d] = syn.DRUG_MONTHLY_TOTALS[k]
        n_nl = int(rng.integers(syn.NO_LOCATION_RANGE[0], syn.NO_LOCATION_RANGE[1] + 1))
        nl_by_type = rng.multinomial(n_nl, city / city.sum())
        noisy = mu[t] * rng.gamma(syn.NB_SHAPE, 1 / syn.NB_SHAPE, size=mu[t].shape)
        counts[t] = rng.poisson(noisy)
        if k is not None:
            total = syn.DRUG_MONTHLY_TOTALS[k] - nl_by_type[d]
            counts[t, :, d] = rng.multinomial(total, noisy[:, d] / noisy[:, d].sum())
            nl_mean = np.mean(syn.NO_LOCATION_RANGE) * city[d] / city.sum()
            expected[t, :, d] *= (syn.DRUG_MONTHLY_TOTALS[k] - nl_mean) / mu[t, :, d].sum()
    return [syn._label(m) for m in months], counts, expected


def place_series(labels: list[str], values: np.ndarray, place: str, params: ItsParams) -> pd.Series:
    """The evaluated series: the place's LSOAs and crime types summed, whole quarters."""
    slots = syn._lsoa_slot_index()
    rows = [slots[s] for s in PLACES[place][2]]
    cols = [config.CRIME_TYPES.index(c) for c in params.data.crime_types or []]
    monthly = pd.Series(
        values[:, rows][:, :, cols].sum(axis=(1, 2)).astype(float),
        index=pd.to_datetime([f"{lab}-01" for lab in labels]),
    )
    q = monthly.groupby(monthly.index.to_period("Q").start_time)
    sums, n = q.sum(), q.size()
    return sums[n == 3]


def _start(params: ItsParams) -> pd.Timestamp:
    return pd.Timestamp(params.intervention.start).to_period("Q").start_time


def fit_place(y: pd.Series, params: ItsParams, negbin_alpha: float | None = None) -> dict[str, Any]:
    """Fit as the workflow does; the level change, MDE and the conclusion rule.

    ``negbin_alpha`` fixes the NB2 dispersion (None: estimated, as the workflow does).
    """
    spec = spec_from(params, "quarter")
    if negbin_alpha is not None:
        spec = replace(spec, negbin_alpha=negbin_alpha)
    fit = fit_its(y, _start(params), spec)
    estimates = list(fit.estimates())
    lc = next(e for e in estimates if e.name == "level_change")
    mde = minimum_detectable(estimates, params.model.level)
    assert mde is not None
    concl = conclusion(lc, mde, params.outcome.label)
    return {
        "estimate": lc.estimate,
        "ci_low": lc.ci_low,
        "ci_high": lc.ci_high,
        "se_log": lc.se,
        "mde": mde.estimate,
        "conclusive": concl.get("conclusive"),
        "alpha": fit.negbin_alpha,
        "warnings": list(fit.warnings),
        "timed_out": negbin_alpha is not None,
        "mean_per_quarter": float(y.mean()),
    }


class Fitter:
    """``fit_place`` in a worker process, abandoned after ``time_limit`` seconds.

    The workflow's alpha estimate can hang inside scipy's polygamma (C code, so no signal
    interrupts it) when the maximum likelihood alpha heads to 0 (see studies/README.md).
    A hung fit is killed, flagged ``timed_out`` and redone with alpha fixed at
    ``FALLBACK_ALPHA`` (NB2 with alpha ~ 0 is Poisson: where the estimate was heading).
    ``time_limit`` 0 fits in this process with no limit.
    """

    def __init__(self, time_limit: int = FIT_TIME_LIMIT) -> None:
        self.time_limit = time_limit
        self.pool: Any = None

    def __call__(self, y: pd.Series, params: ItsParams) -> dict[str, Any]:
        if self.time_limit <= 0:
            return fit_place(y, params)
        if self.pool is None:
            self.pool = mp.get_context("fork").Pool(1)
        try:
            return self.pool.apply_async(fit_place, (y, params)).get(self.time_limit)
        except mp.TimeoutError:
            self.close()
            return fit_place(y, params, FALLBACK_ALPHA)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def pseudo_true(y_expected: pd.Series, params: ItsParams) -> float:
    """The level change the ITS converges to without noise (Poisson fit to expectations)."""
    spec = replace(spec_from(params, "quarter"), family="poisson", se="model")
    # the design wants whole numbers: scale up and round (the Poisson fit's slope
    # coefficients do not depend on the scale; rounding moves them by ~1e-6)
    y_big = (y_expected * 1e4).round()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_its(y_big, _start(params), spec)
    return float(next(e for e in fit.estimates() if e.name == "level_change").estimate)


def run(cfg: Config, progress: bool = False) -> dict[str, Any]:
    """Simulate and fit every seed; returns records and the summary."""
    t0 = time.perf_counter()
    params = {p: _params(p) for p in cfg.places}
    records = []
    fitter = Fitter(cfg.time_limit)
    for i in range(cfg.n_seeds):
        seed = cfg.first_seed + i
        labels, counts, expected = simulate_counts(seed)
        for place in cfg.places:
            prm = params[place]
            y = place_series(labels, counts, place, prm)
            rec = fitter(y, prm)
            rec["pseudo_true"] = pseudo_true(place_series(labels, expected, place, prm), prm)
            records.append({"seed": seed, "place": place, **rec})
        if progress and (i + 1) % 10 == 0:
            print(f"  {i + 1}/{cfg.n_seeds} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    fitter.close()
    frame = pd.DataFrame(records)
    return {
        "config": asdict(cfg),
        "summary": summarise(frame),
        "timed_out_seeds": {
            str(p): [int(v) for v in g.loc[g["timed_out"], "seed"]]
            for p, g in frame.groupby("place")
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()} python {platform.python_version()}",
    }


def _cov(g: pd.DataFrame, truth: pd.Series | float) -> tuple[float, float]:
    c = ((g["ci_low"] <= truth) & (truth <= g["ci_high"])).mean()
    return round(float(c), 4), round(float(np.sqrt(c * (1 - c) / len(g))), 4)


def summarise(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Coverage (planted and pseudo-true), bias, the conclusion rule's rate, per place."""
    rows = []
    for place, g in frame.groupby("place", sort=False):
        planted = PLACES[str(place)][1]
        log_est = np.log(g["estimate"])
        cov_p, se_p = _cov(g, planted)
        cov_t, se_t = _cov(g, g["pseudo_true"])
        rows.append(
            {
                "place": place,
                "n_seeds": len(g),
                "planted": planted,
                "pseudo_true_mean": round(float(g["pseudo_true"].mean()), 4),
                "pseudo_true_range": [
                    round(float(g["pseudo_true"].min()), 4),
                    round(float(g["pseudo_true"].max()), 4),
                ],
                "coverage_planted": cov_p,
                "mc_se_planted": se_p,
                "coverage_pseudo_true": cov_t,
                "mc_se_pseudo_true": se_t,
                "mean_estimate": round(float(g["estimate"].mean()), 4),
                "mean_bias": round(float(g["estimate"].mean() - planted), 4),
                "mean_log_bias": round(float(log_est.mean() - np.log(planted)), 4),
                "sd_log_estimate": round(float(log_est.std(ddof=1)), 4),
                "mean_se_log": round(float(g["se_log"].mean()), 4),
                "se_ratio": round(float(g["se_log"].mean() / log_est.std(ddof=1)), 3),
                "ci_above_planted": round(float((g["ci_low"] > planted).mean()), 4),
                "ci_below_planted": round(float((g["ci_high"] < planted).mean()), 4),
                "excludes_one": round(
                    float((g["ci_high"] < 1).mean() + (g["ci_low"] > 1).mean()), 4
                ),
                "cannot_conclude_rate": round(float((g["conclusive"] == False).mean()), 4),  # noqa: E712
                "median_mde": round(float(g["mde"].median()), 4),
                "mean_per_quarter": round(float(g["mean_per_quarter"].mean()), 1),
                "any_warnings": round(float((g["warnings"].str.len() > 0).mean()), 4),
                "fits_timed_out": int(g["timed_out"].sum()),
                "coverage_planted_excl_timed_out": _cov(g[~g["timed_out"]], planted)[0],
            }
        )
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The summary as a markdown table (one column per place)."""
    summ = result["summary"]
    keys = [k for k in summ[0] if k != "place"]
    lines = ["| | " + " | ".join(s["place"] for s in summ) + " |"]
    lines.append("|---" * (len(summ) + 1) + "|")
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(str(s[k]) for s in summ) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100, help="number of seeds")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument(
        "--time-limit", type=int, default=FIT_TIME_LIMIT, help="seconds before a fit is hung"
    )
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    a = ap.parse_args(argv)
    cfg = Config(n_seeds=a.seeds, first_seed=a.first_seed, time_limit=a.time_limit)
    result = run(cfg, progress=True)
    print(markdown(result))
    print(f"\n{result['seconds']} s on {result['machine']}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
