"""Run an evaluation: validate, execute its notebook with Papermill, publish atomically.

Layout of a report folder ``reports/<name>``::

    reports/<name>            -> a symlink to the latest good run, swapped atomically
    reports/.runs/<name>-<id> the runs themselves (the previous one removed after a swap)
    reports/.failed/<name>-<id> a failed run's executed notebook, kept to show the failing cell

A run first validates the params and the data in-process, so bad input exits 2 with
nothing written. It then executes the notebook into a fresh run folder; only when the
notebook, ``results.json``, the figures and the HTML report are all there does the
symlink move. A run killed at any moment therefore leaves the previous report in place.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from evaluation import api, config, workflows
from evaluation.errors import InputError, RunError
from evaluation.params import load_params
from evaluation.results import read_results

RUNS = ".runs"
FAILED = ".failed"


@dataclass(frozen=True)
class RunOutcome:
    """What one run produced."""

    name: str
    report: Path  # the published folder (symlink) or the failed run's folder
    ok: bool
    seconds: float
    headline: str = ""
    error: str = ""


def notebook_for(design: str) -> Path:
    """The parameterised notebook that runs ``design``."""
    path = config.notebooks_dir() / workflows.NOTEBOOKS[design]
    if not path.exists():
        raise RunError(f"notebook for design {design!r} not found: {path}")
    return path


def validate(params_path: Path, database: Path | None) -> api.Evaluation:
    """Check params and data in-process (raises InputError before anything is written)."""
    evaluation = api.load(params_path, database)
    try:
        workflows.prepare(evaluation.context)
    finally:
        evaluation.context.close()
    return evaluation


def _run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def publish(run_dir: Path, target: Path) -> None:
    """Point ``target`` at ``run_dir`` atomically; remove the run it pointed at before."""
    previous = target.resolve() if target.is_symlink() else None
    if target.exists() and not target.is_symlink():
        # a plain folder (from an older layout or a user): keep it as a run, then swap
        os.replace(target, run_dir.parent / f"{target.name}-previous-{_run_id()}")
    link = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.link")
    os.symlink(os.path.relpath(run_dir, target.parent), link)
    os.replace(link, target)  # atomic: readers see the old run or the new one
    if previous and previous != run_dir.resolve() and previous.exists():
        shutil.rmtree(previous, ignore_errors=True)


def _html(notebook: Path, out: Path) -> None:
    """A code-free HTML report of the executed notebook."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    out.write_text(body, encoding="utf-8")


def _execute(notebook: Path, run_dir: Path, params_path: Path, database: Path | None) -> Path:
    import papermill as pm

    executed = run_dir / f"{params_path.stem}.ipynb"
    pm.execute_notebook(
        str(notebook),
        str(executed),
        parameters={
            "params_path": str(params_path),
            "output_dir": str(run_dir),
            "database": str(database) if database else None,
        },
        cwd=str(config.project_root()),
        progress_bar=False,
        kernel_name="python3",
    )
    return executed


def run(
    params_path: str | Path,
    *,
    output_dir: str | Path | None = None,
    database: str | Path | None = None,
) -> RunOutcome:
    """Validate, execute and publish one evaluation.

    Raises
    ------
    InputError
        On bad params or data, before anything is written.
    """
    started = time.perf_counter()
    params_path = Path(params_path).resolve()
    db = Path(database).resolve() if database else None
    params = load_params(params_path)
    validate(params_path, db)
    # abspath, not resolve: the target is a symlink whose old run must not be followed
    target = (
        Path(os.path.abspath(output_dir)) if output_dir else config.reports_dir() / params_path.stem
    )
    runs = target.parent / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = runs / f"{target.name}-{_run_id()}"
    run_dir.mkdir()
    os.environ.setdefault("EVALUATION_HOME", str(config.project_root()))
    try:
        executed = _execute(notebook_for(params.design), run_dir, params_path, db)
        _html(executed, run_dir / "report.html")
        results = read_results(run_dir)  # the contract must validate before we publish
    except Exception as err:  # noqa: BLE001 - any failure keeps the old report
        failed = target.parent / FAILED / run_dir.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(run_dir, failed)
        return RunOutcome(
            name=params_path.stem,
            report=failed,
            ok=False,
            seconds=time.perf_counter() - started,
            error=_one_line(err),
        )
    publish(run_dir, target)
    from evaluation.report.text import headline

    return RunOutcome(
        name=params_path.stem,
        report=target,
        ok=True,
        seconds=time.perf_counter() - started,
        headline=headline(results),
    )


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    # papermill's PapermillExecutionError carries the cell's exception name and message
    ename = getattr(err, "ename", None)
    evalue = getattr(err, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return text[-1] if text else type(err).__name__


__all__ = ["RunOutcome", "run", "publish", "validate", "InputError"]
