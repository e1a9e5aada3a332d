"""Funders' dashboards: Voila pages and static HTML rendered from ``results.json`` only.

The dashboards never refit a model or read raw records. Everything a viewer sees is built
from the results contract (:mod:`evaluation.results`) by :mod:`evaluation.dashboard.pages`,
after disclosure control (:mod:`evaluation.report.protect`):

- :mod:`~evaluation.dashboard.catalog` finds the published reports and accepts an
  evaluation name only when it is one of them (query strings are untrusted);
- :mod:`~evaluation.dashboard.pages` builds the index and the page of one evaluation as
  HTML fragments and charts (:mod:`~evaluation.dashboard.charts`);
- :mod:`~evaluation.dashboard.live` is what the two thin Voila notebooks call;
- :mod:`~evaluation.dashboard.server` runs Voila with preheated kernels, locked down;
- :mod:`~evaluation.dashboard.publish` writes code-free static HTML for emailing.
"""

from __future__ import annotations

#: Environment variable naming the reports folder the dashboards read (set by ``serve``).
REPORTS_ENV = "EVALUATION_REPORTS"
#: Environment variable carrying the server's access token (kept off the command line,
#: which any local user can read with ``ps``; removed before kernels start).
TOKEN_ENV = "EVALUATION_DASHBOARD_TOKEN"
#: The dashboard notebooks' file names; pages link to each other by these.
INDEX_NOTEBOOK = "index.ipynb"
EVALUATION_NOTEBOOK = "evaluation.ipynb"
#: The charting library's file name, served beside Voila's static files and published
#: beside the static pages.
PLOTLY_JS = "plotly.min.js"

__all__ = ["EVALUATION_NOTEBOOK", "INDEX_NOTEBOOK", "PLOTLY_JS", "REPORTS_ENV", "TOKEN_ENV"]
