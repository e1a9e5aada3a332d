"""Serve the dashboards: locked-down Voila with preheated kernels, as a subprocess.

``serve`` is what ``evaluation dashboard`` runs: it starts the server, prints the URL and
waits. ``start_server`` / ``wait_until_ready`` / ``stop_server`` are the same steps for
tests and benchmarks. The server process leads its own process group, so stopping it
never touches anything else.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import webbrowser
from pathlib import Path
from typing import IO

from evaluation import config
from evaluation.dashboard import EVALUATION_NOTEBOOK, INDEX_NOTEBOOK, REPORTS_ENV, TOKEN_ENV
from evaluation.errors import InputError, RunError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
#: Preheated kernels kept ready per notebook.
DEFAULT_POOL_SIZE = 2


def dashboards_dir() -> Path:
    """The folder holding the two dashboard notebooks (the only folder Voila serves)."""
    return config.notebooks_dir() / "dashboards"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def dashboard_url(
    host: str, port: int, token: str | None = None, page: str = INDEX_NOTEBOOK
) -> str:
    """The URL of a dashboard page (with the token, when there is one)."""
    url = f"http://{_url_host(host)}:{port}/voila/render/{page}"
    return f"{url}?token={token}" if token else url


def _check(reports_dir: Path, notebooks: Path) -> None:
    if not Path(reports_dir).is_dir():
        raise InputError(reports_dir, "reports folder not found; run `evaluation run` first")
    for name in (INDEX_NOTEBOOK, EVALUATION_NOTEBOOK):
        if not (notebooks / name).is_file():
            raise InputError(notebooks / name, "dashboard notebook not found")


def start_server(
    reports_dir: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    *,
    notebooks_dir: Path | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    log: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start the dashboard server and return its process (not waiting for it to listen).

    Parameters
    ----------
    reports_dir
        Folder of published reports (``<name>/results.json``).
    host, port
        Where to listen. The port is not changed if busy: the server exits instead.
    token
        Access token; None for none (only sensible on a loopback host).
    notebooks_dir
        Folder of the two dashboard notebooks (default :func:`dashboards_dir`).
    pool_size
        Preheated kernels per notebook.
    log
        Where the server's output goes (a binary file, ``subprocess.DEVNULL``); None
        inherits this process's.

    Raises
    ------
    InputError
        If the reports folder or a dashboard notebook is missing.
    """
    notebooks = Path(notebooks_dir or dashboards_dir()).resolve()
    reports = Path(reports_dir).resolve()
    _check(reports, notebooks)
    env = os.environ.copy()
    env[REPORTS_ENV] = str(reports)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    if host not in ("0.0.0.0", "::", "localhost"):
        env["VOILA_APP_IP"] = host  # the kernels reach the server here for the query string
    command = [
        sys.executable,
        "-m",
        "evaluation.dashboard.voila_app",
        str(notebooks),
        f"--Voila.ip={host}",
        f"--Voila.port={int(port)}",
        f"--VoilaConfiguration.default_pool_size={int(pool_size)}",
    ]
    return subprocess.Popen(
        command,
        cwd=notebooks,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,  # its own process group: stop_server ends exactly this
    )


def wait_until_ready(
    proc: subprocess.Popen[bytes], host: str, port: int, timeout: float = 60.0
) -> None:
    """Block until the server accepts connections.

    Raises
    ------
    RunError
        If the server exits first or does not listen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    target = _url_host(host).strip("[]")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"the dashboard server exited with code {proc.returncode}")
        try:
            with socket.create_connection((target, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RunError(f"the dashboard server did not start within {timeout:.0f} s")


def pools_filled(log_text: str) -> set[str]:
    """The notebooks whose preheated kernel pools the server's log reports as filled."""
    return set(re.findall(r"Kernel pool of (\S+) is filled", log_text))


def wait_for_pools(
    proc: subprocess.Popen[bytes],
    log_path: Path,
    notebooks: tuple[str, ...] = (INDEX_NOTEBOOK, EVALUATION_NOTEBOOK),
    timeout: float = 120.0,
) -> None:
    """Block until every notebook's kernel pool is filled (read from the server's log).

    Raises
    ------
    RunError
        If the server exits first or the pools are not filled within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"the dashboard server exited with code {proc.returncode}")
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
        if set(notebooks) <= pools_filled(text):
            return
        time.sleep(0.25)
    raise RunError(f"the kernel pools were not filled within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop a server started by :func:`start_server`: SIGTERM to its process group, then KILL.

    Voila shuts its kernels down on SIGTERM.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(
    reports_dir: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    open_browser: bool = False,
) -> None:
    """Serve the dashboards until interrupted, printing the URL once they are up.

    On a host other than loopback a token is required; one is generated when none is given.
    """
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    proc = start_server(Path(reports_dir), host, port, token)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does
    try:
        wait_until_ready(proc, host, port)
        url = dashboard_url(host, port, token)
        print(f"Dashboards: {url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        if open_browser:
            webbrowser.open(url)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(proc)
        signal.signal(signal.SIGTERM, previous)
    if proc.returncode not in (0, -signal.SIGTERM, None):
        raise RunError(f"the dashboard server exited with code {proc.returncode}")
