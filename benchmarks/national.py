"""Generate -> ingest -> panel at England-and-Wales size, out of core, with time and memory.

Run from the checkout::

    .venv/bin/python benchmarks/national.py --work /big/scratch      # 35,000 x 120 (18 GB)
    .venv/bin/python benchmarks/national.py --quick                   # 2,000 x 12, a temp dir
    .venv/bin/python benchmarks/national.py --archive DIR --work W    # keep the archive in DIR
    .venv/bin/python benchmarks/national.py --memory-limit 2GB --repeats 3 --steps ingest reference

Each step runs in its own Python process so that its peak resident memory (``ru_maxrss``
from ``os.wait4``) is its own; the time a step reports is that of its work alone (the
process's start-up and imports are in ``wall``). DuckDB gets ``--memory-limit`` and spills
to ``<work>/spill``; the largest size that folder reached is sampled every half second.
``--repeats`` runs ingest and reference several times and keeps the fastest of each.
``per s`` is records per second for generate, ingest and reference (``MB/s`` is CSV read
or written per second), and panel rows per second for the panel steps.

Steps (``--steps``; all by default):

=========  ================================================================================
generate   :func:`evaluation.data.national.generate_national` into ``<work>/archive`` (or
           ``--archive``; skipped when that folder already holds street CSVs: reused)
ingest     :func:`evaluation.data.policeuk.ingest` into a fresh ``<work>/ours.duckdb``
reference  DuckDB ``read_csv`` + GROUP BY over the same files into ``<work>/reference.duckdb``
           (as ``bench_ingest`` in ``run.py``): ratio = reference time / ours (throughput)
panel      one crime type (Burglary), every LSOA x month, as a DataFrame (``build_panel``)
totals     all crime types summed per LSOA and month, as a DataFrame
wards      all crime types summed per ward (7 LSOAs each) and month, by type: the profile's
           panel, as a DataFrame
export     every LSOA x month x crime type written to CSV (``export_panel``, the CLI's path)
=========  ================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

STEPS = ("generate", "ingest", "reference", "panel", "totals", "wards", "export")
FULL = (35000, 120)
QUICK = (2000, 12)


# --------------------------------------------------------------------------------------
# Children: one step each, printing one JSON line
# --------------------------------------------------------------------------------------


def _connect(path: Path, args: argparse.Namespace, *, fresh: bool, ours: bool = True) -> Any:
    import duckdb

    from evaluation.data import database, national

    if fresh:
        for stale in (path, path.with_name(path.name + ".wal")):
            stale.unlink(missing_ok=True)
    con = database.connect(path, read_only=not fresh) if ours else duckdb.connect(str(path))
    national.configure_out_of_core(
        con,
        memory_limit=args.memory_limit,
        temp_directory=Path(args.work) / "spill",
        threads=args.threads,
    )
    return con


def _wards(con: Any) -> Any:
    """A made-up ward lookup: LSOAs in code order, 7 to a ward (about England's ratio)."""
    import pandas as pd

    codes = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT lsoa_code FROM counts WHERE lsoa_code IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    return pd.DataFrame(
        {"lsoa11_code": codes, "ward": [f"ward{i // 7:05d}" for i in range(len(codes))]}
    )


def child(step: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one step in this process and return its figures."""
    from evaluation.data import national, panel, policeuk

    work = Path(args.work)
    archive = Path(args.archive) if args.archive else work / "archive"
    db, ref = work / "ours.duckdb", work / "reference.duckdb"
    out: dict[str, Any] = {}
    if step == "generate":
        t = time.perf_counter()
        data = national.generate_national(
            archive, n_lsoas=args.lsoas, months=args.months, seed=args.seed, threads=args.threads
        )
        out.update(seconds=time.perf_counter() - t, records=data.records, files=data.files)
        return out
    if step == "ingest":
        con = _connect(db, args, fresh=True)
        t = time.perf_counter()
        report = policeuk.ingest(archive, con)
        out.update(seconds=time.perf_counter() - t, records=report.rows)
        out.update(files=report.files_ingested, rows=_scalar(con, "SELECT count(*) FROM counts"))
        con.close()
        out["db_bytes"] = db.stat().st_size
        return out
    if step == "reference":
        con = _connect(ref, args, fresh=True, ours=False)
        glob = str(archive / "*" / "*-street.csv").replace("'", "''")
        t = time.perf_counter()
        con.execute(
            f"""CREATE TABLE counts AS SELECT filename, "Month", "LSOA code", "LSOA name",
                "Crime type", "Last outcome category", "Falls within", count(*) AS n
                FROM read_csv('{glob}', header = true, all_varchar = true, filename = true)
                GROUP BY ALL"""
        )
        out.update(
            seconds=time.perf_counter() - t, records=_scalar(con, "SELECT sum(n) FROM counts")
        )
        out["rows"] = _scalar(con, "SELECT count(*) FROM counts")
        con.close()
        out["db_bytes"] = ref.stat().st_size
        return out
    con = _connect(db, args, fresh=False)
    lookup = _wards(con) if step == "wards" else None
    t = time.perf_counter()
    if step == "panel":
        frame = panel.build_panel(con, crime_types=["Burglary"])
    elif step == "totals":
        frame = panel.build_panel(con, by_crime_type=False)
    elif step == "wards":
        frame = panel.build_panel(con, lookup=lookup, group_col="ward", by_crime_type=True)
    elif step == "export":
        path = panel.export_panel(con, work / "panel.csv")
        out.update(seconds=time.perf_counter() - t, csv_bytes=path.stat().st_size)
        out["rows"] = _scalar(con, f"SELECT count(*) FROM read_csv('{_sql(path)}', header = true)")
        path.unlink()
        return out
    else:
        raise SystemExit(f"unknown step {step!r}")
    out.update(seconds=time.perf_counter() - t, rows=len(frame), records=int(frame["count"].sum()))
    out["frame_bytes"] = int(frame.memory_usage(deep=True).sum())
    return out


def _scalar(con: Any, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def _sql(path: Path) -> str:
    return str(path).replace("'", "''")


# --------------------------------------------------------------------------------------
# Parent: run each step in a child, measure, print
# --------------------------------------------------------------------------------------


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):  # a spill file removed while we looked
                total += os.stat(os.path.join(root, name)).st_size
    return total


class _PeakSize:
    """Sample a folder's size in a thread; ``peak`` is the largest seen."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.peak = folder, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, _folder_bytes(self.folder))

    def __enter__(self) -> _PeakSize:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_step(step: str, args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run ``step`` in a fresh interpreter; add its wall time, peak RSS and peak spill."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, *argv]
    started = time.perf_counter()
    with _PeakSize(Path(args.work) / "spill") as spill:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"step": step, "error": f"exit {proc.returncode}", "wall": wall}
    figures = json.loads(output.strip().splitlines()[-1])
    figures.update(step=step, wall=wall, peak_rss=usage.ru_maxrss * 1024, peak_spill=spill.peak)
    figures["cpu"] = usage.ru_utime + usage.ru_stime
    return figures


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with the largest peak memory and spill of them all."""
    done = [r for r in runs if "error" not in r]
    if not done:
        return runs[0]
    best = min(done, key=lambda r: r["seconds"])
    best.update(
        peak_rss=max(r["peak_rss"] for r in done), peak_spill=max(r["peak_spill"] for r in done)
    )
    return best


def _gb(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def report(results: list[dict[str, Any]], archive_bytes: int) -> None:
    """Print one line per step, then the ingest ratio."""
    print(
        f"{'step':<10}{'seconds':>9}{'wall':>8}{'cpu':>8}{'peak RSS':>11}{'spill':>10}"
        f"{'per s':>12}{'MB/s':>7}  output"
    )
    for r in results:
        if "error" in r:
            print(f"{r['step']:<10} failed: {r['error']} after {r['wall']:.0f} s")
            continue
        secs = r["seconds"]
        # records/s for the archive steps, panel rows/s for the panels
        per = r["records"] if r["step"] in STEPS[:3] else r["rows"]
        rate = f"{per / secs:,.0f}"
        mbs = f"{archive_bytes / 1e6 / secs:,.0f}" if r["step"] in STEPS[:3] else "-"
        what = ", ".join(
            f"{k}={_gb(v) if k.endswith('bytes') else f'{v:,}'}"
            for k, v in r.items()
            if k in ("records", "files", "rows", "db_bytes", "csv_bytes", "frame_bytes")
        )
        print(
            f"{r['step']:<10}{secs:>9.1f}{r['wall']:>8.1f}{r['cpu']:>8.1f}"
            f"{_gb(r['peak_rss']):>11}{_gb(r['peak_spill']):>10}{rate:>12}{mbs:>7}  {what}"
        )
    by_step = {r["step"]: r for r in results if "error" not in r}
    if "ingest" in by_step and "reference" in by_step:
        ours, ref = by_step["ingest"]["seconds"], by_step["reference"]["seconds"]
        print(
            f"ingest throughput vs DuckDB read_csv + GROUP BY: {ref / ours:.2f}x "
            f"(ours {ours:.1f} s, reference {ref:.1f} s; goal >= 0.7x)"
        )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lsoas", type=int, help=f"LSOAs (default {FULL[0]:,})")
    parser.add_argument("--months", type=int, help=f"months (default {FULL[1]})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} x {QUICK[1]}")
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    parser.add_argument(
        "--archive", help="archive folder (default <work>/archive); reused if it has CSVs"
    )
    parser.add_argument("--steps", nargs="+", choices=STEPS, help="run only these")
    parser.add_argument("--memory-limit", default="8GB", help="DuckDB's cap (default 8GB)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: cores)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of ingest and reference (the best counts)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    args.lsoas = args.lsoas or size[0]
    args.months = args.months or size[1]
    return args


def _child_argv(args: argparse.Namespace) -> list[str]:
    out = ["--lsoas", str(args.lsoas), "--months", str(args.months), "--work", args.work]
    out += ["--memory-limit", args.memory_limit, "--seed", str(args.seed)]
    out += ["--archive", args.archive] if args.archive else []
    return out + (["--threads", str(args.threads)] if args.threads else [])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        print(json.dumps(child(args.child, args)), flush=True)
        return 0
    temporary = args.work is None
    args.work = args.work or tempfile.mkdtemp(prefix="evaluation-national-")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    archive = Path(args.archive) if args.archive else Path(args.work) / "archive"
    reused = archive.is_dir() and any(archive.glob("*/*-street.csv"))
    steps = [s for s in (args.steps or STEPS) if not (s == "generate" and reused)]
    if reused:
        print(f"reusing the archive in {archive} (no generate step)", flush=True)
    print(
        f"national benchmark: {args.lsoas:,} LSOAs x {args.months} months in {args.work} "
        f"(DuckDB memory_limit {args.memory_limit}, threads {args.threads or os.cpu_count()})",
        flush=True,
    )
    results = []
    try:
        for step in steps:
            tries = args.repeats if step in ("ingest", "reference") else 1
            runs = [run_step(step, args, _child_argv(args)) for _ in range(tries)]
            for r in runs:
                print(f"  {step}: {json.dumps(r)}", flush=True)
            results.append(_best(runs))
        archive_bytes = _folder_bytes(archive)
        print(f"archive {_gb(archive_bytes)} in {archive}")
        report(results, archive_bytes)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if temporary:
            shutil.rmtree(args.work, ignore_errors=True)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
