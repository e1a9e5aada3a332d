"""Static, code-free HTML of every dashboard, for emailing (``evaluation publish DIR``).

Layout of the output folder (relative links only, so it works when zipped, emailed and
opened offline)::

    index.html                  the list of evaluations
    evaluations/<name>.html     one page per evaluation
    plotly.min.js               the charting library, shared by every page

The pages are the dashboards' own content (:mod:`evaluation.dashboard.pages`), with the
same disclosure control; no notebook code, no tracebacks and no raw records.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from plotly.offline import get_plotlyjs

from evaluation.dashboard import PLOTLY_JS, catalog, charts, pages
from evaluation.dashboard.style import CSS
from evaluation.errors import InputError
from evaluation.results import atomic_write_text

EVALUATIONS = "evaluations"


def page_file(name: str) -> str:
    """The path of an evaluation's page relative to the output folder."""
    return f"{EVALUATIONS}/{name}.html"


def render_html(page: pages.Page, *, asset_prefix: str = "") -> str:
    """A complete HTML document of ``page``.

    Parameters
    ----------
    page
        The page to render.
    asset_prefix
        Relative path from the page to the output folder (``"../"`` for evaluation pages).
    """
    body = [
        part if isinstance(part, str) else charts.chart_html(part, f"chart-{i}")
        for i, part in enumerate(page.parts)
    ]
    script = charts.plot_loader(f"{asset_prefix}{PLOTLY_JS}") if page.charts else ""
    title = escape(page.title)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{CSS}\nbody {{ margin: 0; padding: 8px 16px; }}</style>\n"
        f"{script}\n</head>\n<body>\n"
        '<noscript><div class="ev"><p class="ev-banner">The charts need JavaScript; the text '
        "below is complete without them.</p></div></noscript>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def publish(reports_dir: Path, out_dir: Path) -> list[Path]:
    """Write static HTML of the index and of every readable evaluation.

    Parameters
    ----------
    reports_dir
        Folder of published reports (``<name>/results.json``).
    out_dir
        Where to write; created if needed. Existing files of the same names are replaced.

    Returns
    -------
    list of Path
        The files written: the index first, then each evaluation's page, then the
        charting library (when any page has a chart).

    Raises
    ------
    InputError
        If ``reports_dir`` does not exist or ``out_dir`` is an evaluation's report folder.
    """
    reports = Path(reports_dir)
    out = Path(out_dir)
    if not reports.is_dir():
        raise InputError(reports, "reports folder not found; run `evaluation run` first")
    if (out / "results.json").exists() or out.is_symlink():
        # never write pages into an evaluation's own report (reports/<name> is a symlink)
        raise InputError(out, "the output folder is an evaluation's report folder")
    entries = catalog.entries(reports)
    written: list[Path] = []

    index = pages.index_page(entries, page_file)
    written.append(_write(out / "index.html", render_html(index)))
    any_figures = False
    for entry in entries:
        if entry.results is None:
            continue
        page = pages.evaluation_page(entry.results, index_href="../index.html")
        any_figures |= bool(page.charts)
        html = render_html(page, asset_prefix="../")
        written.append(_write(out / page_file(entry.name), html))
    if any_figures:
        written.append(_write(out / PLOTLY_JS, get_plotlyjs()))
    return written


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    path.chmod(0o644)  # readable by whoever is sent or serves it (mkstemp makes it 0600)
    return path
