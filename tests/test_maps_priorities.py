"""Aggregation, the clearance-priority score, ranking and the ranked tables."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from geo.errors import ConfigError, CRSError, VectorError
from pipelines.config import MapsConfig, load_config
from pipelines.maps.inputs import check_cases, planning_units
from pipelines.maps.priorities import aggregate_units, priority_score, rank_units
from pipelines.maps.render import compute_priorities
from pipelines.maps.sample import SAMPLE_PLANTED, make_sample_cases
from pipelines.maps.tables import COLUMN_LABELS_ZH, write_tables
from tests._maps_fixtures import cases, units  # noqa: F401


def _one_unit_cases(units, rows):  # noqa: F811
    unit = units["compounds"].iloc[0]
    x, y = unit.geometry.centroid.x, unit.geometry.centroid.y
    frames = []
    for i, (state, ledger, first, area_side) in enumerate(rows):
        frames.append(
            {
                "case_id": f"BW-1-{i}",
                "state": state,
                "ledger": ledger,
                "unit_code": unit["unit_code"],
                "first_seen": first,
                "geometry": box(x + 30 * i, y, x + 30 * i + area_side, y + area_side),
            }
        )
    return gpd.GeoDataFrame(frames, crs=units["compounds"].crs)


def test_aggregate_counts_one_unit(units):  # noqa: F811
    rows = [
        ("discovered", "in_progress", "2024-06-25", 10),  # open, recent
        ("stopped", "in_progress", "2024-06-10", 10),  # open, confirmed, recent
        ("removed", "in_progress", "2024-05-20", 10),  # closed, confirmed, previous window
        ("rejected", "existing", "2024-06-20", 10),  # rejected: only in the share's denominator
        ("evidence", "existing", "2024-03-01", 5),  # open, older
    ]
    c = check_cases(_one_unit_cases(units, rows))
    agg = aggregate_units(c, planning_units(units), as_of="2024-06-30")
    u = agg.set_index("unit_code").loc[units["compounds"].iloc[0]["unit_code"]]
    assert u["open_cases"] == 3
    assert u["cases_total"] == 4 and u["rejected"] == 1
    assert u["new_area_m2"] == pytest.approx(225.0)
    assert u["density_per_ha"] == pytest.approx(3 / 36.0, abs=1e-4)
    assert (u["new_recent"], u["new_previous"], u["growth"]) == (2, 1, 1)
    assert u["confirmed_share"] == pytest.approx(2 / 5)
    assert (agg.set_index("unit_code").drop(index=u.name)["open_cases"] == 0).all()


def test_score_formula_and_weights():
    agg = pd.DataFrame(
        {
            "density_per_ha": [2.0, 1.0, 0.0],
            "open_cases": [1, 3, 0],
            "new_area_m2": [0.0, 0.0, 0.0],
            "new_recent": [0, 0, 0],
            "confirmed_share": [0.0, 0.0, 0.0],
        }
    )
    w = {"density": 1.0, "open_cases": 1.0}
    # row 0: (1 + 1/3)/2, row 1: (0.5 + 1)/2, row 2: 0
    assert list(priority_score(agg, w)) == pytest.approx([66.67, 75.0, 0.0], abs=0.01)
    with pytest.raises(ConfigError, match="unknown component 'speed'"):
        priority_score(agg, {"speed": 1.0})
    with pytest.raises(ConfigError, match="positive sum"):
        priority_score(agg, {"density": 0.0})


def test_planted_units_rank_first(units, cases):  # noqa: F811
    prio = compute_priorities(cases, units)
    top_two = set(prio.units.sort_values("rank_district")["unit_code"].head(2))
    most = sorted(SAMPLE_PLANTED, key=SAMPLE_PLANTED.get, reverse=True)[:2]
    assert top_two == set(most)
    assert prio.units.iloc[0]["priority"] == "high"
    # rank within township restarts at 1 per township
    assert set(prio.units.groupby("township_code")["rank_township"].min()) == {1}
    # units with no case score 0 and come last
    assert (prio.units.loc[prio.units["cases_total"] == 0, "priority"] == "none").all()


def test_weights_come_from_config(units, cases):  # noqa: F811
    cfg = load_config(
        overrides={
            "maps": {
                "weights": {
                    "density": 0,
                    "open_cases": 0,
                    "new_area": 0,
                    "growth": 0,
                    "confirmed": 1,
                }
            }
        }
    ).maps
    prio = compute_priorities(cases, units, cfg)
    shares = prio.units.sort_values("rank_district")["confirmed_share"].to_numpy()
    assert list(shares) == sorted(shares, reverse=True)
    with pytest.raises(ConfigError, match="maps.weights.density"):
        load_config(overrides={"maps": {"weights": {"density": -1}}})


def test_rank_bins_validated(units, cases):  # noqa: F811
    agg = aggregate_units(check_cases(cases), planning_units(units))
    with pytest.raises(ConfigError, match="priority_bins must be ascending"):
        rank_units(agg, bins=(70.0, 20.0))


def test_bad_cases_and_units_are_named(units, cases):  # noqa: F811
    with pytest.raises(VectorError, match="missing column.*unit_code"):
        check_cases(cases.drop(columns="unit_code"))
    bad = cases.copy()
    bad.loc[bad.index[0], "state"] = "demolished"
    with pytest.raises(VectorError, match="unknown value 'demolished'"):
        check_cases(bad)
    with pytest.raises(CRSError, match="no CRS"):
        check_cases(gpd.GeoDataFrame(cases.drop(columns="geometry"), geometry=list(cases.geometry)))
    with pytest.raises(VectorError, match="no 'compounds' or 'villages'"):
        planning_units({"districts": units["districts"]})
    dup = {**units, "villages": pd.concat([units["villages"], units["villages"].head(1)])}
    with pytest.raises(VectorError, match="appears twice"):
        planning_units(dup)


def test_tables_chinese_headers(tmp_path, units, cases):  # noqa: F811
    prio = compute_priorities(cases, units, MapsConfig())
    paths = write_tables(prio.units, tmp_path, zh=True)
    assert {
        "district:500104",
        "district_xlsx:500104",
        "township:500104001",
        "township:500104002",
    } <= set(paths)
    table = pd.read_csv(paths["district:500104"], encoding="utf-8-sig", dtype=str)
    assert list(table.columns[:3]) == [
        COLUMN_LABELS_ZH[c] for c in ("rank_district", "rank_township", "unit_code")
    ]
    assert table.iloc[0]["单元编码"] == prio.units.iloc[0]["unit_code"]
    town = pd.read_csv(paths["township:500104002"], encoding="utf-8-sig", dtype=str)
    assert set(town["乡镇（街道）编码"]) == {"500104002"}
    sheets = pd.read_excel(paths["district_xlsx:500104"], sheet_name=None)
    assert list(sheets) == ["全区", "跃进村街道", "跳蹬镇"]
    assert not list(tmp_path.glob(".*"))  # no temp files left


def test_geographic_cases_are_reprojected(units):  # noqa: F811
    c = make_sample_cases(units, {"500104001001": 3}, seed=2).to_crs("EPSG:4490")
    prio = compute_priorities(c, units)
    assert prio.units.iloc[0]["unit_code"] == "500104001001"
    assert prio.cases.crs.is_projected
