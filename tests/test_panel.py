"""Zero-filled panels, grouping by lookups, no-location counts, exports and outcomes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evaluation import config
from evaluation.data import database, panel, policeuk
from evaluation.errors import InputError

# The hand-made lookup has an LSOA with no crime and no population on purpose.
pytestmark = [
    pytest.mark.filterwarnings("ignore:1 of 4 lookup LSOAs:UserWarning"),
    pytest.mark.filterwarnings("ignore:1 area\\(s\\) have LSOAs without:UserWarning"),
]

HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,"
    "LSOA code,LSOA name,Crime type,Last outcome category,Context"
)


def line(month: str, lsoa: str, crime: str, outcome: str = "Under investigation") -> str:
    name = "" if not lsoa else f"Town {lsoa[-3:]}"
    location = "No Location" if not lsoa else "On or near X"
    return f"id,{month},Test Police,Test Police,,,{location},{lsoa},{name},{crime},{outcome},"


#: A small known world: three LSOAs, three months, crimes in some cells only.
ROWS = {
    "2019-01": [
        ("E01000001", "Burglary"),
        ("E01000001", "Burglary"),
        ("E01000002", "Drugs"),
        ("", "Drugs"),  # no location
    ],
    "2019-02": [("E01000001", "Drugs")],  # E01000002 and E01000003 have nothing: zeros
    "2019-03": [
        ("E01000003", "Burglary"),
        ("E01000002", "Violent crime"),  # old name
        ("", "Burglary"),
        ("", "Burglary"),
    ],
}


@pytest.fixture
def small(tmp_path):
    con = database.connect(":memory:")
    paths = []
    for month, rows in ROWS.items():
        path = tmp_path / f"{month}-test-street.csv"
        body = [line(month, lsoa, crime) for lsoa, crime in rows]
        path.write_text("\n".join([HEADER, *body]) + "\n")
        paths.append(path)
    policeuk.ingest(paths, con)
    yield con
    con.close()


@pytest.fixture
def wards(tmp_path) -> Path:
    path = tmp_path / "wards.csv"
    path.write_text(
        "lsoa11_code,ward_name\nE01000001,North\nE01000002,North\nE01000003,South\nE01000009,East\n"
    )
    return path


def cell(frame: pd.DataFrame, area: str, month: str, crime: str) -> int:
    hit = frame[
        (frame["area"] == area)
        & (frame["month"] == pd.Timestamp(f"{month}-01"))
        & (frame["crime_type"] == crime)
    ]
    assert len(hit) == 1
    return int(hit["count"].iloc[0])


# --------------------------------------------------------------------------------------
# Hand-made data: exact expectations
# --------------------------------------------------------------------------------------


def test_panel_is_zero_filled_over_every_cell(small):
    frame = panel.build_panel(small, crime_types=["Burglary", "Drugs"])
    assert list(frame.columns) == ["area", "month", "crime_type", "count"]
    assert len(frame) == 3 * 3 * 2  # areas x months x types, no gaps
    assert cell(frame, "E01000001", "2019-01", "Burglary") == 2
    assert cell(frame, "E01000002", "2019-02", "Drugs") == 0  # no row in the file: a zero
    assert cell(frame, "E01000003", "2019-02", "Burglary") == 0
    assert cell(frame, "E01000003", "2019-03", "Burglary") == 1
    assert frame["count"].sum() == 5  # located Burglary + Drugs rows
    assert frame["count"].dtype == "int64"
    assert not frame.isna().any().any()


def test_default_types_are_the_fourteen(small):
    frame = panel.build_panel(small)
    assert sorted(frame["crime_type"].unique()) == sorted(config.CRIME_TYPES)
    assert len(frame) == 3 * 3 * 14
    assert cell(frame, "E01000002", "2019-03", "Violence and sexual offences") == 1


def test_old_names_are_accepted(small):
    frame = panel.build_panel(small, crime_types=["Violent crime"])
    assert set(frame["crime_type"]) == {"Violence and sexual offences"}
    assert frame["count"].sum() == 1


def test_lookup_grouping_and_area_universe(small, wards):
    with pytest.warns(UserWarning, match="no recorded crime") as caught:
        frame = panel.build_panel(
            small, crime_types=["Burglary"], lookup=wards, group_col="ward_name"
        )
    assert caught[0].filename == __file__  # the warning points at the caller
    assert sorted(frame["area"].unique()) == ["East", "North", "South"]  # East: no crime at all
    assert frame.loc[frame["area"] == "East", "count"].sum() == 0
    assert cell(frame, "North", "2019-01", "Burglary") == 2
    lsoas = panel.build_panel(small, crime_types=["Burglary"], lookup=wards)
    assert len(lsoas) == 4 * 3  # the lookup's LSOAs, including the one never seen


def test_lookup_as_frame_and_areas_filter(small, wards):
    lookup = pd.read_csv(wards)
    frame = panel.build_panel(
        small, lookup=lookup, group_col="ward_name", areas=["South"], by_crime_type=False
    )
    assert set(frame["area"]) == {"South"}
    assert set(frame["crime_type"]) == {panel.ALL_TYPES_LABEL}
    assert frame["count"].tolist() == [0, 0, 1]


def test_unknown_areas_are_named(small, wards):
    with pytest.raises(InputError, match="Narnia, Atlantis|Atlantis, Narnia") as info:
        panel.build_panel(
            small, lookup=wards, group_col="ward_name", areas=["North", "Narnia", "Atlantis"]
        )
    assert info.value.key == "areas"
    with pytest.raises(InputError, match="E01999999"):
        panel.build_panel(small, areas=["E01999999"])


@pytest.mark.parametrize(
    ("kwargs", "match", "key"),
    [
        ({"crime_types": ["Burglary", "Jaywalking"]}, "Jaywalking", "crime_types"),
        ({"months": ("2019-01", "2019-05")}, "2019-04, 2019-05", "months"),
        ({"months": ("2019-03", "2019-01")}, "before it starts", "months"),
        ({"months": ("January", "2019-02")}, "not a month", "months"),
        ({"group_col": "ward_name"}, "needs a lookup", "group_col"),
    ],
)
def test_bad_requests(small, kwargs, match, key):
    with pytest.raises(InputError, match=match) as info:
        panel.build_panel(small, **kwargs)
    assert info.value.key == key


def test_bad_lookups(small, tmp_path):
    lookup = tmp_path / "lk.csv"
    lookup.write_text("lsoa11_code,ward_name\nE01000001,North\nE01000001,South\n")
    with pytest.raises(InputError, match="more than one"):
        panel.build_panel(small, lookup=lookup, group_col="ward_name")
    with pytest.raises(InputError) as info:
        panel.build_panel(small, lookup=lookup, group_col="sector")
    assert info.value.key == "sector"
    lookup.write_text("lsoa21_code,ward_name\nW01002019,North\n")
    with pytest.raises(InputError, match="no LSOA of the lookup"):
        panel.build_panel(small, lookup=lookup, lookup_key="lsoa21_code")


def test_window_selects_months(small):
    frame = panel.build_panel(small, months=("2019-02", "2019-03"), crime_types=["Drugs"])
    assert sorted(frame["month"].dt.strftime("%Y-%m").unique()) == ["2019-02", "2019-03"]
    assert frame["count"].sum() == 1


def test_no_location_count(small):
    assert panel.no_location_count(small) == 3
    assert panel.no_location_count(small, ["Burglary"]) == 2
    assert panel.no_location_count(small, ["Drugs"], ("2019-02", "2019-03")) == 0
    # ...and those rows are in no area panel
    total = panel.build_panel(small)["count"].sum()
    assert total + panel.no_location_count(small) == sum(len(r) for r in ROWS.values())


def test_population_uses_latest_mid_year_estimate(small, tmp_path, wards):
    pop = tmp_path / "pop.csv"
    pop.write_text(
        "lsoa11_code,pop_mid2017,pop_mid2019\n"
        "E01000001,100,110\nE01000002,200,220\nE01000003,300,330\n"
    )
    frame = panel.build_panel(
        small, crime_types=["Drugs"], lookup=wards, group_col="ward_name", population=pop
    )
    north = frame[frame["area"] == "North"]
    assert north["population"].tolist() == [330.0, 330.0, 330.0]  # 2019 months: mid-2019
    east = frame[frame["area"] == "East"]
    assert east["population"].isna().all()  # East's LSOA has no estimate


def test_export_is_atomic_and_matches_build(small, tmp_path, wards):
    out = tmp_path / "out" / "panel.csv"
    panel.export_panel(small, out, lookup=wards, group_col="ward_name", crime_types=["Burglary"])
    written = pd.read_csv(out, dtype={"month": str})
    built = panel.build_panel(small, lookup=wards, group_col="ward_name", crime_types=["Burglary"])
    assert written["month"].tolist() == built["month"].dt.strftime("%Y-%m").tolist()
    assert written["count"].tolist() == built["count"].tolist()
    before = out.read_bytes()
    with pytest.raises(InputError):
        panel.export_panel(small, out, lookup=wards, group_col="ward_name", areas=["Nowhere"])
    assert out.read_bytes() == before  # a failed export leaves the old file
    assert sorted(p.name for p in out.parent.iterdir()) == ["panel.csv"]  # no temp files


def test_outcome_counts(small, wards):
    got = panel.outcome_counts(small, ["Burglary"], None, wards, "ward_name")
    assert list(got.columns) == ["area", "crime_type", "last_outcome", "count"]
    assert got["count"].sum() == 3
    assert set(got["last_outcome"]) == {"Under investigation"}


def test_outcome_counts_label_missing_outcomes(tmp_path):
    con = database.connect(":memory:")
    path = tmp_path / "2019-01-test-street.csv"
    path.write_text(
        HEADER + "\n" + line("2019-01", "E01000001", "Anti-social behaviour", "") + "\n"
    )
    policeuk.ingest([path], con)
    got = panel.outcome_counts(con)
    assert got["last_outcome"].tolist() == [panel.NO_OUTCOME_LABEL]


def test_force_missing_months_warns(small, tmp_path):
    path = tmp_path / "2019-02-other-street.csv"
    path.write_text(HEADER + "\n" + line("2019-02", "E01000005", "Drugs") + "\n")
    policeuk.ingest([path], small)
    with pytest.warns(UserWarning, match=r"other \(1/3\)"):
        panel.build_panel(small)


def test_gap_in_ingested_months_warns(small, tmp_path):
    path = tmp_path / "2019-06-test-street.csv"
    path.write_text(HEADER + "\n" + line("2019-06", "E01000001", "Drugs") + "\n")
    policeuk.ingest([path], small)
    with pytest.warns(UserWarning, match="missing"):
        frame = panel.build_panel(small, crime_types=["Drugs"])
    assert frame["month"].nunique() == 4


def test_empty_database(tmp_path):
    con = database.connect(":memory:")
    with pytest.raises(InputError, match="no police.uk data"):
        panel.build_panel(con)


# --------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cardiff(shared_dir):
    street = shared_dir / "data" / "policeuk" / "street"
    xwalk = shared_dir / "data" / "lookups" / "cardiff_lsoa11_to_lsoa21.csv"
    con = database.connect(":memory:")
    policeuk.ingest([street], con, crosswalk=xwalk)
    yield con, street, shared_dir / "data" / "lookups"
    con.close()


def test_cardiff_ward_panel_equals_direct_count(cardiff):
    con, street, lookups = cardiff
    lookup = pd.read_csv(lookups / "cardiff_lsoa11_to_ward_2017.csv", dtype=str)
    frame = panel.build_panel(
        con,
        crime_types=["Drugs", "Robbery"],
        months=("2018-10", "2019-02"),
        lookup=lookup,
        group_col="ward_name",
    )
    wards = lookup["ward_name"].nunique()
    assert len(frame) == wards * 5 * 2
    raw = pd.concat(pd.read_csv(p, dtype=str) for p in sorted(street.glob("201*.csv"))).merge(
        lookup, left_on="LSOA code", right_on="lsoa11_code"
    )
    raw = raw[raw["Crime type"].isin(["Drugs", "Robbery"])]
    direct = raw.groupby(["ward_name", "Month", "Crime type"]).size()
    got = frame.set_index(
        [frame["area"], frame["month"].dt.strftime("%Y-%m"), frame["crime_type"]]
    )["count"]
    got.index.names = direct.index.names
    assert direct.index.isin(got.index).all()
    expected = direct.reindex(got.index, fill_value=0)
    assert (got.to_numpy() == expected.to_numpy()).all()
    assert got.sum() == len(raw)
    assert (frame["count"] == 0).any()  # robbery: many ward-months with none


def test_cardiff_series_continue_across_2021_break(cardiff):
    con, street, lookups = cardiff
    lookup = lookups / "cardiff_lsoa11_to_ward_2017.csv"
    xwalk = pd.read_csv(lookups / "cardiff_lsoa11_to_lsoa21.csv", dtype=str)
    frame = panel.build_panel(
        con, months=("2024-01", "2024-04"), lookup=lookup, by_crime_type=False
    )
    assert frame["area"].nunique() == 214  # every 2011 Cardiff LSOA, as before 2021
    raw = pd.concat(pd.read_csv(p, dtype=str) for p in sorted(street.glob("2024-*.csv")))
    in_cardiff = raw["LSOA code"].isin(xwalk["lsoa21_code"]).sum()
    assert frame["count"].sum() == in_cardiff  # all Cardiff crime, none lost in mapping


def test_cardiff_population_and_no_location(cardiff):
    con, street, lookups = cardiff
    frame = panel.build_panel(
        con,
        crime_types=["Drugs"],
        months=("2019-01", "2019-01"),
        lookup=lookups / "cardiff_lsoa11_to_ward_2017.csv",
        group_col="ward_name",
        population=lookups / "wales_lsoa11_population_mid2017_2019_2020.csv",
    )
    assert frame["population"].notna().all()
    assert 340_000 < frame["population"].sum() < 380_000  # Cardiff mid-2019 ~ 366,900
    raw = pd.read_csv(street / "2019-01-south-wales-street.csv", dtype=str)
    expected = int((raw["LSOA code"].isna() & (raw["Crime type"] == "Drugs")).sum())
    assert panel.no_location_count(con, ["Drugs"], ("2019-01", "2019-01")) == expected
