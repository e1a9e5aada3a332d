"""CI re-executes every evaluation notebook through Papermill on the default data and
compares its results.json with the committed golden file: a moved number fails the build.

Tolerance: relative 1e-6 (absolute 1e-9). The fits are deterministic (seeded, no
threads racing), so only floating-point differences between BLAS builds may move a
number, and those are far below 1e-6 of it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evaluation import runner
from evaluation.results import read_results

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOLDEN = sorted((HERE / "golden").glob("*.json"))
RTOL, ATOL = 1e-6, 1e-9

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[p.stem for p in GOLDEN])
def executed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    out = tmp_path_factory.mktemp("reports") / name
    outcome = runner.run(REPO / "params" / f"{name}.yaml", output_dir=out)
    assert outcome.ok, outcome.error
    return name, out


def test_every_params_file_has_a_golden() -> None:
    params = {p.stem for p in (REPO / "params").glob("*.yaml")}
    assert params <= {p.stem for p in GOLDEN}, params - {p.stem for p in GOLDEN}


def test_report_layout(executed) -> None:
    name, out = executed
    for item in ("results.json", "report.html", f"{name}.ipynb"):
        assert (out / item).exists(), item
    results = read_results(out)
    for fig in results.figures:
        assert (out / fig).stat().st_size > 10_000, fig
    html = (out / "report.html").read_text()
    assert "api.load" not in html, "the HTML report shows code"
    if results.synthetic:
        assert "SYNTHETIC" in html


def test_numbers_match_golden(executed) -> None:
    name, out = executed
    golden = json.loads((HERE / "golden" / f"{name}.json").read_text())
    results = json.loads((out / "results.json").read_text())
    got = {e["name"]: e for e in results["estimates"]}
    assert set(got) == set(golden["estimates"]), "estimates added or removed"
    for est_name, fields in golden["estimates"].items():
        for field, want in fields.items():
            have = got[est_name][field]
            if want is None or have is None:
                assert want is have, f"{est_name}.{field}: {have} != {want}"
            else:
                assert math.isclose(have, want, rel_tol=RTOL, abs_tol=ATOL), (
                    f"{name}: {est_name}.{field} moved: {have} != golden {want}"
                )


#: Micro-places: a single small-count realisation misses its 95% interval 1 time in 20 by
#: design, so on the default seed they must lie within 3 standard errors (a 99.7% band),
#: and the 95% coverage is checked over many seeds (studies/microplace_coverage.py).
SMALL_COUNTS = {"tweedsmuir_road", "burnham_avenue"}


def test_planted_truth_inside_interval(executed) -> None:
    """On the synthetic data the planted effect must lie inside the reported interval."""
    name, out = executed
    results = read_results(out)
    if results.design == "power":  # nothing planted: check the curve's shape instead
        mdes = sorted(
            (int(e.name.split("_")[1]), e.estimate)
            for e in results.estimates
            if e.name.startswith("mde_")
        )
        assert [m for _, m in mdes] == sorted(m for _, m in mdes), (
            "longer follow-up must detect smaller falls"
        )
        return
    assert results.synthetic and results.truth, "the default evaluations carry the truth"
    for est_name, truth in results.truth.items():
        est = results.estimate(est_name)
        if est.ci_low is None and est.ci_high is None:  # descriptive counts are exact
            assert est.estimate == pytest.approx(truth, rel=1e-12), est_name
        elif name in SMALL_COUNTS and est.scale == "rate_ratio" and est.se:
            z = abs(math.log(est.estimate) - math.log(truth)) / est.se
            assert z < 3, f"{est_name}: truth {truth} is {z:.1f} SE from {est.estimate}"
        else:
            assert est.ci_low <= truth <= est.ci_high, (
                f"{est_name}: truth {truth} outside [{est.ci_low}, {est.ci_high}]"
            )
