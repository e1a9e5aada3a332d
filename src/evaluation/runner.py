"""Run an evaluation: validate, execute its notebook with Papermill, publish atomically.

Layout of a report folder ``reports/<name>``::

    reports/<name>            -> a symlink to the latest good run, swapped atomically
    reports/.runs/<name>-<id> the runs themselves (the previous one removed after a swap)
    reports/.failed/<name>-<id> a failed run's executed notebook, kept to show the failing cell

A run first checks the params in-process, then executes the notebook into a fresh run
folder. The notebook loads and checks the data (once: a national panel is not read twice);
bad input found there comes back as the same one-line :class:`InputError` (exit 2), and
the run folder goes, so bad input leaves nothing written. Only when the notebook,
``results.json``, the figures and the HTML report are all there does the symlink move.
A run killed at any moment therefore leaves the previous report in place.

Errors while checking the input: an :class:`InputError` (bad params or data, including
unreadable files, which the data layer wraps with the file's name) is one line and exit
2. Any other exception there is a bug, not the evaluator's fault: it becomes a one-line
:class:`RunError` (exit 1) naming the params file and the exception, still with nothing
written; ``EVALUATION_DEBUG=1`` re-raises it with its traceback.

Staging folders: each run holds an exclusive ``flock`` on ``.runs/.<run>.lock`` while it
lives (the kernel releases it when the process dies, even by SIGKILL). After a successful
swap the run removes this evaluation's older run folders that are not the published one and
whose lock nobody holds: leftovers of killed runs, or of a swap killed before it removed
the previous run. Swaps and this clean-up take ``.runs/.<name>.publish.lock``, so two runs
of the same evaluation never remove each other's folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from evaluation import config, kernels, workflows
from evaluation.errors import InputError, RelayedInputError, RunError

if TYPE_CHECKING:  # api imports the whole stack; the runner's process does not need it
    from evaluation import api

# pandas, pydantic and Papermill are imported where they are used: the kernel fork server
# (kernels.warm_up) starts first and imports in parallel with this process

RUNS = ".runs"
FAILED = ".failed"
#: Set to re-raise unexpected errors met while checking the input, with their traceback.
DEBUG_ENV = "EVALUATION_DEBUG"
_RUN_ID = r"\d{8}T\d{6}-[0-9a-f]{6}"


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
    """Check params and data in-process (raises InputError before anything is written).

    :func:`run` leaves the data to the notebook; this is for checking without a run.
    """
    from evaluation import api

    evaluation = api.load(params_path, database)
    try:
        workflows.prepare(evaluation.context)
    finally:
        evaluation.context.close()
    return evaluation


def prepare_process(designs: Iterable[str] | None = None) -> None:
    """Get this process ready to run evaluations: start the kernel fork server (it imports
    what kernels of ``designs`` need, all designs when None) and, meanwhile, import
    Papermill and make the HTML exporter here. Called by :func:`run`, and by a batch
    before its threads start (threads importing the same modules at once can see them
    half-imported). Later calls cost nothing."""
    kernels.warm_up(designs)
    _papermill()
    _exporter()


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


_html_lock = threading.Lock()
_exporters: list[Any] = []


def _exporter() -> Any:
    """The HTML exporter, its templates compiled: made once per process.

    :func:`prepare_process` makes it while the kernel fork server is still importing, so
    the first report costs no more than the next.
    """
    with _html_lock:
        if not _exporters:
            from nbconvert import HTMLExporter

            exporter = HTMLExporter(
                exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
            )
            # a first render compiles the templates and loads what rendering markdown,
            # tables and images needs (a tenth of a second, now rather than per report)
            exporter.from_notebook_node(_sample_notebook())
            _exporters.append(exporter)
        return _exporters[0]


def _sample_notebook() -> Any:
    """A notebook with the kinds of output an evaluation notebook shows."""
    import nbformat

    v4 = nbformat.v4
    shown = {"text/markdown": "**a**", "text/html": "<table><tr><td>1</td></tr></table>"}
    outputs = [
        v4.new_output("display_data", data={**shown, "text/plain": "1"}),
        v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "i"}),
        v4.new_output("stream", name="stdout", text="1\n"),
    ]
    return v4.new_notebook(
        cells=[v4.new_markdown_cell("# A\n\n*b*"), v4.new_code_cell("1", outputs=outputs)]
    )


def _html(notebook: Path, out: Path) -> None:
    """A code-free HTML report of the executed notebook."""
    import nbformat

    exporter = _exporter()
    with _html_lock:  # one exporter for the threads of a batch: one render at a time
        body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    out.write_text(body, encoding="utf-8")


def _papermill() -> Any:
    """Papermill, imported without the IRI grammar that jsonschema compiles on import.

    nbformat imports jsonschema, whose format checkers import ``rfc3987_syntax`` when it is
    installed (Jupyter Server's event schemas pull it in): compiling its grammar takes
    about 0.7 s, more than the rest of Papermill, on every run (python-jsonschema/
    jsonschema#1428). Notebook validation checks no IRI formats, so the module is hidden
    while jsonschema loads, then made importable again.
    """
    if "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import -> ImportError
        try:
            import jsonschema  # noqa: F401
        finally:
            del sys.modules["rfc3987_syntax"]
    import papermill

    return papermill


def _execute(
    notebook: Path,
    run_dir: Path,
    params_path: Path,
    database: Path | None,
    env: Mapping[str, str] | None = None,
) -> Path:
    pm = _papermill()
    # env: e.g. OPENBLAS_NUM_THREADS=1 for the kernels of a parallel batch
    extra: dict[str, Any] = {"kernel_manager_class": kernels.kernel_manager_class(env)}
    executed = run_dir / f"{params_path.stem}.ipynb"
    try:
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
            # every cell has run and results.json is written: no need to wait for a
            # graceful exit (jupyter_client would interrupt the idle kernel first)
            shutdown_kernel="immediate",
            # the notebook is written once, at the end (a failing cell included), not after
            # every cell: a killed run's folder is thrown away anyway
            request_save_on_cell_execute=False,
            **extra,
        )
    except Exception as err:
        bad = _relayed_input_error(err)
        if bad is None:
            raise
        shutil.rmtree(run_dir, ignore_errors=True)  # bad input: nothing is written
        raise bad from None
    return executed


def run(
    params_path: str | Path,
    *,
    output_dir: str | Path | None = None,
    database: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Validate, execute and publish one evaluation.

    ``env`` (optional) is added to the notebook kernel's environment, e.g.
    ``OPENBLAS_NUM_THREADS=1`` when several kernels share the cores.

    Raises
    ------
    InputError
        On bad params or data, before anything is written.
    """
    started = time.perf_counter()
    params_path = Path(params_path).resolve()
    db = Path(database).resolve() if database else None
    params = _checked(params_path, db)
    prepare_process([params.design])
    notebook = notebook_for(params.design)
    # abspath, not resolve: the target is a symlink whose old run must not be followed
    target = (
        Path(os.path.abspath(output_dir)) if output_dir else config.reports_dir() / params_path.stem
    )
    runs = target.parent / RUNS
    created = _first_missing(runs)  # removed again if the input proves bad
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file where a folder should be, or no permission
        raise InputError(
            target,
            f"cannot create the report folder: {err.strerror or err}",
            key="--output-dir" if output_dir else None,
        ) from None
    os.environ.setdefault("EVALUATION_HOME", str(config.project_root()))
    from evaluation.results import read_results

    try:
        with _staging(runs, target.name) as run_dir:
            try:
                executed = _execute(notebook, run_dir, params_path, db, env)
                _html(executed, run_dir / "report.html")
                results = read_results(run_dir)  # the contract must validate before we publish
                _check_complete(run_dir, executed, results.figures)
            except InputError:
                raise
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
            with _locked(runs / f".{target.name}.publish.lock"):
                publish(run_dir, target)
                remove_stale_runs(target, run_dir)
    except InputError:
        # and the folders it made, or an empty .runs: bad input leaves nothing behind
        _remove_empty(runs, created or runs)
        raise
    from evaluation.report.text import headline

    return RunOutcome(
        name=params_path.stem,
        report=target,
        ok=True,
        seconds=time.perf_counter() - started,
        headline=headline(results),
    )


def _relayed_input_error(err: BaseException) -> InputError | None:
    """The bad-input error a notebook raised, as the same one-line error here; else None."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError) and err.ename in (
        "InputError",
        "RelayedInputError",
    ):
        return RelayedInputError(str(err.evalue))
    return None


def _first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


def _remove_empty(folder: Path, up_to: Path | None) -> None:
    """Remove ``folder`` and its parents up to ``up_to`` if empty (what a run created)."""
    if up_to is None:
        return
    for path in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            path.rmdir()  # only empty folders go
        if path == up_to:
            return


def _checked(params_path: Path, db: Path | None) -> Any:
    """Check the params and open the data source; an unexpected exception becomes a one-line
    RunError. The data themselves are checked by the notebook, which loads them anyway: an
    error there comes back as the same one-line InputError (see :func:`run`)."""
    from evaluation.context import check_params

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the data's warnings reach results.json instead
            params = check_params(params_path, db)[1]
    except InputError:
        raise
    except Exception as err:
        if os.environ.get(DEBUG_ENV):
            raise
        text = " ".join(str(err).split())[:300]
        raise RunError(
            f"{params_path}: unexpected error while checking the input (a bug, not your input; "
            f"{DEBUG_ENV}=1 shows where): {type(err).__name__}: {text}"
        ) from None
    return params


@contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    """Hold an exclusive flock on ``path`` (created if missing) for the block."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield fh  # closing the file releases the lock


@contextmanager
def _staging(runs: Path, name: str) -> Iterator[Path]:
    """A fresh run folder under ``runs``, locked as long as this process runs it."""
    run_id = _run_id()
    lock = runs / f".{name}-{run_id}.lock"
    for _ in range(3):  # a parallel run with bad input may just have removed an empty `runs`
        runs.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            lock.touch()
            break
    with _locked(lock):  # taken before the folder exists: no unlocked live folder
        run_dir = runs / f"{name}-{run_id}"
        run_dir.mkdir()
        try:
            yield run_dir
        finally:
            lock.unlink(missing_ok=True)


def _owner_alive(lock: Path) -> bool:
    """Whether a live process holds the lock of a run folder."""
    try:
        fh = open(lock)  # noqa: SIM115 - closed below; never created here
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def remove_stale_runs(target: Path, current: Path) -> list[Path]:
    """Remove the run folders of ``target`` left by killed runs; return them.

    A folder goes when it belongs to this evaluation (``<name>-<run id>``), is older than
    ``current``, is not what ``target`` points at and no live process holds its lock.
    Call with the publish lock held. Leftover ``.<name>.*.link`` files (a swap killed
    between making its link and moving it into place) go too.
    """
    runs = current.parent
    published = target.resolve() if target.is_symlink() else None
    pattern = re.compile(re.escape(target.name) + "-" + _RUN_ID)
    removed = []
    for folder in sorted(runs.iterdir()):
        try:
            if (
                not pattern.fullmatch(folder.name)
                or folder.name >= current.name
                or folder.is_symlink()
                or not folder.is_dir()
                or folder.resolve() == published
                or _owner_alive(runs / f".{folder.name}.lock")
            ):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            (runs / f".{folder.name}.lock").unlink(missing_ok=True)
        except OSError:  # tidying is best effort: the report is already published
            continue
        removed.append(folder)
    for link in target.parent.glob(f".{target.name}.*.link"):
        if link.is_symlink():  # no swap is under way: we hold the publish lock
            with contextlib.suppress(OSError):
                link.unlink()
    return removed


def _check_complete(run_dir: Path, executed: Path, figures: list[str]) -> None:
    """Every file of a report is there and not empty, or the run is not published."""
    needed = [executed, run_dir / "report.html", run_dir / "results.json"]
    needed += [run_dir / name for name in figures]
    missing = [p.name for p in needed if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise RunError(f"incomplete report: {', '.join(missing)} missing or empty")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    # papermill's PapermillExecutionError carries the cell's exception name and message
    ename = getattr(err, "ename", None)
    evalue = getattr(err, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return text[-1] if text else type(err).__name__


__all__ = ["RunOutcome", "run", "publish", "remove_stale_runs", "validate", "InputError"]
