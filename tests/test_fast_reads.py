"""Reads at the working GSD without GDAL's slow paths: DCT-scaled JPEG tiles, remapped baselines,
strip-wise previews — each checked against GDAL's own answer on generated rasters."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geo.jpegtiles import JpegTiles
from geo.raster import read_decimated
from geo.tiles import open_pair
from geo.warp import EpochReader
from geo.windows import TileWindow
from pipelines.progress import Progress, set_quiet, speed_line

GK = CRS.from_epsg(4544)


def _texture(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 6)
    base = (base - base.min()) / (np.ptp(base) + 1e-6)
    img = np.stack([base * 200 + 20, base[::-1] * 180 + 40, base[:, ::-1] * 160 + 60])
    return img.astype(np.uint8)


def _jpeg_tif(path: Path, size: int = 2048, gsd: float = 0.05, **extra: object) -> Path:
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=GK,
                   transform=Affine(gsd, 0, 500_000, 0, -gsd, 3_270_000), tiled=True,
                   blockxsize=256, blockysize=256, compress="JPEG", photometric="YCBCR",
                   jpeg_quality=90, **extra)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(_texture(size, 1))
    return path


def test_dct_scaled_tiles_match_a_full_decode_averaged(tmp_path: Path) -> None:
    path = _jpeg_tif(tmp_path / "f.tif")
    with rasterio.open(path) as ds:
        jt = JpegTiles.open(ds)
        assert jt is not None
        try:
            for factor in (2, 4, 8):
                got = jt.read(256, 512, 1024, 768, factor)
                full = ds.read(window=Window(512, 256, 768, 1024))
                want = cv2.resize(np.moveaxis(full, 0, -1), (768 // factor, 1024 // factor),
                                  interpolation=cv2.INTER_AREA)  # fmt: skip
                assert got.shape == (3, 1024 // factor, 768 // factor)
                assert np.abs(np.moveaxis(got, 0, -1).astype(int) - want).mean() < 1.5, factor
        finally:
            jt.close()


def test_jpeg_tiles_refuse_what_they_do_not_handle(tmp_path: Path) -> None:
    deflate = tmp_path / "d.tif"
    with rasterio.open(_jpeg_tif(tmp_path / "j.tif")) as src:
        profile = {**src.profile, "compress": "deflate", "photometric": "rgb"}
        with rasterio.open(deflate, "w", **profile) as dst:
            dst.write(src.read())
    masked = _jpeg_tif(tmp_path / "m.tif", nodata=0)
    for path in (deflate, masked):
        with rasterio.open(path) as ds:
            assert JpegTiles.open(ds) is None, path.name


def test_a_big_preview_is_read_in_strips_like_gdal_would(tmp_path: Path) -> None:
    path = _jpeg_tif(tmp_path / "big.tif", size=4608)  # > SMALL_READ_PX: strips
    with rasterio.open(path) as ds:
        data, valid, tf = read_decimated(ds, (1, 2, 3), max_size=512)
        want = ds.read(out_shape=(3, 512, 512), resampling=Resampling.average)
    assert data.shape == want.shape and valid.all()
    assert np.abs(data.astype(int) - want.astype(int)).mean() < 2.0
    assert tf.a == pytest.approx(0.05 * 4608 / 512)


def test_a_remapped_baseline_equals_gdals_warp(tmp_path: Path) -> None:
    flight = _jpeg_tif(tmp_path / "f.tif", size=2048, gsd=0.1)
    base = tmp_path / "b.tif"  # the same ground at 0.3 m in EPSG:4326
    with (
        rasterio.open(flight) as src,
        WarpedVRT(src, crs="EPSG:4326", resampling=Resampling.average) as vrt,
    ):
        f = 3
        tf = vrt.transform * Affine.scale(f)
        w, h = vrt.width // f, vrt.height // f
        prof = dict(driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                    crs="EPSG:4326", transform=tf, nodata=0)  # fmt: skip
        with rasterio.open(base, "w", **prof) as dst:
            dst.write(vrt.read(out_shape=(3, h, w), resampling=Resampling.average))
    with open_pair(flight, base, gsd=0.2, coreg="off") as pair:
        spec = pair._baseline
        reader = EpochReader(spec)
        assert reader._remap_src is not None  # a coarser source: remapped, not warped by GDAL
        src = reader._remap_src
        vrt = WarpedVRT(src, crs=spec.crs, transform=spec.correction @ spec.grid.transform,
                        width=spec.grid.width, height=spec.grid.height,
                        resampling=Resampling.bilinear)  # fmt: skip
        try:
            win = TileWindow(0, 100, 150, 256, 256)
            got, got_valid = reader.read(win)
            want = np.moveaxis(vrt.read(window=Window(150, 100, 256, 256)), 0, -1)
            want_valid = vrt.read_masks(1, window=Window(150, 100, 256, 256)) > 0
        finally:
            vrt.close()
            reader.close()
    both = got_valid & want_valid
    assert both.mean() > 0.9 and (got_valid != want_valid).mean() < 0.02
    assert np.abs(got.astype(int) - want.astype(int))[both].mean() < 0.5


def test_progress_lines_and_quiet() -> None:
    out = io.StringIO()
    p = Progress("tiles", stream=out)
    p.set_total(20)
    for _ in range(20):
        p(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("tiles: 20/20 tiles (100%")
    assert p.first_at is not None
    set_quiet(True)
    try:
        silent = io.StringIO()
        q = Progress("tiles", total=5, stream=silent)
        q(5)
        assert silent.getvalue() == "" and q.done == 5
    finally:
        set_quiet(False)
    assert speed_line(2e6, 3600.0, 100, None, 512.4).startswith(
        "speed: 2.000 km² in 3600.0 s = 2 km²/h"
    )


def test_a_readers_colour_lut_is_applied_per_band(tmp_path: Path) -> None:
    """The baseline's histogram LUT (one per band) maps every pixel value as numpy indexing would."""
    from geo.raster import Stretch
    from geo.warp import EpochSpec
    from geo.windows import Grid

    chw = _texture(64, 5)
    path = tmp_path / "b.tif"
    tf = Affine(0.2, 0, 500000, 0, -0.2, 3300000)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8",
                       crs=GK, transform=tf) as ds:  # fmt: skip
        ds.write(chw)
    lut = np.random.default_rng(1).integers(0, 256, (3, 256)).astype(np.uint8)
    grid = Grid(tf, 64, 64)
    plain = EpochReader(EpochSpec(str(path), grid, GK, Stretch.identity()))
    mapped = EpochReader(EpochSpec(str(path), grid, GK, Stretch.identity(), lut=lut))
    win = TileWindow(0, 0, 0, 64, 64)
    (a, va), (b, vb) = plain.read(win), mapped.read(win)
    plain.close()
    mapped.close()
    assert va.all() and vb.all()
    np.testing.assert_array_equal(a, np.moveaxis(chw, 0, -1))
    want = np.stack([lut[i][a[..., i]] for i in range(3)], axis=-1)
    assert (want != a).mean() > 0.9  # the LUT moves almost every value
    np.testing.assert_array_equal(b, want)


def test_transformers_are_built_once_per_thread() -> None:
    import threading

    from geo.crs import transformer

    a = transformer(GK, CRS.from_epsg(4326))
    assert transformer(GK, CRS.from_epsg(4326)) is a  # the same CRSs again: the same object
    assert transformer(CRS.from_epsg(4326), GK) is not a
    x, y = a.transform(500000.0, 3300000.0)
    assert 104.9 < x < 105.1 and 29.7 < y < 29.9  # CM 105°E, ~3300 km north
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(transformer(GK, CRS.from_epsg(4326))))
    t.start()
    t.join()
    assert other[0] is not a  # another thread builds its own


def test_the_six_band_block_is_flight_then_baseline() -> None:
    from types import SimpleNamespace

    from pipelines.leads.tiling import _six_band

    rng = np.random.default_rng(3)
    tiles = [SimpleNamespace(flight=rng.integers(0, 256, (32, 40, 3), np.uint8),
                             baseline=rng.integers(0, 256, (32, 40, 3), np.uint8))
             for _ in range(3)]  # fmt: skip
    block = _six_band(tiles)
    assert block.shape == (3, 32, 40, 6) and block.dtype == np.uint8
    for i, t in enumerate(tiles):
        np.testing.assert_array_equal(block[i], np.concatenate([t.flight, t.baseline], axis=-1))
