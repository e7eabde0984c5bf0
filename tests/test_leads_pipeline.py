"""Leads end to end on generated GeoTIFF/GeoPackage files with an oracle predict callback:
seams, permits, coverage, joins, a geographic-CRS flight, evidence, exports and the CLI.

Each case runs with both the stand-in pair reader (tests/_leads_fixtures.py) and the real
``geo.tiles.open_pair`` (co-registration off: the fixtures are textureless).
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

import pipelines.detect as detect_mod
import pipelines.run as run_mod
from geo.errors import VectorError
from pipelines.config import DEFAULT_MIN_SCORE, BuildwatchConfig, load_config
from pipelines.detect import detect_leads
from pipelines.run import run_flight
from pipelines.schema import LEAD_COLUMNS, LEAD_COLUMNS_ZH
from tests._leads_fixtures import (
    UTM,
    YELLOW,
    Structure,
    oracle_predict,
    stand_in_open_pair,
    write_pair,
    write_units,
)


def _real_open_pair(flight, baseline, **kwargs):
    from geo.tiles import open_pair

    return open_pair(flight, baseline, **kwargs)


@pytest.fixture(params=["stand-in", "geo.tiles"])
def pair_impl(request, monkeypatch):
    """Use the stand-in or the real pair reader inside pipelines.detect."""
    if request.param == "geo.tiles":
        pytest.importorskip("geo.tiles", reason="geo.tiles not available yet")
        monkeypatch.setattr(detect_mod, "_open_pair", _real_open_pair)
    else:
        monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    return request.param


def _config(**filters) -> BuildwatchConfig:
    return BuildwatchConfig.model_validate(
        {
            "tiling": {"gsd": 0.2, "size": 128, "overlap": 32, "prefetch": 0},
            "coreg": {"mode": "off"},
            "filters": filters,
        }
    )


STRUCTURES = [
    Structure(5, 5, 10, 10),  # village 西村
    Structure(35, 10, 40, 15),  # compound 东苑小区
    Structure(27, 35, 29.5, 40, YELLOW),  # community 东社区, construction
    Structure(5, 40, 10, 45),  # no unit (south-west) -> unassigned, 西镇
]


def test_leads_are_joined_to_the_right_units(tmp_path, pair_impl):
    flight, baseline = write_pair(tmp_path, STRUCTURES)
    units = write_units(tmp_path / "units.gpkg")
    res = detect_leads(flight, baseline, predict=oracle_predict, config=_config(), units=units)
    leads = res.leads
    assert list(leads.columns) == [*LEAD_COLUMNS, "geometry"]
    assert len(leads) == 4
    assert leads["lead_id"].tolist() == [f"flight-{i:05d}" for i in range(1, 5)]
    by_area = leads.sort_values("area_m2")
    assert by_area["class"].iloc[0] == "construction"
    codes = {
        round(g.centroid.x - 600000): u
        for g, u in zip(leads.geometry, leads["unit_code"], strict=True)
    }
    assert codes == {8: "500101001201", 38: "C001", 28: "500101002001", 8 - 0: codes[8]}
    assert sorted(leads["unit_type"]) == ["community", "compound", "unassigned", "village"]
    assert set(leads.loc[leads["unit_type"] == "unassigned", "responsible_party"]) == {
        "西镇人民政府"
    }
    for s in STRUCTURES:
        hit = leads[leads.intersects(s.box())]
        assert len(hit) == 1
        assert hit["area_m2"].iloc[0] == pytest.approx(s.box().area, rel=0.15)
    assert leads.crs == UTM
    assert res.flight_id == "flight" and res.baseline_id == "baseline"
    assert (
        json.loads(leads["thresholds"].iloc[0])["min_score"]["new_building"]
        == DEFAULT_MIN_SCORE["new_building"]
    )


def test_structure_across_a_tile_seam_is_exactly_one_lead(tmp_path, pair_impl):
    # tiles of 128 px / overlap 32 start at columns 0 and 96: columns 100..140 straddle the seam
    # (seen cut by tile 0 and whole by tile 1); 60..170 is wider than the overlap (cut by both);
    # rows 100..140 straddle the horizontal seam too
    seam = Structure(20, 2, 28, 8)
    wide = Structure(12, 14, 34, 18)
    corner = Structure(20, 20, 28, 28)
    flight, baseline = write_pair(tmp_path, [seam, wide, corner])
    res = detect_leads(flight, baseline, predict=oracle_predict, config=_config())
    assert res.n_candidates > len(res.leads)  # several views were merged
    assert len(res.leads) == 3
    for s in (seam, wide, corner):
        hit = res.leads[res.leads.intersects(s.box())]
        assert len(hit) == 1
        assert hit.geometry.iloc[0].symmetric_difference(s.box()).area < 0.1 * s.box().area


def test_permitted_structure_is_kept_but_not_a_lead(tmp_path, pair_impl):
    legal, illegal = Structure(5, 5, 10, 10), Structure(35, 35, 40, 40)
    flight, baseline = write_pair(tmp_path, [legal, illegal])
    units = write_units(
        tmp_path / "units.gpkg",
        permits=[Structure(4, 4, 11, 11).box()],
        known=[Structure(35, 35, 40, 37).box()],
    )
    res = detect_leads(flight, baseline, predict=oracle_predict, config=_config(), units=units)
    leads = res.leads.set_index(res.leads.intersects(legal.box()))
    assert leads.loc[True, "status"] == "permitted"
    assert leads.loc[False, "status"] == "lead"
    assert bool(leads.loc[False, "known_building"]) is True
    assert bool(leads.loc[True, "known_building"]) is False


def test_structure_outside_valid_coverage_is_unknown_not_a_lead(tmp_path, pair_impl):
    inside, outside = Structure(5, 5, 10, 10), Structure(40, 5, 45, 10)
    # only the western 150 columns (30 m) of the flight are valid data
    flight, baseline = write_pair(tmp_path, [inside, outside], flight_alpha_cols=150)
    res = detect_leads(flight, baseline, predict=oracle_predict, config=_config())
    assert len(res.leads) == 1 and res.leads.intersects(inside.box()).all()
    if pair_impl == "stand-in":  # the real reader masks invalid pixels before the model
        assert res.dropped.unknown_coverage == 1


def test_thresholds_per_class_drop_small_and_weak(tmp_path, pair_impl):
    flight, baseline = write_pair(tmp_path, STRUCTURES)
    cfg = _config(min_area_m2={"new_building": 30.0}, min_score={"construction": 0.95})
    res = detect_leads(flight, baseline, predict=oracle_predict, config=cfg)
    assert len(res.leads) == 0
    assert res.dropped.below_area == 3 and res.dropped.below_score == 1


def test_geographic_crs_flight_gives_metric_leads(tmp_path, pair_impl):
    s = Structure(20, 20, 30, 26)
    flight, baseline = write_pair(tmp_path, [s], crs="EPSG:4490")
    res = detect_leads(flight, baseline, predict=oracle_predict, config=_config())
    assert res.leads.crs.is_projected
    assert len(res.leads) == 1
    assert res.leads["area_m2"].iloc[0] == pytest.approx(60.0, rel=0.15)
    lon, lat = gpd.GeoSeries([s.box().centroid], crs=UTM).to_crs("EPSG:4490").iloc[0].coords[0]
    assert res.leads["lon"].iloc[0] == pytest.approx(lon, abs=2e-5)
    assert res.leads["lat"].iloc[0] == pytest.approx(lat, abs=2e-5)


def test_bad_units_layer_is_a_clear_error(tmp_path, pair_impl):
    flight, baseline = write_pair(tmp_path, STRUCTURES[:1])
    units = write_units(tmp_path / "units.gpkg", drop={"villages": "committee_name"})
    with pytest.raises(
        VectorError, match=r"units\.gpkg: layer 'villages' lacks required column 'committee_name'"
    ):
        detect_leads(flight, baseline, predict=oracle_predict, config=_config(), units=units)


def test_run_writes_every_output_and_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    flight, baseline = write_pair(tmp_path / "in", STRUCTURES)
    units = write_units(tmp_path / "in" / "units.gpkg", permits=[Structure(4, 39, 11, 46).box()])
    cfg = _config().model_copy(
        update={"units": load_config(None, {"units": {"path": str(units)}}).units}
    )
    cfg.output.chinese_headers = True
    out = run_flight(
        flight, config=cfg, baseline=baseline, out_dir=tmp_path / "out", predict=oracle_predict
    )
    layers = dict(pyogrio.list_layers(out.gpkg))
    assert set(layers) == {
        "leads",
        "summary_units",
        "summary_townships",
        "coverage",
        "not_comparable",
        "unknown",
        "layer_styles",  # their QGIS styles
    }
    coverage = gpd.read_file(out.gpkg, layer="coverage")
    assert len(coverage) == 1 and coverage.crs == UTM
    assert coverage.geometry.iloc[0].area == pytest.approx(out.result.coverage.area)
    assert coverage["area_m2"].iloc[0] == pytest.approx(out.result.coverage_m2["common"], rel=1e-6)
    leads = gpd.read_file(out.gpkg, layer="leads")
    assert leads.crs == UTM and len(leads) == 4
    assert (leads["status"] == "permitted").sum() == 1
    for col in ("before", "after"):
        for rel in leads[f"evidence_{col}"]:
            assert (out.out_dir / rel).is_file()
    from PIL import Image

    before = np.asarray(Image.open(out.out_dir / leads["evidence_before"].iloc[0]))
    after = np.asarray(Image.open(out.out_dir / leads["evidence_after"].iloc[0]))
    assert before.shape == after.shape and before.shape[0] >= 256
    assert np.abs(before.astype(int) - after.astype(int)).max() > 100  # the structure is new
    assert (after[..., 0] > 240).any()  # outlined in red
    csv = pd.read_csv(out.csv, encoding="utf-8-sig", dtype=str)
    assert list(csv.columns) == list(LEAD_COLUMNS)
    xlsx = pd.read_excel(out.xlsx, sheet_name=None)
    assert list(xlsx["leads"].columns) == [LEAD_COLUMNS_ZH[c] for c in LEAD_COLUMNS]
    assert set(xlsx["leads"]["类别"]) <= {"新建建筑", "在建工程"}
    units_summary = gpd.read_file(out.gpkg, layer="summary_units").set_index("unit_code")
    assert units_summary.loc["C001", "n_leads"] == 1
    tsp = gpd.read_file(out.gpkg, layer="summary_townships").set_index("township_name")
    assert tsp.loc["西镇", "n_leads"] == 1 and tsp.loc["西镇", "n_permitted"] == 1
    summary = json.loads(out.summary_json.read_text(encoding="utf-8"))
    assert summary["counts"]["leads"] == 3 and summary["counts"]["permitted"] == 1
    assert "leads 线索: 3" in out.summary_txt.read_text(encoding="utf-8")
    assert not list(out.out_dir.glob(".staging-*"))
    again = run_flight(
        flight, config=cfg, baseline=baseline, out_dir=tmp_path / "out", predict=oracle_predict
    )
    second = gpd.read_file(again.gpkg, layer="leads")
    assert second["lead_id"].tolist() == leads["lead_id"].tolist()
    assert second.geometry.equals(leads.geometry)


def test_run_without_baseline_is_a_config_error(tmp_path):
    from geo.errors import ConfigError

    with pytest.raises(ConfigError, match="no baseline: pass --baseline"):
        run_flight(tmp_path / "f.tif", config=BuildwatchConfig(), predict=oracle_predict)


# ------------------------------------------------------------------ CLI
def _cli(argv, capsys):
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_detect_command_writes_the_leads_layer(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    monkeypatch.setattr(detect_mod, "load_detector", lambda config: oracle_predict)
    flight, baseline = write_pair(tmp_path, STRUCTURES)
    units = write_units(tmp_path / "units.gpkg")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tiling: {gsd: 0.2, size: 128, overlap: 32}\ncoreg: {mode: 'off'}\n")
    out = tmp_path / "o" / "leads.gpkg"
    code, stdout, err = _cli(
        [
            "detect",
            "--baseline",
            str(baseline),
            "--flight",
            str(flight),
            "--out",
            str(out),
            "--units",
            str(units),
            "--config",
            str(cfg),
        ],
        capsys,
    )
    assert code == 0, err
    assert "4 leads" in stdout
    assert [name for name, _ in pyogrio.list_layers(out)] == [
        "leads",
        "coverage",
        "not_comparable",
        "unknown",
        "layer_styles",  # their QGIS styles
    ]
    assert "area km²: compared" in stdout and "co-registration: off" in stdout
    leads = gpd.read_file(out, layer="leads")
    assert {"lead_id", "score", "class", "area_m2", "lon", "lat"} <= set(leads.columns)
    assert leads.crs.is_projected and leads.crs == UTM
    assert shapely.is_valid(leads.geometry.values).all()


def test_cli_bad_config_and_bad_units_exit_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    monkeypatch.setattr(detect_mod, "load_detector", lambda config: oracle_predict)
    flight, baseline = write_pair(tmp_path, STRUCTURES[:1])
    bad = tmp_path / "bad.yaml"
    bad.write_text("filters: {min_area: 3}\n")
    code, _, err = _cli(
        ["run", "--config", str(bad), "--flight", str(flight), "--baseline", str(baseline)], capsys
    )
    assert code == 2 and "unknown key 'filters.min_area'" in err and "Traceback" not in err
    units = write_units(tmp_path / "units.gpkg", drop={"compounds": "property_company"})
    code, _, err = _cli(
        [
            "detect",
            "--baseline",
            str(baseline),
            "--flight",
            str(flight),
            "--out",
            str(tmp_path / "x.gpkg"),
            "--units",
            str(units),
        ],
        capsys,
    )
    assert code == 3 and "lacks required column 'property_company'" in err
    assert not (tmp_path / "x.gpkg").exists()


def test_run_command_prints_the_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    monkeypatch.setattr(run_mod, "load_detector", lambda config: oracle_predict)
    flight, baseline = write_pair(tmp_path, STRUCTURES)
    write_units(tmp_path / "units.gpkg")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"baseline: {baseline.name}\nunits: {{path: units.gpkg}}\n"
        "tiling: {gsd: 0.2, size: 128, overlap: 32}\noutput: {dir: out, evidence: false}\n"
    )
    monkeypatch.chdir(tmp_path)
    code, stdout, err = _cli(["run", "--config", str(cfg), "--flight", str(flight)], capsys)
    assert code == 0, err
    assert "leads 线索: 4" in stdout
    assert (tmp_path / "out" / "leads.xlsx").is_file() and not (
        tmp_path / "out" / "evidence"
    ).exists()


def test_a_detector_object_sets_tiling_from_its_card_and_provenance(tmp_path, monkeypatch):
    import hashlib
    from types import SimpleNamespace

    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not really weights")
    calls = []

    class FakeDetector:
        card = SimpleNamespace(
            name="fake-cd", sha256="", working_gsd_m=0.2, imgsz=128, overlap_px=32
        )

        def __init__(self):
            self.weights = weights

        def predict(self, images, conf=0.25):
            calls.append((len(images), images[0].shape, conf))
            return oracle_predict(images)

    flight, baseline = write_pair(tmp_path, STRUCTURES[:2])
    cfg = BuildwatchConfig.model_validate({"detector": {"conf": 0.07, "batch": 4}})
    res = detect_leads(flight, baseline, predict=FakeDetector(), config=cfg)
    assert (res.gsd_m, res.tile_px, res.overlap_px) == (0.2, 128, 32)
    assert calls[0] == (4, (128, 128, 6), 0.07)
    assert len(res.leads) == 2
    assert set(res.leads["model_name"]) == {"fake-cd"}
    assert set(res.leads["model_sha256"]) == {
        hashlib.sha256(b"not really weights").hexdigest()[:16]
    }


def test_scale_consensus_runs_through_the_pipeline_and_is_named_in_provenance(
    tmp_path, monkeypatch
):
    """The consensus wrapper is a detector like any other: tiles at the card's grid, a second
    look only at tiles with candidates, and leads that say the consensus was on."""
    from types import SimpleNamespace

    from models.consensus import ScaleConsensus

    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    shapes = []

    class FakeDetector:
        card = SimpleNamespace(name="fake-cd", sha256="cd" * 32, working_gsd_m=0.2, imgsz=128,
                               overlap_px=32)  # fmt: skip

        def predict(self, images, conf=0.25):
            shapes.extend(img.shape[0] for img in images)
            return oracle_predict(images)

    flight, baseline = write_pair(tmp_path, STRUCTURES[:2])
    res = detect_leads(flight, baseline, predict=ScaleConsensus(FakeDetector()))
    assert len(res.leads) == 2  # real structures are seen at both scales
    assert set(res.leads["model_name"]) == {
        "fake-cd+consensus(scale=0.6667,min_score=0.1,min_overlap=0.3)"
    }
    assert 128 in shapes and 85 in shapes  # full tiles and their 2/3 looks
    assert shapes.count(85) < shapes.count(128)  # tiles with nothing are not looked at twice


def test_the_unchanged_test_runs_through_the_pipeline_and_is_named_in_provenance(
    tmp_path, monkeypatch
):
    """Wrapped in the unchanged-structure test, a detector that calls every roof of the flight
    new keeps those the baseline lacks (and the leads say the test was on), and drops them all
    when the baseline shows the same roofs."""
    from types import SimpleNamespace

    from models.candidates import Candidates
    from models.unchanged import UnchangedFilter

    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)

    class EveryRoof:  # sees the flight only: every structure in it is "new"
        card = SimpleNamespace(name="fake-cd", sha256="cd" * 32, working_gsd_m=0.2, imgsz=128,
                               overlap_px=32)  # fmt: skip

        def predict(self, images, conf=0.25):
            ground = [np.broadcast_to(np.median(im[..., :3].reshape(-1, 3), axis=0),
                                      im[..., :3].shape).astype(np.uint8) for im in images]  # fmt: skip
            found = oracle_predict([np.concatenate([im[..., :3], g], axis=2)
                                    for im, g in zip(images, ground, strict=True)])  # fmt: skip
            # a box with a rim of ground around the roof, as a detector's box has
            return [Candidates(c.xyxy + np.array([-3, -3, 3, 3], np.float32), c.score, c.class_id)
                    for c in found]  # fmt: skip

    roofs = [Structure(s.x0, s.y0, s.x1, s.y1, YELLOW) for s in STRUCTURES[:2]]  # brighter
    flight, baseline = write_pair(tmp_path, roofs)
    assert len(detect_leads(flight, flight, predict=EveryRoof()).leads) == 2  # it sees roofs
    res = detect_leads(flight, baseline, predict=UnchangedFilter(EveryRoof()))
    assert len(res.leads) == 2
    assert set(res.leads["model_name"]) == {
        "fake-cd+unchanged(radius_m=3,min_ncc=0.8,min_peak=0.02)"
    }
    same = detect_leads(flight, flight, predict=UnchangedFilter(EveryRoof()))
    assert len(same.leads) == 0  # every roof is in the baseline, where it was


def test_detect_refuses_imagery_coarser_than_the_detector_sees(tmp_path, capsys, monkeypatch):
    """A 2 m satellite pair is refused by the default limits (exit 3, one line naming the flight
    and the setting, no output written); with the limits lifted the same pair is compared."""
    monkeypatch.setattr(detect_mod, "load_detector", lambda config: oracle_predict)
    flight, baseline = write_pair(tmp_path, STRUCTURES, size_px=32, gsd=2.0)
    assert BuildwatchConfig().input.max_flight_gsd_m < 2.0  # the shipped default refuses it
    out = tmp_path / "o" / "leads.gpkg"
    argv = ["detect", "--baseline", str(baseline), "--flight", str(flight), "--out", str(out)]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tiling: {gsd: 0.2, size: 128, overlap: 32}\ncoreg: {mode: 'off'}\n")
    code, _, err = _cli([*argv, "--config", str(cfg)], capsys)
    assert code == 3, err
    assert "flight.tif: the flight's native pixel is 2.00 m" in err
    assert "input.max_flight_gsd_m" in err and "Traceback" not in err
    assert not out.exists() and not any(out.parent.glob("*"))  # nothing written
    lifted = tmp_path / "lifted.yaml"
    lifted.write_text(
        cfg.read_text() + "input: {max_flight_gsd_m: null, max_baseline_gsd_m: null}\n"
    )
    code, stdout, err = _cli([*argv, "--config", str(lifted)], capsys)
    assert code == 0, err
    assert out.exists() and "area km²: compared" in stdout
