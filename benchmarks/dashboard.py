"""Benchmark: time from request to headline visible, dashboards vs a trivial Voila page.

Serves, in the same run and side by side, the dashboards (on one real report, or on
``--reports DIR``) and a trivial one-cell Voila notebook, both with one preheated kernel
per notebook. Each page is opened ``--repeats`` times in a fresh browser context (cold
cache, as a funder's first visit), interleaved so that machine load falls on all alike,
waiting for the kernel pools to refill (and the new kernels to run their preheat cell) in
between. The time is measured in the page, from the navigation's start to the first frame
painted with the headline visible. Prints the median of each and the
ratios to the trivial page (goal: at most 1.3).

Run from the checkout::

    .venv/bin/python benchmarks/dashboard.py [--reports DIR] [--repeats 5]

Needs Debian's Chromium (``/usr/bin/chromium``) and the playwright package.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from evaluation.dashboard import server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GOAL = 1.3
TRIVIAL = "trivial.ipynb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def real_report(root: Path) -> Path:
    """Run Operation Talon into ``root/reports`` and return that folder."""
    reports = root / "reports"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation.cli",
            "run",
            "params/operation_talon.yaml",
            "--output-dir",
            str(reports / "operation_talon"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return reports


def trivial_notebook(folder: Path) -> Path:
    """A one-cell notebook whose output carries the same ``#headline`` marker."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from IPython.display import HTML\nHTML('<p id=\"headline\">Hello, funder.</p>')"
        )
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / TRIVIAL)
    return folder


def start_trivial(folder: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Plain Voila, with the same preheating, on the trivial notebook."""
    with log.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "voila", str(folder / TRIVIAL), "--no-browser",
             "--Voila.ip=127.0.0.1", f"--Voila.port={port}", "--Voila.port_retries=0",
             "--VoilaConfiguration.preheat_kernel=True",
             "--VoilaConfiguration.default_pool_size=1"],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def filled(log: Path, notebook: str) -> int:
    """How many times the log reports ``notebook``'s pool filled."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if f"Kernel pool of {notebook} is filled" in line)


def wait_refilled(log: Path, notebook: str, before: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while filled(log, notebook) <= before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pool of {notebook} not refilled in {timeout:.0f} s")
        time.sleep(0.2)


#: Records when the headline is first laid out visible and then painted (the first frame
#: after that), in ms since the navigation started (the request).
PAINT_PROBE = """
window.__headline = {};
new MutationObserver(function () {
  var h = document.getElementById("headline");
  if (h && h.offsetParent !== null && !window.__headline.visible) {
    window.__headline.visible = performance.now();
    requestAnimationFrame(function () {
      setTimeout(function () { window.__headline.painted = performance.now(); }, 0);
    });
  }
}).observe(document, {subtree: true, childList: true, attributes: true});
"""


def time_page(browser, url: str) -> tuple[float, float]:  # noqa: ANN001 - playwright Browser
    """Seconds from the request to the headline painted (fresh context, cold cache).

    Returns the time measured in the page (``performance.now()`` counts from the
    navigation's start) and, for reference, the wall-clock time until Playwright saw the
    headline. Playwright's polling runs on the page's main thread, so it reports late while
    the page is busy (e.g. drawing charts after the headline is already on screen).
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(PAINT_PROBE)
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector("#headline", state="visible", timeout=120_000)
    wall = time.perf_counter() - start
    page.wait_for_function("window.__headline && window.__headline.painted", timeout=120_000)
    painted = page.evaluate("window.__headline.painted") / 1000
    context.close()  # closing the page lets Voila shut the used kernel down
    return painted, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, help="reports folder (default: run one)")
    parser.add_argument("--name", default="operation_talon", help="evaluation to open")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--settle",
        type=float,
        default=8.0,
        help="seconds to wait after a pool refill is logged (Voila logs it when the kernel "
        "has started, before the notebook's first cell has run)",
    )
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        reports = args.reports or real_report(work)
        dash_port, triv_port = free_port(), free_port()
        dash_log, triv_log = work / "dashboard.log", work / "trivial.log"
        with dash_log.open("wb") as fh:
            dash = server.start_server(reports, "127.0.0.1", dash_port, pool_size=1, log=fh)
        procs.append(dash)
        triv = start_trivial(trivial_notebook(work / "trivial"), triv_port, triv_log)
        procs.append(triv)
        server.wait_until_ready(dash, "127.0.0.1", dash_port)
        server.wait_until_ready(triv, "127.0.0.1", triv_port)
        server.wait_for_pools(dash, dash_log)
        server.wait_for_pools(triv, triv_log, notebooks=(TRIVIAL,))

        targets = {
            "trivial": (f"http://127.0.0.1:{triv_port}/", triv_log, TRIVIAL),
            "index": (
                f"http://127.0.0.1:{dash_port}/voila/render/index.ipynb",
                dash_log,
                "index.ipynb",
            ),
            "evaluation": (
                f"http://127.0.0.1:{dash_port}/voila/render/evaluation.ipynb?name={args.name}",
                dash_log,
                "evaluation.ipynb",
            ),
        }
        times: dict[str, list[float]] = {k: [] for k in targets}
        walls: dict[str, list[float]] = {k: [] for k in targets}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            before = filled(triv_log, TRIVIAL)
            time_page(browser, targets["trivial"][0])  # warm the browser itself, not timed
            wait_refilled(triv_log, TRIVIAL, before)
            time.sleep(args.settle)
            for _ in range(args.repeats):
                for key, (url, log, notebook) in targets.items():
                    wait_refilled(log, notebook, 0)  # at least one kernel ready
                    before = filled(log, notebook)
                    painted, wall = time_page(browser, url)
                    times[key].append(painted)
                    walls[key].append(wall)
                    wait_refilled(log, notebook, before)  # the pool is full again
                    time.sleep(args.settle)  # and its kernel has run the preheat cell
            browser.close()
    finally:
        for proc in procs:
            server.stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"request -> headline painted, median of {args.repeats} (seconds)")
    for key, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        wall = statistics.median(walls[key])
        print(f"  {key:<11} {medians[key]:6.2f}   [{shown}]   (Playwright wall clock {wall:.2f})")
    worst = 0.0
    for key in ("index", "evaluation"):
        ratio = medians[key] / medians["trivial"]
        worst = max(worst, ratio)
        print(f"  ratio {key:<11} {ratio:5.2f}x the trivial page (goal <= {GOAL}x)")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
