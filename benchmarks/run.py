"""Every speed figure of the project, as a ratio against a reference measured in the same run.

Run from the checkout::

    .venv/bin/python benchmarks/run.py [--quick] [--only NAME ...] [--json out.json]

Each benchmark times our code and a reference on the same data, back to back, and prints
``ratio = ours / reference`` (for ingestion: throughput, ``reference / ours``, higher is
better). Times are the best of ``--repeats`` runs (default 3; 1 for the slow ones) so that
load from other processes inflates neither side much. ``--quick`` uses smaller sizes (stated
in the output); ratios at quick sizes understate fixed costs' share less than they look.

=============  ==========================================================  ============
benchmark      reference                                                   goal
=============  ==========================================================  ============
ingest         DuckDB ``read_csv`` + GROUP BY over the same CSVs            >= 0.7x thr.
twfe           closed-form numpy within estimator (balanced panel, CR1)    <= 1.5x
twfe_pyfixest  pyfixest ``feols`` with CRV1                                 (reported)
did_run        a fresh ``python`` reading the CSV (pandas) + pyfixest fit   < 1x
ppml           pyfixest ``fepois`` with CRV1                                (reported)
wild           ``wildboottest`` (WCR11, Rademacher, same B and clusters)    (reported)
its_batch      statsmodels GLM looped over the series                       (reported)
run_all        the same number of one-cell Papermill notebooks, same jobs   <= 1.5x
dashboard      ``benchmarks/dashboard.py`` (its own trivial-page ratio)     <= 1.3x
=============  ==========================================================  ============
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Figure:
    """One benchmark's outcome."""

    name: str
    size: str
    ours: float | None  # seconds
    reference: float | None  # seconds
    ratio: float | None
    goal: str
    note: str = ""


def best(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (seconds)."""
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# --------------------------------------------------------------------------------------
# Ingestion
# --------------------------------------------------------------------------------------


def bench_ingest(quick: bool, repeats: int, tmp: Path) -> Figure:
    import duckdb

    from evaluation.data import database, national, policeuk

    n_lsoas, months = (3000, 12) if quick else (35000, 12)
    data = national.generate_national(tmp / "archive", n_lsoas=n_lsoas, months=months, seed=1)
    counter = iter(range(1000))

    def ours() -> None:
        db = tmp / f"ours-{next(counter)}.duckdb"
        con = database.connect(db)
        policeuk.ingest(data.root, con)
        con.close()

    def reference() -> None:
        db = tmp / f"ref-{next(counter)}.duckdb"
        con = duckdb.connect(str(db))
        glob = str(data.root / "*" / "*-street.csv")
        con.execute(
            f"""CREATE TABLE counts AS SELECT filename, "Month", "LSOA code", "LSOA name",
                "Crime type", "Last outcome category", "Falls within", count(*) AS n
                FROM read_csv('{glob}', header = true, all_varchar = true, filename = true)
                GROUP BY ALL"""
        )
        con.close()

    t_ours, t_ref = best(ours, repeats), best(reference, repeats)
    mb = data.bytes / 1e6
    return Figure(
        "ingest",
        f"{data.records:,} records, {data.files} files, {mb:,.0f} MB",
        t_ours,
        t_ref,
        t_ref / t_ours,
        ">= 0.7 (throughput)",
        f"ours {mb / t_ours:,.0f} MB/s, DuckDB read_csv {mb / t_ref:,.0f} MB/s",
    )


# --------------------------------------------------------------------------------------
# Difference in differences
# --------------------------------------------------------------------------------------


def _did_panel(n_units: int, n_periods: int, seed: int, counts: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_periods)
    period = np.tile(np.arange(n_periods), n_units)
    treated = unit < n_units // 5
    d = (treated & (period >= n_periods // 2)).astype(float)
    a = rng.normal(0, 1, n_units)[unit]
    g = rng.normal(0, 0.5, n_periods)[period]
    if counts:
        y = rng.poisson(np.exp(1.5 + 0.3 * a + 0.2 * g - 0.2 * d)).astype(float)
    else:
        y = a + g - 0.3 * d + rng.normal(0, 1, unit.size)
    return pd.DataFrame({"unit": unit, "period": period, "treat": d, "outcome": y})


def _numpy_within(df: pd.DataFrame, n_units: int, n_periods: int) -> tuple[float, float]:
    """Closed-form TWFE on a balanced panel sorted by unit then period, CR1 by unit."""
    y = df["outcome"].to_numpy().reshape(n_units, n_periods)
    d = df["treat"].to_numpy().reshape(n_units, n_periods)

    def within(m: np.ndarray) -> np.ndarray:
        return m - m.mean(1, keepdims=True) - m.mean(0, keepdims=True) + m.mean()

    yd, dd = within(y), within(d)
    sdd = (dd * dd).sum()
    b = (dd * yd).sum() / sdd
    e = yd - b * dd
    scores = (dd * e).sum(1)
    n, k = y.size, n_units + n_periods - 1 + 1
    c = n_units / (n_units - 1) * (n - 1) / (n - k)
    return b, np.sqrt(c * (scores**2).sum()) / sdd


def bench_twfe(quick: bool, repeats: int, tmp: Path) -> list[Figure]:
    import pyfixest as pf

    from evaluation.designs.did import TwoWayFE

    n_units, n_periods = (5000, 60) if quick else (35000, 120)
    df = _did_panel(n_units, n_periods, seed=2)
    spec = TwoWayFE(inference="cr1")
    res = spec.fit(df)
    b_np, _ = _numpy_within(df, n_units, n_periods)
    est = res.estimate if hasattr(res, "estimate") else None
    t_ours = best(lambda: spec.fit(df), repeats)
    t_np = best(lambda: _numpy_within(df, n_units, n_periods), repeats)
    t_pf = best(
        lambda: pf.feols("outcome ~ treat | unit + period", data=df, vcov={"CRV1": "unit"}).coef(),
        repeats,
    )
    size = f"{n_units:,} units x {n_periods} periods ({n_units * n_periods:,} rows)"
    note = f"numpy b = {b_np:.6f}" + (f", ours = {est:.6f}" if isinstance(est, float) else "")
    return [
        Figure("twfe", size, t_ours, t_np, t_ours / t_np, "<= 1.5 (vs numpy bound)", note),
        Figure("twfe_pyfixest", size, t_ours, t_pf, t_ours / t_pf, "reported"),
    ]


_REFERENCE_SCRIPT = """
import sys
import pandas as pd
import pyfixest as pf

df = pd.read_csv(sys.argv[1])
treated = set(open(sys.argv[2]).read().split())
df["d"] = (df["area"].isin(treated) & (df["month"] >= sys.argv[3])).astype(float)
fit = pf.feols("crimes ~ d | area + month", data=df, vcov={"CRV1": "area"})
print(float(fit.coef().iloc[0]))
"""


def _national_csv(tmp: Path, n_units: int, n_periods: int) -> tuple[Path, Path, str]:
    """The counts panel of the PPML benchmark as a tidy CSV of monthly counts (area, month,
    crimes), and the params file of a TWFE DiD on it (the first fifth of areas treated from
    the middle month)."""
    df = _did_panel(n_units, n_periods, seed=5, counts=True)
    months = np.asarray(pd.period_range("2014-01", periods=n_periods, freq="M").strftime("%Y-%m"))
    names = np.char.add("U", np.arange(n_units).astype(str))
    csv = tmp / "panel.csv"
    frame = pd.DataFrame(
        {
            "area": names[df["unit"]],
            "month": months[df["period"]],
            "crimes": df["outcome"].astype(int),
        }
    )
    frame.to_csv(csv, index=False)
    treated = names[np.unique(df.loc[df["treat"] > 0, "unit"])]
    start = months[n_periods // 2]
    (tmp / "treated.txt").write_text("\n".join(treated))
    params = tmp / "national_did.yaml"
    params.write_text(
        "title: TWFE difference-in-differences at national size (benchmark)\n"
        "design: did\n"
        "data: {csv: panel.csv, unit: area, time: month, outcome: crimes}\n"
        "outcome: {label: Recorded crimes}\n"
        f"intervention:\n  start: {start}\n"
        f"  treated: [{', '.join(treated)}]\n"
        "comparison: {method: all}\n"
        "model: {family: gaussian}\n"
    )
    return csv, params, str(start)


def bench_did_run(quick: bool, repeats: int, tmp: Path) -> Figure:
    """``evaluation run`` of a TWFE DiD from a tidy CSV, end to end in a fresh process,
    against a fresh process that reads the CSV with pandas and fits it with pyfixest."""
    n_units, n_periods = (5000, 60) if quick else (35000, 120)
    csv, params, start = _national_csv(tmp, n_units, n_periods)
    env = {**os.environ, "EVALUATION_HOME": str(ROOT)}
    exe = str(Path(sys.executable).with_name("evaluation"))
    ours_cmd = [exe, "run", str(params), "--output-dir", str(tmp / "reports" / "did")]
    script = tmp / "reference.py"
    script.write_text(_REFERENCE_SCRIPT)
    ref_cmd = [sys.executable, str(script), str(csv), str(tmp / "treated.txt"), start]

    def timed(cmd: list[str]) -> tuple[float, str]:
        t = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return time.perf_counter() - t, done.stdout

    t_ours = min(timed(ours_cmd)[0] for _ in range(max(1, repeats)))
    t_ref, out = min(timed(ref_cmd) for _ in range(max(1, repeats)))
    ours = json.loads((tmp / "reports" / "did" / "results.json").read_text())
    att = next(e["estimate"] for e in ours["estimates"] if e["name"] == "att")
    return Figure(
        "did_run",
        f"{n_units:,} x {n_periods} tidy CSV ({n_units * n_periods:,} rows, "
        f"{csv.stat().st_size / 2**20:.0f} MB)",
        t_ours,
        t_ref,
        t_ours / t_ref,
        "< 1 (faster than pandas + pyfixest)",
        f"ATT ours {att:.6f}, pyfixest {float(out.strip()):.6f}",
    )


def bench_ppml(quick: bool, repeats: int, tmp: Path) -> Figure:
    import pyfixest as pf

    from evaluation.designs.did import PoissonFE

    n_units, n_periods = (2000, 48) if quick else (35000, 120)
    df = _did_panel(n_units, n_periods, seed=3, counts=True)
    spec = PoissonFE(inference="cr1")
    t_ours = best(lambda: spec.fit(df), repeats)
    t_pf = best(
        lambda: pf.fepois("outcome ~ treat | unit + period", data=df, vcov={"CRV1": "unit"}).coef(),
        repeats,
    )
    return Figure(
        "ppml",
        f"{n_units:,} units x {n_periods} periods",
        t_ours,
        t_pf,
        t_ours / t_pf,
        "reported",
    )


def bench_wild(quick: bool, repeats: int, tmp: Path) -> Figure:
    import statsmodels.api as sm
    from wildboottest.wildboottest import wildboottest

    from evaluation.inference.wild import wild_cluster_bootstrap

    n_clusters, per, reps = (40, 50, 9999) if quick else (100, 100, 9999)
    rng = np.random.default_rng(4)
    codes = np.repeat(np.arange(n_clusters), per)
    x1 = rng.normal(size=codes.size) + rng.normal(size=n_clusters)[codes]
    y = 0.1 * x1 + rng.normal(size=codes.size) + rng.normal(size=n_clusters)[codes]
    X = np.column_stack([np.ones_like(x1), x1])

    def ours() -> None:
        wild_cluster_bootstrap(
            X, y, codes, n_clusters, 1, reps=reps, weights="rademacher", seed=1, interval=False
        )

    model = sm.OLS(y, pd.DataFrame({"const": 1.0, "x1": x1}))

    def reference() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wildboottest(
                model,
                B=reps,
                cluster=codes,
                param="x1",
                weights_type="rademacher",
                seed=1,
                show=False,
            )

    return Figure(
        "wild",
        f"{codes.size:,} rows, {n_clusters} clusters, B = {reps:,}, p-value only",
        best(ours, repeats),
        best(reference, repeats),
        None,
        "reported",
    )


# --------------------------------------------------------------------------------------
# Batched ITS
# --------------------------------------------------------------------------------------


def bench_its_batch(quick: bool, repeats: int, tmp: Path) -> Figure:
    import statsmodels.api as sm

    from evaluation.designs.its import ItsSpec
    from evaluation.designs.its_batch import fit_its_batch

    n = 2000
    months = pd.date_range("2016-01-01", periods=96, freq="MS")
    start = pd.Timestamp("2021-01-01")
    rng = np.random.default_rng(5)
    post = (months >= start).astype(float)
    mu = rng.uniform(2, 50, (n, 1)) * 0.85**post
    counts = pd.DataFrame(rng.poisson(mu), columns=months)
    spec = ItsSpec(family="quasipoisson", se="model", interruptions=())
    batch = fit_its_batch(counts, start, spec)
    t = np.arange(1, 97.0)
    x = pd.DataFrame({"const": 1.0, "time": t, "post": post, "time_since": (t - 61) * post})
    s = (months.month.to_numpy() - 1 + 1).astype(float)
    for j in (1, 2):
        x[f"sin{j}"] = np.sin(2 * np.pi * j * s / 12)
        x[f"cos{j}"] = np.cos(2 * np.pi * j * s / 12)
    y = counts.to_numpy()

    def loop() -> None:
        for i in range(n):
            sm.GLM(y[i], x, family=sm.families.Poisson()).fit(scale="X2")

    first = sm.GLM(y[0], x, family=sm.families.Poisson()).fit(scale="X2")
    agree = float(np.abs(first.params.to_numpy() - batch.params[0]).max())
    return Figure(
        "its_batch",
        f"{n:,} series x 96 months, quasi-Poisson, 8 terms",
        best(lambda: fit_its_batch(counts, start, spec), repeats),
        best(loop, 1),
        None,
        "reported",
        f"max |b - statsmodels b| on series 0: {agree:.1e}",
    )


# --------------------------------------------------------------------------------------
# run-all vs trivial notebooks
# --------------------------------------------------------------------------------------


_RUN_ALL_OURS = """
import sys
from pathlib import Path
from evaluation import batch
paths = [Path(p) for p in sys.argv[3:]]
result = batch.run_all(paths, output_root=sys.argv[1], jobs=int(sys.argv[2]), progress=False)
print(len(result.failed))
"""

_RUN_ALL_REFERENCE = """
import sys
from concurrent.futures import ThreadPoolExecutor
import papermill as pm
notebook, out, jobs, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def one(i):
    # shut down at once, as run-all does: a graceful shutdown now and then waits 3.5 s
    # for a kernel that does not exit, which would only make the reference noisy
    pm.execute_notebook(notebook, f"{out}/trivial-{i}.ipynb", parameters={"x": i},
                        kernel_name="python3", progress_bar=False, shutdown_kernel="immediate")

with ThreadPoolExecutor(jobs) as pool:
    list(pool.map(one, range(n)))
"""


def bench_run_all(quick: bool, repeats: int, tmp: Path) -> Figure:
    """``run-all`` against as many one-cell Papermill notebooks, each side in a fresh Python
    process (its imports and, for ours, the kernel fork server's start included)."""
    import nbformat

    from evaluation import batch, config
    from evaluation.data.default import ensure_default_database

    os.environ.setdefault("EVALUATION_HOME", str(ROOT))
    ensure_default_database()  # built once, outside the timing
    params = sorted(config.params_dir().glob("*.yaml"))
    if quick:
        params = params[:3]
    jobs = batch.default_jobs(len(params))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x + 1"),
    ]
    trivial = tmp / "trivial.ipynb"
    nbformat.write(nb, trivial)
    ours_cmd = [sys.executable, "-c", _RUN_ALL_OURS, str(tmp / "reports"), str(jobs)]
    ours_cmd += [str(p) for p in params]
    ref_cmd = [sys.executable, "-c", _RUN_ALL_REFERENCE, str(trivial), str(tmp), str(jobs)]
    ref_cmd += [str(len(params))]
    failed: list[str] = []

    def timed(cmd: list[str]) -> float:
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp)
        if cmd is ours_cmd:
            failed.append(done.stdout.strip())
        return time.perf_counter() - t

    # best of `repeats` each, alternating: a batch takes seconds, and load comes and goes
    t_ref = t_ours = float("inf")
    for _ in range(max(1, repeats)):
        t_ref = min(t_ref, timed(ref_cmd))
        t_ours = min(t_ours, timed(ours_cmd))
    return Figure(
        "run_all",
        f"{len(params)} evaluations, {jobs} at a time, fresh processes",
        t_ours,
        t_ref,
        t_ours / t_ref,
        "<= 1.5",
        "all published" if set(failed) == {"0"} else f"failed runs: {failed}",
    )


def bench_dashboard(quick: bool, repeats: int, tmp: Path) -> Figure:
    script = ROOT / "benchmarks" / "dashboard.py"
    if not script.exists():
        return Figure(
            "dashboard", "-", None, None, None, "<= 1.3", "benchmarks/dashboard.py absent"
        )
    cmd = [sys.executable, str(script), "--repeats", "1" if quick else "5"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    out = (proc.stdout + proc.stderr).strip().splitlines()
    ratios = [line.strip() for line in out if "ratio" in line]
    tail = " | ".join(ratios or out[-3:])
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    return Figure("dashboard", "see its output", None, None, None, "<= 1.3", f"{status}: {tail}")


BENCHMARKS: dict[str, Callable[[bool, int, Path], Figure | list[Figure]]] = {
    "ingest": bench_ingest,
    "twfe": bench_twfe,
    "did_run": bench_did_run,
    "ppml": bench_ppml,
    "wild": bench_wild,
    "its_batch": bench_its_batch,
    "run_all": bench_run_all,
    "dashboard": bench_dashboard,
}


def machine() -> str:
    """nproc, memory and load average of this machine, one line."""
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{platform.platform()}; nproc {os.cpu_count()}; memory {mem}; load {load}; "
        f"Python {platform.python_version()}"
    )


def _fmt(v: float | None, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.3g}{unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run these")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    figures: list[Figure] = []
    for name in args.only or list(BENCHMARKS):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            started = time.perf_counter()
            try:
                got = BENCHMARKS[name](args.quick, args.repeats, Path(tmp))
            except Exception as err:  # noqa: BLE001 - one broken benchmark must not stop the rest
                traceback.print_exc()
                got = Figure(
                    name, "-", None, None, None, "-", f"error: {type(err).__name__}: {err}"
                )
        for fig in got if isinstance(got, list) else [got]:
            if fig.ratio is None and fig.ours and fig.reference:
                fig.ratio = fig.ours / fig.reference
            figures.append(fig)
            print(
                f"{fig.name:<14} ours {_fmt(fig.ours):>8}  ref {_fmt(fig.reference):>8}  "
                f"ratio {_fmt(fig.ratio, 'x'):>7}  goal {fig.goal:<24} {fig.size}"
                + (f"  [{fig.note}]" if fig.note else "")
                + f"  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    print(f"machine at the end: {machine()}")
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
