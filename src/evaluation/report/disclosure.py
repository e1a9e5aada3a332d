"""Statistical disclosure control for tables a funder sees.

Small counts in small areas can identify victims, so area-by-period counts of 1 to 4 are
hidden (primary suppression; 1 to 9 for sensitive crime types such as sexual offences).
Hiding them is not enough when row and column totals are published: a row with a single
hidden cell gives that cell away as the total minus the cells shown. Secondary suppression
therefore hides, in any row or column with exactly one hidden cell, the smallest non-zero
cell still shown, and repeats until no row or column has exactly one hidden cell.

Zeros are never hidden: a zero says nothing about a person, and hiding one protects
nothing (its value is known to be 0 whatever the total). When a row or column has one
hidden cell and no other non-zero cell to hide, the cell can only be protected by not
publishing that row's (or column's) total; such rows and columns are listed in
``result.attrs["hide_row_totals"]`` / ``["hide_col_totals"]``.

Limitation: this is the usual "no lone hidden cell" rule. It stops exact recovery from the
published margins, but a reader can still bound hidden cells (e.g. two hidden cells summing
to 6). Publish rounded totals or aggregate further when that matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from evaluation.errors import InputError

#: Upper bound of primary suppression for ordinary counts (1..4).
THRESHOLD_HIGH = 4
#: Upper bound of primary suppression for sensitive crime types (1..9).
SENSITIVE_THRESHOLD_HIGH = 9

PRIMARY = "primary"
SECONDARY = "secondary"

_SOURCE = "disclosure control"


def _check_long(
    table: pd.DataFrame, value_col: str, row: str, col: str, by: Sequence[str] = ()
) -> None:
    missing = [c for c in (value_col, row, col, *by) if c not in table.columns]
    if missing:
        raise InputError(_SOURCE, f"table has no column(s) {missing}")
    for reserved in ("suppressed", "suppression"):
        if reserved in table.columns:
            raise InputError(_SOURCE, f"table already has a column called {reserved!r}")
    values = pd.to_numeric(table[value_col], errors="coerce")
    if values.isna().any():
        raise InputError(_SOURCE, f"{value_col!r} has missing or non-numeric counts")
    if (values < 0).any():
        raise InputError(_SOURCE, f"{value_col!r} has negative counts")
    if table.duplicated([*by, row, col]).any():
        raise InputError(_SOURCE, f"more than one row for the same ({row}, {col}) cell")


def _primary(values: np.ndarray, low: int, high: int) -> np.ndarray:
    return (values >= low) & (values <= high) & (values > 0)


def _hide_one_more(values: np.ndarray, mask: np.ndarray, line: np.ndarray) -> bool:
    """Hide the smallest non-zero shown cell among ``line`` (flat indices); False if none."""
    candidates = [i for i in line if not mask.flat[i] and values.flat[i] > 0]
    if not candidates:
        return False
    # Smallest value first, then position, so the result does not depend on dict order.
    best = min(candidates, key=lambda i: (values.flat[i], i))
    mask.flat[best] = True
    return True


def secondary_mask(
    values: np.ndarray, primary: np.ndarray
) -> tuple[np.ndarray, list[int], list[int]]:
    """Add secondary suppressions until no row or column has exactly one hidden cell.

    Parameters
    ----------
    values
        2-D array of non-negative counts.
    primary
        Boolean array of the same shape: the primary suppressions.

    Returns
    -------
    mask
        All suppressions (primary and secondary).
    bad_rows, bad_cols
        Positions of rows / columns whose lone hidden cell cannot be protected by hiding
        another cell (the rest are zeros): their totals must not be published.
    """
    values = np.asarray(values, dtype=float)
    mask = np.array(primary, dtype=bool, copy=True)
    n_rows, n_cols = values.shape
    flat = np.arange(values.size).reshape(values.shape)
    bad_rows: set[int] = set()
    bad_cols: set[int] = set()
    changed = True
    while changed:
        changed = False
        for r in range(n_rows):
            if mask[r].sum() == 1 and r not in bad_rows:
                if _hide_one_more(values, mask, flat[r]):
                    changed = True
                else:
                    bad_rows.add(r)
        for c in range(n_cols):
            if mask[:, c].sum() == 1 and c not in bad_cols:
                if _hide_one_more(values, mask, flat[:, c]):
                    changed = True
                else:
                    bad_cols.add(c)
    # A row flagged earlier may have gained a second hidden cell through its columns.
    rows = sorted(r for r in bad_rows if mask[r].sum() == 1)
    cols = sorted(c for c in bad_cols if mask[:, c].sum() == 1)
    return mask, rows, cols


def suppress(
    table: pd.DataFrame,
    value_col: str,
    *,
    row: str,
    col: str,
    threshold_low: int = 1,
    threshold_high: int = THRESHOLD_HIGH,
    sensitive: bool = False,
) -> pd.DataFrame:
    """Suppress small counts in a two-way table held in long form.

    Parameters
    ----------
    table
        One line per cell, with columns ``row``, ``col`` and ``value_col``. Cells absent
        from ``table`` count as zero (police.uk lists only crimes that happened).
    value_col
        The count column.
    row, col
        The columns naming the table's rows (e.g. area) and columns (e.g. month).
    threshold_low, threshold_high
        Primary suppression hides counts in ``[threshold_low, threshold_high]``.
    sensitive
        Use at least :data:`SENSITIVE_THRESHOLD_HIGH` (9) as the upper bound, for sexual
        offences and other sensitive crime types.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table`` in which ``value_col`` holds None for hidden cells (object
        dtype), with ``suppressed`` (bool) and ``suppression`` (``"primary"``,
        ``"secondary"`` or ``""``). ``attrs["hide_row_totals"]`` and
        ``attrs["hide_col_totals"]`` list the rows / columns whose totals must not be shown.

    Raises
    ------
    InputError
        On missing columns, negative or missing counts, or duplicated cells.
    """
    _check_long(table, value_col, row, col)
    if threshold_low < 1 or threshold_high < threshold_low:
        raise InputError(_SOURCE, f"bad thresholds {threshold_low}..{threshold_high}")
    high = max(threshold_high, SENSITIVE_THRESHOLD_HIGH) if sensitive else threshold_high

    wide = table.pivot(index=row, columns=col, values=value_col).fillna(0)
    values = wide.to_numpy(dtype=float)
    primary = _primary(values, threshold_low, high)
    mask, bad_rows, bad_cols = secondary_mask(values, primary)

    primary_df = pd.DataFrame(primary, index=wide.index, columns=wide.columns)
    mask_df = pd.DataFrame(mask, index=wide.index, columns=wide.columns)
    keys = pd.MultiIndex.from_frame(table[[row, col]])
    is_primary = primary_df.stack().reindex(keys).to_numpy(dtype=bool)
    is_hidden = mask_df.stack().reindex(keys).to_numpy(dtype=bool)

    out = table.copy()
    shown = out[value_col].astype(object)
    shown[is_hidden] = None
    out[value_col] = shown
    out["suppressed"] = is_hidden
    out["suppression"] = np.where(is_primary, PRIMARY, np.where(is_hidden, SECONDARY, ""))
    out.attrs["hide_row_totals"] = [wide.index[r] for r in bad_rows]
    out.attrs["hide_col_totals"] = [wide.columns[c] for c in bad_cols]
    return out


def suppress_long(
    df: pd.DataFrame,
    area_col: str,
    period_col: str,
    value_col: str,
    *,
    by: Sequence[str] = (),
    sensitive: bool = False,
    threshold_low: int = 1,
    threshold_high: int = THRESHOLD_HIGH,
) -> pd.DataFrame:
    """Suppress an area-by-period count table, completing missing cells with zeros.

    Parameters
    ----------
    df
        Long area-period counts; a missing area-period is a zero, not a gap.
    area_col, period_col, value_col
        Column names.
    by
        Further columns (e.g. crime type) each of whose values is a separate table.
    sensitive, threshold_low, threshold_high
        As in :func:`suppress`.

    Returns
    -------
    pandas.DataFrame
        Every area x period (x ``by``) cell, suppressed as in :func:`suppress`, sorted by
        ``by``, area and period. ``attrs`` hold the totals to hide, keyed by ``by`` value
        when ``by`` is given.
    """
    by = list(by)
    _check_long(df, value_col, area_col, period_col, by)

    areas = sorted(df[area_col].unique())
    periods = sorted(df[period_col].unique())
    groups = [((), df)] if not by else list(df.groupby(by, sort=True))
    pieces, hide_rows, hide_cols = [], {}, {}
    for key, part in groups:
        grid = pd.MultiIndex.from_product([areas, periods], names=[area_col, period_col])
        full = (
            part.set_index([area_col, period_col])[[value_col]]
            .reindex(grid, fill_value=0)
            .reset_index()
        )
        for c, v in zip(by, key if isinstance(key, tuple) else (key,), strict=True):
            full.insert(0, c, v)
        done = suppress(
            full,
            value_col,
            row=area_col,
            col=period_col,
            threshold_low=threshold_low,
            threshold_high=threshold_high,
            sensitive=sensitive,
        )
        hide_rows[key] = done.attrs["hide_row_totals"]
        hide_cols[key] = done.attrs["hide_col_totals"]
        done.attrs = {}
        pieces.append(done)
    out = pd.concat(pieces, ignore_index=True)
    out = out[[*by, area_col, period_col, value_col, "suppressed", "suppression"]]
    if by:
        out.attrs["hide_row_totals"] = {k: v for k, v in hide_rows.items() if v}
        out.attrs["hide_col_totals"] = {k: v for k, v in hide_cols.items() if v}
    else:
        out.attrs["hide_row_totals"] = hide_rows[()]
        out.attrs["hide_col_totals"] = hide_cols[()]
    return out


def to_wide(result: pd.DataFrame, row: str, col: str, values: str = "suppressed") -> pd.DataFrame:
    """Pivot a suppressed long table to rows x columns (e.g. the mask for :func:`is_safe`)."""
    wide = result.pivot(index=row, columns=col, values=values)
    return wide.fillna(False).astype(bool) if values == "suppressed" else wide


def is_safe(
    table: pd.DataFrame,
    mask: pd.DataFrame,
    *,
    hidden_row_totals: Sequence = (),
    hidden_col_totals: Sequence = (),
) -> bool:
    """Whether no published row or column total gives away a hidden cell.

    Parameters
    ----------
    table
        Rows x columns of counts (the unsuppressed values).
    mask
        Same shape and labels: True where a cell is hidden.
    hidden_row_totals, hidden_col_totals
        Rows / columns whose totals are not published (exempt from the check).

    Returns
    -------
    bool
        False if any row or column with a published total has exactly one hidden cell.
    """
    if table.shape != mask.shape or not (
        table.index.equals(mask.index) and table.columns.equals(mask.columns)
    ):
        raise InputError(_SOURCE, "mask does not have the table's rows and columns")
    m = mask.astype(bool)
    per_row = m.sum(axis=1).drop(list(hidden_row_totals), errors="ignore")
    per_col = m.sum(axis=0).drop(list(hidden_col_totals), errors="ignore")
    return not ((per_row == 1).any() or (per_col == 1).any())
