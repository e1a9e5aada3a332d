"""Runs that can be trusted: atomic publication, determinism and provenance.

* A run killed at any moment (SIGKILL to its process group while the notebook executes,
  or while the report is written and swapped in) leaves the previous report intact and
  publishes no partial one; the next successful run removes the killed runs' leftovers.
* Two runs of the same params on the same data write the same ``results.json`` apart from
  the run's time stamps.
* Every report records the data files' and the params file's sha256, the analysed data's
  hash, package versions, the git commit and the run times, and they are right.

The runs use ``tests/bad_inputs/handled/messy.yaml``: a small tidy CSV (fast to fit) that
is messy enough to carry warnings, which must reach the published ``results.json``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluation import api, runner, workflows
from evaluation.params import load_params, params_dict
from evaluation.provenance import PACKAGES, git_commit, sha256_frame
from evaluation.results import read_results

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
PARAMS = CORPUS / "handled" / "messy.yaml"
DATA = CORPUS / "handled" / "messy_series.csv"
STAMPS = ("run_started", "run_finished")


def _without_stamps(results: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(results))
    for key in STAMPS:
        out["provenance"].pop(key)
    return out


def _load(path: Path) -> dict[str, Any]:
    return json.loads((path / "results.json").read_text())


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> None:
    monkeypatch.setenv("EVALUATION_HOME", str(repo_root))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> tuple[Path, Path]:
    """The same evaluation run twice, into two report folders."""
    os.environ.setdefault("EVALUATION_HOME", str(repo_root))
    out = tmp_path_factory.mktemp("reports")
    targets = []
    for name in ("first", "second"):
        outcome = runner.run(PARAMS, output_dir=out / name)
        assert outcome.ok, outcome.error
        targets.append(outcome.report)
    return targets[0], targets[1]


# --------------------------------------------------------------------------------------
# Determinism and provenance
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_runs_give_the_same_results(two_runs: tuple[Path, Path]) -> None:
    first, second = (_load(p) for p in two_runs)
    assert _without_stamps(first) == _without_stamps(second)
    # the numbers themselves, bit for bit (json keeps floats' shortest round-trip form)
    assert first["estimates"] == second["estimates"] and first["series"] == second["series"]


@pytest.mark.slow
def test_provenance_is_present_and_right(two_runs: tuple[Path, Path], repo_root: Path) -> None:
    published = two_runs[0]
    results = read_results(published)  # the contract validates
    prov = results.provenance
    assert prov.data_files == {DATA.name: hashlib.sha256(DATA.read_bytes()).hexdigest()}
    assert prov.params_file == PARAMS.name
    assert prov.params_hash == hashlib.sha256(PARAMS.read_bytes()).hexdigest()
    assert prov.params == params_dict(load_params(PARAMS))
    assert prov.seed == load_params(PARAMS).model.seed
    # the analysed data: the panel the workflow fitted
    ctx = api.load(PARAMS).context
    assert prov.data_hash == sha256_frame(workflows.prepare(ctx)["counts"].frame)
    assert prov.versions["python"] == platform.python_version()
    for package in PACKAGES:
        assert prov.versions[package] == version(package), package
    # the commit of the code that ran (the checkout this package is imported from)
    expected = git_commit(Path(runner.__file__).resolve().parent)
    assert prov.git_commit == expected
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, check=False
    )
    if head.returncode == 0:  # a git checkout: the commit is HEAD (+dirty when edited)
        assert prov.git_commit is not None and prov.git_commit.startswith(head.stdout.strip())
    started = datetime.fromisoformat(prov.run_started)
    finished = datetime.fromisoformat(prov.run_finished)
    assert started <= finished
    assert 0 <= (finished - started).total_seconds() < 600
    # the report is complete: notebook, HTML, figures
    assert (published / "report.html").stat().st_size > 0
    assert (published / f"{PARAMS.stem}.ipynb").is_file()
    assert results.figures and all((published / f).is_file() for f in results.figures)


@pytest.mark.slow
def test_warnings_reach_the_published_results(two_runs: tuple[Path, Path]) -> None:
    warnings = " | ".join(_load(two_runs[0])["warnings"])
    assert "read as Windows-1252" in warnings
    assert "were not in time order" in warnings
    assert "2 area-period row(s) were missing and were read as zero counts" in warnings


# --------------------------------------------------------------------------------------
# Atomic publication
# --------------------------------------------------------------------------------------


def test_only_dead_older_runs_are_removed(tmp_path: Path) -> None:
    """The clean-up keeps the published run, live runs, newer runs and other evaluations."""
    runs = tmp_path / runner.RUNS
    runs.mkdir()
    names = {
        "dead": "talon-20240101T000000-aaaaaa",  # killed: no live lock
        "dead_locked_file": "talon-20240101T000001-bbbbbb",  # killed: lock file left behind
        "published": "talon-20240101T000002-cccccc",
        "live": "talon-20240101T000003-dddddd",  # another run still going
        "current": "talon-20240101T000004-eeeeee",
        "newer": "talon-20240101T000005-ffffff",
        "other": "talon2-20240101T000000-aaaaaa",  # another evaluation
        "previous_plain": "talon-previous-20240101T000000-abcdef",  # a user's old folder
    }
    for folder in names.values():
        (runs / folder).mkdir()
    (runs / f".{names['dead_locked_file']}.lock").touch()
    live_lock = open(runs / f".{names['live']}.lock", "w")  # noqa: SIM115 - held below
    fcntl.flock(live_lock, fcntl.LOCK_EX)
    target = tmp_path / "talon"
    os.symlink(os.path.relpath(runs / names["published"], tmp_path), target)
    (tmp_path / ".talon.123abc.link").symlink_to(runs / names["dead"])  # a swap killed midway
    try:
        removed = runner.remove_stale_runs(target, runs / names["current"])
    finally:
        live_lock.close()
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["dead_locked_file"]])
    left = sorted(p.name for p in runs.iterdir() if p.is_dir())
    assert left == sorted(v for k, v in names.items() if k not in ("dead", "dead_locked_file"))
    assert not (runs / f".{names['dead_locked_file']}.lock").exists()
    assert not (tmp_path / ".talon.123abc.link").is_symlink()
    assert target.resolve() == (runs / names["published"]).resolve()


def _kernels_of(pid: int) -> list[int]:
    """Kernels that process ``pid`` started the ordinary way (``JPY_PARENT_PID`` is its id).

    Forked kernels name their fork server instead; they share the run's process group and
    die with the ``killpg`` above, and tests/test_kernels.py checks that they also exit when
    only the run itself is killed.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"JPY_PARENT_PID={pid}".encode() in environ:
            found.append(int(entry.name))
    return found


def _wait_for_orphans(pid: int, timeout: float = 15.0) -> None:
    """A killed run's kernel notices its parent died and exits within about a second;
    kill it by its id if it has not after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := _kernels_of(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for kernel in left:
        os.kill(kernel, signal.SIGKILL)


def _assert_complete(target: Path) -> dict[str, Any]:
    """``target`` resolves to a whole report whose results validate; returns them."""
    assert target.is_symlink()
    folder = target.resolve()
    results = read_results(folder)
    assert (folder / "report.html").stat().st_size > 0
    assert (folder / f"{PARAMS.stem}.ipynb").stat().st_size > 0
    assert all((folder / f).stat().st_size > 0 for f in results.figures)
    return _load(folder)


@pytest.mark.slow
def test_killed_runs_leave_the_previous_report(tmp_path: Path, repo_root: Path) -> None:
    target = tmp_path / "reports" / "messy"
    env = {k: v for k, v in os.environ.items() if k != runner.DEBUG_ENV}
    env["EVALUATION_HOME"] = str(repo_root)
    cmd = [sys.executable, "-m", "evaluation.cli", "run", str(PARAMS), "--output-dir", str(target)]

    durations = []
    for _ in range(2):  # the faster of two runs: a loaded machine can slow the first
        began = time.monotonic()
        good = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        durations.append(time.monotonic() - began)
        assert good.returncode == 0, good.stderr
    duration = min(durations)
    reference = _assert_complete(target)
    published = target.resolve()
    reference_bytes = (published / "results.json").read_bytes()

    # seeded random moments, as shares of a run: early ones (start-up, checks, kernel
    # start), ones spread over the run (notebook execution) and two late ones aimed at the
    # HTML export and the swap
    rng = np.random.default_rng(20240401)
    delays = [
        *rng.uniform(0.05, 0.35, size=3) * duration,
        *rng.uniform(0.4, 0.85, size=2) * duration,
        0.9 * duration,
        0.97 * duration,
    ]
    killed = 0
    for delay in delays:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a shell job would be
        )
        try:
            proc.wait(timeout=delay)
            finished = True  # faster than the delay: a normal, complete run
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            finished, killed = False, killed + 1
        _wait_for_orphans(proc.pid)
        now = _assert_complete(target)  # never a partial report
        if target.resolve() == published:
            assert (published / "results.json").read_bytes() == reference_bytes
        else:  # the run finished, or was killed after its swap: a whole new report
            assert _without_stamps(now) == _without_stamps(reference), (delay, finished)
            published, reference_bytes = target.resolve(), (target / "results.json").read_bytes()
        reports = sorted(p.name for p in target.parent.iterdir() if not p.name.startswith("."))
        assert reports == ["messy"], reports
        assert not (target.parent / runner.FAILED).exists()
    # the two late moments may fall after a fast run has finished (also a valid case)
    assert killed >= 4, f"only {killed} runs were killed before finishing"

    # the next successful run removes what the killed runs left behind
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    _assert_complete(target)
    runs = target.parent / runner.RUNS
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert folders == [target.resolve()], folders
    assert not list(runs.glob(".messy-*.lock")), "killed runs' lock files left behind"
    assert not list(target.parent.glob(".messy.*.link"))
