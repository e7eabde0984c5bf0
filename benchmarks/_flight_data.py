"""Big real-texture flights for the runtime benchmarks, as drone tools write them.

* :func:`jpeg_flight` — an N² px RGB GeoTIFF at 5 cm (EPSG:4544), JPEG-compressed (YCbCr) in
  512² tiles, **without overviews**; its texture is a real drone mosaic from
  ``../shared/data/fair-drone`` mirrored out to size (a synthetic texture where that is absent).
  Written strip by strip (bounded memory), cached under /tmp/buildwatch-bench.
* :func:`satellite_baseline` — the matching baseline: the flight's area at 0.3 m in EPSG:4326,
  shifted 1 m, as a satellite product would come.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window

from benchmarks._bench_data import GK, ORIGIN, _block

DATA = Path("/tmp/buildwatch-bench")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fair-drone"


def _texture() -> tuple[np.ndarray, str]:
    """(3, h, w) uint8 real drone texture, or a synthetic one; and what it is."""
    src = SHARED / "area1" / "area1_cluster01_z21.tif"
    if src.is_file():
        with rasterio.open(src) as ds:
            return ds.read([1, 2, 3]), f"real: {src.name}"
    return _block(np.random.default_rng(0), 4096, 4096), "synthetic texture"


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    period = 2 * n
    k = idx % period
    return np.where(k < n, k, period - 1 - k)


def jpeg_flight(size: int, gsd: float = 0.05, quality: int = 85) -> Path:
    """The cached ``size``² px JPEG flight (see module doc)."""
    path = DATA / f"flight_jpeg_{size}.tif"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    tex, what = _texture()
    _, th, tw = tex.shape
    profile = dict(
        driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=GK,
        transform=Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]), tiled=True, blockxsize=512,
        blockysize=512, compress="JPEG", photometric="YCBCR", jpeg_quality=quality,
        BIGTIFF="IF_SAFER",
    )  # fmt: skip
    cols = _mirror(np.arange(size), tw)
    tmp = path.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.update_tags(TEXTURE=what)
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            rows = _mirror(np.arange(r0, r0 + h), th)
            dst.write(tex[:, rows][:, :, cols], window=Window(0, r0, size, h))
    tmp.rename(path)
    return path


def satellite_baseline(flight: Path, gsd_m: float = 0.3, shift_m: float = 1.0) -> Path:
    """The flight's area at ``gsd_m`` in EPSG:4326, shifted ``shift_m`` east (cached)."""
    path = flight.with_name(flight.stem + f"_baseline_4326_{gsd_m:g}.tif")
    if path.exists():
        return path
    dst_crs = CRS.from_epsg(4326)
    with rasterio.open(flight) as src:
        # read the flight down to ~gsd first (a coarse copy, like a satellite image of the area)
        f = max(1, round(gsd_m / src.res[0]))
        w, h = src.width // f, src.height // f
        coarse_tf = src.transform * Affine.scale(src.width / w, src.height / h)
        coarse_tf = Affine.translation(shift_m, 0) * coarse_tf
        mem = DATA / (path.stem + ".coarse.tif")
        prof = dict(driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs=src.crs,
                    transform=coarse_tf, tiled=True, blockxsize=512, blockysize=512)  # fmt: skip
        with rasterio.open(mem, "w", **prof) as out:
            for r0 in range(0, h, 512):
                rh = min(512, h - r0)
                win = Window(0, r0 * f, src.width, rh * f)
                out.write(
                    src.read(
                        [1, 2, 3], window=win, out_shape=(3, rh, w), resampling=Resampling.average
                    ),  # fmt: skip
                    window=Window(0, r0, w, rh),
                )
    with rasterio.open(mem) as coarse:
        tf, dw, dh = calculate_default_transform(
            coarse.crs, dst_crs, coarse.width, coarse.height, *coarse.bounds
        )
        prof = dict(driver="GTiff", width=dw, height=dh, count=3, dtype="uint8", crs=dst_crs,
                    transform=tf, tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE",
                    nodata=0)  # fmt: skip
        tmp = path.with_suffix(".part.tif")
        with WarpedVRT(coarse, crs=dst_crs, transform=tf, width=dw, height=dh,
                       resampling=Resampling.bilinear, nodata=0) as vrt, \
                rasterio.open(tmp, "w", **prof) as out:  # fmt: skip
            for r0 in range(0, dh, 512):
                rh = min(512, dh - r0)
                win = Window(0, r0, dw, rh)
                out.write(vrt.read([1, 2, 3], window=win), window=win)
        tmp.rename(path)
    mem.unlink()
    return path
