"""The Monte Carlo studies under studies/ run, at tiny size, and simulate what they claim."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from evaluation import config
from evaluation.data import synthetic as syn

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def _load(name: str) -> ModuleType:
    """Import a study script by path (studies/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def did() -> ModuleType:
    return _load("did_coverage")


@pytest.fixture(scope="module")
def micro() -> ModuleType:
    return _load("microplace_coverage")


# ---------------------------------------------------------------- DiD coverage


def test_did_panel_is_the_generators_ward_panel(did):
    cfg = did.Config(n_reps=1)
    frame = did.simulate_panel(5, cfg)
    assert frame.shape == (29 * 96, 3)
    assert frame["period"].min() == pd.Timestamp("2016-04-01")
    assert frame["period"].max() == pd.Timestamp("2024-03-01")
    # expected ward totals from the generator's intensities: the draw must match them
    # to within NB noise (about 1% of ~45,000 crimes over 8 years; 5% is generous)
    geo = syn._build_geography(5)
    cols = [config.CRIME_TYPES.index(c) for c in did.CRIME_TYPES]
    mu = syn._intensities(geo, syn._month_range("2016-04", "2024-03"))[:, :, cols].sum()
    assert frame["count"].sum() == pytest.approx(mu, rel=0.05)


def test_did_comparison_wards_follow_the_workflow(did):
    frame = did.simulate_panel(7, did.Config())
    buffer = set(syn._buffer_of(tuple(did.TREATED)))
    matched = did.comparison_wards(frame, "matched")
    everyone = did.comparison_wards(frame, "all")
    assert len(matched) == 8 and set(matched) <= set(everyone)
    assert len(everyone) == 29 - 2 - len(buffer)
    assert not (set(everyone) & (buffer | set(did.TREATED)))


def test_did_study_runs_and_recovers_a_planted_ratio(did):
    # a large effect (x0.5) so three replications are enough to see it: the PPML
    # estimate's SD is about 0.04 on the log scale, so 0.5 +/- 0.1 cannot fail by chance
    cfg = did.Config(n_reps=3, rate_ratio=0.5, boot_reps=199)
    result = did.run(cfg)
    rows = {(s["comparison"], s["method"]): s for s in result["summary"]}
    assert set(rows) == {(c, m) for c in did.COMPARISONS for m in did.METHODS}
    for s in rows.values():
        assert s["n"] == 3 and 0.0 <= s["coverage"] <= 1.0
        assert s["mean_rr"] == pytest.approx(0.5, abs=0.1)
    assert "| matched | wild |" in did.markdown(result)


# ---------------------------------------------------------------- micro-place ITS


def test_micro_counts_equal_the_generated_files(micro, tmp_path):
    # exact: the study reproduces the generator's random stream, drug calibration included
    # (2019-03 is outside the calibrated drug window, 2019-04 inside)
    seed = 11
    labels, counts, _ = micro.simulate_counts(seed, "2019-03", "2019-04")
    data = syn.generate(tmp_path / "syn", seed, start="2019-03", end="2019-04")
    codes = syn._build_geography(seed).codes
    for t, label in enumerate(labels):
        rows = pd.read_csv(data.street_dir / syn.street_file(label))
        rows = rows[rows["LSOA code"].notna()]
        got = np.zeros_like(counts[t])
        for (code, ctype), n in rows.groupby(["LSOA code", "Crime type"]).size().items():
            got[codes.index(code), config.CRIME_TYPES.index(ctype)] = n
        np.testing.assert_array_equal(got, counts[t])


def test_micro_series_is_quarterly_and_whole(micro):
    params = micro._params("burnham_avenue")
    labels, counts, _ = micro.simulate_counts(2)
    y = micro.place_series(labels, counts, "burnham_avenue", params)
    assert len(y) == 32 and y.index[0] == pd.Timestamp("2016-04-01")
    assert micro._start(params) == pd.Timestamp("2021-04-01")


def test_micro_study_runs(micro):
    result = micro.run(micro.Config(n_seeds=1))
    by_place = {s["place"]: s for s in result["summary"]}
    assert set(by_place) == {"tweedsmuir_road", "burnham_avenue"}
    for place, s in by_place.items():
        # the pseudo-true value differs from the planted one only through the other
        # planted effects (Talon, Area Based Working): a few percent, not more
        assert s["pseudo_true_mean"] == pytest.approx(micro.PLACES[place][1], abs=0.05)
        assert 0.0 <= s["coverage_planted"] <= 1.0
        assert 0.0 <= s["cannot_conclude_rate"] <= 1.0
    assert "tweedsmuir_road" in micro.markdown(result)


def test_micro_fallback_fit_fixes_alpha(micro):
    # the refit used when the workflow's alpha estimate hangs: alpha fixed, flagged
    params = micro._params("tweedsmuir_road")
    labels, counts, _ = micro.simulate_counts(4)
    y = micro.place_series(labels, counts, "tweedsmuir_road", params)
    rec = micro.fit_place(y, params, micro.FALLBACK_ALPHA)
    assert rec["timed_out"] and rec["alpha"] == micro.FALLBACK_ALPHA
    assert rec["ci_low"] < rec["estimate"] < rec["ci_high"]
