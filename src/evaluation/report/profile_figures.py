"""Figures of a scrutiny profile, drawn from the results contract only.

A profile (``design="profile"``) carries its monthly series in ``series["primary"]`` and its
tables in ``tables`` (``monthly``, ``years``, ``areas``, ``crime_types``, ``outcomes``,
``outcome_groups``). Area figures use the disclosure-controlled ``areas`` table as it is:
a hidden count is never drawn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by Papermill and CI
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from evaluation.config import WELSH_COVID_LOCKDOWNS
from evaluation.report.figures import COVID, OBSERVED, SYNTHETIC_NOTE, title_text
from evaluation.results import EvaluationResults

YEAR_COLOURS = ("#9ecae1", "#1f77b4")  # year 1 light, year 2 dark
RISE, FALL = "#d62728", "#2ca02c"
GROUP_COLOURS = {
    "charged_summonsed": "#1f77b4",
    "caution_warning": "#ff7f0e",
    "no_further_action": "#7f7f7f",
    "open_or_unknown": "#bcbd22",
    "other": "#c7c7c7",
}
MONTHLY = "profile_monthly.png"
AREAS = "profile_areas.png"
CRIME_TYPES = "profile_crime_types.png"
OUTCOMES = "profile_outcomes.png"


def _top_n(results: EvaluationResults) -> int:
    return int(results.diagnostics.get("top_n", 5))


def _year_labels(results: EvaluationResults) -> tuple[str, str]:
    years = {r["year"]: r["label"] for r in results.tables.get("years", [])}
    return years.get("year_1", "Year 1"), years.get("year_2", "Year 2")


def _finish(fig: Figure, results: EvaluationResults, path: Path, dpi: int) -> Path:
    if results.synthetic:
        fig.text(0.99, 0.01, SYNTHETIC_NOTE, ha="right", va="bottom", fontsize=8, color="#b00020")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def monthly_png(results: EvaluationResults, path: Path, *, dpi: int = 110) -> Path:
    """The monthly series with Covid-19 lockdowns shaded, each year's total and the
    highest and lowest months marked."""
    table = pd.DataFrame(results.tables["monthly"])
    table["month"] = pd.to_datetime(table["month"])
    fig, ax = plt.subplots(figsize=(9, 4.2))
    first, last = table["month"].min(), table["month"].max()
    shaded = False
    for lock in WELSH_COVID_LOCKDOWNS:
        if pd.Timestamp(lock.end) < first or pd.Timestamp(lock.start) > last:
            continue
        ax.axvspan(
            pd.Timestamp(lock.start),
            pd.Timestamp(lock.end),
            color=COVID,
            alpha=0.35,
            lw=0,
            label="_nolegend_" if shaded else "Covid-19 lockdowns",
        )
        shaded = True
    ax.plot(table["month"], table["count"], "-o", ms=3, lw=1.4, color=OBSERVED, label="Recorded")
    top = table["count"].max() * 1.18 + 1
    for i, row in enumerate(results.tables.get("years", [])):
        start, end = pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
        mean = row["count"] / 12
        ax.hlines(
            mean,
            start,
            end,
            colors="#1f77b4",
            linestyles="--",
            lw=1,
            label="_nolegend_" if i else "Monthly average of the year",
        )
        ax.text(
            start + (end - start) / 2,
            top * 0.97,
            f"{row['label']}: {row['count']:,}",
            ha="center",
            va="top",
            fontsize=8,
            color="#1f77b4",
        )
    for flag, word, offset in (("highest", "highest", 8), ("lowest", "lowest", -14)):
        for _, row in table[table[flag]].iterrows():
            ax.annotate(
                f"{word}: {row['month']:%b %Y} ({row['count']:,})",
                (row["month"], row["count"]),
                xytext=(0, offset),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
    ax.set_ylim(0, top)
    if len(table) <= 36:
        ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b\n%Y"))
    else:
        ax.xaxis.set_major_locator(mdates.YearLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.set_ylabel("crimes per month")
    ax.set_title(
        title_text(f"{results.title}: {results.outcome.label} by month"), loc="left", fontsize=11
    )
    ax.legend(loc="lower left", fontsize=8, frameon=False, ncol=3)
    ax.spines[["top", "right"]].set_visible(False)
    return _finish(fig, results, path, dpi)


def areas_png(results: EvaluationResults, path: Path, *, dpi: int = 110) -> Path | None:
    """The areas with most records (each year) and the largest rises and falls.

    Only counts the disclosure-controlled table shows are drawn.
    """
    table = pd.DataFrame(results.tables.get("areas", []))
    if table.empty:
        return None
    shown = table[~table["suppressed"]]
    n = _top_n(results)
    top = shown.sort_values("rank_count").head(n).iloc[::-1]
    changes = shown.dropna(subset=["change"]).sort_values("change")
    falls = changes[changes["change"] < 0].head(n)
    rises = changes[changes["change"] > 0].tail(n)
    moved = pd.concat([falls, rises])
    l1, l2 = _year_labels(results)
    level = str(results.diagnostics.get("area_level", "area"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * max(n, len(moved)) + 2))
    y = range(len(top))
    left.barh([i + 0.2 for i in y], top["year_1"], height=0.4, color=YEAR_COLOURS[0], label=l1)
    left.barh([i - 0.2 for i in y], top["year_2"], height=0.4, color=YEAR_COLOURS[1], label=l2)
    left.set_yticks(list(y), top["area"])
    for i, (a, b) in enumerate(zip(top["year_1"], top["year_2"], strict=True)):
        left.annotate(f"{int(a):,}", (a, i + 0.2), xytext=(2, 0), textcoords="offset points",
                      va="center", fontsize=7)  # fmt: skip
        left.annotate(f"{int(b):,}", (b, i - 0.2), xytext=(2, 0), textcoords="offset points",
                      va="center", fontsize=7)  # fmt: skip
    left.set_title(f"Most records, by {level}", loc="left", fontsize=10)
    left.legend(fontsize=8, frameon=False, loc="lower right")
    colours = [RISE if c > 0 else FALL for c in moved["change"]]
    right.barh(range(len(moved)), moved["change"], color=colours)
    right.set_yticks(range(len(moved)), moved["area"])
    right.axvline(0, color="#444444", lw=0.8)
    for i, c in enumerate(moved["change"]):
        right.annotate(f"{int(c):+,}", (c, i), xytext=(3 if c > 0 else -3, 0),
                       textcoords="offset points", ha="left" if c > 0 else "right",
                       va="center", fontsize=7)  # fmt: skip
    right.set_title(f"Change, {l2} against {l1}", loc="left", fontsize=10)
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="y", labelsize=8)
    hidden = int(table["suppressed"].sum())
    if hidden:
        fig.text(0.01, 0.01, f"{hidden} {level}(s) not shown: small counts hidden", fontsize=8)
    fig.suptitle(f"{results.title}: {results.outcome.label} by {level}", x=0.01, ha="left")
    return _finish(fig, results, path, dpi)


def crime_types_png(results: EvaluationResults, path: Path, *, dpi: int = 110) -> Path | None:
    """Records by crime type in each year (only when the profile has several types)."""
    table = pd.DataFrame(results.tables.get("crime_types", []))
    if len(table) < 2:
        return None
    table = table.sort_values("total").reset_index(drop=True)
    l1, l2 = _year_labels(results)
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(table) + 1.6))
    y = range(len(table))
    ax.barh([i + 0.2 for i in y], table["year_1"], height=0.4, color=YEAR_COLOURS[0], label=l1)
    ax.barh([i - 0.2 for i in y], table["year_2"], height=0.4, color=YEAR_COLOURS[1], label=l2)
    ax.set_yticks(list(y), table["crime_type"])
    ax.set_title(title_text(f"{results.title}: records by crime type"), loc="left", fontsize=11)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return _finish(fig, results, path, dpi)


def outcomes_png(results: EvaluationResults, path: Path, *, dpi: int = 110) -> Path | None:
    """Last outcome categories, coloured by group, with each group's total in the legend."""
    table = pd.DataFrame(results.tables.get("outcomes", []))
    if table.empty:
        return None
    order = {g: i for i, g in enumerate(GROUP_COLOURS)}
    table["order"] = table["group"].map(order).fillna(len(order))
    table = table.sort_values(["order", "count"], ascending=[False, True]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(table) + 2.2))
    ax.barh(
        range(len(table)),
        table["count"],
        color=[GROUP_COLOURS.get(g, GROUP_COLOURS["other"]) for g in table["group"]],
    )
    ax.set_yticks(range(len(table)), table["last_outcome"])
    ax.tick_params(axis="y", labelsize=8)
    for i, c in enumerate(table["count"]):
        ax.annotate(f"{int(c):,}", (c, i), xytext=(2, 0), textcoords="offset points", va="center",
                    fontsize=7)  # fmt: skip
    groups = [g for g in results.tables.get("outcome_groups", []) if g["count"]]
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=GROUP_COLOURS.get(g["group"], GROUP_COLOURS["other"]))
        for g in groups
    ]
    labels = [f"{g['group_label']}: {g['count']:,}" for g in groups]
    ax.legend(
        handles,
        labels,
        fontsize=8,
        frameon=False,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncol=2,
    )
    fig.suptitle(f"{results.title}: last outcome", x=0.01, ha="left", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return _finish(fig, results, path, dpi)


def write_profile_figures(results: EvaluationResults, directory: Path) -> list[str]:
    """Write every profile figure the results support; return their file names."""
    directory = Path(directory)
    names: list[str] = []
    for name, draw in (
        (MONTHLY, monthly_png),
        (AREAS, areas_png),
        (CRIME_TYPES, crime_types_png),
        (OUTCOMES, outcomes_png),
    ):
        if draw(results, directory / name, dpi=110) is not None:
            names.append(name)
    return names
