"""Monte Carlo: do the DiD intervals for two treated wards cover the planted rate ratio?

Issue #3 honesty check. Each replication draws a Cardiff-like ward x month panel of
acquisitive crime (burglary, robbery, theft from the person, vehicle crime; the Safer
Streets outcome) from the synthetic generator's own data-generating process, then runs
the Safer Streets difference-in-differences the way ``workflows/did.py`` does and records
whether each 95% interval covers the planted rate ratio.

Data-generating process (the generator's, not a simplified copy)
----------------------------------------------------------------
- Geography and LSOA intensities: ``synthetic._build_geography(seed_r)`` with a fresh seed
  per replication, so ward heterogeneity (population x Gamma(3) LSOA factor x Gamma
  LSOA-by-type factor x ward level x 1.8 for street crime in the four central wards) is
  redrawn every time.
- Expected counts: ``synthetic._intensities`` (seasonality, Welsh Covid lockdowns, trend,
  planted effects: Butetown and Grangetown x0.85 from 2021-10, the adjoining wards x0.95),
  2016-04 to 2024-03 (96 months; the start is month index 66).
- Noise: exactly the generator's, ``y ~ Poisson(mu * G)``, ``G ~ Gamma(10, 1/10)``, per
  LSOA x crime type x month, then summed to wards. No-location rows are left out (they are
  in no ward).
- ``rate_ratio`` other than 0.85 rescales the treated wards' post-period intensities.
- ``ward_shock_sd > 0`` (sensitivity only, not the generator): a ward x month log-normal
  AR(1) shock (``rho``) common to the ward's LSOAs, i.e. the ward-level idiosyncratic
  variation real data have and the generator lacks.

Estimation, as the workflow does it
-----------------------------------
Treated: Butetown, Grangetown. Buffer (the adjoining wards, ``buffer.adjacent: true``):
Adamsdown, Canton, Riverside, Splott, excluded. Comparison: ``matched`` =
``workflows.did.match_comparison`` (8 nearest neighbours on pre-period log level and
trend, 36 months), or ``all`` 23 eligible wards. Methods:

- ``cr1``: PoissonFE CR1 interval (normal), ``exp(b +/- z se)``.
- ``wild``: PoissonFE with ``inference="auto"`` -- what the workflow reports for 2 treated
  wards: the wild cluster restricted bootstrap (score bootstrap on the IRLS linearisation).
  With 10 clusters all 1,024 Rademacher sign vectors are enumerated (as in the workflow);
  with 25 clusters ``boot_reps`` Webb draws (the workflow uses 9,999).
- ``ri``: randomisation inference. ``PoissonFE`` does not offer it (``designs/did.py``
  allows only cr1 / wild for PPML), so this is ``TwoWayFE(inference="randomization")`` on
  ``log(count + 1)``: the interval inverts a constant multiplicative-effect sharp null and
  is exponentiated. All C(n, 2) placebo pairs are used (45 matched, 300 all).
- ``twfe_cr1``: CR1 of that log-linear TWFE (t with G - 1 df), for reference.

Run ``python studies/did_coverage.py --help``. Results are recorded in studies/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from evaluation import config
from evaluation.data import synthetic as syn
from evaluation.designs.did import PoissonFE, TwoWayFE
from evaluation.workflows.did import match_comparison

TREATED = ["Butetown", "Grangetown"]
CRIME_TYPES = ("Burglary", "Robbery", "Theft from the person", "Vehicle crime")
DATA_START, DATA_END = "2016-04", "2024-03"
START = pd.Timestamp("2021-10-01")
#: the rate ratio the generator plants for Safer Streets
GENERATOR_RATE_RATIO = 0.85
N_MATCHED = 8
METHODS = ("cr1", "wild", "ri", "twfe_cr1")
COMPARISONS = ("matched", "all")


@dataclass(frozen=True)
class Config:
    """One Monte Carlo run."""

    n_reps: int = 500
    seed: int = 20240401
    rate_ratio: float = GENERATOR_RATE_RATIO
    boot_reps: int = 999
    level: float = 0.95
    comparisons: tuple[str, ...] = COMPARISONS
    ward_shock_sd: float = 0.0
    ward_shock_rho: float = 0.5


def _months() -> list[tuple[int, int]]:
    return syn._month_range(DATA_START, DATA_END)


def simulate_panel(rep_seed: int, cfg: Config) -> pd.DataFrame:
    """One ward x month panel (columns area, period, count) from the generator's DGP.

    Parameters
    ----------
    rep_seed
        Seed of this replication: geography from ``synthetic._build_geography(rep_seed)``,
        noise from ``numpy.random.default_rng([rep_seed, 7])``.
    cfg
        The run's settings (planted rate ratio, optional ward shocks).
    """
    months = _months()
    geo = syn._build_geography(rep_seed)
    cols = [config.CRIME_TYPES.index(c) for c in CRIME_TYPES]
    mu = syn._intensities(geo, months)[:, :, cols]  # (T, n_lsoa, 4), planted effects in
    wards = np.array(geo.wards)
    labels = np.array([syn._label(m) for m in months])
    post = labels >= START.strftime("%Y-%m")
    if cfg.rate_ratio != GENERATOR_RATE_RATIO:
        rows = np.isin(wards, TREATED)
        mu[np.ix_(post, rows, np.arange(len(cols)))] *= cfg.rate_ratio / GENERATOR_RATE_RATIO
    rng = np.random.default_rng([rep_seed, 7])
    names = list(syn.WARD_NAMES)
    code = np.array([names.index(w) for w in wards])
    if cfg.ward_shock_sd > 0:
        mu = mu * _ward_shocks(rng, len(months), len(names), cfg)[:, code, None]
    noisy = mu * rng.gamma(syn.NB_SHAPE, 1 / syn.NB_SHAPE, size=mu.shape)
    lsoa = rng.poisson(noisy).sum(axis=2)  # (T, n_lsoa)
    ward = np.zeros((len(months), len(names)))
    np.add.at(ward.T, code, lsoa.T)
    periods = pd.to_datetime([f"{lab}-01" for lab in labels])
    return pd.DataFrame(
        {
            "area": np.tile(names, len(months)),
            "period": np.repeat(periods, len(names)),
            "count": ward.ravel(),
        }
    )


def _ward_shocks(rng: np.random.Generator, n_t: int, n_w: int, cfg: Config) -> np.ndarray:
    """Mean-one log-normal AR(1) multipliers (n_t, n_w) with marginal log-sd ``ward_shock_sd``."""
    sd, rho = cfg.ward_shock_sd, cfg.ward_shock_rho
    e = rng.normal(0.0, sd * np.sqrt(1 - rho**2), size=(n_t, n_w))
    z = np.empty_like(e)
    z[0] = rng.normal(0.0, sd, size=n_w)
    for t in range(1, n_t):
        z[t] = rho * z[t - 1] + e[t]
    return np.exp(z - sd**2 / 2)


def comparison_wards(frame: pd.DataFrame, method: str) -> list[str]:
    """The comparison wards the workflow would use: ``matched`` (8 nearest) or ``all``."""
    buffer = set(syn._buffer_of(tuple(TREATED)))
    pool = [a for a in sorted(set(frame["area"])) if a not in buffer | set(TREATED)]
    if method == "all":
        return pool
    chosen, _ = match_comparison(frame, TREATED, pool, START, N_MATCHED)
    return chosen


def did_panel(frame: pd.DataFrame, comparison: list[str]) -> pd.DataFrame:
    """The workflow's panel (unit, period, outcome, treat) for treated + comparison wards."""
    keep = frame[frame["area"].isin(TREATED + comparison)]
    panel = pd.DataFrame(
        {
            "unit": keep["area"].to_numpy(),
            "period": keep["period"].to_numpy(),
            "outcome": keep["count"].to_numpy(float),
        }
    )
    panel["treat"] = (panel["unit"].isin(TREATED) & (panel["period"] >= START)).astype(float)
    return panel


def _interval(lo: float | None, hi: float | None, truth: float) -> dict[str, Any]:
    """Coverage of ``truth`` by a rate-ratio interval (None = unbounded on that side)."""
    lo_v = 0.0 if lo is None else lo
    hi_v = np.inf if hi is None else hi
    return {
        "covers": bool(lo_v <= truth <= hi_v),
        "ci_low": lo,
        "ci_high": hi,
        "unbounded": lo is None or hi is None,
        "log_width": float(np.log(hi_v / lo_v)) if lo and hi else float("inf"),
        "excludes_one": bool(hi_v < 1 or lo_v > 1),
    }


def fit_methods(panel: pd.DataFrame, cfg: Config, rep_seed: int) -> dict[str, dict[str, Any]]:
    """Estimates and interval coverage of each method on one panel."""
    truth = cfg.rate_ratio
    out: dict[str, dict[str, Any]] = {}
    pois = PoissonFE(inference="auto", reps=cfg.boot_reps, seed=rep_seed, level=cfg.level).fit(
        panel
    )
    z = stats.norm.ppf(0.5 + cfg.level / 2)
    b, se = pois.coef, pois.cr1.se
    out["cr1"] = {
        "estimate": pois.estimate,
        **_interval(np.exp(b - z * se), np.exp(b + z * se), truth),
    }
    out["wild"] = {
        "estimate": pois.estimate,
        "inference": pois.inference,
        **_interval(pois.ci_low, pois.ci_high, truth),
    }
    logged = panel.assign(outcome=np.log1p(panel["outcome"]))
    tw = TwoWayFE(inference="randomization", level=cfg.level, seed=rep_seed).fit(logged)
    ex = lambda v: None if v is None else float(np.exp(v))  # noqa: E731
    out["ri"] = {
        "estimate": float(np.exp(tw.estimate)),
        "n_assignments": tw.randomization.n_assignments if tw.randomization else None,
        **_interval(ex(tw.ci_low), ex(tw.ci_high), truth),
    }
    out["twfe_cr1"] = {
        "estimate": float(np.exp(tw.estimate)),
        **_interval(ex(tw.cr1.ci_low), ex(tw.cr1.ci_high), truth),
    }
    return out


def run(cfg: Config, progress: bool = False) -> dict[str, Any]:
    """Run the Monte Carlo; returns per-replication records and the summary."""
    t0 = time.perf_counter()
    records = []
    for r in range(cfg.n_reps):
        rep_seed = cfg.seed + r
        frame = simulate_panel(rep_seed, cfg)
        for comp in cfg.comparisons:
            chosen = comparison_wards(frame, comp)
            res = fit_methods(did_panel(frame, chosen), cfg, rep_seed)
            for method, v in res.items():
                records.append({"rep": r, "comparison": comp, "method": method, **v})
            if comp == "matched":
                records[-1]["chosen"] = chosen
        if progress and (r + 1) % 25 == 0:
            print(f"  {r + 1}/{cfg.n_reps} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    frame = pd.DataFrame(records)
    return {
        "config": asdict(cfg),
        "summary": summarise(frame, cfg),
        "matched_wards_frequency": _chosen_frequency(frame),
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
    }


def _chosen_frequency(frame: pd.DataFrame) -> dict[str, float]:
    if "chosen" not in frame:
        return {}
    chosen = frame["chosen"].dropna()
    counts = pd.Series([w for c in chosen for w in c]).value_counts() / max(len(chosen), 1)
    return {k: round(float(v), 3) for k, v in counts.items()}


def summarise(frame: pd.DataFrame, cfg: Config) -> list[dict[str, Any]]:
    """Coverage with Monte Carlo SE, bias and interval width per comparison and method."""
    rows = []
    for (comp, method), g in frame.groupby(["comparison", "method"], sort=False):
        n = len(g)
        cov = float(g["covers"].mean())
        log_est = np.log(g["estimate"].to_numpy(float))
        finite = np.isfinite(g["log_width"])
        rows.append(
            {
                "comparison": comp,
                "method": method,
                "n": n,
                "coverage": round(cov, 4),
                "mc_se": round(float(np.sqrt(cov * (1 - cov) / n)), 4),
                "miss_low": round(float((g["ci_high"].fillna(np.inf) < cfg.rate_ratio).mean()), 4),
                "miss_high": round(float((g["ci_low"].fillna(0.0) > cfg.rate_ratio).mean()), 4),
                "unbounded": round(float(g["unbounded"].mean()), 4),
                "median_ci_ratio": round(float(np.exp(np.median(g["log_width"]))), 3)
                if finite.mean() > 0.5
                else None,
                "power_excludes_one": round(float(g["excludes_one"].mean()), 4),
                "mean_rr": round(float(np.exp(log_est.mean())), 4),
                "sd_log_rr": round(float(log_est.std(ddof=1)), 4) if n > 1 else None,
            }
        )
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The summary as a markdown table."""
    head = (
        "| comparison | method | n | coverage | MC SE | miss low | miss high | unbounded "
        "| median hi/lo | excl. 1 | geo-mean RR | SD log RR |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for s in result["summary"]:
        lines.append(
            f"| {s['comparison']} | {s['method']} | {s['n']} | {s['coverage']:.3f} | "
            f"{s['mc_se']:.3f} | {s['miss_low']:.3f} | {s['miss_high']:.3f} | "
            f"{s['unbounded']:.3f} | {s['median_ci_ratio']} | {s['power_excludes_one']:.3f} | "
            f"{s['mean_rr']:.3f} | {s['sd_log_rr']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=500, help="Monte Carlo replications")
    ap.add_argument("--seed", type=int, default=20240401, help="first replication seed")
    ap.add_argument("--rate-ratio", type=float, default=GENERATOR_RATE_RATIO)
    ap.add_argument("--boot-reps", type=int, default=999, help="Webb draws (25 clusters)")
    ap.add_argument("--comparison", choices=[*COMPARISONS, "both"], default="both")
    ap.add_argument("--ward-shock-sd", type=float, default=0.0)
    ap.add_argument("--ward-shock-rho", type=float, default=0.5)
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    a = ap.parse_args(argv)
    cfg = Config(
        n_reps=a.reps,
        seed=a.seed,
        rate_ratio=a.rate_ratio,
        boot_reps=a.boot_reps,
        comparisons=COMPARISONS if a.comparison == "both" else (a.comparison,),
        ward_shock_sd=a.ward_shock_sd,
        ward_shock_rho=a.ward_shock_rho,
    )
    result = run(cfg, progress=True)
    print(markdown(result))
    print(f"\n{result['seconds']} s on {result['machine']}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
