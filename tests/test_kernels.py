"""Forked notebook kernels: fresh per notebook, tied to their parent, blind to its script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def test_kernels_are_forked_warm_and_fresh(run_notebook) -> None:
    probe = (
        "import os, sys\n"
        "(os.getppid(), 'evaluation.api' in sys.modules, os.environ['EVALUATION_TEST_MARK'],"
        " os.environ['OPENBLAS_NUM_THREADS'])"
    )
    first = run_notebook(
        "first",
        probe,
        "import evaluation.config as c\nc.LEFT_BEHIND = 1\n1",
        env={"EVALUATION_TEST_MARK": "first"},
    )
    second = run_notebook(
        "second",
        probe,
        "import evaluation.config as c\nhasattr(c, 'LEFT_BEHIND')",
        env={"EVALUATION_TEST_MARK": "second"},
    )
    parent_1, warm_1, mark_1, blas_1 = eval(first[0])  # noqa: S307 - our own repr
    parent_2, warm_2, mark_2, _ = eval(second[0])  # noqa: S307
    assert parent_1 == parent_2 != os.getpid()  # both forked by the one fork server
    assert warm_1 and warm_2  # the stack was imported before the fork
    assert (mark_1, mark_2, blas_1) == ("first", "second", "1")  # env per kernel
    assert second[1] == "False"  # nothing carries over from one notebook to the next


_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
with Path(sys.argv[1]).open("a") as fh:
    fh.write("ran\\n")  # no __main__ guard: must run once only
from evaluation import kernels

async def main():
    km = kernels.kernel_manager_class()(kernel_name="python3")
    await km.start_kernel()
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    print(km.provisioner.pid, flush=True)
    os._exit(0)  # no clean-up at all, as when killed

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_script_without_main_guard_runs_once_and_its_kernel_dies_with_it(
    tmp_path: Path,
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    marker = tmp_path / "ran.txt"
    done = subprocess.run(
        [sys.executable, str(script), str(marker)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    kernel = int(done.stdout.split()[-1])
    assert marker.read_text() == "ran\n"  # the kernel did not re-run the script
    deadline = time.monotonic() + 15
    while _alive(kernel) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(kernel), "the kernel outlived the process that started it"


def test_the_runner_process_imports_no_data_stack(modules_loaded) -> None:
    """The runner and batch processes check params and drive Papermill; pandas, SciPy and
    matplotlib belong in the kernels (imported once, by the fork server, in parallel)."""
    code = (
        "import evaluation.runner, evaluation.batch, evaluation.cli, evaluation.context\n"
        "import evaluation.data.default\n"
        "from evaluation import runner\n"
        "runner._papermill()\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('rfc3987_syntax'):\n"
        "    import rfc3987_syntax  # hidden from jsonschema only while it loaded\n"
    )
    heavy = ("pandas", "scipy", "matplotlib", "statsmodels", "duckdb")
    assert modules_loaded(code, heavy) == []
