"""Notebook kernels forked from a warm template process.

An evaluation's own work on the default data takes a few tenths of a second; starting a
Python kernel and importing pandas, SciPy, statsmodels, matplotlib and plotly into it takes
about two seconds of CPU. This module removes that cost without giving up isolation:
kernels are forked by the standard library's ``multiprocessing`` fork server, which
imports those modules once (:func:`preload`: the common ones and the workflow modules of
the designs about to run). Each kernel is still a fresh process that
runs one notebook and exits, so runs never share state; they only share the read-only
memory pages of the imported modules.

:func:`kernel_manager_class` gives Papermill a ``jupyter_client`` kernel manager whose
provisioner forks the kernel instead of executing ``python -m ipykernel_launcher``. Any
other kernel command (another kernelspec, another Python) falls back to the ordinary
subprocess launch.

Details that matter:

* The fork server imports :mod:`evaluation._kernel_env` first, which sets one BLAS/OpenMP
  thread before NumPy loads: forked kernels share the cores with each other.
* A kernel sets ``JPY_PARENT_PID`` to the fork server, which exits when this process does;
  ipykernel's parent poller then ends the kernel, so a killed run leaves no kernel behind.
* Kernels get no process group of their own (``pgid`` stays unset): signals go to the
  kernel process only, never to the fork server's group, which is ours.
* Kernels talk over Unix sockets in a temporary folder of their own (no TCP port to race
  for), encrypted with CurveZMQ keys the kernel manager makes (jupyter_client's
  ``transport_encryption``), which ipykernel reads from the connection file.
* A forked kernel answers about 0.07 s after the fork. jupyter_client's own waits (a 0.1 s
  reconnect interval, 0.2 s of IOPub silence before "ready", a 0.1 s poll for a killed
  kernel's exit) would each cost more than that per notebook; the client and the process
  handle here avoid them (:func:`_client_class`, :meth:`_ForkedProcess.send_signal`).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from typing import Any

import zmq

#: Imported once by the fork server, in this order (a failing import is skipped), before
#: the workflow modules of the designs to run (:func:`preload`).
PRELOAD: tuple[str, ...] = (
    "evaluation._kernel_env",  # first: BLAS threads are fixed when NumPy loads
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",  # every kernel makes a debugger; its import is a third of a start
    "evaluation.api",
    "evaluation._kernel_warm",
)
#: Disable forking (e.g. to debug a kernel) by setting this to 0.
FORK_ENV = "EVALUATION_FORK_KERNELS"

_preloaded = False
_CURVE = zmq.has("curve")
_lock = threading.Lock()


class _KernelPopen(popen_forkserver.Popen):  # type: ignore[misc]
    """``multiprocessing``'s fork-server launcher, minus the caller's ``__main__``.

    A process started through the fork server normally re-imports the parent's main
    script first (so that its functions can be unpickled). A kernel needs nothing from it,
    and a script without an ``if __name__ == "__main__"`` guard would run again inside
    every kernel. This is the standard library's ``Popen._launch`` with those two keys
    dropped from the preparation data.
    """

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        parent_w = os.dup(w)
        close = util.close_fds  # type: ignore[attr-defined]
        self.finalizer = util.Finalize(self, close, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _KernelProcess(context.ForkServerProcess):  # type: ignore[misc,name-defined]
    """A fork-server process launched by :class:`_KernelPopen`."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _KernelPopen(process_obj)


def preload(designs: Iterable[str] | None = None) -> list[str]:
    """What the fork server imports: :data:`PRELOAD`, then the workflow module of each
    design (all designs when None). A design left out still runs; its kernels import its
    modules themselves."""
    from evaluation.workflows import REGISTRY

    chosen = REGISTRY if designs is None else [d for d in designs if d in REGISTRY]
    return [*PRELOAD, *dict.fromkeys(f"evaluation.workflows.{REGISTRY[d]}" for d in chosen)]


def _kernel_process(designs: Iterable[str] | None = None) -> Any:
    """The kernel process class, with the fork server's preload list set (once: the first
    caller's designs decide)."""
    global _preloaded
    with _lock:
        if not _preloaded:
            forkserver.set_forkserver_preload(preload(designs))
            _preloaded = True
    return _KernelProcess


def fork_enabled() -> bool:
    """Whether kernels may be forked here: not on Windows, not when disabled, and not in a
    daemonic process (a Dask worker is one), which ``multiprocessing`` forbids to have
    children: kernels are then started the ordinary way."""
    return (
        os.environ.get(FORK_ENV, "1") != "0"
        and sys.platform != "win32"
        and not multiprocessing.current_process().daemon
    )


def forkable(cmd: Sequence[str]) -> bool:
    """Whether ``cmd`` starts an ipykernel in this very Python, so a fork can replace it."""
    if not fork_enabled():
        return False
    return (
        len(cmd) >= 3
        and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable)
        and list(cmd[1:3]) == ["-m", "ipykernel_launcher"]
    )


def _kernel_main(argv: list[str], env: dict[str, str], cwd: str | None) -> None:
    """Body of a forked kernel: become a fresh ipykernel with ``argv``."""
    from evaluation.config import SINGLE_THREAD_ENV

    # Every child of a fork server inherits the end of the pipe that keeps the server alive
    # (so that children may start processes of their own). A kernel starts none: dropping
    # it lets the server exit when this process's parent does, and the kernel with it.
    server: Any = forkserver._forkserver  # type: ignore[attr-defined]
    if server._forkserver_alive_fd is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    os.environ.clear()
    os.environ.update(env)
    os.environ.update(SINGLE_THREAD_ENV)  # what the fork server's BLAS was loaded with
    parent = str(os.getppid())  # the fork server, which exits with us; see module notes
    os.environ["JPY_PARENT_PID"] = parent
    if cwd:
        os.chdir(cwd)
    if sys.path and sys.path[0] in ("", "."):
        del sys.path[0]  # as ipykernel_launcher does: the cwd must not shadow modules
    from ipykernel.kernelapp import IPKernelApp

    # parent_handle's default was read from the environment when the fork server imported
    # ipykernel, so it is given explicitly
    IPKernelApp.launch_instance(
        argv=[
            *argv,
            f"--IPKernelApp.parent_handle={parent}",
            # kernels of a batch would otherwise all write ~/.ipython's history database
            "--HistoryManager.enabled=False",
        ]
    )


class _ForkedProcess:
    """The part of :class:`subprocess.Popen` that ``LocalProvisioner`` uses."""

    stdin = stdout = stderr = None

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    def poll(self) -> int | None:
        return self._process.exitcode  # type: ignore[no-any-return]

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        return self._process.exitcode  # type: ignore[no-any-return]

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, signum)
            if signum == signal.SIGKILL:
                self._reap()

    def kill(self) -> None:
        self._process.kill()
        self._reap()

    def _reap(self) -> None:
        # SIGKILL ends a process within milliseconds: reaped here, jupyter_client finds it
        # gone at once instead of polling again after 0.1 s, at the end of every notebook
        self._process.join(1.0)

    def terminate(self) -> None:
        self._process.terminate()


def _provisioner_class() -> type:
    from jupyter_client.provisioning import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):  # type: ignore[misc]
        """Launch the kernel as a fork of the warm fork server when possible."""

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            if not forkable(cmd):
                return await super().launch_kernel(cmd, **kwargs)
            env = {**(kwargs.get("env") or os.environ)}
            cwd = kwargs.get("cwd")
            process = _kernel_process()(
                target=_kernel_main,
                args=(list(cmd[3:]), env, str(cwd) if cwd else None),
                name="evaluation-kernel",
                daemon=True,  # ended with this process at the latest
            )
            process.start()
            self.process = _ForkedProcess(process)  # type: ignore[assignment]
            self.pid = process.pid
            self.pgid = None  # never signal the fork server's (our) process group
            self.cwd = cwd or os.getcwd()
            return self.connection_info

    return ForkProvisioner


#: How long the IOPub channel must stay quiet before a started kernel counts as ready.
#: jupyter_client waits 0.2 s; messages between local processes arrive within milliseconds,
#: and a late ``status`` message is harmless (nbclient matches replies by message id).
_READY_QUIET = 0.02


#: How soon a client retries connecting to a kernel that has not bound its sockets yet.
_RECONNECT_MS = 10


def _client_class() -> type:
    from queue import Empty

    import zmq.asyncio
    from jupyter_client.asynchronous import AsyncKernelClient
    from traitlets import default

    class ReadyClient(AsyncKernelClient):  # type: ignore[misc]
        """A kernel client that finds a new kernel ready as soon as it is.

        Two waits of jupyter_client's cost a batch a few tenths of a second per notebook:

        * the client connects before the kernel has bound its sockets (a forked kernel
          binds them about 0.1 s later), and ZMQ retries a refused connection only every
          0.1 s: here every 10 ms;
        * ``wait_for_ready`` (otherwise jupyter_client's: ask ``kernel_info`` until the
          shell replies and IOPub is subscribed) drains IOPub by waiting for 0.2 s of
          silence: here :data:`_READY_QUIET`.
        """

        @default("context")
        def _context_default(self) -> zmq.asyncio.Context:
            self._created_context = True  # destroyed with the channels, as upstream
            context = zmq.asyncio.Context()
            context.setsockopt(zmq.RECONNECT_IVL, _RECONNECT_MS)  # default for its sockets
            return context

        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    msg = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    msg = None
                if msg is not None and msg["msg_type"] == "kernel_info_reply":
                    try:
                        await self.iopub_channel.get_msg(timeout=0.2)
                    except Empty:
                        pass  # IOPub not subscribed yet: ask again
                    else:
                        self._handle_kernel_info_reply(msg)
                        break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:
                try:
                    await self.iopub_channel.get_msg(timeout=_READY_QUIET)
                except Empty:
                    return

    return ReadyClient


def kernel_manager_class(env: Mapping[str, str] | None = None) -> type:
    """A Papermill/nbclient kernel manager: forked kernels, with ``env`` added.

    Parameters
    ----------
    env
        Added to the kernel's environment (this process's own is left alone).
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    extra = dict(env or {})
    provisioner = _provisioner_class()
    client = _client_class()

    class EvaluationKernelManager(AsyncKernelManager):  # type: ignore[misc]
        @default("client_factory")
        def _client_factory_default(self) -> type:
            return client

        def _kernel_supports_curve_encryption(self) -> bool:
            # our ipykernel reads CurveZMQ keys from the connection file: kernel traffic on
            # 127.0.0.1 is then encrypted, and the kernel has no plain-TCP warning to print
            return _CURVE or bool(super()._kernel_supports_curve_encryption())

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = {**(kw.get("env") or os.environ), **extra}
            kw.setdefault("transport_encryption", "auto")
            # Unix sockets in a folder of its own, not TCP ports: ports are picked by
            # binding and releasing, and kernels started at the same moment by several
            # processes could pick the same one ("Address already in use")
            self._socket_dir = tempfile.mkdtemp(prefix="evaluation-kernel-")
            self.transport = "ipc"
            self.ip = os.path.join(self._socket_dir, "kernel")
            await super().start_kernel(**kw)

        async def shutdown_kernel(self, *args: Any, **kw: Any) -> None:  # type: ignore[override]
            try:
                await super().shutdown_kernel(*args, **kw)
            finally:
                shutil.rmtree(getattr(self, "_socket_dir", ""), ignore_errors=True)

        async def _async_pre_start_kernel(self, **kw: Any) -> Any:
            if self.provisioner is None:
                self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or _new_id()
                self.provisioner = provisioner(
                    kernel_id=self.kernel_id,
                    kernel_spec=self.kernel_spec,
                    parent=self,
                )
            return await super()._async_pre_start_kernel(**kw)

    return EvaluationKernelManager


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())


def warm_up(designs: Iterable[str] | None = None) -> None:
    """Start the fork server now: it imports what kernels of ``designs`` need (all designs
    when None) while this process does other work. Only the first call has an effect."""
    if fork_enabled():
        _kernel_process(designs)
        forkserver.ensure_running()
