"""The few calls a notebook makes: load, fit, show, save.

Notebooks stay thin (a ``parameters`` cell, then these calls); all logic lives here and in
the modules it calls, so the same code runs under Papermill, in tests and from the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evaluation import workflows
from evaluation.context import RunContext, open_context
from evaluation.provenance import now
from evaluation.report import figures, text
from evaluation.results import EvaluationResults, write_results


@dataclass
class Evaluation:
    """A validated evaluation, ready to fit."""

    context: RunContext

    def fit(self) -> EvaluationResults:
        """Fit the design the params name and return the results contract."""
        return workflows.run(self.context)


def load(params_path: str | Path, database: str | Path | None = None) -> Evaluation:
    """Validate the params and open the data (raising one-line errors on bad input).

    Parameters
    ----------
    params_path
        The params YAML.
    database
        The DuckDB file; the default database (built from the synthetic data on first
        use) when None.
    """
    return Evaluation(open_context(params_path, database))


def estimates_table(results: EvaluationResults) -> pd.DataFrame:
    """The estimates as a tidy table (what a statistician reads)."""
    rows = [e.model_dump() for e in results.estimates]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    cols = ["name", "label", "estimate", "ci_low", "ci_high", "se", "p_value", "scale", "method"]
    if results.truth:
        table["truth"] = table["name"].map(results.truth)
        cols.insert(4, "truth")
    return table[cols].set_index("name")


def show(results: EvaluationResults, output_dir: str | Path | None = None) -> None:
    """Display the headline, the estimates and the saved figures in the notebook.

    Figures are shown as the PNGs written by :func:`save` so that the code-free HTML
    report is self-contained.
    """
    from IPython.display import Image, Markdown, display

    lines = []
    if results.synthetic:
        lines.append(f"> **{figures.SYNTHETIC_NOTE}.**\n")
    lines.append(f"## {results.title}\n")
    lines += [f"- {sentence}" for sentence in text.plain_summary(results)]
    if results.warnings:
        lines.append("\n**Warnings**\n")
        lines += [f"- {w}" for w in results.warnings]
    lines.append("\n**Method and assumptions**\n")
    lines += [f"- {n}" for n in results.notes]
    display(Markdown("\n".join(lines)))
    display(estimates_table(results).round(4))
    for name, rows in results.tables.items():
        display(Markdown(f"**{name.replace('_', ' ').capitalize()}**"))
        display(pd.DataFrame(rows))
    if output_dir is not None:
        for name in results.figures:
            display(Image(filename=str(Path(output_dir) / name)))


def save(results: EvaluationResults, output_dir: str | Path) -> EvaluationResults:
    """Write the figures and ``results.json`` (last, atomically) into ``output_dir``.

    Returns the results as saved (with the figure names and the finishing time).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = figures.write_figures(results, out)
    final = results.model_copy(
        update={
            "figures": names,
            "provenance": results.provenance.model_copy(update={"run_finished": now()}),
        }
    )
    write_results(final, out)
    return final
