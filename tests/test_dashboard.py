"""Dashboards: pages built from results objects, the name whitelist, disclosure control,
the synthetic banner, static publishing and the thin dashboard notebooks.

All results here are built by hand with the pydantic models (nothing is fitted), so the
tests exercise only the rendering, which is all the dashboards do.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import nbformat
import pytest

from evaluation.dashboard import catalog, charts, live, pages, publish, server
from evaluation.dashboard.charts import Chart
from evaluation.dashboard.example import did_example, its_example, write_report
from evaluation.errors import InputError
from evaluation.report import protect, text
from evaluation.results import Series


@pytest.fixture()
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A reports folder laid out as the runner publishes it, with two evaluations."""
    root = tmp_path / "reports"
    write_report(root, its_example())
    write_report(root, did_example())
    monkeypatch.setenv("EVALUATION_REPORTS", str(root))
    return root


def _missing(v: float | None) -> bool:
    return v is None or math.isnan(v)


def _observed_y(chart: Chart) -> list:
    trace = chart.trace("Observed")
    assert trace is not None
    return list(trace["y"])


# --------------------------------------------------------------------------------------
# Pages render from results objects
# --------------------------------------------------------------------------------------


def test_its_page_has_headline_figures_and_sections() -> None:
    results = its_example()
    page = pages.evaluation_page(results, index_href="index.html")
    assert page.headline == text.headline(results)
    assert pages._e(page.headline) in page.html
    assert 'id="headline"' in page.html
    # observed vs counterfactual, the segmented trend, and the check's series
    assert len(page.charts) == 3
    for title in (
        "How this was estimated",
        "What this evidence cannot show",
        "Pitfalls that apply here",
        "Data quality",
        "All estimates",
        "Where the numbers come from",
    ):
        assert f"<h2>{title}</h2>" in page.html
    assert "−15%" in page.html  # the compact headline effect
    assert "95% interval −22% to −7%" in page.html
    assert "Evidence: not rated" in page.html
    assert 'href="index.html"' in page.html


def test_its_pitfalls_name_enforcement_covid_and_lsoa_change() -> None:
    page = pages.evaluation_page(its_example())
    assert "Drug offences measure police activity" in page.html
    assert "Covid-19: the lockdowns of 2020-21" in page.html
    assert "separate shock" in page.html  # the model has the Welsh lockdowns
    assert "2011 to 2021" in page.html  # data run across January 2024
    assert "292 records" in page.html  # records without location


def test_controlled_its_is_not_described_as_having_no_comparison() -> None:
    plain = pages.evaluation_page(its_example())
    assert "there is no comparison area" in plain.html
    outcome = its_example().outcome.model_copy(update={"comparison_areas": ["Ely", "Caerau"]})
    controlled = its_example().model_copy(
        update={"outcome": outcome, "evidence": {"msms_level": 2, "padlocks": 2}}
    )
    page = pages.evaluation_page(controlled)
    assert "there is no comparison area" not in page.html
    assert "Controlled interrupted time series" in page.html
    assert "Comparison areas: Ely and Caerau." in page.html
    assert "2 of 5 padlocks" in page.html


def test_activity_pitfall_for_other_activity_measures() -> None:
    results = did_example()
    outcome = results.outcome.model_copy(
        update={"label": "Possession of weapons", "crime_types": ["Possession of weapons"],
                "measure": "activity"}
    )  # fmt: skip
    found = pages.pitfalls(results.model_copy(update={"outcome": outcome}))
    assert any(p.startswith("Possession of weapons measure police activity") for p in found)
    assert not any("Drug offences" in p for p in found)
    assert not any("police activity" in p for p in pages.pitfalls(did_example()))


def test_did_page_shows_event_study_comparison_areas_and_evidence_level() -> None:
    results = did_example()
    page = pages.evaluation_page(results)
    titles = [c.title for c in page.charts]
    assert any(t.startswith("Event study") for t in titles)
    assert "Splott, Adamsdown and Riverside" in page.html
    assert "level 3 of 5" in page.html
    assert "followed similar trends" in page.html  # pre-trend p = 0.41 in words


@pytest.mark.parametrize("build", [its_example, did_example])
def test_charts_are_valid_plotly_specifications(build) -> None:
    import plotly.graph_objects as go

    page = pages.evaluation_page(build())
    assert page.charts
    for chart in page.charts:
        go.Figure(data=chart.data, layout=chart.layout)  # raises on any invalid property
        html = charts.chart_html(chart, "c-1")
        spec = re.search(r'id="c-1-spec">(.*?)</script>', html).group(1)
        assert json.loads(spec)["data"] == chart.data


def test_chart_json_cannot_close_its_script_element() -> None:
    chart = Chart([{"type": "scatter", "name": "</script><b>x"}], {"title": {"text": "t"}})
    html = charts.chart_html(chart, "c")
    assert "</script><b>" not in html
    assert (
        json.loads(re.search(r'id="c-spec">(.*?)</script>', html).group(1))["data"][0]["name"]
        == "</script><b>x"
    )


def test_index_lists_every_evaluation_with_links(reports: Path) -> None:
    page = live.index_page()
    assert "2 evaluations" in page.headline
    assert 'href="evaluation.ipynb?name=operation_talon"' in page.html
    assert 'href="evaluation.ipynb?name=yef_neighbourhood_fund"' in page.html
    for column in ("Design", "Outcome", "Headline effect", "Evidence", "Data period", "Status"):
        assert f">{column}</th>" in page.html
    assert "April 2016 to March 2024" in page.html
    assert "Level 3 of 5" in page.html


def test_index_reports_an_unreadable_results_file_without_a_link(reports: Path) -> None:
    broken = reports / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"schema_version": "1.0", "name": 3}')
    page = live.index_page()
    assert "Not available" in page.html
    assert "name=broken" not in page.html


def test_index_flags_a_newer_failed_run(reports: Path) -> None:
    failed = reports / ".failed" / "operation_talon-20990101T000000-abcdef"
    failed.mkdir(parents=True)
    os.utime(failed, (4e9, 4e9))  # newer than the published run
    (entry,) = [e for e in catalog.entries(reports) if e.name == "operation_talon"]
    assert entry.last_run_failed
    assert entry.status.startswith("Last run failed")
    (other,) = [e for e in catalog.entries(reports) if e.name == "yef_neighbourhood_fund"]
    assert not other.last_run_failed


def test_values_from_results_are_escaped() -> None:
    results = its_example().model_copy(update={"title": '<script>alert("x")</script>'})
    page = pages.evaluation_page(results)
    assert "<script>alert" not in page.html
    assert "&lt;script&gt;alert" in page.html


# --------------------------------------------------------------------------------------
# Synthetic banner
# --------------------------------------------------------------------------------------


def test_synthetic_banner_on_synthetic_pages_only(reports: Path) -> None:
    synthetic = pages.evaluation_page(its_example(synthetic=True))
    real = pages.evaluation_page(its_example(synthetic=False))
    assert pages.SYNTHETIC_BANNER in synthetic.html
    assert 'class="ev-banner"' in synthetic.html
    assert pages.SYNTHETIC_BANNER not in real.html
    marks = [[a["text"] for a in c.layout["annotations"]] for c in synthetic.charts]
    assert marks and all("SYNTHETIC DATA" in m for m in marks)
    assert not any(
        a["text"] == "SYNTHETIC DATA" for c in real.charts for a in c.layout["annotations"]
    )
    assert pages.SYNTHETIC_BANNER in live.index_page().html  # the index has synthetic entries


# --------------------------------------------------------------------------------------
# Whitelist of evaluation names
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "..",
        ".runs",
        "operation_talon/../yef_neighbourhood_fund",
        "/etc/passwd",
        "operation_talon\x00",
        "%2e%2e%2fetc%2fpasswd",
        "OPERATION_TALON",
        "operation_talon ",
        "",
        None,
        ["operation_talon"],
    ],
)
def test_whitelist_refuses_anything_but_a_published_name(reports: Path, name: object) -> None:
    assert catalog.resolve(name, reports) is None


def test_whitelist_accepts_published_names_only(reports: Path, tmp_path: Path) -> None:
    assert catalog.resolve("operation_talon", reports) == (reports / "operation_talon").resolve()
    (reports / "no_results").mkdir()  # a folder without results.json is not an evaluation
    assert catalog.resolve("no_results", reports) is None
    outside = tmp_path / "outside"
    write_report(outside, its_example("elsewhere"))
    os.symlink(outside / "elsewhere", reports / "elsewhere")  # a link out of the folder
    assert catalog.resolve("elsewhere", reports) is None
    assert set(catalog.available(reports)) == {"operation_talon", "yef_neighbourhood_fund"}


@pytest.mark.parametrize(
    "query",
    ["name=../../etc/passwd", "name=%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "", "nom=operation_talon"],
)
def test_page_for_a_bad_query_is_not_found_and_does_not_echo_it(reports: Path, query: str) -> None:
    page = live.evaluation_page(query)
    assert page.title == "Evaluation not found"
    assert "passwd" not in page.html


def test_page_for_a_good_query(reports: Path) -> None:
    page = live.evaluation_page("name=yef_neighbourhood_fund&x=1")
    assert page.title == "YEF Neighbourhood Fund"


def test_name_from_query() -> None:
    assert catalog.name_from_query("name=a&name=b") == "a"
    assert catalog.name_from_query("?name=a") == "a"
    assert catalog.name_from_query(None) is None
    assert catalog.name_from_query("name=" + "a" * 5000) is None


# --------------------------------------------------------------------------------------
# Disclosure control on what is shown
# --------------------------------------------------------------------------------------


def test_small_counts_are_suppressed_with_secondary_suppression() -> None:
    periods = [f"2020-{m:02d}-01" for m in range(1, 7)]
    values = [12.0, 3.0, 20.0, 0.0, 15.0, 9.0]
    shown, hidden = protect.suppress_values(values, periods)
    # 3 is primary; the row would give it away from the total, so the smallest other
    # non-zero value (9) is hidden too; the zero stays (it discloses nothing)
    assert shown == [12.0, None, 20.0, 0.0, 15.0, None]
    assert hidden == 2


def test_sensitive_crime_types_use_the_stricter_threshold() -> None:
    periods = [f"2020-{m:02d}-01" for m in range(1, 5)]
    values = [7.0, 30.0, 8.0, 40.0]
    assert protect.suppress_values(values, periods)[0] == values
    shown, _ = protect.suppress_values(values, periods, sensitive=True)
    assert shown == [None, 30.0, None, 40.0]


def test_rates_and_model_values_are_not_treated_as_counts() -> None:
    values = [1.5, 2.25, 3.0]
    assert protect.suppress_values(values, ["1", "2", "3"]) == (values, 0)


def test_plot_never_shows_a_count_of_1_to_4() -> None:
    results = its_example(mean=4.0, synthetic=False)
    raw = results.series["primary"].observed
    assert any(v is not None and 1 <= v <= 4 for v in raw)  # the test can fail
    page = pages.evaluation_page(results)
    for chart in page.charts:
        for trace in chart.data:
            if trace["name"] in ("Observed", "Comparison"):
                assert not any(v is not None and 1 <= v <= 4 for v in trace["y"])
    shown = _observed_y(page.charts[0])
    hidden = sum(_missing(v) for v in shown) - sum(_missing(v) for v in raw)
    small = sum(1 <= v <= 4 for v in raw if v is not None)
    assert hidden >= small  # primary suppression at least, plus any secondary
    assert f"{hidden} months with small counts" in page.html
    assert "Privacy: months with 1 to 4 recorded crimes are hidden" in page.html
    # the comparison series is suppressed too
    series = results.series["primary"].model_copy(update={"comparison": [2.0] * len(raw)})
    safe = protect.protect(results.model_copy(update={"series": {"primary": series}}))
    assert set(safe.results.series["primary"].comparison) == {None}


def test_small_record_counts_in_sentences_are_masked() -> None:
    assert protect.safe_count(3) == "fewer than 5"
    assert protect.safe_count(0) == "0"
    assert protect.safe_count(2345) == "2,345"
    results = its_example().model_copy(update={"data_quality": {"records_without_location": 2}})
    assert "fewer than 5 records" in pages.evaluation_page(results).html


def test_disclosure_leaves_the_results_object_unchanged() -> None:
    results = its_example(mean=4.0)
    before = list(results.series["primary"].observed)
    protect.protect(results)
    assert results.series["primary"].observed == before
    assert isinstance(results.series["primary"], Series)


# --------------------------------------------------------------------------------------
# Static publishing
# --------------------------------------------------------------------------------------


def test_publish_writes_code_free_pages_with_relative_links(reports: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    written = publish.publish(reports, out)
    names = {p.relative_to(out).as_posix() for p in written}
    assert names == {
        "index.html",
        "evaluations/operation_talon.html",
        "evaluations/yef_neighbourhood_fund.html",
        "plotly.min.js",
    }
    for path in written:
        if path.suffix != ".html":
            continue
        html = path.read_text(encoding="utf-8")
        assert "live.show" not in html and "import " not in html and "Traceback" not in html
        for href in re.findall(r'(?:href|src)="([^"#]+)"', html):
            assert not href.startswith(("/", "http")), href  # works offline, anywhere
            assert (path.parent / href.split("?")[0]).exists(), href
    page = (out / "evaluations" / "operation_talon.html").read_text(encoding="utf-8")
    assert pages.SYNTHETIC_BANNER in page
    assert 'src = "../plotly.min.js"' in page  # loaded by the chart loader, relative
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # the library itself, offline
    assert page.count("window.evPlot(") == 3


def test_published_figures_are_suppressed(reports: Path, tmp_path: Path) -> None:
    write_report(reports, its_example("small", mean=4.0, synthetic=False))
    publish.publish(reports, tmp_path / "site")
    html = (tmp_path / "site" / "evaluations" / "small.html").read_text(encoding="utf-8")
    specs = re.findall(r'<script type="application/json" id="chart-\d+-spec">(.*?)</script>', html)
    assert len(specs) == 3
    observed = [t for s in specs for t in json.loads(s)["data"] if t.get("name") == "Observed"]
    assert len(observed) == 2  # the outcome and the check
    for trace in observed:
        assert not any(v is not None and 1 <= v <= 4 for v in trace["y"])
        assert None in trace["y"]  # hidden months are gaps


def test_publish_refuses_missing_reports_and_an_evaluations_folder(
    reports: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError):
        publish.publish(tmp_path / "nope", tmp_path / "site")
    evaluation = next(p for p in reports.iterdir() if (p / "results.json").is_file())
    with pytest.raises(InputError):  # never write pages into a report
        publish.publish(reports, evaluation)
    # beside the reports is fine (run-all writes reports/dashboards) and is not listed
    written = publish.publish(reports, reports / "dashboards")
    assert (reports / "dashboards" / "index.html") in written
    assert "dashboards" not in catalog.available(reports)


# --------------------------------------------------------------------------------------
# Server helpers and the thin notebooks
# --------------------------------------------------------------------------------------


def test_dashboard_url_and_loopback() -> None:
    assert server.dashboard_url("127.0.0.1", 8866) == (
        "http://127.0.0.1:8866/voila/render/index.ipynb"
    )
    assert server.dashboard_url("0.0.0.0", 9000, "t0k").endswith(
        ":9000/voila/render/index.ipynb?token=t0k"
    )
    assert server.is_loopback("127.0.0.1") and server.is_loopback("localhost")
    assert server.is_loopback("::1")
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("192.0.2.1")


def test_start_server_refuses_a_missing_reports_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        server.start_server(tmp_path / "missing")


@pytest.mark.parametrize("name", ["index.ipynb", "evaluation.ipynb"])
def test_dashboard_notebooks_are_thin_and_committed_without_outputs(
    repo_root: Path, name: str
) -> None:
    nb = nbformat.read(repo_root / "notebooks" / "dashboards" / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert 1 <= len(code) <= 3
    for cell in code:
        assert not cell.outputs and cell.execution_count is None
        assert not re.search(r"^\s*(def|class|async def)\s", cell.source, re.M)
        assert len(cell.source.splitlines()) <= 3
    assert "from evaluation.dashboard import live" in code[0].source
    # only the dashboard notebooks sit in the served folder
    served = sorted(p.name for p in (repo_root / "notebooks" / "dashboards").iterdir())
    assert served == ["evaluation.ipynb", "index.ipynb"]


def test_voila_config_hides_code_and_tracebacks() -> None:
    from evaluation.dashboard.voila_app import base_config

    c = base_config()
    assert c.VoilaConfiguration.show_tracebacks is False
    assert c.VoilaConfiguration.strip_sources is True
    assert c.VoilaConfiguration.preheat_kernel is True
    assert c.VoilaConfiguration.file_allowlist == []
    assert c.Voila.port_retries == 0
    assert c.MappingKernelManager.cull_busy is False  # preheated kernels wait busy


def test_a_page_that_cannot_be_built_shows_no_details(reports: Path) -> None:
    # valid against the schema, but the headline names an estimate that does not exist
    broken = its_example("odd").model_copy(update={"headline": "no_such_estimate"})
    write_report(reports, broken)
    page = live._safely(live.evaluation_page, "name=odd")
    assert page.title == "Not available"
    assert "KeyError" not in page.html and "no_such_estimate" not in page.html


def test_dashboard_kernels_do_not_load_matplotlib_or_plotly(modules_loaded) -> None:
    # a preheated kernel imports this module: keep it light so pools refill fast
    assert modules_loaded("import evaluation.dashboard.live", ["matplotlib", "plotly"]) == []


def test_tables_are_shown_with_small_counts_hidden() -> None:
    res = its_example().model_copy(
        update={
            "design": "profile",
            "tables": {
                "areas": [
                    {
                        "area": "A",
                        "year_1": 3,
                        "year_2": 40,
                        "rank_count": 2,
                        "percent_change": 0.5,
                    },
                    {
                        "area": "B",
                        "year_1": None,
                        "year_2": 12,
                        "rank_count": 1,
                        "percent_change": None,
                    },
                ]
            },
        }
    )
    html = pages._tables_section(res)
    assert "fewer than 5" in html  # a count of 3 is never shown
    assert ">3<" not in html
    assert "hidden" in html  # a secondary-suppressed cell
    assert ">2<" in html  # ranks are not counts
    assert "+50%" in html
