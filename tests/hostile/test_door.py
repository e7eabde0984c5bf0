"""Validate at the door, before any work: data type, declared size, completeness, units that
do not meet the flight, empty required layers, an output folder that cannot be written, and OS
errors on the way out — each one line with a documented exit code, nothing written."""

from __future__ import annotations

import errno
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine

import pipelines.detect as detect_mod
from geo.errors import CRSError, RasterError, VectorError
from geo.raster import open_raster
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads
from tests._geo_fixtures import GK, make_world, write_epoch
from tests._leads_fixtures import (
    Structure,
    oracle_predict,
    stand_in_open_pair,
    write_pair,
    write_units,
)

T = Affine(0.1, 0, 500_000, 0, -0.1, 3_270_000)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return int(exc.value.code), err


def test_a_float_flight_with_nan_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.random.default_rng(0).random((3, 64, 64)).astype("float32")
    data[:, :10, :10] = np.nan
    path = tmp_path / "float.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="float32",
                       crs=GK, transform=T) as ds:  # fmt: skip
        ds.write(data)
    world, wt = make_world(200)
    base = write_epoch(tmp_path / "b.tif", world, wt)
    out = tmp_path / "o" / "leads.gpkg"
    code, err = _cli(
        ["detect", "--flight", str(path), "--baseline", str(base), "--out", str(out)], capsys
    )
    assert code == 3 and len(err) == 1
    assert "float.tif: data type float32 is not supported" in err[0] and "gdal_translate" in err[0]
    assert not out.exists()


def test_a_huge_declared_size_is_refused_before_any_work(tmp_path: Path) -> None:
    path = tmp_path / "sparse.tif"
    with rasterio.open(path, "w", driver="GTiff", width=400_000, height=400_000, count=3,
                       dtype="uint8", crs=GK, transform=T, tiled=True, BIGTIFF="YES",
                       sparse_ok=True) as ds:  # fmt: skip
        ds.write(np.full((3, 256, 256), 90, np.uint8), window=((0, 256), (0, 256)))
    assert path.stat().st_size < 50_000_000
    with pytest.raises(RasterError, match=r"sparse\.tif: declares 400000 x 400000 px .* limit"):
        open_raster(path, "flight")
    open_raster(path, "flight", max_pixels=None).close()  # the limit is configurable


def test_a_flight_cut_short_is_refused_even_when_its_overviews_read(tmp_path: Path) -> None:
    world, wt = make_world(1500, seed=4)
    src = tmp_path / "full.tif"
    with rasterio.open(src, "w", driver="COG", width=1500, height=1500, count=3, dtype="uint8",
                       crs=GK, transform=wt, BLOCKSIZE=256, OVERVIEWS="AUTO",
                       COMPRESS="DEFLATE") as ds:  # fmt: skip
        ds.write(world)
    data = src.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    with rasterio.open(cut, overview_level=1) as ds:  # the overviews come first in a COG
        assert ds.read(1).shape[0] > 0
    with pytest.raises(RasterError, match=r"cut\.tif: the full-resolution data is incomplete"):
        open_raster(cut, "flight")


def _reproject_declared(units: Path, crs: str) -> None:
    import pyogrio

    for name, _ in pyogrio.list_layers(units):
        frame = gpd.read_file(units, layer=name)
        frame.set_crs(crs, allow_override=True).to_file(units, layer=name, driver="GPKG")


def test_units_in_the_wrong_crs_are_refused_naming_the_layer_and_extents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    flight, baseline = write_pair(tmp_path, [Structure(5, 5, 10, 10)])
    units = write_units(tmp_path / "units.gpkg")
    cfg = BuildwatchConfig.model_validate({"tiling": {"gsd": 0.2, "size": 128, "overlap": 32},
                                           "coreg": {"mode": "off"}})  # fmt: skip
    wrong = tmp_path / "wrong.gpkg"
    wrong.write_bytes(units.read_bytes())
    _reproject_declared(wrong, "EPSG:4326")  # projected metres declared as degrees
    with pytest.raises(CRSError, match=r"layer 'districts' declares the geographic CRS EPSG:4326"):
        detect_leads(flight, baseline, predict=oracle_predict, config=cfg, units=wrong)
    elsewhere = tmp_path / "elsewhere.gpkg"
    elsewhere.write_bytes(units.read_bytes())
    _reproject_declared(elsewhere, "EPSG:32633")  # plausible metres, another place on Earth
    with pytest.raises(VectorError, match=r"layer 'townships' \(extent .*\) does not meet the"):
        detect_leads(flight, baseline, predict=oracle_predict, config=cfg, units=elsewhere)


def test_an_empty_villages_layer_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    flight, baseline = write_pair(tmp_path, [Structure(5, 5, 10, 10)])
    units = write_units(tmp_path / "units.gpkg")
    villages = gpd.read_file(units, layer="villages")
    villages.iloc[0:0].to_file(units, layer="villages", driver="GPKG")
    cfg = BuildwatchConfig.model_validate({"tiling": {"gsd": 0.2, "size": 128, "overlap": 32},
                                           "coreg": {"mode": "off"}})  # fmt: skip
    with pytest.raises(VectorError, match=r"layer 'villages' has no features"):
        detect_leads(flight, baseline, predict=oracle_predict, config=cfg, units=units)


def test_an_unwritable_output_folder_fails_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(
        detect_mod, "load_detector", lambda config: calls.append(1) or oracle_predict
    )
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    code, err = _cli(["detect", "--flight", "f.tif", "--baseline", "b.tif",
                      "--out", str(blocker / "leads.gpkg")], capsys)  # fmt: skip
    assert code == 2 and len(err) == 1 and "is not writable" in err[0] and not calls


def test_disk_full_on_the_way_out_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.run as run_mod

    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    monkeypatch.setattr(detect_mod, "load_detector", lambda config: oracle_predict)

    def full(path: Path, layers: dict) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(run_mod, "write_leads_gpkg", full)
    flight, baseline = write_pair(tmp_path, [Structure(5, 5, 10, 10)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tiling: {gsd: 0.2, size: 128, overlap: 32}\ncoreg: {mode: 'off'}\n")
    out = tmp_path / "o" / "leads.gpkg"
    argv = ["detect", "--flight", str(flight), "--baseline", str(baseline), "--out", str(out),
            "--config", str(cfg)]  # fmt: skip
    code, err = _cli(argv, capsys)
    assert code == 1 and len(err) == 1
    assert "leads.gpkg: No space left on device; the disk is full" in err[0]
    from pipelines.cli import main

    with pytest.raises(OSError):  # --debug keeps the traceback
        main(["--debug", *argv])


def test_a_library_error_on_the_way_out_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyogrio.errors

    import pipelines.run as run_mod

    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    monkeypatch.setattr(detect_mod, "load_detector", lambda config: oracle_predict)

    def broken(path: Path, layers: dict) -> None:
        raise pyogrio.errors.DataSourceError(f"{path}: database disk image is\\nmalformed")

    monkeypatch.setattr(run_mod, "write_leads_gpkg", broken)
    flight, baseline = write_pair(tmp_path, [Structure(5, 5, 10, 10)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tiling: {gsd: 0.2, size: 128, overlap: 32}\ncoreg: {mode: 'off'}\n")
    out = tmp_path / "o" / "leads.gpkg"
    code, err = _cli(["detect", "--flight", str(flight), "--baseline", str(baseline),
                      "--out", str(out), "--config", str(cfg)], capsys)  # fmt: skip
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: pyogrio: ") and "leads.gpkg" in err[0]
