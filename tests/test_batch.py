"""Batches of evaluations: ``evaluation run-all`` locally and on a Dask cluster.

The logic (failures caught per run, kernel start-up retried once, order kept, exit code) is
tested with a stand-in for ``runner.run``; real runs use two small tidy-CSV ITS params files
written in a temporary folder plus one params file with bad input.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from evaluation import batch, cli, kernels
from evaluation.errors import InputError, RunError
from evaluation.results import read_results
from evaluation.runner import RunOutcome


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> None:
    monkeypatch.setenv("EVALUATION_HOME", str(repo_root))


# --------------------------------------------------------------------------------------
# Logic, with a stand-in for runner.run
# --------------------------------------------------------------------------------------


class FakeRun:
    """Records calls; behaviour per params stem: ok, bad input, run error, failing kernel."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.envs: list[dict[str, str]] = []
        self.delay = delay
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, path: Path, *, output_dir=None, database=None, env=None) -> RunOutcome:
        with self.lock:
            self.calls.append(path.stem)
            self.envs.append(dict(env or {}))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.delay)
            stem = path.stem
            if stem.startswith("bad"):
                raise InputError(path, "no such area", key="data.units")
            if stem.startswith("bug"):
                raise RunError(f"{path}: unexpected error while checking the input")
            if stem.startswith("flaky") and self.calls.count(stem) == 1:
                return RunOutcome(
                    stem,
                    path,
                    False,
                    0.1,
                    error="RuntimeError: Kernel died before replying to kernel_info",
                )
            if stem.startswith("broken"):
                return RunOutcome(
                    stem, path, False, 0.1, error="ZeroDivisionError: division by zero"
                )
            return RunOutcome(stem, path, True, 0.1, headline=f"{stem} fell by 10%")
        finally:
            with self.lock:
                self.running -= 1


def _paths(*stems: str) -> list[Path]:
    return [Path(f"/nowhere/{s}.yaml") for s in stems]


def test_failures_are_caught_per_run_and_order_is_kept() -> None:
    fake = FakeRun()
    result = batch.run_all(
        _paths("a", "bad", "b", "bug", "broken"), jobs=2, progress=False, run=fake
    )
    assert [o.name for o in result.outcomes] == ["a", "bad", "b", "bug", "broken"]
    assert [o.ok for o in result.outcomes] == [True, False, True, False, False]
    assert {o.name for o in result.failed} == {"bad", "bug", "broken"}
    assert not result.ok
    errors = {o.name: o.error for o in result.outcomes}
    assert "data.units: no such area" in errors["bad"]
    assert "unexpected error" in errors["bug"]
    table = result.summary().splitlines()
    assert table[0].split()[:4] == ["evaluation", "status", "time", "headline"]
    assert any(
        line.startswith("a ") and " ok " in line and "a fell by 10%" in line for line in table
    )
    assert any(
        line.startswith("broken") and "FAILED" in line and "ZeroDivision" in line for line in table
    )


def test_kernel_that_fails_to_start_is_retried_once() -> None:
    fake = FakeRun()
    result = batch.run_all(_paths("flaky", "broken"), jobs=1, progress=False, run=fake)
    assert fake.calls.count("flaky") == 2  # failed start, then the retry
    assert fake.calls.count("broken") == 1  # a failing notebook is not retried
    assert [o.ok for o in result.outcomes] == [True, False]
    never = batch.run_all(_paths("flaky"), jobs=1, progress=False, retries=0, run=FakeRun())
    assert not never.ok and "Kernel died" in never.outcomes[0].error


def test_runs_are_bounded_by_jobs_and_kernels_get_one_blas_thread() -> None:
    fake = FakeRun(delay=0.05)
    batch.run_all(_paths(*"abcdef"), jobs=2, progress=False, run=fake)
    assert fake.most == 2  # parallel, but never more than jobs at once
    assert all(e["OPENBLAS_NUM_THREADS"] == "1" and e["OMP_NUM_THREADS"] == "1" for e in fake.envs)
    assert batch.default_jobs(10, None) >= 1 and batch.default_jobs(1, 8) == 1


def test_kernel_start_failure_recognised() -> None:
    def outcome(error: str) -> RunOutcome:
        return RunOutcome("x", Path("x"), False, 0.0, error=error)

    assert batch.kernel_start_failed(outcome("RuntimeError: Kernel didn't respond in 60 seconds"))
    assert not batch.kernel_start_failed(outcome("ValueError: the start is outside the data"))


# --------------------------------------------------------------------------------------
# Real runs: two small tidy-CSV evaluations and one with bad input
# --------------------------------------------------------------------------------------

_ITS = """title: {title}
design: its
data:
  csv: series.csv
  unit: area
  time: month
  outcome: count
  units: [{unit}]
outcome:
  label: Test crimes
intervention:
  start: {start}
model:
  family: poisson
  seasonality: none
  se: model
  interruptions: none
"""


@pytest.fixture(scope="module")
def params_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``north.yaml`` and ``south.yaml`` (fast ITS fits) and ``broken.yaml`` (bad input)."""
    folder = tmp_path_factory.mktemp("params")
    rng = np.random.default_rng(7)
    months = [f"{2018 + m // 12}-{m % 12 + 1:02d}" for m in range(48)]
    rows = ["area,month,count"]
    for area, base in (("North", 40.0), ("South", 25.0)):
        for m, month in enumerate(months):
            rows.append(f"{area},{month},{rng.poisson(base * (0.8 if m >= 30 else 1.0))}")
    (folder / "series.csv").write_text("\n".join(rows) + "\n")
    for name, unit, start in (("north", "North", "2020-07"), ("south", "South", "2020-07")):
        (folder / f"{name}.yaml").write_text(_ITS.format(title=name, unit=unit, start=start))
    # the start is after the last month of the data: bad input, exit 2 on its own
    (folder / "broken.yaml").write_text(_ITS.format(title="broken", unit="North", start="2030-01"))
    return folder


def test_run_all_command_runs_the_good_ones_and_exits_non_zero(
    params_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    # an earlier good report of the evaluation that now fails must survive the batch
    (out / "broken").mkdir(parents=True)
    (out / "broken" / "results.json").write_text("{}")
    files = [str(params_dir / f"{n}.yaml") for n in ("north", "broken", "south")]
    code = cli.main(["run-all", *files, "--jobs", "2", "--quiet", "--output-root", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    table = {
        line.split()[0]: line
        for line in printed.splitlines()
        if line[:6] in ("north ", "south ", "broken")
    }
    assert set(table) == {"north", "south", "broken"}
    assert " ok " in table["north"] and " ok " in table["south"]
    assert "FAILED" in table["broken"] and "intervention.start" in table["broken"]
    for name in ("north", "south"):
        results = read_results(out / name)
        assert results.estimates, name
    assert (out / "broken" / "results.json").read_text() == "{}"


def test_run_all_on_a_local_dask_cluster(params_dir: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    # threads, not processes (the workers share this process's files), but over TCP on
    # 127.0.0.1 so that the batch connects by address as it would to a real cluster
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        result = batch.run_all(
            [params_dir / "north.yaml", params_dir / "broken.yaml", params_dir / "south.yaml"],
            output_root=tmp_path,
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        assert client.status == "running"
    assert [o.name for o in result.outcomes] == ["north", "broken", "south"]
    assert [o.ok for o in result.outcomes] == [True, False, True]
    assert (tmp_path / "north" / "results.json").is_file()
    assert not (tmp_path / "broken").exists()


def test_kernel_environment_reaches_the_kernel(run_notebook) -> None:
    (shown,) = run_notebook(
        "env",
        "import os\nthreads = os.environ.get('OPENBLAS_NUM_THREADS')\nthreads",
        env={"OPENBLAS_NUM_THREADS": "1"},
    )
    assert shown == "'1'"
    assert os.environ.get("OPENBLAS_NUM_THREADS") != "1"  # the parent process is left alone


def test_cluster_batches_leave_threads_for_the_kernels_inference() -> None:
    """Evaluations hold at most half a cluster's threads: their kernels send the heavy
    inference to the same cluster, and it must find threads to run on."""
    assert [batch.in_flight_limit(t) for t in (1, 2, 3, 8)] == [1, 1, 1, 4]


def test_longest_evaluations_start_first(tmp_path: Path) -> None:
    """Ordered by the last published duration (longest first); unknown ones keep file order."""
    import json

    took = {"a": None, "b": ("2026-01-01T00:00:00", "2026-01-01T00:00:03"), "c": None}
    took["d"] = ("2026-01-01T00:00:00", "2026-01-01T00:00:09")
    for name, stamps in took.items():
        if stamps:
            (tmp_path / name).mkdir()
            prov = {"run_started": stamps[0], "run_finished": stamps[1]}
            (tmp_path / name / "results.json").write_text(json.dumps({"provenance": prov}))
    kwargs = [{"params_path": f"{n}.yaml", "output_dir": str(tmp_path / n)} for n in took]
    assert [kwargs[i]["params_path"] for i in batch.longest_first(kwargs)] == [
        "d.yaml",
        "b.yaml",
        "a.yaml",
        "c.yaml",
    ]


def test_run_all_on_worker_processes_starts_ordinary_kernels(
    params_dir: Path, tmp_path: Path
) -> None:
    """Dask worker processes are daemonic, and multiprocessing forbids them children: the
    kernels there must be started the ordinary way, not forked."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        assert client.run(lambda: kernels.fork_enabled()) == {
            w: False for w in client.scheduler_info()["workers"]
        }
        result = batch.run_all(
            [params_dir / "north.yaml", params_dir / "south.yaml"],
            output_root=tmp_path,
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    assert [o.ok for o in result.outcomes] == [True, True], [o.error for o in result.outcomes]
    assert read_results(tmp_path / "north").estimates


def test_forking_is_off_in_daemonic_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing
    import sys

    cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "kernel.json"]
    assert kernels.forkable(cmd)
    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)
    assert not kernels.fork_enabled() and not kernels.forkable(cmd)
