"""What the two Voila notebooks call: warm up, then show a page for the request.

With preheated kernels, Voila runs a notebook before any request arrives. The first cell
(:func:`warm_up`) therefore imports everything and builds example pages, so that a
request only pays for reading one ``results.json`` and building its page. The second cell
(:func:`show_index` / :func:`show_evaluation`) waits for the request's query string and
renders the page. Reports are read at request time, so a new run shows without a restart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from evaluation.dashboard import (
    EVALUATION_NOTEBOOK,
    INDEX_NOTEBOOK,
    PLOTLY_JS,
    catalog,
    charts,
    pages,
)
from evaluation.dashboard.style import CSS


def evaluation_href(name: str) -> str:
    """Relative link from the index to the page of ``name`` (a whitelisted name)."""
    return f"{EVALUATION_NOTEBOOK}?name={name}"


def warm_up() -> None:
    """Build and serialise example pages, so a request pays only for its own page.

    Under a preheated kernel this runs before any request: it imports everything and
    exercises every code path a page takes (reading, disclosure control, wording, every
    kind of chart and its JSON), so none of that is first-time work at request time.
    """
    from evaluation.dashboard.example import did_example, its_example

    for results in (its_example(), did_example()):
        page = pages.evaluation_page(results, index_href=INDEX_NOTEBOOK)
        for i, chart in enumerate(page.charts):
            charts.chart_html(chart, f"ev-chart-{i}")
    pages.index_page([], evaluation_href)


def _query_string() -> str:
    """The request's query string (waits for the request under a preheated kernel)."""
    try:
        from voila.utils import get_query_string
    except ImportError:  # pragma: no cover - voila is a dependency
        return ""
    return get_query_string() or ""


#: plotly.js as served by the dashboard server, relative to a page at voila/render/<nb>.
PLOTLY_SRC = f"../static/{PLOTLY_JS}"


def _title_script(title: str) -> str:
    # json.dumps quotes and escapes; "</" is split so the string cannot close the script
    quoted = json.dumps(title).replace("</", "<\\/")
    return f"<script>document.title = {quoted};</script>"


#: JupyterLab's HTML renderer opens every link in a new tab (``target="_blank"``); the
#: dashboards' own links (inside ``.ev``) navigate in the same tab, as on a web site.
_SAME_TAB_LINKS = """<script>
if (!window.evSameTabLinks) {
  window.evSameTabLinks = true;
  document.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest(".ev a[href]") : null;
    if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    e.stopPropagation();
    window.location.assign(a.href);
  }, true);
}
</script>"""


def display_page(page: pages.Page) -> None:
    """Display a page's parts in the notebook's output, in order."""
    from IPython.display import HTML, display

    head = f"<style>{CSS}</style>{_title_script(page.title)}{_SAME_TAB_LINKS}"
    display(HTML(head + (charts.plot_loader(PLOTLY_SRC) if page.charts else "")))
    for i, part in enumerate(page.parts):
        if isinstance(part, str):
            display(HTML(part))
        else:
            display(HTML(charts.chart_html(part, f"ev-chart-{i}")))


def index_page(query: str | None = None) -> pages.Page:
    """The index page for the current reports folder."""
    del query  # the index takes no parameters
    reports = catalog.reports_dir()
    return pages.index_page(catalog.entries(reports), evaluation_href)


def evaluation_page(query: str | None) -> pages.Page:
    """The page named by ``query``'s ``name`` value, or the not-found page.

    The name is accepted only when it is a published report's folder name
    (:func:`evaluation.dashboard.catalog.resolve`).
    """
    reports = catalog.reports_dir()
    name = catalog.name_from_query(query)
    folder = catalog.resolve(name, reports)
    if folder is None or name is None:
        return pages.not_found_page(INDEX_NOTEBOOK)
    entry = catalog.load(name, folder, reports)
    if entry.results is None:
        return pages.not_found_page(INDEX_NOTEBOOK)
    return pages.evaluation_page(entry.results, index_href=INDEX_NOTEBOOK)


def show_index() -> None:
    """Notebook cell: show the index of all evaluations."""
    display_page(_safely(index_page, _query_string()))  # read at request time: current


def show_evaluation() -> None:
    """Notebook cell: show the evaluation named in the request's query string."""
    display_page(_safely(evaluation_page, _query_string()))


def _safely(build: Callable[[str | None], pages.Page], query: str | None) -> pages.Page:
    """Build a page; on any failure show a plain refusal (details go to the server log)."""
    try:
        return build(query)
    except Exception:  # noqa: BLE001 - a viewer never sees a traceback
        logging.getLogger(__name__).exception("could not build the dashboard page")
        return pages.unavailable_page(INDEX_NOTEBOOK)
