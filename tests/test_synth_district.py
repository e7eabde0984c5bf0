"""The synthetic district writer: rasters, vector layers, truth, metadata, nights."""

from __future__ import annotations

import json
import math

import cv2
import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from geo.errors import ConfigError
from geo.synthetic import render_pair
from geo.synthetic.district import generate_district, generate_nights

SEED, SIZE_M, GSD = 5, 200, 0.2


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    return generate_district(tmp_path_factory.mktemp("syn") / "d", SEED, SIZE_M, GSD)


@pytest.fixture(scope="module")
def meta(district):
    return json.loads(district.meta.read_text(encoding="utf-8"))


def test_files_and_metadata(district, meta):
    for p in (district.flight, district.baseline, district.units, district.truth, district.preview):
        assert p.is_file() and p.stat().st_size > 1000
    assert meta["seed"] == SEED and meta["size_px"] == 1000 and meta["flight_crs"] == "EPSG:4544"
    shift = math.hypot(meta["misregistration_m"]["dx"], meta["misregistration_m"]["dy"])
    assert 0.5 <= shift <= 2.0
    assert meta["before"]["date"] < meta["after"]["date"]
    assert meta["before"]["sun_azimuth"] != meta["after"]["sun_azimuth"]
    assert sum(meta["counts"].values()) >= 10
    assert cv2.imread(str(district.preview)).shape[1] >= 1600


def test_flight_raster(district):
    with rasterio.open(district.flight) as ds:
        assert ds.crs.to_epsg() == 4544 and ds.count == 4 and ds.res == (GSD, GSD)
        assert ds.colorinterp[3].name == "alpha" and ds.block_shapes[0] == (512, 512)
        assert ds.overviews(1) and ds.compression is not None
        alpha = ds.read(4)
        assert 0.6 < (alpha > 0).mean() < 1.0 and alpha[0, 0] == 0
        lon_lat = rasterio.warp.transform(ds.crs, "EPSG:4490", [ds.bounds.left], [ds.bounds.top])
        assert 103.5 < lon_lat[0][0] < 106.51 and 29 < lon_lat[1][0] < 30.5


def test_baseline_crs_resolution_and_shift(district, meta):
    with rasterio.open(district.baseline) as bl, rasterio.open(district.flight) as fl:
        assert bl.crs.to_epsg() == 3857 and bl.count == 4 and bl.overviews(1)
        lat = math.radians(meta["latitude_deg"])
        assert bl.res[0] * math.cos(lat) == pytest.approx(0.3, rel=0.02)
        back = np.zeros((4, fl.height, fl.width), np.uint8)
        for b in range(1, 5):
            reproject(
                rasterio.band(bl, b),
                back[b - 1],
                dst_transform=fl.transform,
                dst_crs=fl.crs,
                resampling=Resampling.bilinear,
            )
        cover = (back[3] > 0) & (fl.read(4) > 0)
        assert 0.5 < cover.mean() < 0.98  # most but not all of the flight
    before = render_pair(SEED, 1000, GSD).before
    g0 = cv2.cvtColor(before, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g1 = cv2.cvtColor(
        np.ascontiguousarray(np.moveaxis(back[:3], 0, -1)), cv2.COLOR_RGB2GRAY
    ).astype(np.float32)
    sl = np.s_[300:700, 300:700]
    (sx, sy), _ = cv2.phaseCorrelate(g0[sl], g1[sl])
    dx, dy = meta["misregistration_m"]["dx"], meta["misregistration_m"]["dy"]
    assert sx * GSD == pytest.approx(dx, abs=0.3) and -sy * GSD == pytest.approx(dy, abs=0.3)


def test_units_layers(district):
    layers = {name for name, _ in pyogrio.list_layers(district.units)}
    assert {"districts", "townships", "villages", "compounds", "permits"} <= layers
    cols = {
        "districts": ["district_code", "district_name"],
        "townships": ["township_code", "township_name", "township_kind", "district_code"],
        "villages": ["unit_code", "unit_name", "unit_type", "committee_name", "township_code"],
        "compounds": ["unit_code", "unit_name", "property_company", "township_code"],
        "permits": ["permit_id", "permit_no", "holder", "valid_from", "valid_to"],
    }
    gdfs = {}
    for layer, need in cols.items():
        g = gpd.read_file(district.units, layer=layer)
        assert g.crs.to_epsg() == 4544 and g.is_valid.all() and set(need) <= set(g.columns), layer
        gdfs[layer] = g
    d = gdfs["districts"]
    assert len(d.iloc[0]["district_code"]) == 6 and d.iloc[0]["district_name"].endswith("区")
    t = gdfs["townships"]
    assert set(t["township_kind"]) == {"township", "street"}
    assert all(len(c) == 9 for c in t["township_code"])
    assert t.union_all().symmetric_difference(d.geometry.iloc[0]).area < 1.0
    assert t.geometry.iloc[0].intersection(t.geometry.iloc[1]).area < 1.0
    v = gdfs["villages"]
    assert all(len(c) == 12 for c in v["unit_code"]) and set(v["unit_type"]) <= {
        "village",
        "community",
    }
    assert v["unit_name"].str.contains("[\u4e00-\u9fff]").all()
    assert len(gdfs["permits"]) >= 1


def test_truth(district):
    t = gpd.read_file(district.truth, layer="changes")
    assert t.crs.to_epsg() == 4544 and t.is_valid.all()
    assert {"change_id", "kind", "class", "expected", "unit_code"} <= set(t.columns)
    assert {
        "moved_car",
        "vegetation",
        "shadow",
        "repaint",
        "demolished",
        "permitted_building",
    } <= set(t["kind"])
    assert set(t.loc[t["expected"] == "lead", "class"]) <= {"new_building", "construction"}
    assert (t.loc[t["expected"] == "none", "class"] == "").all()
    assert (t["unit_code"].str.len() == 12).all()
    permits = gpd.read_file(district.units, layer="permits")
    permitted = t[t["kind"] == "permitted_building"]
    assert all(permits.contains(g.representative_point()).any() for g in permitted.geometry)


def test_refuses_non_empty_out_and_overwrites(district, tmp_path):
    with pytest.raises(ConfigError, match="exists and is not empty; pass --overwrite"):
        generate_district(district.root, SEED, SIZE_M, GSD)
    out = tmp_path / "o"
    out.mkdir()
    (out / "junk.txt").write_text("x")
    p = generate_district(out, 1, 60, 0.3, overwrite=True)
    assert not (out / "junk.txt").exists() and p.flight.is_file()
    assert not list(tmp_path.glob(".o.*"))  # no temporary folder left behind
    with pytest.raises(ConfigError, match="--size-m -1: must be between 20 and 5000"):
        generate_district(tmp_path / "n", 1, -1, 0.2)


def test_nights(tmp_path):
    p = generate_nights(tmp_path / "n", 7, 3, 120, 0.25)
    assert len(p.flights) == 3 and p.baseline.is_file() and p.units.is_file()
    ids = []
    for f, tr, side in zip(p.flights, p.truths, p.sidecars, strict=True):
        meta = json.loads(side.read_text(encoding="utf-8"))
        assert {"date", "flight_id", "district_code"} <= set(meta)
        with rasterio.open(f) as ds:
            assert ds.crs.to_epsg() == 4544 and ds.count == 4
        ids.append(set(gpd.read_file(tr)["change_id"]))
    assert ids[0] & ids[2]
    dates = [json.loads(s.read_text())["date"] for s in p.sidecars]
    assert dates == sorted(dates) and len(set(dates)) == 3


def _strip_alpha(path):
    with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.colorinterp = [ds.colorinterp[0], ds.colorinterp[1], ds.colorinterp[2],
                          rasterio.enums.ColorInterp.undefined]  # fmt: skip


def test_the_alpha_flag_survives_a_block_cache_smaller_than_the_raster(tmp_path):
    """Found on 800 m districts generated after a detection run in the same process (which caps
    GDAL's block cache at 64 MB): blocks flushed before the flag was set lost it, and the
    flight's no-data corner counted as compared imagery. Scaled down: 4 MB under a 1 MB cache."""
    from affine import Affine

    from geo.synthetic.geotiff import write_rgba_cog

    rgb = np.random.default_rng(2).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    valid = np.ones((1024, 1024), bool)
    valid[:, :200] = False
    out = tmp_path / "f.tif"
    with rasterio.Env(GDAL_CACHEMAX=1024 * 1024):
        write_rgba_cog(out, rgb, valid, Affine(0.1, 0, 600000, 0, -0.1, 3270000), 4544)
    with rasterio.open(out) as ds:
        assert ds.colorinterp[3].name == "alpha"
        assert (ds.read_masks(1)[:, :200] == 0).all()


def test_a_flight_written_without_its_alpha_flag_is_written_again(tmp_path, monkeypatch, caplog):
    """Band 4 unflagged makes the no-data corner count as imagery: the writer checks the file it
    wrote and writes it again, and stops with a clear error if the flag is lost twice."""
    from affine import Affine

    from geo.synthetic import geotiff

    real = geotiff.rio_copy
    calls = []

    def flaky(src, dst, **kw):
        real(src, dst, **kw)
        calls.append(dst)
        if len(calls) == 1:
            _strip_alpha(dst)

    monkeypatch.setattr(geotiff, "rio_copy", flaky)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    valid = np.ones((256, 256), bool)
    valid[:, :64] = False
    out = tmp_path / "f.tif"
    tr = Affine(0.1, 0, 600000, 0, -0.1, 3270000)
    with caplog.at_level("WARNING", logger="geo.synthetic.geotiff"):
        geotiff.write_rgba_cog(out, rgb, valid, tr, 4544)
    assert len(calls) == 2 and "without the alpha flag" in caplog.text
    with rasterio.open(out) as ds:
        assert ds.colorinterp[3].name == "alpha"
        assert (ds.read_masks(1)[:, :64] == 0).all() and (ds.read_masks(1)[:, 64:] == 255).all()

    def always(src, dst, **kw):
        real(src, dst, **kw)
        _strip_alpha(dst)

    monkeypatch.setattr(geotiff, "rio_copy", always)
    with pytest.raises(RuntimeError, match="without the alpha flag twice"):
        geotiff.write_rgba_cog(tmp_path / "g.tif", rgb, valid, tr, 4544)
