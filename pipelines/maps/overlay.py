"""The flight orthophoto as a small RGBA picture for a web map (IO edge: reads with rasterio).

The flight is warped on the fly to Web Mercator (EPSG:3857, the CRS Leaflet draws in, so the
picture lines up at every zoom) at a decimated resolution whose longest side is ``max_px``, and
returned with its bounds in lon/lat (EPSG:4326) as Leaflet's ``ImageOverlay`` wants them.
Areas outside the flight (nodata / mask) are transparent.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geo.errors import RasterError

__all__ = ["Overlay", "read_flight_overlay"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Overlay:
    """An RGBA uint8 picture (rows x cols x 4) and its ``[[south, west], [north, east]]`` bounds."""

    rgba: np.ndarray
    bounds: tuple[tuple[float, float], tuple[float, float]]


def _to_uint8(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if band.dtype == np.uint8:
        return band
    vals = band[valid]
    lo, hi = np.percentile(vals, (2, 98)) if vals.size else (0.0, 1.0)
    scaled = (band.astype(float) - lo) / max(hi - lo, 1e-9)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def read_flight_overlay(path: str | Path, max_px: int = 1600) -> Overlay:
    """Read ``path`` (a georeferenced RGB(A) raster) as an :class:`Overlay` at most ``max_px`` wide/high."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    path = Path(path)
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterError(
            f"{path}: cannot open the flight orthophoto ({exc}); pass a GeoTIFF"
        ) from exc
    with src:
        if src.crs is None:
            raise RasterError(f"{path}: the flight has no CRS; georeference it before mapping")
        if src.count < 3:
            raise RasterError(f"{path}: {src.count} band(s); the overlay needs RGB (3 bands)")
        with WarpedVRT(src, crs="EPSG:3857", resampling=Resampling.average) as vrt:
            scale = max(vrt.width, vrt.height) / float(max_px)
            factor = max(scale, 1.0)
            out_h = max(1, math.ceil(vrt.height / factor))
            out_w = max(1, math.ceil(vrt.width / factor))
            rgb = vrt.read((1, 2, 3), out_shape=(3, out_h, out_w), resampling=Resampling.average)
            mask = vrt.dataset_mask(out_shape=(out_h, out_w), resampling=Resampling.nearest) > 0
            west, south, east, north = transform_bounds(vrt.crs, "EPSG:4326", *vrt.bounds)
    valid = mask & np.isfinite(rgb).all(axis=0) if rgb.dtype.kind == "f" else mask
    bands = [_to_uint8(b, valid) for b in rgb]
    alpha = np.where(valid, 255, 0).astype(np.uint8)
    rgba = np.dstack([*bands, alpha])
    log.info("flight overlay %s: %dx%d px (decimated x%.1f)", path.name, out_w, out_h, factor)
    return Overlay(rgba=rgba, bounds=((south, west), (north, east)))
