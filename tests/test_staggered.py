"""Callaway & Sant'Anna staggered DiD: mpdta (published), moderndid, known effects."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from evaluation.designs.staggered import CallawaySantAnna
from evaluation.errors import InputError

md = pytest.importorskip("moderndid")

# ATT(g,t) for mpdta, never-treated controls, no covariates: the R `did` README
# (Callaway & Sant'Anna), printed to 4 decimals.
PUBLISHED_ATT_GT = {
    (2004, 2004): -0.0105,
    (2004, 2005): -0.0704,
    (2004, 2006): -0.1373,
    (2004, 2007): -0.1008,
    (2006, 2004): 0.0065,
    (2006, 2005): -0.0028,
    (2006, 2006): -0.0046,
    (2006, 2007): -0.0412,
    (2007, 2004): 0.0305,
    (2007, 2005): -0.0027,
    (2007, 2006): -0.0311,
    (2007, 2007): -0.0261,
}
SPEC = {"outcome": "lemp", "unit": "countyreal", "period": "year", "first_treat": "first.treat"}


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    return md.load_mpdta().to_pandas()


def _moderndid(data: pd.DataFrame, control: str):
    import polars as pl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.att_gt(
            pl.from_pandas(data),
            yname="lemp",
            tname="year",
            idname="countyreal",
            gname="first.treat",
            control_group=control,
        )


def test_mpdta_published_att_gt(mpdta):
    res = CallawaySantAnna(**SPEC).fit(mpdta)
    table = res.att_gt_table()
    assert list(table.columns) == ["group", "time", "att", "se", "ci_low", "ci_high"]
    got = {(int(g), int(t)): a for g, t, a in zip(table.group, table.time, table.att, strict=True)}
    assert set(got) == set(PUBLISHED_ATT_GT)
    for key, value in PUBLISHED_ATT_GT.items():
        assert round(got[key], 4) == value, key
    # Published aggregations (did README / Callaway & Sant'Anna 2021): dynamic -0.0772,
    # group -0.031, simple -0.0400; pre-test of parallel trends p = 0.16812.
    assert round(res.dynamic.estimate, 4) == -0.0772
    assert round(res.group.estimate, 3) == -0.031
    assert round(res.simple.estimate, 4) == -0.0400
    assert round(res.pretrend_p, 5) == 0.16812


@pytest.mark.parametrize(
    ("control", "mcontrol"), [("never", "nevertreated"), ("not_yet", "notyettreated")]
)
def test_mpdta_matches_moderndid(mpdta, control, mcontrol):
    res = CallawaySantAnna(**SPEC, control_group=control).fit(mpdta)
    ref = _moderndid(mpdta, mcontrol)
    # Same estimator and the same analytical influence-function SEs (moderndid with
    # boot=False): agreement to rounding, 1e-10.
    np.testing.assert_allclose(res.att, ref.att_gt, atol=1e-10)
    np.testing.assert_allclose(res.se, ref.se_gt, atol=1e-10)
    assert res.pretrend_p == pytest.approx(ref.wald_pvalue, abs=1e-5)  # it rounds to 5 dp
    for kind in ("simple", "dynamic", "group"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            agg = md.aggte(ref, type=kind)
        mine = getattr(res, kind)
        assert mine.estimate == pytest.approx(agg.overall_att, abs=1e-10)
        assert mine.se == pytest.approx(agg.overall_se, abs=1e-10)
        if kind == "dynamic":
            np.testing.assert_allclose(res.event_times, agg.event_times)
            np.testing.assert_allclose(res.event_att, agg.att_by_event, atol=1e-10)
            np.testing.assert_allclose(res.event_se, agg.se_by_event, atol=1e-10)
        if kind == "group":
            np.testing.assert_allclose(res.group_att, agg.att_by_event, atol=1e-10)
            np.testing.assert_allclose(res.group_se, agg.se_by_event, atol=1e-10)


@pytest.mark.parametrize(
    ("control", "mcontrol"), [("never", "nevertreated"), ("not_yet", "notyettreated")]
)
def test_without_never_treated_units_matches_moderndid(mpdta, control, mcontrol):
    data = mpdta[mpdta["first.treat"] > 0]
    res = CallawaySantAnna(**SPEC, control_group=control).fit(data)
    ref = _moderndid(data, mcontrol)
    np.testing.assert_allclose(res.att, ref.att_gt, atol=1e-10)
    np.testing.assert_allclose(res.se, ref.se_gt, atol=1e-10)
    assert any("no never-treated units" in n for n in res.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agg = md.aggte(ref, type="dynamic", na_rm=True)
    assert res.dynamic.estimate == pytest.approx(agg.overall_att, abs=1e-10)


def _simulated(seed=0, noise=0.0, n_per=30):
    """Cohorts first treated in periods 4 and 6 of 1..8, plus never treated.

    The effect in event time e >= 0 is 1 + 0.5 e for cohort 4 and 2 + 0.5 e for cohort 6,
    on top of unit effects and a common non-linear trend.
    """
    rng = np.random.default_rng(seed)
    cohorts = np.repeat([4, 6, 0], n_per)
    n, T = cohorts.size, 8
    df = pd.DataFrame(
        {"unit": np.repeat(np.arange(n), T), "period": np.tile(np.arange(1, T + 1), n)}
    )
    g = cohorts[df.unit]
    e = df.period - g
    effect = np.where((g > 0) & (e >= 0), np.where(g == 4, 1.0, 2.0) + 0.5 * e, 0.0)
    df["first_treat"] = g
    df["outcome"] = (
        rng.normal(size=n)[df.unit] + np.sin(df.period) + effect + noise * rng.normal(size=len(df))
    )
    return df


def test_recovers_known_dynamic_effects_exactly():
    res = CallawaySantAnna().fit(_simulated())
    table = res.att_gt_table()
    g, t = table.group.to_numpy(), table.time.to_numpy()
    truth = np.where(t >= g, np.where(g == 4, 1.0, 2.0) + 0.5 * (t - g), 0.0)
    np.testing.assert_allclose(table.att, truth, atol=1e-12)
    ev = res.event_table().set_index("event_time")["estimate"]
    # e = 0: mean of 1 and 2; e = 2: mean of 2 and 3; e = 4 only cohort 4: 3.
    assert (
        ev[0] == pytest.approx(1.5) and ev[2] == pytest.approx(2.5) and ev[4] == pytest.approx(3.0)
    )
    assert (ev[ev.index < 0].abs() < 1e-12).all()


def test_noisy_recovery_and_estimates_contract():
    res = CallawaySantAnna(headline="dynamic").fit(_simulated(noise=0.5, n_per=200, seed=4))
    # Dynamic truth: mean over e = 0..4 of the cohort-weighted effects (equal cohorts):
    # e=0 1.5, e=1 2.0, e=2 2.5 (both cohorts), e=3 2.5, e=4 3.0 (cohort 4 only).
    truth = np.mean([1.5, 2.0, 2.5, 2.5, 3.0])
    assert abs(res.dynamic.estimate - truth) < 4 * res.dynamic.se
    ests = {e.name: e for e in res.estimates()}
    assert ests["att"].estimate == res.dynamic.estimate
    assert {"att_simple", "att_dynamic", "att_group", "event_time_0", "pretrend_wald_p"} <= set(
        ests
    )
    assert ests["pretrend_wald_p"].scale == "p_value"
    assert ests["att_group"].ci_low < ests["att_group"].estimate < ests["att_group"].ci_high


def test_clustered_standard_errors_sum_influence_within_clusters(mpdta):
    per_unit = CallawaySantAnna(**SPEC).fit(mpdta)
    same = CallawaySantAnna(**SPEC, cluster="countyreal").fit(mpdta)
    np.testing.assert_allclose(same.se, per_unit.se, atol=1e-14)  # clusters of one unit
    data = mpdta.assign(state=mpdta.countyreal // 1000)
    res = CallawaySantAnna(**SPEC, cluster="state").fit(data)
    n = per_unit.influence.shape[0]
    units = np.sort(mpdta.countyreal.unique())
    state = pd.Series(units // 1000)
    codes = pd.factorize(state)[0]
    inf = per_unit.influence[:, 0]
    se0 = np.sqrt(np.sum(np.bincount(codes, weights=inf) ** 2)) / n
    assert res.se[0] == pytest.approx(se0, rel=1e-12)
    assert res.n_clusters == state.nunique() and res.pretrend_p is None


def test_drops_incomplete_and_early_units_with_notes(mpdta):
    data = mpdta[~((mpdta.countyreal == mpdta.countyreal.iloc[0]) & (mpdta.year == 2005))]
    early = mpdta.assign(
        **{
            "first.treat": np.where(
                mpdta.countyreal == mpdta.countyreal.iloc[0], 2003, mpdta["first.treat"]
            )
        }
    )
    res = CallawaySantAnna(**SPEC).fit(data)
    assert res.n_units == 499 and any("not observed in every period" in n for n in res.notes)
    res2 = CallawaySantAnna(**SPEC).fit(early)
    assert res2.n_units == 499 and any("already treated" in n for n in res2.notes)


def test_input_errors(mpdta):
    with pytest.raises(InputError, match="control_group"):
        CallawaySantAnna(**SPEC, control_group="sometimes").fit(mpdta)
    with pytest.raises(InputError, match="constant within each unit"):
        CallawaySantAnna(**SPEC).fit(mpdta.assign(**{"first.treat": mpdta.year}))
    with pytest.raises(InputError, match="no unit is treated"):
        CallawaySantAnna(**SPEC).fit(mpdta.assign(**{"first.treat": 0}))


def test_few_treated_areas_are_flagged():
    res = CallawaySantAnna().fit(_simulated(n_per=3))
    assert res.n_treated_clusters == 6
    assert any("only 6 treated areas" in n for n in res.notes)


@pytest.mark.parametrize("control", ["never", "not_yet"])
@pytest.mark.parametrize("never_treated", [True, False])
def test_simple_att_fast_path_equals_fit_under_reassigned_starts(mpdta, control, never_treated):
    """simple_att (used by randomisation inference) == fit().simple under permuted starts."""
    from evaluation.designs.staggered import simple_att

    data = mpdta if never_treated else mpdta[mpdta["first.treat"] > 0]
    est = CallawaySantAnna(**SPEC, control_group=control)
    Y, gpos, _ = est.arrays(data)
    units = np.sort(data["countyreal"].unique())
    first = data.groupby("countyreal")["first.treat"].first().reindex(units).to_numpy()
    rng = np.random.default_rng(7)
    for draw in range(12):
        perm = np.arange(units.size) if draw == 0 else rng.permutation(units.size)
        placebo = data.assign(
            first_treat_new=data["countyreal"].map(dict(zip(units, first[perm], strict=True)))
        )
        placebo = placebo.drop(columns="first.treat").rename(
            columns={"first_treat_new": "first.treat"}
        )
        try:
            expected = est.fit(placebo).simple.estimate
        except InputError:
            expected = None
        got = simple_att(Y, gpos[perm], control)
        if expected is None:
            assert got is None
        else:
            assert got == pytest.approx(expected, abs=1e-12)
