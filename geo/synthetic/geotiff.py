"""Write the synthetic flight and baseline as COG GeoTIFFs (RGB + alpha, tiled, overviews)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.warp import calculate_default_transform, reproject

__all__ = ["FLIGHT_EPSG", "BASELINE_EPSG", "write_rgba_cog", "write_baseline", "BASELINE_GSD_M"]

#: CGCS2000 / 3-degree Gauss-Kruger CM 105E (EPSG:4543 is CM 102E; checked with pyproj)
FLIGHT_EPSG = 4544
BASELINE_EPSG = 3857
BASELINE_GSD_M = 0.3

log = logging.getLogger(__name__)

_COG = {
    "driver": "COG",
    "BLOCKSIZE": 512,
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "2",
    "LEVEL": 1,
    "OVERVIEWS": "AUTO",
    "OVERVIEW_RESAMPLING": "AVERAGE",
    "NUM_THREADS": "ALL_CPUS",
    "BIGTIFF": "IF_SAFER",
}


def write_rgba_cog(
    path: Path,
    rgb: np.ndarray,
    valid: np.ndarray,
    transform: Affine,
    epsg: int,
    tags: dict[str, str] | None = None,
) -> None:
    """Write ``rgb`` (H, W, 3 uint8) with alpha = 255 where ``valid`` as a 4-band COG."""
    h, w = valid.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 4,
        "dtype": "uint8",
        "crs": CRS.from_epsg(epsg),
        "transform": transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "photometric": "RGB",
        # ALPHA=YES: band 4 is alpha from creation. Setting colorinterp after writing lost the
        # flag when GDAL's block cache was smaller than the raster (pipelines cap it at 64 MB)
        "alpha": "YES",
    }
    for attempt in (1, 2):
        _write_once(path, profile, rgb, valid, tags)
        with rasterio.open(path) as check:
            if check.colorinterp[3] == ColorInterp.alpha:
                return
        log.warning(
            "%s: band 4 came out without the alpha flag (try %d); writing again", path, attempt
        )
    raise RuntimeError(
        f"{path}: band 4 was written without the alpha flag twice; the flight's no-data area "
        "would count as imagery. Check the GDAL build rasterio uses (rasterio.__gdal_version__)"
    )


def _write_once(
    path: Path,
    profile: dict[str, object],
    rgb: np.ndarray,
    valid: np.ndarray,
    tags: dict[str, str] | None,
) -> None:
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            for b in range(3):
                ds.write(rgb[:, :, b], b + 1)
            ds.write(valid.astype(np.uint8) * 255, 4)
            ds.colorinterp = [
                ColorInterp.red,
                ColorInterp.green,
                ColorInterp.blue,
                ColorInterp.alpha,
            ]
            if tags:
                ds.update_tags(**tags)
        with mem.open() as src:
            rio_copy(src, str(path), **_COG)


def write_baseline(
    path: Path,
    rgb: np.ndarray,
    valid: np.ndarray,
    flight_transform: Affine,
    shift_m: tuple[float, float],
    lat_deg: float,
    tags: dict[str, str] | None = None,
) -> Affine:
    """Resample the before epoch to ~0.3 m, shift it by ``shift_m`` (east, north) and warp to 3857.

    Returns the 3857 transform written. The content of the baseline appears displaced by
    ``shift_m`` relative to the flight: that is the known misregistration.
    """
    gsd = flight_transform.a
    f = gsd / BASELINE_GSD_M
    small = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    vsmall = cv2.resize(
        valid.astype(np.uint8), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST
    )
    sx = rgb.shape[1] / small.shape[1]
    sy = rgb.shape[0] / small.shape[0]
    src_t = Affine.translation(shift_m[0], shift_m[1]) @ flight_transform @ Affine.scale(sx, sy)
    src_crs, dst_crs = CRS.from_epsg(FLIGHT_EPSG), CRS.from_epsg(BASELINE_EPSG)
    h, w = vsmall.shape
    bounds = rasterio.transform.array_bounds(h, w, src_t)
    res = BASELINE_GSD_M / math.cos(math.radians(lat_deg))
    dst_t, dw, dh = calculate_default_transform(src_crs, dst_crs, w, h, *bounds, resolution=res)
    out = np.zeros((4, dh, dw), np.uint8)
    for b in range(3):
        reproject(
            np.ascontiguousarray(small[:, :, b]),
            out[b],
            src_transform=src_t,
            src_crs=src_crs,
            dst_transform=dst_t,
            dst_crs=dst_crs,
            resampling=Resampling.bilinear,
            num_threads=2,
        )
    reproject(
        vsmall * 255,
        out[3],
        src_transform=src_t,
        src_crs=src_crs,
        dst_transform=dst_t,
        dst_crs=dst_crs,
        resampling=Resampling.nearest,
    )
    valid_dst = out[3] > 0
    out[:3, ~valid_dst] = 0
    write_rgba_cog(path, np.moveaxis(out[:3], 0, -1), valid_dst, dst_t, BASELINE_EPSG, tags)
    return dst_t
