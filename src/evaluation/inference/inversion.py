"""Confidence intervals by test inversion, shared by the wild bootstrap and randomisation
inference: the interval is the set of null values a test does not reject."""

from __future__ import annotations

from collections.abc import Callable


def inversion_bound(
    p_value: Callable[[float], float], estimate: float, scale: float, alpha: float, side: int
) -> float | None:
    """Bound of ``{b : p_value(b) > alpha}`` on one side (``side`` -1 or +1) of ``estimate``.

    Steps out from the estimate in doubling multiples of ``scale`` until the test rejects,
    then bisects between the last accepted and first rejected value (to 1e-7 of ``scale``).
    Returns None when it never rejects within ``1e6 * scale`` (an unbounded interval).
    """
    inside = 0.0
    step = 1.0
    while p_value(estimate + side * step * scale) > alpha:
        inside = step
        step *= 2.0
        if step > 1e6:
            return None
    lo, hi = inside, step
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if p_value(estimate + side * mid * scale) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-7:
            break
    return estimate + side * 0.5 * (lo + hi) * scale
