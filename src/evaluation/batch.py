"""Run many evaluations at once: in parallel on this machine, or on a Dask cluster.

Each evaluation is one call of :func:`evaluation.runner.run` (validate, execute the notebook
with Papermill, publish atomically), so a failing evaluation never replaces a good earlier
report. A batch never stops at a failure: bad input (:class:`InputError`) and run failures
(:class:`RunError`, or a notebook that fails) become a failed :class:`RunOutcome` and the
other evaluations carry on. A kernel that fails to *start* (a crowded machine can miss the
start-up timeout) is retried once.

Local batches run at most ``cores`` evaluations at a time. Each evaluation runs in its own
kernel process, so threads suffice here; every kernel gets ``OPENBLAS_NUM_THREADS=1`` (and
the OpenMP/MKL equivalents): with several kernels sharing two cores, multi-threaded BLAS
only thrashes.

With ``scheduler`` (a Dask distributed address, e.g. ``tcp://10.0.0.5:8786``) each
evaluation is one task that calls :func:`runner.run` on a worker. Workers must see the same
files (checkout, params, database, reports folder) at the same paths: a shared file system.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation import config, distributed
from evaluation.errors import InputError, RunError
from evaluation.runner import RunOutcome

#: Added to each kernel's environment in a batch: one BLAS/OpenMP thread per kernel.
SINGLE_THREAD_ENV: dict[str, str] = config.SINGLE_THREAD_ENV

#: How a kernel that never started shows in a run's error (jupyter_client, nbclient, zmq).
_KERNEL_START_FAILURE = re.compile(
    r"Kernel died before replying to kernel_info|Kernel didn't respond|"
    r"NoSuchKernel|No such kernel|Address already in use|kernel.{0,40}(?:start|launch)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BatchResult:
    """The outcomes of a batch, in the order the params files were given."""

    outcomes: tuple[RunOutcome, ...]
    seconds: float

    @property
    def failed(self) -> tuple[RunOutcome, ...]:
        """The evaluations that did not publish a report."""
        return tuple(o for o in self.outcomes if not o.ok)

    @property
    def ok(self) -> bool:
        """Whether every evaluation published a report."""
        return not self.failed

    def summary(self) -> str:
        """A plain-text table: evaluation, status, time and headline (or the error)."""
        return summary_table(self.outcomes)


def kernel_start_failed(outcome: RunOutcome) -> bool:
    """Whether a failed run failed because its kernel did not start."""
    return not outcome.ok and bool(_KERNEL_START_FAILURE.search(outcome.error))


def run_one(
    params_path: str | Path,
    *,
    database: str | Path | None = None,
    output_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    retries: int = 1,
    home: str | None = None,
    run: Callable[..., RunOutcome] | None = None,
) -> RunOutcome:
    """Run one evaluation and always return an outcome (never raise for its failure).

    Parameters
    ----------
    params_path
        The params YAML.
    database, output_dir
        As for :func:`evaluation.runner.run`.
    env
        Added to the kernel's environment.
    retries
        How many times to retry a run whose kernel failed to start.
    home
        ``EVALUATION_HOME`` for a worker process that has none (Dask workers).
    run
        The function that runs one evaluation (tests substitute it); :func:`runner.run`.

    Returns
    -------
    RunOutcome
        Failed, with the one-line error, on bad input or a failed run.
    """
    if home:
        os.environ.setdefault("EVALUATION_HOME", home)
    if run is None:
        from evaluation import runner

        run = runner.run
    path = Path(params_path)
    started = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            outcome = run(path, output_dir=output_dir, database=database, env=env)
        except (InputError, RunError) as err:
            text = str(err) if isinstance(err, InputError) else f"error: {err}"
            return RunOutcome(path.stem, path, ok=False, seconds=_since(started), error=text)
        if not kernel_start_failed(outcome) or attempt == retries:
            return outcome
    raise AssertionError("unreachable")  # pragma: no cover


def _since(started: float) -> float:
    return time.perf_counter() - started


def default_jobs(n_runs: int, jobs: int | None = None) -> int:
    """Parallel runs: ``jobs`` if given, else the usable cores; never more than the runs."""
    if jobs is None:
        try:
            jobs = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            jobs = os.cpu_count() or 1
    return max(1, min(jobs, n_runs))


def run_all(
    params: Sequence[str | Path],
    *,
    database: str | Path | None = None,
    output_root: str | Path | None = None,
    jobs: int | None = None,
    scheduler: str | Any | None = None,
    progress: bool = True,
    env: Mapping[str, str] | None = None,
    retries: int = 1,
    run: Callable[..., RunOutcome] | None = None,
) -> BatchResult:
    """Run every params file; one failure never stops the others.

    Parameters
    ----------
    params
        Params YAML files.
    database
        DuckDB file for every run (the default database when None).
    output_root
        Folder receiving ``<name>/`` per evaluation; ``config.reports_dir()`` when None.
    jobs
        Local runs at a time (default: the usable cores). Ignored with ``scheduler``.
    scheduler
        A Dask distributed scheduler address, or a ``distributed.Client``; runs locally
        when None.
    progress
        Show a progress bar (tqdm, on stderr).
    env
        Kernel environment; :data:`SINGLE_THREAD_ENV` when None.
    retries
        Retries of a run whose kernel failed to start.
    run
        Replacement for :func:`runner.run` (tests); not sent to a cluster.

    Returns
    -------
    BatchResult
    """
    started = time.perf_counter()
    paths = [Path(p).resolve() for p in params]
    db = str(Path(database).resolve()) if database else None
    root = Path(os.path.abspath(output_root)) if output_root else None
    kernel_env = dict(SINGLE_THREAD_ENV if env is None else env)
    kwargs = [
        {
            "params_path": str(p),
            "database": db,
            "output_dir": str(root / p.stem) if root else None,
            "env": kernel_env,
            "retries": retries,
        }
        for p in paths
    ]
    if scheduler is not None:
        outcomes = _on_cluster(scheduler, kwargs, progress)
    else:
        outcomes = _locally(kwargs, default_jobs(len(paths), jobs), progress, run)
    return BatchResult(tuple(outcomes), _since(started))


def _bar(total: int, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="evaluations", unit="run", disable=not progress)


def _locally(
    kwargs: list[dict[str, Any]], jobs: int, progress: bool, run: Callable[..., RunOutcome] | None
) -> list[RunOutcome]:
    """Threads, each driving one kernel process at a time."""
    if run is None:
        from evaluation import runner

        # one fork server for the whole batch, with every design's modules; Papermill and
        # the HTML exporter imported here, before the threads, while the server imports
        runner.prepare_process()
    results: list[RunOutcome | None] = [None] * len(kwargs)
    with ThreadPoolExecutor(max_workers=jobs) as pool, _bar(len(kwargs), progress) as bar:
        futures = {pool.submit(run_one, **kwargs[i], run=run): i for i in longest_first(kwargs)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            bar.set_postfix_str(results[i].name)  # type: ignore[union-attr]
            bar.update()
    return [r for r in results if r is not None]


def longest_first(kwargs: Sequence[Mapping[str, Any]]) -> list[int]:
    """The runs in order of their last published duration, longest first (new ones last).

    Starting the long evaluations first keeps every worker busy to the end of the batch
    (longest-processing-time scheduling); the durations come from each report's
    ``results.json`` provenance, so the order is only a guess and never affects results.
    """
    last = [_last_duration(kw) for kw in kwargs]
    return sorted(range(len(kwargs)), key=lambda i: -last[i])  # stable: file order on ties


def _last_duration(kw: Mapping[str, Any]) -> float:
    """Seconds the published report of this run took to compute, or 0 when unknown."""
    import json
    from datetime import datetime

    folder = Path(kw["output_dir"]) if kw.get("output_dir") else None
    folder = folder or config.reports_dir() / Path(kw["params_path"]).stem
    try:  # only two time stamps are needed: no validation of the whole contract
        prov = json.loads((folder / "results.json").read_text(encoding="utf-8"))["provenance"]
        took = datetime.fromisoformat(prov["run_finished"]) - datetime.fromisoformat(
            prov["run_started"]
        )
    except Exception:  # noqa: BLE001 - no report, an old or unreadable one: no guess
        return 0.0
    return max(took.total_seconds(), 0.0)


def _on_cluster(
    scheduler: str | Any, kwargs: list[dict[str, Any]], progress: bool
) -> list[RunOutcome]:
    """One Dask task per evaluation; each calls :func:`runner.run` on its worker."""
    from distributed import Client, as_completed

    home = str(config.project_root())
    own = isinstance(scheduler, str)
    client: Any = Client(scheduler) if own else scheduler
    try:
        address = client.scheduler.address
        limit = in_flight_limit(sum(client.nthreads().values()))

        def submit(i: int) -> Any:
            # the kernel sends its heavy inference to the same cluster
            kw = {**kwargs[i], "env": {**kwargs[i]["env"], distributed.SCHEDULER_ENV: address}}
            # pure=False: a re-run is new work, never a cached result
            return client.submit(
                run_one, **kw, home=home, pure=False, key=f"evaluation-{i}-{kw_name(kw)}"
            )

        futures = [submit(i) for i in range(min(limit, len(kwargs)))]
        order = {f.key: i for i, f in enumerate(futures)}
        queue = as_completed(futures)
        results: list[RunOutcome | None] = [None] * len(kwargs)
        with _bar(len(kwargs), progress) as bar:
            for future in queue:
                i = order[future.key]
                results[i] = _task_outcome(future, kwargs[i])
                bar.update()
                if len(order) < len(kwargs):  # one finished: start the next
                    following = len(order)
                    nxt = submit(following)
                    order[nxt.key] = following
                    queue.add(nxt)
        return [r for r in results if r is not None]
    finally:
        if own:
            client.close()


def in_flight_limit(threads: int) -> int:
    """Evaluations running at once on a cluster with ``threads`` worker threads.

    An evaluation's task mostly waits for its kernel, and the kernel sends its heavy
    inference back to the cluster as tasks of its own: if evaluations held every thread,
    those tasks would never run. Half the threads (at least one) stay free for them.
    """
    return max(1, threads // 2)


def kw_name(kw: Mapping[str, Any]) -> str:
    """The evaluation name of one run's arguments."""
    return Path(kw["params_path"]).stem


def _task_outcome(future: Any, kw: Mapping[str, Any]) -> RunOutcome:
    """The outcome of a task; a lost worker or task becomes a failed outcome too."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - a cluster failure must not stop the batch
        path = Path(kw["params_path"])
        return RunOutcome(
            path.stem, path, ok=False, seconds=0.0, error=f"{type(err).__name__}: {err}"
        )


def summary_table(outcomes: Iterable[RunOutcome]) -> str:
    """Evaluation, status, time and the headline (or the one-line error) per run."""
    outcomes = list(outcomes)
    width = max([len("evaluation"), *(len(o.name) for o in outcomes)])
    lines = [f"{'evaluation':<{width}}  {'status':<6}  {'time':>7}  headline"]
    for o in outcomes:
        status = "ok" if o.ok else "FAILED"
        text = o.headline if o.ok else o.error
        lines.append(f"{o.name:<{width}}  {status:<6}  {o.seconds:>6.1f}s  {text}")
    return "\n".join(lines)


def command(
    params: Sequence[str],
    *,
    database: str | None,
    jobs: int | None,
    scheduler: str | None,
    quiet: bool,
    output_root: str | None = None,
) -> int:
    """``evaluation run-all``: run, print the summary, return the exit code.

    Exit 0 when every evaluation published a report, 1 when any failed.
    """
    from evaluation import kernels

    if scheduler is None:  # the fork server imports while this process checks and builds
        kernels.warm_up()
    from evaluation.data.default import ensure_default_database

    files = [Path(p) for p in params] or sorted(config.params_dir().glob("*.yaml"))
    if not files:
        raise InputError(config.params_dir(), "no params files found")
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(missing[0], "no such params file")
    # built once here, not by several runs at the same time
    ensure_default_database(Path(database) if database else None)
    result = run_all(
        files,
        database=database,
        output_root=output_root,
        jobs=jobs,
        scheduler=scheduler,
        progress=not quiet,
    )
    print()
    print(result.summary())
    where = output_root or _rel(config.reports_dir())
    print(
        f"\n{len(result.outcomes) - len(result.failed)} of {len(result.outcomes)} evaluations "
        f"published in {result.seconds:.1f} s; reports are in {where}/<name>/"
    )
    for o in result.failed:
        print(f"{o.name}: failed; see {_rel(o.report)}", file=_stderr())
    _publish_dashboards(Path(output_root) if output_root else config.reports_dir())
    return config.EXIT_RUN_FAILED if result.failed else 0


def _publish_dashboards(reports: Path) -> None:
    """End a batch with the dashboards available: static pages, and how to serve them live."""
    from evaluation.dashboard import publish

    out = reports / "dashboards"
    publish.publish(reports, out)
    print(f"dashboards: {_rel(out / 'index.html')} (static, code-free, for emailing)")
    print("live dashboards: evaluation dashboard  (serves them on http://127.0.0.1:8866)")


def _stderr() -> Any:
    import sys

    return sys.stderr


def _rel(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if rel.startswith("..") else rel


__all__ = [
    "BatchResult",
    "SINGLE_THREAD_ENV",
    "command",
    "default_jobs",
    "kernel_start_failed",
    "run_all",
    "run_one",
    "summary_table",
]
