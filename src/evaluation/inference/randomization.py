"""Randomisation inference over placebo assignments of the treatment.

The treatment is moved to other units (areas): every set of the same size when there are
few enough (exact Fisher randomisation test), otherwise seeded random sets. The p-value is
the share of assignments whose ``|estimate|`` is at least the actual ``|estimate|``; the
actual assignment is one of them, so the p-value is never below ``1 / n_assignments``.

The interval inverts the constant-effect sharp null ``Y_it(1) = Y_it(0) + tau``: subtract
``tau`` from the treated outcomes and test again (Imbens & Rubin 2015, ch. 5). For any
estimator that is linear in the outcome, the placebo estimate on the shifted outcomes is
``e_a - tau * f_a``, where ``e_a`` is the placebo estimate on the observed outcomes and
``f_a`` the same estimator applied to the actual treatment indicator; so the whole p-value
curve comes from two vectors, and the interval is found by bisection.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from evaluation.inference.inversion import inversion_bound

#: Default cap on the number of placebo assignments.
DEFAULT_MAX_ASSIGNMENTS = 10_000
_TIE = 1e-9


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class RandomizationResult:
    """Randomisation-inference p-value and inverted interval for one estimate.

    ``ci_low`` / ``ci_high`` are None when the test never rejects on that side.
    """

    estimate: float
    p_value: float
    ci_low: float | None
    ci_high: float | None
    level: float
    n_assignments: int
    exhaustive: bool
    seed: int | None
    placebo_estimates: np.ndarray

    @property
    def method(self) -> str:
        """One-line description for reports."""
        how = (
            f"all {self.n_assignments:,} placebo assignments"
            if self.exhaustive
            else f"{self.n_assignments:,} random placebo assignments (including the actual)"
        )
        return f"randomisation inference over {how}, interval by inverting a constant-effect sharp null"


def placebo_assignments(
    n_units: int,
    treated: np.ndarray,
    *,
    max_assignments: int = DEFAULT_MAX_ASSIGNMENTS,
    seed: int | None = None,
) -> tuple[np.ndarray, bool]:
    """Boolean (M, n_units) matrix of treated sets of the actual size; row 0 is the actual.

    All ``C(n_units, n_treated)`` sets when that is at most ``max_assignments``, otherwise
    the actual set plus ``max_assignments - 1`` seeded random sets (drawn with replacement
    across rows, each row without replacement).

    Returns
    -------
    (assignments, exhaustive)
    """
    treated = np.unique(np.asarray(treated, dtype=np.intp))
    n1 = treated.size
    if n1 == 0 or n1 >= n_units:
        raise ValueError("need at least one treated and one untreated unit")
    actual = np.zeros(n_units, dtype=bool)
    actual[treated] = True
    total = math.comb(n_units, n1)
    if total <= max_assignments:
        out = np.zeros((total, n_units), dtype=bool)
        rows = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(n_units), n1)),
            dtype=np.intp,
            count=total * n1,
        ).reshape(total, n1)
        np.put_along_axis(out, rows, True, axis=1)
        is_actual = (out == actual).all(axis=1)
        order = np.r_[np.flatnonzero(is_actual), np.flatnonzero(~is_actual)]
        return out[order], True
    rng = np.random.default_rng(seed)
    keys = rng.random((max_assignments - 1, n_units))
    picks = np.argpartition(keys, n1 - 1, axis=1)[:, :n1]
    draws = np.zeros((max_assignments - 1, n_units), dtype=bool)
    np.put_along_axis(draws, picks, True, axis=1)
    return np.vstack([actual[None, :], draws]), False


def _p_value(e: np.ndarray, f: np.ndarray, tau: float) -> float:
    stat = np.abs(e - tau * f)
    return float(np.mean(stat >= abs(e[0] - tau) * (1 - _TIE)))


def randomization_inference(
    estimates: np.ndarray,
    shift: np.ndarray | None = None,
    *,
    level: float = 0.95,
    exhaustive: bool = True,
    seed: int | None = None,
    interval: bool = True,
) -> RandomizationResult:
    """P-value and interval from placebo estimates (row 0 is the actual assignment).

    Parameters
    ----------
    estimates
        ``e_a``: the estimate under each assignment ``a`` on the observed outcomes;
        ``estimates[0]`` is the actual estimate.
    shift
        ``f_a``: the estimator under assignment ``a`` applied to the actual treatment
        indicator (so that subtracting ``tau`` times it from the outcome moves the placebo
        estimate by ``-tau * f_a``); ``shift[0]`` must be 1. Needed for the interval.
    level
        Confidence level of the interval.
    exhaustive, seed
        Recorded in the result (how the assignments were made).
    interval
        Whether to invert the sharp null for an interval.
    """
    e = np.asarray(estimates, dtype=float)
    if e.ndim != 1 or e.size < 2:
        raise ValueError("need the actual and at least one placebo estimate")
    f = np.ones_like(e) if shift is None else np.asarray(shift, dtype=float)
    p = _p_value(e, f, 0.0)  # at tau = 0 the shift plays no part
    lo = hi = None
    if interval and shift is not None:
        if not np.isclose(f[0], 1.0):
            raise ValueError("shift[0] must be 1 (the actual estimator applied to itself)")
        spread = float(np.std(e[1:]))
        scale = spread if spread > 0 else max(abs(float(e[0])), 1.0)
        alpha = round(1.0 - level, 12)  # 1 - 0.9 is 0.0999...98 in floating point
        lo = inversion_bound(lambda tau: _p_value(e, f, tau), float(e[0]), scale, alpha, -1)
        hi = inversion_bound(lambda tau: _p_value(e, f, tau), float(e[0]), scale, alpha, +1)
    return RandomizationResult(
        estimate=float(e[0]),
        p_value=p,
        ci_low=lo,
        ci_high=hi,
        level=level,
        n_assignments=e.size,
        exhaustive=exhaustive,
        seed=None if exhaustive else seed,
        placebo_estimates=e,
    )
