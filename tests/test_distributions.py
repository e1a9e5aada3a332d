"""evaluation.inference.distributions gives scipy.stats' numbers exactly (the same special
functions, without importing scipy.stats into every notebook kernel)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evaluation.inference import distributions as dist

X = np.array([-np.inf, -40.0, -3.1, -1.96, -0.5, 0.0, 1e-9, 0.7, 1.96, 5.5, 38.0, np.inf])
Q = np.array([1e-12, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999, 1 - 1e-12])


def test_normal_matches_scipy_stats_exactly() -> None:
    np.testing.assert_array_equal(dist.norm_cdf(X), stats.norm.cdf(X))
    np.testing.assert_array_equal(dist.norm_sf(X), stats.norm.sf(X))
    np.testing.assert_array_equal(dist.norm_ppf(Q), stats.norm.ppf(Q))
    assert dist.norm_sf(1.96) == stats.norm.sf(1.96)
    assert np.ndim(dist.norm_ppf(0.975)) == 0


@pytest.mark.parametrize("df", [1, 2.5, 7, 30, 1e6])
def test_t_matches_scipy_stats_exactly(df: float) -> None:
    np.testing.assert_array_equal(dist.t_sf(X, df), stats.t(df).sf(X))
    np.testing.assert_array_equal(dist.t_ppf(Q, df), stats.t(df).ppf(Q))


@pytest.mark.parametrize("df", [1, 3, 12])
def test_chi2_and_f_match_scipy_stats_exactly(df: int) -> None:
    x = np.array([-2.0, 0.0, 0.3, 1.0, 4.2, 19.0, 80.0])
    np.testing.assert_array_equal(dist.chi2_sf(x, df), stats.chi2.sf(x, df))
    np.testing.assert_array_equal(dist.f_sf(x, df, 40), stats.f.sf(x, df, 40))
    assert dist.chi2_sf(-1.0, df) == 1.0  # below the support


def test_importing_it_does_not_import_scipy_stats(modules_loaded) -> None:
    code = "import evaluation.inference.distributions, evaluation.report.evidence"
    assert modules_loaded(code, ["scipy.stats"]) == []
