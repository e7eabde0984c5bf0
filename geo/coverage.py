"""Valid-data footprints (alpha / nodata / internal masks) as polygons, and pair coverage.

Footprints come from decimated mask reads (never full resolution). Areas the flight covers and
the baseline does not are **unknown** — never new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo.crs import reproject_geometry
from geo.errors import CoverageError, RasterError

__all__ = ["Footprints", "mask_footprint", "pair_footprints"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Footprints:
    """Footprints in the working CRS: flight, baseline, common (both), unknown (flight only)."""

    flight: BaseGeometry
    baseline: BaseGeometry
    common: BaseGeometry
    unknown: BaseGeometry


def mask_footprint(valid: np.ndarray, transform: Affine, path: str = "raster") -> BaseGeometry:
    """Polygon(s) of the True pixels of ``valid`` (a decimated mask) in the raster's CRS.

    Raises :class:`RasterError` naming ``path`` when no pixel is valid (all transparent/nodata).
    """
    h, w = valid.shape
    if valid.all():
        x0, y0 = transform @ (0, 0)
        x1, y1 = transform @ (w, h)
        return shapely.Polygon([(x0, y0), transform @ (w, 0), (x1, y1), transform @ (0, h)])
    if not valid.any():
        raise RasterError(
            f"{path}: no valid pixels (all transparent or nodata); check the alpha band / "
            "nodata value, or re-export the orthophoto"
        )
    polys = [
        shape(geom)
        for geom, val in rasterio.features.shapes(
            valid.astype(np.uint8), mask=valid, transform=transform
        )
        if val
    ]
    geom = shapely.union_all(polys)
    px = abs(transform.a)
    return shapely.make_valid(geom.simplify(px * 0.5))


def pair_footprints(
    flight: BaseGeometry,
    flight_crs: CRS,
    baseline: BaseGeometry,
    baseline_crs: CRS,
    working_crs: CRS,
    *,
    flight_path: str = "flight",
    baseline_path: str = "baseline",
    min_common_m2: float = 100.0,
) -> Footprints:
    """Reproject both footprints to ``working_crs`` and derive common and unknown areas.

    Raises :class:`CoverageError` naming both files when their common area is below
    ``min_common_m2``.
    """
    f = _to_working(flight, flight_crs, working_crs)
    b = _to_working(baseline, baseline_crs, working_crs)
    common = shapely.make_valid(f.intersection(b))
    if common.area < min_common_m2:
        fb = tuple(round(v) for v in f.bounds)
        bb = tuple(round(v) for v in b.bounds)
        raise CoverageError(
            f"flight {flight_path} and baseline {baseline_path} do not overlap "
            f"(common area {common.area:.0f} m² < {min_common_m2:.0f} m²; flight bounds {fb}, "
            f"baseline bounds {bb} in {working_crs.to_string()}); pass a baseline covering the "
            "flight"
        )
    unknown = shapely.make_valid(f.difference(b))
    log.info(
        "coverage: flight %.0f m², baseline %.0f m², common %.0f m², unknown %.0f m²",
        f.area,
        b.area,
        common.area,
        unknown.area,
    )
    return Footprints(f, b, common, unknown)


def _to_working(geom: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    if src == dst:
        return geom
    minx, miny, maxx, maxy = geom.bounds
    step = max(maxx - minx, maxy - miny) / 64.0
    out = reproject_geometry(geom, src, dst, densify=step if step > 0 else None)
    return shapely.make_valid(out) if not out.is_valid else out
