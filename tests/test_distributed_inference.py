"""Heavy inference on a Dask cluster (``EVALUATION_SCHEDULER``) gives exactly the local numbers.

One two-worker ``LocalCluster`` serves the module. Each site's size threshold is lowered
(and its chunks made small) so that small problems are cut into several chunks and sent;
the scheduler's task stream shows that the cluster ran them. Equality is exact: the
chunks are fixed by the problem and every random draw is made in the same order
whichever way the work runs.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from evaluation import distributed as dist
from evaluation.designs.its import ItsSpec
from evaluation.designs.staggered import CallawaySantAnna
from evaluation.errors import RunError
from evaluation.inference import power as pw
from evaluation.inference import wild
from evaluation.inference.randomization import placebo_assignments, randomization_inference
from evaluation.workflows import staggered

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """(scheduler address, a client of our own that reads the task stream)."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        ) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        client.get_task_stream()  # starts recording on the scheduler
        yield lc.scheduler_address, client
        dist.close_clients()


@pytest.fixture
def sent(cluster, monkeypatch):
    """Point EVALUATION_SCHEDULER at the cluster; returns ``count(prefix)``: the tasks whose
    name starts with ``evaluation-<prefix>`` that the cluster ran during the test."""
    address, client = cluster
    monkeypatch.setenv(dist.SCHEDULER_ENV, address)
    # tasks of earlier tests are told apart by key (every task's key is unique), not by
    # time: the stream's time stamps and this clock need not agree to the millisecond
    earlier = {str(r["key"]) for r in client.get_task_stream()}

    def count(prefix: str) -> int:
        name = f"evaluation-{prefix}-" if prefix else "evaluation-"
        keys = {str(r["key"]) for r in client.get_task_stream()} - earlier
        return sum(k.startswith(name) for k in keys)

    return count


def _local(monkeypatch, run):
    with monkeypatch.context() as m:
        m.delenv(dist.SCHEDULER_ENV, raising=False)
        return run()


def _same(a, b) -> None:
    for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True):
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=True)
        else:
            assert x == y or (x != x and y != y)


# --------------------------------------------------------------------------------------
# The helper
# --------------------------------------------------------------------------------------


def test_scheduler_address_and_fixed_chunks(monkeypatch):
    monkeypatch.delenv(dist.SCHEDULER_ENV, raising=False)
    assert dist.scheduler_address() is None
    monkeypatch.setenv(dist.SCHEDULER_ENV, "  ")
    assert dist.scheduler_address() is None
    monkeypatch.setenv(dist.SCHEDULER_ENV, " tcp://10.0.0.5:8786 ")
    assert dist.scheduler_address() == "tcp://10.0.0.5:8786"
    assert dist.spans(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert dist.spans(0, 3) == []
    a = [np.random.default_rng(s).random(3) for s in dist.chunk_seeds(5, 4)]
    b = [np.random.default_rng(s).random(3) for s in dist.chunk_seeds(5, 4)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])


def test_nothing_imports_distributed_without_a_scheduler():
    code = (
        "import sys, numpy as np\n"
        "from evaluation.inference import wild, power\n"
        "from evaluation.workflows import staggered\n"
        "codes = np.repeat(np.arange(6), 5)\n"
        "X = np.column_stack([np.ones(30), np.arange(30.0)])\n"
        "wild.wild_cluster_bootstrap(X, np.sin(np.arange(30.0)), codes, 6, 1)\n"
        "assert 'distributed' not in sys.modules, 'distributed was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != dist.SCHEDULER_ENV}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_map_chunks_runs_on_the_cluster_in_order(sent):
    # builtins: importable on every worker
    assert dist.map_chunks(pow, [3, 1, 2], 2, name="pow") == [8, 2, 4]
    assert sent("pow") == 3
    assert dist.map_chunks(pow, [3, 1], 2, name="pow", distribute=False) == [8, 2]
    assert dist.map_chunks(pow, [3], 2, name="pow") == [8]  # one chunk: not worth a trip
    assert sent("pow") == 3


def test_unreachable_scheduler_is_a_quick_one_line_run_error(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(dist.SCHEDULER_ENV, address)
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT", 1.0)
    started = time.perf_counter()
    with pytest.raises(RunError) as err:
        dist.map_chunks(pow, [1, 2], 2, name="pow")
    assert time.perf_counter() - started < 10
    message = str(err.value)
    assert address in message and dist.SCHEDULER_ENV in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------
# The inference sites
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_clusters", "reps", "weights"), [(20, 2_000, "webb"), (11, 4_096, "auto")]
)
def test_wild_bootstrap_on_the_cluster_equals_local(sent, monkeypatch, n_clusters, reps, weights):
    monkeypatch.setattr(wild, "DISTRIBUTE_MIN_CELLS", 0)
    monkeypatch.setattr(wild, "_BLOCK_CELLS", n_clusters * 700)  # 3 blocks
    rng = np.random.default_rng(n_clusters)
    codes = np.repeat(np.arange(n_clusters), 30)
    X = np.column_stack([np.ones(codes.size), rng.normal(size=(codes.size, 2))])
    y = 0.1 * X[:, 1] + rng.normal(size=codes.size) + rng.normal(size=n_clusters)[codes]
    args = (X, y, codes, n_clusters, 1)
    kw = {"reps": reps, "weights": weights, "seed": 7, "level": 0.9}

    local = _local(monkeypatch, lambda: wild.wild_cluster_bootstrap(*args, **kw))
    remote = wild.wild_cluster_bootstrap(*args, **kw)
    _same(local, remote)
    assert local.ci_low is not None and local.ci_high is not None
    assert sent("wild-bootstrap") == 3
    del kw["level"]
    t_local = _local(monkeypatch, lambda: wild.bootstrap_t_stats(*args, **kw)[1])
    assert np.array_equal(t_local, wild.bootstrap_t_stats(*args, **kw)[1], equal_nan=True)
    assert sent("wild-bootstrap") == 6


def test_randomization_inference_stays_local(sent, monkeypatch):
    """Placebo assignments and the inverted interval take milliseconds: nothing is sent."""

    def run():
        A, exhaustive = placebo_assignments(30, np.array([0, 1, 2]), max_assignments=2_000, seed=3)
        y = np.random.default_rng(3).normal(size=30) + A[0]
        treated = A[0].astype(float)
        e = (A @ y) / 3 - (~A @ y) / 27
        f = (A @ treated) / 3 - (~A @ treated) / 27
        return randomization_inference(e, f, exhaustive=exhaustive, seed=3)

    local = _local(monkeypatch, run)
    _same(local, run())
    assert local.ci_low is not None and local.ci_high is not None
    assert sent("") == 0


def _did_panel() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    idx = pd.date_range("2017-01", periods=36, freq="MS")
    level = rng.uniform(15, 45, 6)
    counts = rng.poisson(level[:, None] * rng.gamma(15, 1 / 15, (6, 36)))
    return pd.DataFrame(counts, index=[f"area{i}" for i in range(6)], columns=idx)


def test_power_simulation_on_the_cluster_equals_local(sent, monkeypatch):
    panel = _did_panel()
    monkeypatch.setattr(pw, "DISTRIBUTE_MIN_CELLS", 0)
    monkeypatch.setattr(pw, "CHUNK_CELLS", 6 * 48 * 40)  # 40 simulations per chunk: 2 chunks
    start = pd.Timestamp("2020-01-01")
    did, _ = pw.did_simulation(panel, ["area0", "area1"], start, ItsSpec(), [6, 12], seed=1)
    its, _ = pw.its_simulation(panel.sum(), start, ItsSpec(), [6, 12])
    for sim, tasks in ((did, 2 * 2), (its, 1 * 2)):  # chunks x effects (1 is always added)

        def run(sim=sim):
            return pw.simulate_power(sim, [0.8], [6, 12], simulations=80, seed=9)

        local = _local(monkeypatch, run)
        before = sent("power-simulation")
        _same(local, run())
        assert sent("power-simulation") - before == tasks


def test_staggered_randomization_on_the_cluster_equals_local(sent, monkeypatch):
    monkeypatch.setattr(staggered, "DISTRIBUTE_MIN_CELLS", 0)
    rng = np.random.default_rng(0)
    units = [f"w{i}" for i in range(10)]
    periods = pd.date_range("2018-01", periods=24, freq="MS")
    starts = {"w0": "2019-01", "w1": "2019-04", "w2": "2019-04"}
    panel = pd.DataFrame(
        [(u, p, float(rng.poisson(30))) for u in units for p in periods],
        columns=["unit", "period", "outcome"],
    )
    panel["first_treat"] = pd.to_datetime(panel["unit"].map(starts))
    est = CallawaySantAnna(first_treat="first_treat", control_group="never", level=0.9)

    local = _local(monkeypatch, lambda: staggered.randomization_interval(panel, est, 40, 5, 0.9))
    remote = staggered.randomization_interval(panel, est, 40, 5, 0.9)
    assert local == remote
    assert local["draws"] == 40 and local["ci_low"] is not None
    assert sent("staggered-randomization") == 2  # chunks of 25
