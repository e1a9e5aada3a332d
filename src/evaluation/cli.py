"""The ``evaluation`` command line.

Bad input prints one line naming the file and the key or line, and exits 2. A run that
fails while executing exits 1 and keeps its executed notebook under ``reports/.failed``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation import __version__, config
from evaluation.errors import InputError, RunError


def _db(args: argparse.Namespace) -> Path:
    return Path(args.database) if args.database else config.default_database()


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load police.uk street-level CSVs, folders or monthly zips into the database."""
    from evaluation.data import database, policeuk

    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.exists():
            raise InputError(p, "no such file or folder")
    db = _db(args)
    existed = db.exists()
    con = database.connect(db)
    _out_of_core(con, args)
    try:
        report = policeuk.ingest(
            paths, con, crosswalk=Path(args.crosswalk) if args.crosswalk else None
        )
    except InputError:
        con.close()
        if not existed:  # a failed first ingest leaves no empty database behind
            db.unlink(missing_ok=True)
            db.with_name(db.name + ".wal").unlink(missing_ok=True)
        raise
    con.close()
    print(report.summary())
    return 0


def cmd_panel(args: argparse.Namespace) -> int:
    """Export zero-filled counts: area, month, crime_type, count."""
    from evaluation.data import database, panel
    from evaluation.data.default import ensure_default_database, is_default

    db = _db(args)
    if is_default(db):
        ensure_default_database(db)
    if not db.exists():
        raise InputError(db, "database not found; run `evaluation ingest` first")
    con = database.connect(db, read_only=True)
    _out_of_core(con, args)
    try:
        months = (args.start, args.end) if args.start or args.end else None
        out = panel.export_panel(
            con,
            out=Path(args.out),
            crime_types=args.crime_type or None,
            months=months,
            lookup=Path(args.lookup) if args.lookup else None,
            lookup_key=args.lookup_key,
            group_col=args.group,
            population=Path(args.population) if args.population else None,
        )
    finally:
        con.close()
    print(f"wrote {out}")
    return 0


_MEMORY = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def _out_of_core(con: Any, args: argparse.Namespace) -> None:
    """Cap DuckDB's memory and name its spill folder, when asked (national-size data)."""
    if not (args.memory_limit or args.temp_dir):
        return
    from evaluation.data.national import configure_out_of_core

    limit = args.memory_limit or "16GB"
    if not _MEMORY.fullmatch(limit.strip()):
        raise InputError(None, f"{limit!r} is not a memory size such as 8GB", key="--memory-limit")
    configure_out_of_core(con, memory_limit=limit.strip(), temp_directory=args.temp_dir)


def cmd_generate(args: argparse.Namespace) -> int:
    """Write the synthetic police.uk-format default data (or a national-size archive)."""
    from evaluation.data import synthetic

    if args.national:
        from evaluation.data.national import generate_national

        if not args.out:
            raise InputError(None, "give the folder for the national archive", key="--out")
        made = generate_national(args.out, n_lsoas=args.lsoas, months=args.months, seed=args.seed)
        print(
            f"wrote a SYNTHETIC national-size police.uk archive to {made.root}: "
            f"{made.records:,} records in {made.files:,} files ({made.bytes / 2**30:.1f} GiB)"
        )
        return 0
    out = Path(args.out) if args.out else config.synthetic_dir()
    generated = synthetic.generate(out, seed=args.seed)
    print(f"wrote SYNTHETIC police.uk-format data to {generated.street_dir.parent}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run one evaluation."""
    from evaluation import distributed, runner

    env = {distributed.SCHEDULER_ENV: args.scheduler} if args.scheduler else None
    outcome = runner.run(args.params, output_dir=args.output_dir, database=args.database, env=env)
    if not outcome.ok:
        print(f"error: {args.params}: run failed: {outcome.error}", file=sys.stderr)
        print(f"the executed notebook is kept in {_rel(outcome.report)}", file=sys.stderr)
        return config.EXIT_RUN_FAILED
    print(outcome.headline)
    print(f"report: {_rel(outcome.report)} ({outcome.seconds:.1f} s)")
    return 0


def cmd_run_all(args: argparse.Namespace) -> int:
    """Run every params file (or those given), in parallel, and summarise."""
    from evaluation import batch

    return batch.command(
        args.params,
        database=args.database,
        jobs=args.jobs,
        scheduler=args.scheduler,
        quiet=args.quiet,
        output_root=args.output_root,
    )


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the funders' dashboards (Voila) until interrupted."""
    from evaluation.dashboard import catalog, server

    server.serve(catalog.reports_dir(), host=args.host, port=args.port, token=args.token)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Write static, code-free HTML of every dashboard."""
    from evaluation.dashboard import catalog, publish

    written = publish.publish(catalog.reports_dir(), Path(args.dir))
    print(f"wrote {len(written)} files to {args.dir} (open index.html)")
    return 0


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:  # another drive
        return str(path)


def _out_of_core_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory-limit", help="cap DuckDB's memory, e.g. 8GB (spills beyond it)")
    p.add_argument("--temp-dir", help="where DuckDB spills (default: next to the database)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="evaluation",
        description="Evaluate community-safety interventions on recorded crime.",
    )
    parser.add_argument("--version", action="version", version=f"evaluation {__version__}")
    parser.add_argument("--database", help="DuckDB file (default: data/evaluation.duckdb)")
    sub = parser.add_subparsers(dest="command", required=True)
    # --database is accepted before or after the subcommand
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    p = sub.add_parser(
        "ingest", parents=[common], help="load police.uk street CSVs, folders or monthly zips"
    )
    p.add_argument("paths", nargs="+")
    p.add_argument("--crosswalk", help="LSOA 2011 -> 2021 crosswalk CSV")
    _out_of_core_options(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "panel", parents=[common], help="export zero-filled counts as area,month,crime_type,count"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--crime-type", action="append", help="repeat to keep several")
    p.add_argument("--start", help="first month, YYYY-MM")
    p.add_argument("--end", help="last month, YYYY-MM")
    p.add_argument("--lookup", help="CSV mapping LSOA codes to groups")
    p.add_argument("--lookup-key", default="lsoa11_code")
    p.add_argument("--group", help="lookup column to group LSOAs by (e.g. ward)")
    p.add_argument("--population", help="CSV of populations for offsets")
    _out_of_core_options(p)
    p.set_defaults(func=cmd_panel)

    p = sub.add_parser("generate", parents=[common], help="write the synthetic default data")
    p.add_argument("--out")
    p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    p.add_argument(
        "--national", action="store_true", help="an England-and-Wales-size archive instead"
    )
    p.add_argument("--lsoas", type=int, default=35000, help="with --national (default 35,000)")
    p.add_argument("--months", type=int, default=120, help="with --national (default 120)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", parents=[common], help="run one evaluation")
    p.add_argument("params")
    p.add_argument("--output-dir")
    p.add_argument("--scheduler", help="Dask distributed scheduler address for the heavy inference")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("run-all", parents=[common], help="run every params/*.yaml (or those given)")
    p.add_argument("params", nargs="*")
    p.add_argument("--jobs", type=int, help="parallel runs (default: cores)")
    p.add_argument("--scheduler", help="Dask distributed scheduler address (runs on the cluster)")
    p.add_argument("--output-root", help="folder for the reports (default: reports/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run_all)

    p = sub.add_parser("dashboard", parents=[common], help="serve the funders' dashboards (Voila)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--token", help="access token viewers must give")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("publish", parents=[common], help="write static HTML of every dashboard")
    p.add_argument("dir")
    p.set_defaults(func=cmd_publish)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, turn bad input into one line and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as err:
        print(str(err), file=sys.stderr)
        return config.EXIT_BAD_INPUT
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        return config.EXIT_RUN_FAILED
    except Exception as err:  # a bug, not bad input: one line unless debugging
        if os.environ.get("EVALUATION_DEBUG"):
            raise
        print(
            f"error: unexpected {type(err).__name__}: {err} (EVALUATION_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return config.EXIT_RUN_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
