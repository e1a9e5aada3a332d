"""The dashboards in a real browser: headless Debian Chromium driven by Playwright.

A session fixture runs one real evaluation (``evaluation run params/operation_talon.yaml``)
into a temporary reports folder; the dashboard server is started on a free loopback port
and only that server's process group is stopped afterwards. Screenshots are saved in the
test's tmp dir.

Chromium is Debian's (``apt-get install chromium``): Playwright's own browser download
does not work here. Without it these tests skip, except under CI (``CI=true``), where they
fail.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evaluation.dashboard import server
from evaluation.report import text
from evaluation.results import read_results

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VOILA_CELL_ERROR = "There was an error when executing cell"
#: Seconds to wait for a page's headline (a cold kernel, when the pool is empty, takes ~10 s).
PAGE_TIMEOUT_MS = 60_000


def _require_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} not found (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need Chromium and Playwright: {missing}")
        pytest.skip(f"browser tests need Chromium and Playwright: {missing}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def real_reports(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """A reports folder holding one real evaluation run by the command line."""
    _require_browser()
    reports = tmp_path_factory.mktemp("dashboard") / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation.cli",
            "run",
            "params/operation_talon.yaml",
            "--output-dir",
            str(reports / "operation_talon"),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.fail(f"evaluation run failed ({done.returncode}): {done.stderr[-2000:]}")
    return reports


class Dashboard:
    """A running dashboard server."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return self.base + path


def _start(reports: Path, log: Path, token: str | None = None) -> Dashboard:
    port = _free_port()
    with log.open("wb") as fh:
        proc = server.start_server(reports, "127.0.0.1", port, token, pool_size=1, log=fh)
    try:
        server.wait_until_ready(proc, "127.0.0.1", port, timeout=60)
        server.wait_for_pools(proc, log, timeout=120)
    except Exception:
        server.stop_server(proc)
        raise
    return Dashboard(proc, port, log)


@pytest.fixture(scope="module")
def dashboard(real_reports: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The dashboards served from the real reports; stopped by its own process group."""
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    running = _start(real_reports, log)
    yield running
    server.stop_server(running.proc)
    assert running.proc.poll() is not None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser: object, url: str, height: int = 1000):  # noqa: ANN202 - playwright Page
    page = browser.new_page(viewport={"width": 1280, "height": height})  # type: ignore[attr-defined]
    page.goto(url)
    page.wait_for_selector("#headline", timeout=PAGE_TIMEOUT_MS)
    return page


def _assert_no_error(page: object) -> None:
    html = page.content()  # type: ignore[attr-defined]
    assert VOILA_CELL_ERROR not in html
    assert "Traceback" not in html


def test_index_then_evaluation_page(
    dashboard: Dashboard, browser: object, real_reports: Path, tmp_path: Path
) -> None:
    results = read_results(real_reports / "operation_talon")
    index = _open(browser, dashboard.url("/"))  # "/" redirects to the index
    loaded: list[str] = []
    index.on("requestfinished", lambda r: loaded.append(r.url))
    assert index.url.endswith("/voila/render/index.ipynb")
    assert "1 evaluation of community-safety" in index.inner_text("#headline")
    assert index.inner_text("#evaluations").count("Operation Talon") == 1
    _assert_no_error(index)
    index.screenshot(path=str(tmp_path / "index.png"), full_page=True)

    index.click("#evaluations a")  # the link opens the page in the same tab
    index.wait_for_url(re.compile(r".*/evaluation\.ipynb\?name=operation_talon$"))
    page = index
    page.set_viewport_size({"width": 1280, "height": 4000})
    page.wait_for_selector("#headline", timeout=PAGE_TIMEOUT_MS)
    assert page.inner_text("#headline").strip() == text.headline(results)
    page.wait_for_function(
        "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2",
        timeout=PAGE_TIMEOUT_MS,
    )
    assert page.locator(".js-plotly-plot").count() >= 3  # observed, trend, check
    body = page.inner_text("body")
    assert "Synthetic data: these figures come from generated demonstration data" in body
    assert "How this was estimated" in body and "Pitfalls that apply here" in body
    assert "live.show_evaluation" not in page.content()  # sources are stripped
    assert page.title() == results.title
    _assert_no_error(page)
    # nothing is fetched from other sites (the Content-Security-Policy blocks Voila's CDN
    # stylesheet): a funder's browser talks to the dashboard server only
    assert loaded and all(u.startswith((dashboard.base, "data:", "blob:")) for u in loaded)
    page.screenshot(path=str(tmp_path / "evaluation.png"), full_page=True)
    assert (tmp_path / "evaluation.png").stat().st_size > 50_000
    print(f"screenshots: {tmp_path}")
    page.close()


def test_unknown_or_hostile_name_is_refused(dashboard: Dashboard, browser: object) -> None:
    page = _open(browser, dashboard.url("/voila/render/evaluation.ipynb?name=../../etc/passwd"))
    assert page.inner_text("#headline") == "There is no published evaluation with that name."
    assert "passwd" not in page.inner_text("body")
    assert "root:" not in page.content()
    _assert_no_error(page)
    page.close()


@pytest.mark.parametrize(
    "path",
    [
        "/voila/tree",
        "/voila/tree/",
        "/voila/api/contents",
        "/voila/api/contents/index.ipynb",
        "/voila/files/index.ipynb",
        "/voila/render/its.ipynb",
        "/voila/render/..%2Fits.ipynb",
        "/voila/static/../../../etc/passwd",
        "/api/kernelspecs",
    ],
)
def test_no_file_tree_contents_or_other_notebooks(dashboard: Dashboard, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(dashboard.url(path), timeout=30)
    assert err.value.code in (403, 404)


def _kernel_message(session: str, msg_type: str, content: dict) -> str:
    return json.dumps(
        {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "username": "viewer",
                "session": session,
                "msg_type": msg_type,
                "version": "5.3",
                "date": datetime.now(UTC).isoformat(),
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
    )


def test_execute_request_over_the_kernel_websocket_is_refused(
    dashboard: Dashboard, browser: object
) -> None:
    import websocket  # websocket-client, a dependency of jupyter_server

    page = _open(browser, dashboard.url("/voila/render/evaluation.ipynb?name=operation_talon"))
    kernel_id = page.evaluate(
        "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"
    )
    assert kernel_id
    session = uuid.uuid4().hex
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{dashboard.port}/api/kernels/{kernel_id}/channels?session_id={session}",
        timeout=2,
    )
    try:
        # control: the connection works and the kernel answers an allowed request
        ws.send(_kernel_message(session, "kernel_info_request", {}))
        code = "print('LEAK' + '-42')"
        ws.send(
            _kernel_message(
                session,
                "execute_request",
                {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            )
        )
        seen: list[dict] = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                seen.append(json.loads(ws.recv()))
            except websocket.WebSocketTimeoutException:
                continue
    finally:
        ws.close()
        page.close()
    types = [m.get("msg_type") for m in seen]
    assert "kernel_info_reply" in types  # the channel was open: the refusal is real
    assert "execute_reply" not in types and "execute_result" not in types
    assert not any("LEAK-42" in json.dumps(m.get("content", {})) for m in seen)
    log = dashboard.log.read_text(encoding="utf-8", errors="replace")
    assert 'Received message of type "execute_request", which is not allowed' in log


def test_token_is_required_when_set(real_reports: Path, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    running = _start(real_reports, tmp_path / "voila.log", token=token)
    try:
        page = running.url("/voila/render/index.ipynb")
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(page, timeout=30)
        assert err.value.code in (302, 403)  # sent to the login page, or refused
        with urllib.request.urlopen(f"{page}?token={token}", timeout=60) as ok:
            assert ok.status == 200
        assert token not in " ".join(_cmdline(running.proc.pid))  # not visible in ps
    finally:
        server.stop_server(running.proc)
    assert running.proc.poll() is not None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return raw.decode(errors="replace").split("\0")


def test_pages_carry_a_content_security_policy(dashboard: Dashboard) -> None:
    with urllib.request.urlopen(dashboard.url("/voila/render/index.ipynb"), timeout=60) as resp:
        policy = resp.headers["Content-Security-Policy"]
        body = resp.read().decode()
    assert "default-src 'self'" in policy and "frame-ancestors 'self'" in policy
    assert "live.show_index" not in body and "from evaluation" not in body  # no source
