"""Leads: the pure core — georeferencing, seam merge, filters, joins, units, config."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.errors import ConfigError, CRSError, InputFileError, VectorError
from geo.joins import best_overlap, join_units
from geo.units import read_units
from models.candidates import Candidates
from pipelines.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_MIN_SCORE,
    BuildwatchConfig,
    FiltersConfig,
    load_config,
)
from pipelines.leads.build import Provenance, build_leads, select_leads
from pipelines.leads.georef import MapCandidates, boxes_to_polygons, georeference
from pipelines.leads.merge import merge_candidates
from tests._leads_fixtures import ORIGIN, UTM, Structure, write_units

GSD = 0.2
T = Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])


def _cands(boxes, scores=None, classes=None) -> Candidates:
    n = len(boxes)
    return Candidates(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores if scores is not None else [0.9] * n, np.float32),
        np.array(classes if classes is not None else [0] * n, np.int64),
    )


# ------------------------------------------------------------------ georef
@settings(max_examples=50, deadline=None)
@given(
    x0=st.floats(0, 400),
    y0=st.floats(0, 400),
    w=st.floats(1, 100),
    h=st.floats(1, 100),
    angle=st.floats(-45, 45),
    gsd=st.floats(0.03, 1.0),
)
def test_box_polygon_area_and_corners_follow_the_affine(x0, y0, w, h, angle, gsd):
    t = Affine(gsd, 0, 500000, 0, -gsd, 3000000) @ Affine.rotation(angle)
    poly = boxes_to_polygons(np.array([[x0, y0, x0 + w, y0 + h]]), t)[0]
    assert poly.area == pytest.approx(w * h * gsd * gsd, rel=1e-6)
    corner = t @ (x0, y0)
    assert (
        min(shapely.Point(corner).distance(shapely.Point(c)) for c in poly.exterior.coords) < 1e-6
    )


def test_georeference_flags_sides_cut_by_the_tile_edge():
    mc = georeference(_cands([[100, 10, 128, 20], [5, 5, 10, 10]]), T, (128, 128), tile_id=3)
    # box 0 touches the tile's right edge (map maxx); box 1 touches nothing
    assert mc.clipped.tolist() == [[False, False, True, False], [False] * 4]
    assert mc.tile_id.tolist() == [3, 3]
    assert mc.geometry[0].bounds == pytest.approx(
        (ORIGIN[0] + 20, ORIGIN[1] - 4, ORIGIN[0] + 25.6, ORIGIN[1] - 2)
    )
    assert mc.bounds_of_tiles[0] == pytest.approx(
        [ORIGIN[0], ORIGIN[1] - 25.6, ORIGIN[0] + 25.6, ORIGIN[1]]
    )


# ------------------------------------------------------------------ merge
def _tile(c0: int, boxes, scores=None, classes=None, size=128, tile_id=0) -> MapCandidates:
    t = T @ Affine.translation(c0, 0)
    return georeference(_cands(boxes, scores, classes), t, (size, size), tile_id=tile_id)


def test_structure_straddling_a_seam_becomes_one_lead_with_its_full_extent():
    # global columns 100..140; tiles at columns 0, 96, 128 (size 128, overlap 32)
    parts = MapCandidates.concat(
        [
            _tile(0, [[100, 20, 128, 40]], tile_id=0),  # cut by tile 0's right edge
            _tile(96, [[4, 20, 44, 40]], tile_id=1),  # complete in tile 1
            _tile(128, [[0, 20, 12, 40]], tile_id=2),  # cut by tile 2's left edge
        ]
    )
    merged, absorbed = merge_candidates(parts, iosa=0.5)
    assert len(merged) == 1 and absorbed == 2
    assert merged.geometry[0].bounds == pytest.approx(
        (ORIGIN[0] + 20, ORIGIN[1] - 8, ORIGIN[0] + 28, ORIGIN[1] - 4)
    )


def test_wide_structure_cut_by_both_tiles_still_merges():
    # columns 60..170: tile 0 sees 60..128 (cut right), tile 1 (96..224) sees 96..170 (cut left);
    # overall IoSA = 32/68 < 0.5, but inside the shared strip both views agree
    parts = MapCandidates.concat(
        [
            _tile(0, [[60, 20, 128, 40]], tile_id=0),
            _tile(96, [[0, 20, 74, 40]], tile_id=1),
        ]
    )
    merged, absorbed = merge_candidates(parts, iosa=0.5)
    assert len(merged) == 1 and absorbed == 1
    assert shapely.area(merged.geometry[0]) == pytest.approx(110 * 20 * GSD * GSD)


def test_separate_neighbours_are_not_merged_and_views_are_score_weighted():
    parts = MapCandidates.concat(
        [
            _tile(0, [[10, 10, 30, 30], [31, 10, 50, 30]], tile_id=0),  # two touching-ish houses
            _tile(0, [[70, 10, 90, 30]], [0.9], [0], tile_id=0),
            _tile(
                0, [[72, 10, 92, 30]], [0.3], [1], tile_id=1
            ),  # same house, weaker view, other class
        ]
    )
    merged, absorbed = merge_candidates(parts, iosa=0.5)
    assert len(merged) == 3 and absorbed == 1
    fused = merged.take(np.array([2]))
    minx = fused.geometry[0].bounds[0]
    assert minx == pytest.approx(ORIGIN[0] + (0.9 * 70 + 0.3 * 72) / 1.2 * GSD)
    assert fused.score[0] == pytest.approx(0.9) and fused.class_id[0] == 0


def test_merge_of_nothing_or_one_is_identity():
    assert merge_candidates(MapCandidates.empty())[1] == 0
    one = _tile(0, [[1, 1, 5, 5]])
    assert merge_candidates(one)[0] is one


# ------------------------------------------------------------------ filters / build
def _mc(boxes_m, classes=None, scores=None) -> MapCandidates:
    g = np.array([s.box() for s in boxes_m])
    n = len(g)
    return MapCandidates(
        g,
        np.array(scores or [0.9] * n, np.float32),
        np.array(classes or [0] * n),
        np.zeros(n, np.int64),
        np.zeros((n, 4), bool),
    )


def test_select_leads_applies_score_area_coverage_permit_and_known_rules():
    import geopandas as gpd

    boxes = [
        Structure(0, 0, 5, 5),  # ok
        Structure(10, 0, 11, 1),  # 1 m² < 4 m² → below area
        Structure(20, 0, 25, 5),  # low score
        Structure(40, 0, 45, 5),  # outside coverage
        Structure(0, 20, 5, 25),  # inside a permit
        Structure(10, 20, 15, 25),  # on a known building
    ]
    mc = _mc(boxes, scores=[0.9, 0.9, 0.2, 0.9, 0.9, 0.9])
    coverage = shapely.box(ORIGIN[0] - 1, ORIGIN[1] - 40, ORIGIN[0] + 30, ORIGIN[1] + 1)
    permits = gpd.GeoDataFrame(
        {"valid_from": ["2020-01-01"], "valid_to": ["2030-01-01"]},
        geometry=[Structure(-1, 19, 6, 26).box()],
        crs=UTM,
    )
    known = gpd.GeoDataFrame(geometry=[Structure(10, 20, 15, 22).box()], crs=UTM)
    sel = select_leads(
        mc, FiltersConfig(), coverage=coverage, permits=permits, known_buildings=known
    )
    assert sel.counts.as_dict() == {
        "below_score": 1,
        "below_area": 1,
        "unknown_coverage": 1,
        "not_comparable": 0,
    }
    assert sel.status.tolist() == ["lead", "permitted", "lead"]
    assert sel.known_building.tolist() == [False, False, True]
    # an expired permit does not make a structure legal
    from datetime import date

    later = select_leads(
        mc, FiltersConfig(), coverage=coverage, permits=permits, flight_date=date(2031, 1, 1)
    )
    assert later.status.tolist() == ["lead", "lead", "lead"]


def test_lead_ids_are_ordered_north_to_south_then_west_to_east():
    mc = _mc([Structure(30, 30, 35, 35), Structure(30, 0, 35, 5), Structure(0, 0, 5, 5)])
    sel = select_leads(mc, FiltersConfig())
    leads = build_leads(sel, UTM, Provenance("F1", "B1"))
    assert leads["lead_id"].tolist() == ["F1-00001", "F1-00002", "F1-00003"]
    assert leads.geometry.iloc[0].bounds[0] == pytest.approx(ORIGIN[0])
    assert leads["area_m2"].tolist() == [25.0, 25.0, 25.0]
    assert leads["lon"].between(106, 107).all() and leads["lat"].between(29, 30).all()
    with pytest.raises(ValueError, match="projected CRS"):
        build_leads(sel, "EPSG:4490", Provenance("F1", "B1"))


# ------------------------------------------------------------------ units / joins
@pytest.fixture
def units_path(tmp_path):
    return write_units(tmp_path / "units.gpkg")


def _join(path, structures, crs=UTM):
    units = read_units(path, crs)
    geoms = np.array([s.box() for s in structures])
    return join_units(shapely.transform(geoms, lambda c: c) if crs == UTM else geoms, units)


def test_joins_assign_unit_township_district_and_responsible_party(units_path):
    out = _join(
        units_path,
        [
            Structure(5, 5, 10, 10),  # village 西村
            Structure(35, 10, 40, 15),  # compound inside the community
            Structure(27, 35, 29.5, 40),  # community, outside the compound
            Structure(5, 40, 10, 45),  # no unit: south-west
            Structure(26, 4, 33, 9),  # straddles the compound edge, mostly outside it
        ],
    )
    assert out["unit_type"].tolist() == [
        "village",
        "compound",
        "community",
        "unassigned",
        "community",
    ]
    assert out["unit_code"].tolist()[:3] == ["500101001201", "C001", "500101002001"]
    assert out["responsible_party"].tolist()[:4] == [
        "西村村民委员会",
        "东苑物业公司",
        "东社区社区居民委员会",
        "西镇人民政府",
    ]
    assert out["responsible_type"].tolist()[:4] == [
        "village_committee",
        "property_company",
        "community_committee",
        "township",
    ]
    assert out["township_name"].tolist()[:4] == ["西镇", "东街道", "东街道", "西镇"]
    assert set(out["district_name"]) == {"测试区"}


def test_units_in_another_crs_are_reprojected_and_invalid_geometry_repaired(tmp_path):
    path = write_units(tmp_path / "u.gpkg", crs="EPSG:4490", invalid_village=True)
    units = read_units(path, UTM)
    assert units.villages.crs == UTM and units.villages.is_valid.all()
    assert any("repaired 1 invalid" in r for r in units.repairs)
    out = join_units(np.array([Structure(35, 10, 40, 15).box()]), units)
    assert out["unit_code"].iloc[0] == "C001"


@pytest.mark.parametrize(
    ("drop", "match"),
    [
        (
            {"compounds": "property_company"},
            r"u\.gpkg: layer 'compounds' lacks required column 'property_company'",
        ),
        ({"villages": "unit_type"}, r"layer 'villages' lacks required column 'unit_type'"),
        (
            {"townships": "district_code"},
            r"layer 'townships' lacks required column 'district_code'",
        ),
    ],
)
def test_missing_required_column_is_a_clear_error(tmp_path, drop, match):
    path = write_units(tmp_path / "u.gpkg", drop=drop)
    with pytest.raises(VectorError, match=match):
        read_units(path, UTM)


def test_missing_layer_bad_value_no_file_and_no_crs_are_clear_errors(tmp_path):
    import geopandas as gpd

    path = tmp_path / "only.gpkg"
    gpd.GeoDataFrame(
        {"district_code": ["1"], "district_name": ["x"]},
        geometry=[shapely.box(0, 0, 1, 1)],
        crs=UTM,
    ).to_file(path, layer="districts")
    with pytest.raises(
        VectorError, match=r"required layer 'townships' not found .*found: districts"
    ):
        read_units(path, UTM)
    with pytest.raises(InputFileError, match="units file not found"):
        read_units(tmp_path / "nope.gpkg", UTM)
    with pytest.raises(InputFileError, match="is a directory"):
        read_units(tmp_path, UTM)
    good = write_units(tmp_path / "u.gpkg")
    vill = gpd.read_file(good, layer="villages")
    vill.loc[0, "unit_type"] = "hamlet"
    vill.to_file(good, layer="villages", driver="GPKG")
    with pytest.raises(
        VectorError, match=r"column 'unit_type' has value 'hamlet'; allowed: village, community"
    ):
        read_units(good, UTM)
    nocrs = write_units(tmp_path / "n.gpkg")
    comp = gpd.read_file(nocrs, layer="compounds").set_crs(None, allow_override=True)
    comp.to_file(nocrs, layer="compounds", driver="GPKG")
    with pytest.raises(CRSError, match="layer 'compounds' has no CRS"):
        read_units(nocrs, UTM)


def test_best_overlap_breaks_ties_deterministically():
    a = np.array([shapely.box(0, 0, 2, 2)])
    b = np.array([shapely.box(1, 0, 3, 2), shapely.box(-1, 0, 1, 2)])
    assert best_overlap(a, b)[0].tolist() == [0]


# ------------------------------------------------------------------ config
def test_default_yaml_is_the_model_defaults():
    assert load_config(DEFAULT_CONFIG_PATH) == BuildwatchConfig().resolve_paths(
        DEFAULT_CONFIG_PATH.parent
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("detectr: {}\n", r"c\.yaml: unknown key 'detectr'"),
        ("filters:\n  min_scor: {new_building: 0.5}\n", r"unknown key 'filters\.min_scor'"),
        ("filters:\n  min_score: {house: 0.5}\n", r"filters\.min_score: .*unknown class 'house'"),
        ("detector:\n  device: tpu\n", r"detector\.device: .*'auto', 'cpu' or 'cuda'.*got 'tpu'"),
        ("filters: [1, 2\n", r"c\.yaml: not valid YAML"),
        ("- a\n- b\n", r"top level must be a mapping"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_config_paths_resolve_against_the_file_and_partial_class_thresholds_fill_in(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "units: {path: data/units.gpkg}\nfilters: {min_score: {construction: 0.45}}\nledger: {url: postgresql://db/bw}\n"
    )
    cfg = load_config(path)
    assert cfg.units.path == tmp_path / "data" / "units.gpkg"
    assert cfg.filters.min_score == {
        "new_building": DEFAULT_MIN_SCORE["new_building"],
        "construction": 0.45,
    }
    assert cfg.ledger.url == "postgresql://db/bw"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
