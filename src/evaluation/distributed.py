"""Run the heavy inference of one evaluation on a Dask distributed cluster, or locally.

A batch run with ``--scheduler`` (see :mod:`evaluation.batch`) sets ``EVALUATION_SCHEDULER``
in every notebook kernel; the inference that is heavy and embarrassingly parallel (the
wild cluster bootstrap, randomisation inference over reassigned start dates, power
simulations) then sends its chunks of work to the same cluster. Without the variable
everything runs in this process, and :mod:`distributed` is never imported (it takes about
a second).

The contract that keeps results **bit-identical** wherever they run:

* the work is cut into chunks that depend only on the problem (its size and fixed chunk
  sizes), never on the number of workers;
* everything random is either drawn in the calling process, in the same order as a plain
  loop draws it, or drawn inside a chunk from the chunk's own seed
  (:func:`chunk_seeds`, or a seed the caller derives from the chunk's index);
* a chunk is a pure function of what it is sent, so a worker computes exactly what the
  local loop computes (the same numpy and BLAS on workers as here; the tests check this).

:func:`map_chunks` runs ``func(shared, chunk)`` for every chunk and returns the results in
chunk order: a plain loop locally, or ``client.map(..., pure=False)`` then ``gather`` on the
cluster. What travels: ``shared`` once (scattered), each chunk, each result. Keep them
small: design matrices, residuals, cluster sums, seeds and index ranges, never the
simulated data sets.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from evaluation.errors import RunError

#: Environment variable holding the scheduler address, e.g. ``tcp://10.0.0.5:8786``.
SCHEDULER_ENV = "EVALUATION_SCHEDULER"
#: Seconds allowed to connect to the scheduler before giving up with a :class:`RunError`.
CONNECT_TIMEOUT = 10.0

S = TypeVar("S")
C = TypeVar("C")
R = TypeVar("R")

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def scheduler_address() -> str | None:
    """The Dask scheduler address from ``EVALUATION_SCHEDULER``, or None to run locally."""
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    return address or None


def spans(total: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``size`` items (the last may be shorter) covering ``total``.

    Fixed chunking: the ranges depend on ``total`` and ``size`` only, never on the workers.
    """
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [(lo, min(total, lo + size)) for lo in range(0, total, size)]


def chunk_seeds(seed: int | None, n_chunks: int) -> list[np.random.SeedSequence]:
    """Independent seeds for ``n_chunks`` chunks: ``SeedSequence(seed).spawn(n_chunks)``.

    Chunk ``i`` seeds ``numpy.random.default_rng(seeds[i])``; its stream does not depend on
    how many chunks run at once or where. (Sites that already had a random stream before
    they were chunked keep it: they draw in the caller or seed chunks by index.)
    """
    return np.random.SeedSequence(seed).spawn(n_chunks)


def map_chunks(
    func: Callable[[S, C], R],
    chunks: Sequence[C],
    shared: S,
    *,
    name: str,
    distribute: bool = True,
) -> list[R]:
    """``[func(shared, chunk) for chunk in chunks]``, on the cluster when one is set.

    Parameters
    ----------
    func
        A module-level function, e.g. of ``evaluation`` (pickled by reference: workers must
        have the same version of the package installed). It must be pure: its result
        depends only on its arguments (seed any randomness from the chunk), and the result
        must be picklable.
    chunks
        The chunks, fixed by the problem, never by the number of workers. Each is pickled
        (with cloudpickle as a fallback) and sent to a worker: keep them small.
    shared
        Data every chunk needs (design matrices, the estimator, ...), scattered to the
        cluster once. Must be picklable (cloudpickle is enough).
    name
        Task-name prefix on the cluster (``evaluation-<name>-...``), shown on the dashboard.
    distribute
        Whether the work is heavy enough to be worth the cluster; callers pass their size
        threshold here, so small problems never pay the round trips (tens of milliseconds
        per call, plus moving ``shared``).

    Returns
    -------
    list
        The results in the order of ``chunks``, identical wherever they were computed.

    Raises
    ------
    RunError
        When ``EVALUATION_SCHEDULER`` is set and the scheduler cannot be reached within
        :data:`CONNECT_TIMEOUT` seconds. Errors raised by ``func`` propagate unchanged.
    """
    address = scheduler_address() if distribute and len(chunks) > 1 else None
    if address is None:
        return [func(shared, chunk) for chunk in chunks]
    client = get_client(address)
    # scatter first: large arguments inside the task graph would go through the scheduler
    [shared_future] = client.scatter([shared], hash=False)
    chunk_futures = client.scatter(list(chunks), hash=False)
    futures = client.map(
        func,
        [shared_future] * len(chunks),
        chunk_futures,
        key=f"evaluation-{name}",
        pure=False,  # a new call is new work, even with equal arguments
    )
    try:
        return list(client.gather(futures))
    finally:
        client.cancel([*futures, *chunk_futures, shared_future])


def get_client(address: str) -> Any:
    """A ``distributed.Client`` connected to ``address``, one per address and process.

    Raises
    ------
    RunError
        One line naming the address, when it cannot be reached within
        :data:`CONNECT_TIMEOUT` seconds (or is not a scheduler address).
    """
    with _lock:
        client = _clients.get(address)
        if client is not None and client.status == "running":
            return client
        from distributed import Client

        try:
            # set_as_default=False: other dask code in the kernel stays local
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except Exception as err:  # noqa: BLE001 - refused, timed out, bad scheme, garbage
            reason = " ".join(str(err).split()) or type(err).__name__
            raise RunError(
                f"cannot use the Dask scheduler at {address} (from {SCHEDULER_ENV}) "
                f"within {CONNECT_TIMEOUT:g} s: {reason}"
            ) from None
        _clients[address] = client
        return client


def close_clients() -> None:
    """Close the clients this process opened (tests; a long-lived process changing address)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


__all__ = [
    "CONNECT_TIMEOUT",
    "SCHEDULER_ENV",
    "chunk_seeds",
    "close_clients",
    "get_client",
    "map_chunks",
    "scheduler_address",
    "spans",
]
