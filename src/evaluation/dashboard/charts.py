"""Interactive charts of the dashboards, as plain plotly.js specifications.

The charts are built as dictionaries (``data`` and ``layout``), not ``plotly`` figure
objects: building figure objects validates every property and costs most of a page's
time, while the specification sent to the browser is the same. The tests check each
specification against plotly's schema by building a figure from it.

Every chart is drawn from results only, and observed counts only from a
disclosure-controlled copy (:mod:`evaluation.report.protect`). On the page a chart is
a sized placeholder and its JSON; :data:`PLOT_LOADER` draws it after the text has been
painted, so a reader sees the headline first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape
from typing import Any

import pandas as pd

from evaluation import config
from evaluation.report.protect import Protected
from evaluation.results import Estimate, EvaluationResults, Series

#: Colours of :mod:`evaluation.report.figures` (not imported: it loads matplotlib, which a
#: dashboard kernel does not need and would take longer to start).
OBSERVED = "#1b1b1b"
FITTED = "#1f77b4"
COUNTERFACTUAL = "#d62728"

#: Plotly options for every chart: no logo, no selection tools, resizes with the page.
PLOT_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}
HEIGHT = 430
COVID_START = date(2020, 3, 1)
COVID_END = date(2021, 3, 31)

_AXIS: dict[str, Any] = {
    "showline": True,
    "linecolor": "#444444",
    "ticks": "outside",
    "tickcolor": "#444444",
    "zeroline": False,
    "showgrid": False,
    "automargin": True,
}
_FONT = {"family": "Segoe UI, Helvetica Neue, Arial, sans-serif", "size": 13, "color": "#1d2433"}


@dataclass(frozen=True)
class Chart:
    """A plotly.js chart: its traces and layout (JSON-ready)."""

    data: list[dict[str, Any]]
    layout: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The chart's title text."""
        return str(self.layout.get("title", {}).get("text", ""))

    def trace(self, name: str) -> dict[str, Any] | None:
        """The first trace called ``name``, if any."""
        return next((t for t in self.data if t.get("name") == name), None)

    def spec(self) -> dict[str, Any]:
        """What ``Plotly.newPlot`` takes: data, layout and config."""
        return {"data": self.data, "layout": self.layout, "config": PLOT_CONFIG}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _as_date(value: str | None) -> date | None:
    if not value or str(value).isdigit():
        return None
    try:
        return pd.Timestamp(value).date()
    except (ValueError, TypeError):
        return None


def is_calendar(series: Series) -> bool:
    """Whether the series' periods are dates (else integer periods)."""
    return bool(series.periods) and _as_date(series.periods[0]) is not None


def _x(series: Series) -> list[Any]:
    if is_calendar(series):
        return [str(p)[:10] for p in series.periods]
    return [int(p) for p in series.periods]


def _x_of(value: str, series: Series) -> Any:
    return str(value)[:10] if is_calendar(series) else int(value)


def _y(values: Sequence[float | None] | None, decimals: int = 2) -> list[float | None]:
    """Values rounded (nothing finer is readable on a chart) to keep the page small."""
    return [
        None if v is None or not math.isfinite(v) else round(float(v), decimals)
        for v in values or []
    ]


def overlaps_covid(results: EvaluationResults) -> bool:
    """Whether the data period includes the 2020-21 Covid-19 restrictions."""
    a, b = _as_date(results.periods.data_start), _as_date(results.periods.data_end)
    return a is not None and b is not None and a <= COVID_END and b >= COVID_START


def _layout(title: str, ytitle: str, *, synthetic: bool, xtitle: str = "") -> dict[str, Any]:
    annotations = []
    if synthetic:
        annotations.append(
            {
                "text": "SYNTHETIC DATA",
                "xref": "paper",
                "yref": "paper",
                "x": 1,
                "y": 1.02,
                "xanchor": "right",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"color": "#b3261e", "size": 12},
            }
        )
    return {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 17}},
        "height": HEIGHT,
        "margin": {"l": 64, "r": 24, "t": 64, "b": 48},
        "legend": {"orientation": "h", "y": -0.16, "x": 0},
        "hovermode": "x unified",
        "font": _FONT,
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {**_AXIS, "title": {"text": xtitle}},
        "yaxis": {
            **_AXIS,
            "title": {"text": ytitle},
            "rangemode": "tozero",
            "showgrid": True,
            "gridcolor": "#eceff3",
        },
        "shapes": [],
        "annotations": annotations,
    }


def _covid_bands(layout: dict[str, Any], series: Series) -> None:
    first, last = _as_date(series.periods[0]), _as_date(series.periods[-1])
    if first is None or last is None:
        return
    for lock in config.WELSH_COVID_LOCKDOWNS:
        if lock.end < first or lock.start > last:
            continue
        layout["shapes"].append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": lock.start.isoformat(),
                "x1": lock.end.isoformat(),
                "y0": 0,
                "y1": 1,
                "fillcolor": "#9e9e9e",
                "opacity": 0.18,
                "line": {"width": 0},
                "layer": "below",
            }
        )


def _vline(layout: dict[str, Any], x: Any, label: str = "") -> None:
    layout["shapes"].append(
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": x,
            "x1": x,
            "y0": 0,
            "y1": 1,
            "line": {"dash": "dot", "color": "#333333", "width": 1.2},
        }
    )
    if label:
        layout["annotations"].append(
            {
                "x": x,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": label,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 12, "color": "#333333"},
            }
        )


def _hline(layout: dict[str, Any], y: float) -> None:
    layout["shapes"].append(
        {
            "type": "line",
            "xref": "paper",
            "yref": "y",
            "x0": 0,
            "x1": 1,
            "y0": y,
            "y1": y,
            "line": {"color": "#444444", "width": 1},
        }
    )


def _line(x: list[Any], y: list[float | None], name: str, color: str, **extra: Any) -> dict:
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name,
            "line": {"color": color, **extra.pop("line", {})}, **extra}  # fmt: skip


def _start(results: EvaluationResults, series: Series) -> Any:
    start = results.periods.intervention_start
    return _x_of(start, series) if start else None


def _find(results: EvaluationResults, name: str) -> Estimate | None:
    try:
        return results.estimate(name)
    except KeyError:
        return None


# --------------------------------------------------------------------------------------
# The charts
# --------------------------------------------------------------------------------------


def observed_chart(protected: Protected, key: str = "primary") -> Chart:
    """Observed counts (small counts hidden) against the counterfactual with its interval.

    The picture of :func:`evaluation.report.figures.observed_vs_counterfactual_plotly`
    (same colours), drawn from the disclosure-controlled series.
    """
    results = protected.results
    series = results.series[key]
    x = _x(series)
    hover = "%{y:,.0f}<extra>%{fullData.name}</extra>"
    data: list[dict[str, Any]] = []
    if series.counterfactual_low and series.counterfactual_high:
        data.append(_line(x, _y(series.counterfactual_high), "Interval upper bound", "rgba(0,0,0,0)",
                          line={"width": 0}, showlegend=False, hoverinfo="skip"))  # fmt: skip
        data.append(_line(x, _y(series.counterfactual_low), "Interval (without the intervention)",
                          "rgba(0,0,0,0)", line={"width": 0}, fill="tonexty",
                          fillcolor="rgba(214,39,40,0.15)", hoverinfo="skip"))  # fmt: skip
    data.append({"type": "scatter", "mode": "markers", "x": x, "y": _y(series.observed, 0),
                 "name": "Observed", "marker": {"color": OBSERVED, "size": 5},
                 "hovertemplate": hover})  # fmt: skip
    if series.comparison:
        data.append(
            _line(x, _y(series.comparison, 0), "Comparison", "#7f7f7f", hovertemplate=hover)
        )
    if series.fitted:
        data.append(_line(x, _y(series.fitted), "Model", FITTED, hovertemplate=hover))
    if series.counterfactual:
        data.append(_line(x, _y(series.counterfactual), "Without the intervention",
                          COUNTERFACTUAL, line={"dash": "dash"}, hovertemplate=hover))  # fmt: skip
    label = series.label or results.outcome.label
    if series.counterfactual:
        title = f"{label}: recorded and expected without the intervention"
    elif series.comparison:
        title = f"{label}: intervention and comparison areas"
    else:
        title = f"{label}: recorded each month"
    layout = _layout(title, series.unit, synthetic=results.synthetic)
    if is_calendar(series):
        _covid_bands(layout, series)
    start = _start(results, series)
    if start is not None:
        _vline(layout, start, "Start")
    return Chart(data, layout)


def trend_chart(results: EvaluationResults, key: str = "primary") -> Chart | None:
    """The segmented trend of an ITS, as the estimated change month by month.

    The model's fitted values divided by its counterfactual: 0% before the start, then the
    level change, drifting with the slope change. Seasonality cancels in the ratio, so the
    two segments show plainly. The bar at the start is the level change's interval. Drawn
    from model output only (no observed counts).
    """
    series = results.series.get(key)
    if series is None or not series.fitted or not series.counterfactual:
        return None
    x = _x(series)
    x0 = _start(results, series)
    before = [x0 is not None and xi < x0 for xi in x]
    change = _y(
        [
            (f / c - 1) * 100 if f is not None and c not in (None, 0) else None
            for f, c in zip(series.fitted, series.counterfactual, strict=True)
        ]
    )
    pct = "%{y:+.1f}%<extra></extra>"
    data = [
        _line([xi for xi, b in zip(x, before, strict=True) if b], [0.0] * sum(before),
              "Before the start (no change by definition)", "#9aa0a6",
              line={"width": 2.5}, hovertemplate=pct),
        _line([xi for xi, b in zip(x, before, strict=True) if not b],
              [c for c, b in zip(change, before, strict=True) if not b],
              "Estimated change vs expected", FITTED, line={"width": 2.5},
              hovertemplate=pct),
    ]  # fmt: skip
    prefix = "" if key == "primary" else f"{key}:"
    level = _find(results, f"{prefix}level_change")
    if level and level.estimate and level.ci_low and level.ci_high and x0 is not None:
        y = round((level.estimate - 1) * 100, 2)
        data.append({
            "type": "scatter", "mode": "markers", "x": [x0], "y": [y],
            "name": "Change at the start, with its interval",
            "marker": {"color": COUNTERFACTUAL, "size": 9},
            "error_y": {"type": "data", "symmetric": False,
                        "array": [round((level.ci_high - 1) * 100 - y, 2)],
                        "arrayminus": [round(y - (level.ci_low - 1) * 100, 2)],
                        "color": COUNTERFACTUAL, "thickness": 2, "width": 8},
            "hovertemplate": "%{y:+.1f}%<extra>change at the start</extra>",
        })  # fmt: skip
    label = series.label or results.outcome.label
    layout = _layout(f"{label}: the trend's break at the start (segmented trend)",
                     "% change vs expected", synthetic=results.synthetic)  # fmt: skip
    layout["yaxis"].update(rangemode="normal", ticksuffix="%")
    _hline(layout, 0.0)
    if is_calendar(series):
        _covid_bands(layout, series)
    if x0 is not None:
        _vline(layout, x0, "Start")
    return Chart(data, layout)


def event_study_chart(results: EvaluationResults, unit: str = "") -> Chart | None:
    """Leads and lags with their intervals, from ``tables["event_study"]``."""
    rows = results.tables.get("event_study")
    if not rows:
        return None
    table = pd.DataFrame(rows).sort_values("event_time")
    ratio = "scale" in table and table["scale"].iloc[0] == "rate_ratio"
    step = str(table["unit"].iloc[0]) if "unit" in table else "month"
    data = [{
        "type": "scatter", "mode": "markers",
        "x": table["event_time"].astype(int).tolist(),
        "y": _y(table["estimate"].tolist(), 4),
        "name": f"Effect in each {step} (reference: the {step} before the start)",
        "marker": {"color": FITTED, "size": 8},
        "error_y": {"type": "data", "symmetric": False,
                    "array": _y((table["ci_high"] - table["estimate"]).tolist(), 4),
                    "arrayminus": _y((table["estimate"] - table["ci_low"]).tolist(), 4),
                    "color": "#7aa6d6"},
    }]  # fmt: skip
    ytitle = "effect (rate ratio)" if ratio else (f"effect ({unit})" if unit else "effect")
    layout = _layout(f"Event study: the difference from the comparison areas, {step} by {step}",
                     ytitle, synthetic=results.synthetic,
                     xtitle=f"{step}s relative to the start")  # fmt: skip
    layout["yaxis"]["rangemode"] = "normal"
    _hline(layout, 1.0 if ratio else 0.0)
    layout["shapes"].append(
        {"type": "rect", "xref": "x", "yref": "paper", "x0": float(table["event_time"].min()) - 0.5,
         "x1": -0.5, "y0": 0, "y1": 1, "fillcolor": "#9e9e9e", "opacity": 0.12,
         "line": {"width": 0}, "layer": "below"}
    )  # fmt: skip
    layout["annotations"].append(
        {"x": -0.5, "y": 1, "xref": "x", "yref": "paper", "text": "before | after",
         "showarrow": False, "yanchor": "bottom", "font": {"size": 12}}
    )  # fmt: skip
    return Chart(data, layout)


# --------------------------------------------------------------------------------------
# On the page
# --------------------------------------------------------------------------------------

#: Loads plotly.js on first use and draws each chart after the next paint, so a reader sees
#: the headline and the text at once and the charts a moment later.
PLOT_LOADER = """<script>
(function () {
  if (window.evPlot) return;
  var queue = [], loading = false, src = %s;
  function load(fn) {
    if (window.Plotly) { fn(); return; }
    queue.push(fn);
    if (loading) return;
    loading = true;
    var s = document.createElement("script");
    s.src = src;
    s.charset = "utf-8";
    s.onload = function () { var q = queue; queue = []; q.forEach(function (f) { f(); }); };
    document.head.appendChild(s);
  }
  function draw(id, tries) {
    var el = document.getElementById(id), spec = document.getElementById(id + "-spec");
    if (!el || !spec || !el.isConnected) {
      if (tries < 400) setTimeout(function () { draw(id, tries + 1); }, 50);
      return;
    }
    var fig = JSON.parse(spec.textContent);
    window.Plotly.newPlot(el, fig.data, fig.layout, fig.config);
  }
  window.evPlot = function (id) {
    requestAnimationFrame(function () {
      setTimeout(function () { load(function () { draw(id, 0); }); }, 0);
    });
  };
})();
</script>"""


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</`` to close it early)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def plot_loader(plotly_src: str) -> str:
    """The script that draws the page's charts, loading plotly.js from ``plotly_src``."""
    return PLOT_LOADER % script_json(plotly_src)


def chart_html(chart: Chart, div_id: str) -> str:
    """A chart as HTML: a sized placeholder, its specification as JSON, a call to draw it."""
    div = escape(div_id, quote=True)
    height = int(chart.layout.get("height", HEIGHT))
    label = escape(chart.title or "chart", quote=True)
    return (
        f'<div class="ev"><div class="ev-plot"><div id="{div}" class="ev-chart" '
        f'style="height:{height}px" role="img" aria-label="{label}"></div></div></div>'
        f'<script type="application/json" id="{div}-spec">{script_json(chart.spec())}</script>'
        f"<script>window.evPlot({script_json(div_id)});</script>"
    )
