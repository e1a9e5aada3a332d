"""Disclosure control on everything a dashboard or a report figure shows.

The observed monthly counts in a figure are area-month counts: months with 1 to 4 crimes
(1 to 9 for sensitive crime types) are hidden, and so are further months of the same series
(secondary suppression, :func:`evaluation.report.disclosure.suppress`), because the page
also shows the counterfactual and the cumulative effect, from which the total of the
observed months can be worked out, and with it a lone hidden month. Each series (observed,
comparison) is its own one-row table: no total across series is shown.

Series whose values are not whole non-negative numbers (rates, prices, modelled values)
are not counts of crimes and are shown as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from evaluation.report.disclosure import THRESHOLD_HIGH, suppress
from evaluation.results import EvaluationResults, Series

#: Crime types whose small counts need the stricter threshold (they include sexual offences).
SENSITIVE_CRIME_TYPES: frozenset[str] = frozenset({"Violence and sexual offences"})
#: Series fields holding observed counts (the others are model output).
COUNT_FIELDS: tuple[str, ...] = ("observed", "comparison")


def is_sensitive(results: EvaluationResults) -> bool:
    """Whether the outcome includes sexual offences (stricter suppression)."""
    types = set(results.outcome.crime_types)
    return bool(types & SENSITIVE_CRIME_TYPES) or "sexual" in results.outcome.label.lower()


def _is_count(values: list[float | None]) -> bool:
    shown = [v for v in values if v is not None]
    return bool(shown) and all(v >= 0 and float(v).is_integer() for v in shown)


def suppress_values(
    values: list[float | None], periods: list[str], *, sensitive: bool = False
) -> tuple[list[float | None], int]:
    """Hide small counts of one series, with secondary suppression.

    Parameters
    ----------
    values
        The counts per period (None where there is no value).
    periods
        The period labels, one per value.
    sensitive
        Use the stricter threshold for sensitive crime types.

    Returns
    -------
    values, hidden
        The values with hidden ones set to None, and how many were hidden.
    """
    if not _is_count(values):
        return list(values), 0
    table = pd.DataFrame(
        [
            {"series": "s", "period": p, "count": v}
            for p, v in zip(periods, values, strict=True)
            if v is not None
        ]
    )
    done = suppress(table, "count", row="series", col="period", sensitive=sensitive)
    hidden_periods = set(done.loc[done["suppressed"], "period"])
    out = [None if p in hidden_periods else v for p, v in zip(periods, values, strict=True)]
    return out, len(hidden_periods)


@dataclass(frozen=True)
class Protected:
    """Results safe to show, and what was hidden."""

    results: EvaluationResults
    hidden: dict[str, int] = field(default_factory=dict)  # series key -> months hidden
    sensitive: bool = False

    @property
    def threshold(self) -> str:
        """The suppressed range in words, e.g. ``"1 to 4"``."""
        from evaluation.report.disclosure import SENSITIVE_THRESHOLD_HIGH

        return f"1 to {SENSITIVE_THRESHOLD_HIGH if self.sensitive else THRESHOLD_HIGH}"

    @property
    def total_hidden(self) -> int:
        """Months hidden across all series."""
        return sum(self.hidden.values())


def protect_series(series: Series, *, sensitive: bool = False) -> tuple[Series, int]:
    """A copy of ``series`` with small observed (and comparison) counts hidden."""
    update: dict[str, list[float | None]] = {}
    hidden = 0
    for name in COUNT_FIELDS:
        values = getattr(series, name)
        if values is None:
            continue
        update[name], n = suppress_values(values, series.periods, sensitive=sensitive)
        hidden += n
    return series.model_copy(update=update), hidden


def protect(results: EvaluationResults) -> Protected:
    """Apply disclosure control to every series of ``results``.

    Returns
    -------
    Protected
        A copy of the results whose series show no small count, with the number of months
        hidden per series.
    """
    sensitive = is_sensitive(results)
    series: dict[str, Series] = {}
    hidden: dict[str, int] = {}
    for key, s in results.series.items():
        series[key], hidden[key] = protect_series(s, sensitive=sensitive)
    safe = results.model_copy(update={"series": series})
    return Protected(safe, hidden, sensitive)


def safe_count(n: int | float | None) -> str:
    """A count for a sentence: ``"fewer than 5"`` for 1 to 4, else with thousands separators."""
    if n is None:
        return "an unknown number of"
    if 0 < n <= THRESHOLD_HIGH:
        return f"fewer than {THRESHOLD_HIGH + 1}"
    return f"{int(n):,}"
