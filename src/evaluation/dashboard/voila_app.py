"""Voila, locked down for funders: run as ``python -m evaluation.dashboard.voila_app DIR``.

On top of Voila's own defaults (sources stripped, execute requests from the browser
refused by the kernel manager's allowed message types), this application

- serves only the two dashboard notebooks: no file tree, no contents API, no static files
  from the notebook folder, and ``/`` redirects to the index;
- never sends tracebacks to the browser;
- ignores Voila and Jupyter config files on the machine (everything is set here), so a
  stray ``voila.json`` cannot switch tracebacks or sources back on;
- preheats a pool of kernels per notebook and shuts idle kernels down;
- serves ``plotly.min.js`` from a folder of its own, for the pages' charts.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join
from plotly.offline import get_plotlyjs
from tornado.web import RedirectHandler
from traitlets import default
from traitlets.config import Config
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

from evaluation.dashboard import EVALUATION_NOTEBOOK, INDEX_NOTEBOOK, PLOTLY_JS, TOKEN_ENV

#: The only notebooks served (file names inside the dashboards folder).
NOTEBOOKS: tuple[str, ...] = (INDEX_NOTEBOOK, EVALUATION_NOTEBOOK)
#: Seconds a kernel may sit idle (its page rendered) before it is shut down.
CULL_IDLE_SECONDS = 120
#: The pages load nothing from other sites (Voila's template links a CDN stylesheet, which a
#: funder's browser would otherwise request) and may not be framed by other sites.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
#: Handlers removed: the file tree, the contents API and static files from the folder.
_DROPPED = {"TornadoVoilaTreeHandler", "VoilaContentsHandler", "AllowListFileHandler"}


def base_config(pool_size: int = 2) -> Config:
    """The Voila configuration every dashboard server runs with."""
    c = Config()
    c.Voila.open_browser = False
    c.Voila.port_retries = 0  # fail rather than serve on a port nobody was told about
    c.VoilaConfiguration.preheat_kernel = True
    c.VoilaConfiguration.default_pool_size = pool_size
    c.VoilaConfiguration.show_tracebacks = False
    c.VoilaConfiguration.strip_sources = True
    c.VoilaConfiguration.file_allowlist = []
    c.Voila.tornado_settings = {"headers": {"Content-Security-Policy": CONTENT_SECURITY_POLICY}}
    c.VoilaConfiguration.theme = "light"
    c.VoilaConfiguration.template = "lab"
    # The pages draw their charts with the plotly.js served below, after the headline has
    # been painted; JupyterLab's plotly extension (4.8 MB) would only slow every page down.
    c.VoilaConfiguration.extension_allowlist = []
    c.VoilaConfiguration.extension_denylist = ["jupyterlab-plotly"]
    # A page needs its kernel only while it renders (charts are drawn in the browser), so
    # kernels left idle are shut down, even while a tab is still open, and abandoned tabs
    # cannot pile kernels up. Preheated kernels wait in a running cell (busy): never culled.
    c.MappingKernelManager.cull_idle_timeout = CULL_IDLE_SECONDS
    c.MappingKernelManager.cull_interval = 30
    c.MappingKernelManager.cull_connected = True
    c.MappingKernelManager.cull_busy = False
    return c


class DashboardVoila(Voila):
    """Voila serving only the dashboard notebooks, with no tree and no files."""

    name = "evaluation-dashboard"

    @default("config_file_paths")
    def _config_file_paths_default(self) -> list[str]:
        return []  # settings come from base_config and the command line only

    def setup_template_dirs(self) -> None:
        """Voila's template and static folders, plus one holding only ``plotly.min.js``."""
        super().setup_template_dirs()
        self._assets = tempfile.mkdtemp(prefix="evaluation-dashboard-")
        Path(self._assets, PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
        self.static_paths = [*self.static_paths, self._assets]  # type: ignore[has-type]

    def stop(self) -> None:
        """Stop Voila and remove the assets folder."""
        try:
            super().stop()
        finally:
            shutil.rmtree(getattr(self, "_assets", ""), ignore_errors=True)

    def init_handlers(self) -> list[Any]:
        """Voila's handlers without the tree, contents and files; ``/`` goes to the index."""
        handlers = []
        names = "|".join(n.replace(".", r"\.") for n in NOTEBOOKS)
        render = url_path_join(self.server_url, r"/voila/render/(.*)")
        restricted = False
        for handler in super().init_handlers():
            pattern, cls = handler[0], handler[1]
            if cls.__name__ in _DROPPED:
                continue
            if cls is TornadoVoilaHandler and pattern == render:
                only = url_path_join(self.server_url, rf"/voila/render/({names})")
                handler, restricted = (only, *handler[1:]), True
            handlers.append(handler)
        if not restricted:  # fail closed if Voila's routes ever change
            raise RuntimeError("could not restrict Voila to the dashboard notebooks")
        index = url_path_join(self.server_url, "voila/render", INDEX_NOTEBOOK)
        handlers.insert(0, (self.server_url, RedirectHandler, {"url": index, "permanent": False}))
        return handlers


def main(argv: Sequence[str] | None = None, *, pool_size: int = 2) -> None:
    """Run the locked-down Voila (arguments as Voila's command line).

    The token, if any, is read from ``$EVALUATION_DASHBOARD_TOKEN``.
    """
    config = base_config(pool_size)
    token = os.environ.pop(TOKEN_ENV, None)
    if token:
        config.Voila.token = token
    DashboardVoila.launch_instance(argv=list(sys.argv[1:] if argv is None else argv), config=config)


if __name__ == "__main__":  # pragma: no cover
    main()
