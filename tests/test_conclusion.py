"""Small-count honesty: the minimum detectable effect and the "cannot conclude" wording."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from evaluation.results import Estimate
from evaluation.workflows.its import EFFECT_OF_INTEREST, conclusion, minimum_detectable


def _level(estimate: float, se: float) -> Estimate:
    z = stats.norm.ppf(0.975)
    b = math.log(estimate)
    return Estimate(
        name="level_change",
        estimate=estimate,
        se=se,
        ci_low=math.exp(b - z * se),
        ci_high=math.exp(b + z * se),
        scale="rate_ratio",
        method="test",
    )


def test_mde_is_the_closed_form() -> None:
    # Bloom (1995): (z_{0.975} + z_{0.8}) * se = 2.8016 * se on the log scale
    mde = minimum_detectable([_level(0.9, 0.1)], 0.95)
    assert mde is not None
    assert mde.estimate == pytest.approx(math.exp(-2.801585 * 0.1), rel=1e-6)


def test_noisy_small_counts_cannot_conclude() -> None:
    level = _level(0.85, 0.2)  # interval about 0.57 to 1.26: includes no change
    mde = minimum_detectable([level], 0.95)
    assert mde is not None and mde.estimate < EFFECT_OF_INTEREST  # only a ~43% fall is detectable
    out = conclusion(level, mde, "ASB around Burnham Avenue")
    assert out["conclusive"] is False
    text = out["conclusion"]
    assert text.startswith("The data cannot support a conclusion about ASB around Burnham Avenue")
    assert "43%" in text and "fall" in text and "rise" in text
    assert "15%" not in text  # the misleading point estimate is not printed


def test_precise_null_is_a_conclusion() -> None:
    level = _level(0.99, 0.03)  # tight interval around no change: that is informative
    mde = minimum_detectable([level], 0.95)
    assert mde is not None
    assert conclusion(level, mde, "x")["conclusive"] is True


def test_clear_effect_is_a_conclusion() -> None:
    level = _level(0.6, 0.2)  # large effect, interval excludes 1
    mde = minimum_detectable([level], 0.95)
    assert mde is not None
    assert conclusion(level, mde, "x")["conclusive"] is True
