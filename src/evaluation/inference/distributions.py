"""Tail probabilities and quantiles of the normal, t, chi-square and F distributions.

The same special functions that ``scipy.stats`` evaluates for these (``ndtr``, ``ndtri``,
``stdtr``, ``stdtrit``, ``chdtrc``, ``fdtrc``), so the numbers are identical; but
importing ``scipy.stats`` takes about 0.4 s, and a DiD notebook kernel needs nothing else
from it. As there, a number gives a NumPy scalar and an array an array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

#: A number or an array of them; results have the same shape (NumPy scalars for numbers).
ArrayLike = Any


def norm_cdf(x: ArrayLike) -> Any:
    """Standard normal ``P(Z <= x)``."""
    return special.ndtr(x)


def norm_sf(x: ArrayLike) -> Any:
    """Standard normal ``P(Z > x)``."""
    return special.ndtr(np.negative(x))


def norm_ppf(q: ArrayLike) -> Any:
    """Standard normal quantile: the ``z`` with ``P(Z <= z) = q``."""
    return special.ndtri(q)


def t_sf(x: ArrayLike, df: float) -> Any:
    """Student t ``P(T > x)`` with ``df`` degrees of freedom."""
    return special.stdtr(df, np.negative(x))


def t_ppf(q: ArrayLike, df: float) -> Any:
    """Student t quantile with ``df`` degrees of freedom."""
    return special.stdtrit(df, q)


def chi2_sf(x: ArrayLike, df: float) -> Any:
    """Chi-square ``P(X > x)``; 1 below the support, as ``scipy.stats``."""
    return special.chdtrc(df, np.maximum(x, 0.0))


def f_sf(x: ArrayLike, dfn: float, dfd: float) -> Any:
    """F ``P(X > x)`` with ``dfn`` and ``dfd`` degrees of freedom; 1 below the support."""
    return special.fdtrc(dfn, dfd, np.maximum(x, 0.0))


__all__ = ["chi2_sf", "f_sf", "norm_cdf", "norm_ppf", "norm_sf", "t_ppf", "t_sf"]
