"""Figures drawn from the results contract only (never from a fit or raw records).

Static PNGs (matplotlib) go beside ``results.json``; the dashboards draw the same series
interactively with plotly from the same fields.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by Papermill and CI
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

from evaluation.config import WELSH_COVID_LOCKDOWNS
from evaluation.report.disclosure import SENSITIVE_THRESHOLD_HIGH, THRESHOLD_HIGH
from evaluation.report.protect import is_sensitive, protect_series
from evaluation.results import EvaluationResults, Series

OBSERVED = "#1b1b1b"
FITTED = "#1f77b4"
COUNTERFACTUAL = "#d62728"
COVID = "#bbbbbb"
SYNTHETIC_NOTE = "SYNTHETIC DATA - demonstration only, not real crime records"


#: Characters per title line: a 9-inch figure's width at 11 points.
TITLE_WIDTH = 95


def title_text(text: str) -> str:
    """A figure title broken into lines that fit the figure (long titles were cut off)."""
    return textwrap.fill(text, TITLE_WIDTH)


def _x(series: Series) -> list[pd.Timestamp] | list[int]:
    try:
        return list(pd.to_datetime(series.periods))
    except (ValueError, TypeError):
        return [int(p) for p in series.periods]


def _float(values: list[float | None] | None) -> list[float]:
    return [float("nan") if v is None else v for v in (values or [])]


def _post_only(
    results: EvaluationResults, series: Series, values: list[float | None] | None
) -> list[float]:
    """Blank a counterfactual before the start: there it is just the fitted model."""
    start = results.periods.intervention_start
    out = _float(values)
    if start is None:
        return out
    # the counterfactual line starts one period early so it visibly leaves the fit
    first = next((i for i, p in enumerate(series.periods) if p >= start), len(out))
    return [v if i >= first - 1 else float("nan") for i, v in enumerate(out)]


def observed_vs_counterfactual_png(
    results: EvaluationResults, key: str, path: Path, *, dpi: int = 110
) -> Path:
    """:func:`observed_vs_counterfactual_figure` as a PNG at ``path``."""
    fig = observed_vs_counterfactual_figure(results, key)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def observed_vs_counterfactual_figure(results: EvaluationResults, key: str) -> Figure:
    """Observed counts, the fitted model and the counterfactual with its interval.

    The observed (and comparison) counts go through the dashboards' disclosure control
    (:func:`evaluation.report.protect.protect_series`): the figure is in the HTML report,
    which is emailed as readily as a dashboard.
    """
    series, hidden = protect_series(results.series[key], sensitive=is_sensitive(results))
    x = _x(series)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    calendar = isinstance(x[0], pd.Timestamp)
    if (
        calendar
        and results.provenance.params.get("model", {}).get("interruptions") == "welsh_covid"
    ):
        for lock in WELSH_COVID_LOCKDOWNS:
            if pd.Timestamp(lock.end) < x[0] or pd.Timestamp(lock.start) > x[-1]:
                continue
            ax.axvspan(
                pd.Timestamp(lock.start), pd.Timestamp(lock.end), color=COVID, alpha=0.35, lw=0
            )
    if series.counterfactual_low and series.counterfactual_high:
        ax.fill_between(
            x,
            _post_only(results, series, series.counterfactual_low),
            _post_only(results, series, series.counterfactual_high),
            color=COUNTERFACTUAL,
            alpha=0.15,
            lw=0,
            label=f"{int(round(results.estimates[0].level * 100))}% interval",
        )
    ax.plot(x, _float(series.observed), "o", ms=2.8, color=OBSERVED, label="Observed")
    if series.comparison:
        ax.plot(x, _float(series.comparison), "-", lw=1, color="#7f7f7f", label="Comparison")
    if series.fitted:
        ax.plot(x, _float(series.fitted), "-", lw=1.6, color=FITTED, label="Model")
    if series.counterfactual:
        ax.plot(
            x,
            _post_only(results, series, series.counterfactual),
            "--",
            lw=1.6,
            color=COUNTERFACTUAL,
            label="Without the intervention",
        )
    start = results.periods.intervention_start
    if start:
        ax.axvline(pd.Timestamp(start) if calendar else int(start), color="#444444", lw=1, ls=":")
    if calendar:
        ax.xaxis.set_major_locator(mdates.YearLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.set_ylabel(series.unit)
    ax.set_title(title_text(f"{results.title}: {series.label}"), loc="left", fontsize=11)
    if results.synthetic:
        fig.text(0.99, 0.01, SYNTHETIC_NOTE, ha="right", va="bottom", fontsize=8, color="#b00020")
    if hidden:
        fig.text(0.01, 0.01, _hidden_note(hidden, results), ha="left", va="bottom", fontsize=8)
    ax.legend(loc="upper left", fontsize=8, frameon=False, ncol=3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def event_study_png(results: EvaluationResults, path: Path, *, dpi: int = 110) -> Path | None:
    """Leads and lags with intervals; the reference period -1 is zero by construction."""
    rows = results.tables.get("event_study")
    if not rows:
        return None
    table = pd.DataFrame(rows).sort_values("event_time")
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.axhline(0 if table["scale"].iloc[0] != "rate_ratio" else 1, color="#444444", lw=0.8)
    ax.axvline(-0.5, color="#444444", lw=0.8, ls=":")
    ax.errorbar(
        table["event_time"],
        table["estimate"],
        yerr=[table["estimate"] - table["ci_low"], table["ci_high"] - table["estimate"]],
        fmt="o",
        ms=3,
        color=FITTED,
        ecolor="#9ecae1",
    )
    step = str(table["unit"].iloc[0]) if "unit" in table else "month"
    ax.set_xlabel(f"{step}s relative to the start (reference: -1)")
    ax.set_ylabel("effect" + (" (rate ratio)" if table["scale"].iloc[0] == "rate_ratio" else ""))
    ax.set_title(title_text(f"{results.title}: event study"), loc="left", fontsize=11)
    if results.synthetic:
        fig.text(0.99, 0.01, SYNTHETIC_NOTE, ha="right", va="bottom", fontsize=8, color="#b00020")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _hidden_note(hidden: int, results: EvaluationResults) -> str:
    top = SENSITIVE_THRESHOLD_HIGH if is_sensitive(results) else THRESHOLD_HIGH
    return f"{hidden} month(s) not shown: counts of 1 to {top} and those that would reveal them"


def write_figures(results: EvaluationResults, directory: Path) -> list[str]:
    """Write every figure the results support; return their file names."""
    directory = Path(directory)
    if results.design == "profile":
        from evaluation.report.profile_figures import write_profile_figures

        return write_profile_figures(results, directory)
    names: list[str] = []
    for key in results.series:
        name = f"observed_vs_counterfactual_{key}.png"
        observed_vs_counterfactual_png(results, key, directory / name)
        names.append(name)
    if event_study_png(results, directory / "event_study.png"):
        names.append("event_study.png")
    return names


def observed_vs_counterfactual_plotly(
    results: EvaluationResults, key: str = "primary"
) -> go.Figure:
    """The interactive version of :func:`observed_vs_counterfactual_png` for dashboards."""
    series = results.series[key]
    x = _x(series)
    fig = go.Figure()
    if series.counterfactual_low and series.counterfactual_high:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_post_only(results, series, series.counterfactual_high),
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_post_only(results, series, series.counterfactual_low),
                fill="tonexty",
                fillcolor="rgba(214,39,40,0.15)",
                line={"width": 0},
                name="Interval (without the intervention)",
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=_float(series.observed),
            mode="markers",
            name="Observed",
            marker={"color": OBSERVED, "size": 5},
        )
    )
    if series.comparison:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_float(series.comparison),
                mode="lines",
                name="Comparison",
                line={"color": "#7f7f7f"},
            )
        )
    if series.fitted:
        fig.add_trace(
            go.Scatter(
                x=x, y=_float(series.fitted), mode="lines", name="Model", line={"color": FITTED}
            )
        )
    if series.counterfactual:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_post_only(results, series, series.counterfactual),
                mode="lines",
                name="Without the intervention",
                line={"color": COUNTERFACTUAL, "dash": "dash"},
            )
        )
    start = results.periods.intervention_start
    if start:
        fig.add_vline(
            x=pd.Timestamp(start) if isinstance(x[0], pd.Timestamp) else int(start), line_dash="dot"
        )
    fig.update_layout(
        title=f"{series.label}: observed and without the intervention",
        yaxis_title=series.unit,
        template="simple_white",
        height=420,
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig
