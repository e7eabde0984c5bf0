"""Coordinate reference systems: which CRS a pair is worked in, and geometry reprojection.

Areas and distances are only ever computed in metres. A flight delivered in a geographic CRS
(EPSG:4326, EPSG:4490...) is worked in a local projected CRS chosen from its centre: the
CGCS2000 3-degree Gauss–Krüger zone (EPSG:4534–4554, no zone prefix) for a CGCS2000 flight inside
China's zones, the WGS 84 UTM zone otherwise.

>>> from rasterio.crs import CRS
>>> local_projected_crs(CRS.from_epsg(4326), 105.2, 29.5).to_epsg()
32648
>>> local_projected_crs(CRS.from_epsg(4490), 105.2, 29.5).to_epsg()
4544
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from geo.errors import CRSError

__all__ = [
    "require_crs",
    "local_projected_crs",
    "working_crs_for",
    "reproject_geometry",
    "linear_unit_is_metre",
    "ground_gsd_m",
    "transformer",
]

log = logging.getLogger(__name__)

#: projected CRSs whose "metres" are not ground metres: worked in a local UTM zone instead
_MERCATOR = (3857, 900913, 3785)


_local = threading.local()


def transformer(src: CRS | str, dst: CRS | str) -> Transformer:
    """An ``always_xy`` :class:`pyproj.Transformer` from ``src`` to ``dst``, made once per thread.

    Building one costs about 40 ms here (PROJ parses both CRSs and picks the operation), and a
    pair's readers need the same few again and again; a thread keeps its own, so none is shared.
    """
    cache: dict[tuple[str, str], Transformer] | None = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    key = (_crs_key(src), _crs_key(dst))
    tr = cache.get(key)
    if tr is None:
        if len(cache) >= 64:
            cache.clear()
        tr = cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    return tr


def _crs_key(crs: CRS | str) -> str:
    return crs if isinstance(crs, str) else crs.to_wkt()


def require_crs(crs: CRS | None, path: str | Path) -> CRS:
    """Return ``crs`` or raise :class:`CRSError` naming ``path`` when the raster has none."""
    if crs is None or not crs.to_wkt():
        raise CRSError(
            f"{path}: raster has no coordinate reference system; georeference it "
            "(e.g. gdal_edit.py -a_srs EPSG:4544) or export it from the photogrammetry tool "
            "with a CRS"
        )
    return crs


def linear_unit_is_metre(crs: CRS) -> bool:
    """True when ``crs`` is projected with metre units."""
    if not crs.is_projected:
        return False
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return abs(factor - 1.0) < 1e-9


def local_projected_crs(geographic: CRS, lon: float, lat: float) -> CRS:
    """A local metric CRS for a geographic CRS at (``lon``, ``lat``).

    CGCS2000 (EPSG:4490) within 73.5–136.5°E gives the 3-degree Gauss–Krüger zone with the
    nearest central meridian (EPSG:4534 is CM 75°E ... EPSG:4554 is CM 135°E); any other datum
    gives the WGS 84 UTM zone (EPSG:326xx north, 327xx south).
    """
    if not -180.0 <= lon <= 180.0 or not -90.0 <= lat <= 90.0:
        raise CRSError(f"lon/lat ({lon}, {lat}) out of range; is the raster really geographic?")
    if geographic.to_epsg() == 4490 and 73.5 <= lon < 136.5:
        cm = int(round(lon / 3.0) * 3)
        return CRS.from_epsg(4534 + (cm - 75) // 3)
    zone = min(60, int(math.floor((lon + 180.0) / 6.0)) + 1)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def working_crs_for(
    crs: CRS, bounds: tuple[float, float, float, float], path: str | Path = "raster"
) -> CRS:
    """The CRS a raster with ``crs`` and ``bounds`` (in ``crs``) is worked in (metres).

    A metric projected CRS is kept (web mercator is not: its scale error is 1/cos(lat)); a
    geographic one is replaced by :func:`local_projected_crs`
    at the centre of ``bounds``; a projected CRS in feet etc. is refused with a clear error.
    """
    if crs.is_geographic:
        lon = (bounds[0] + bounds[2]) / 2.0
        lat = (bounds[1] + bounds[3]) / 2.0
        local = local_projected_crs(crs, lon, lat)
        log.info("%s: geographic CRS %s, working in %s", path, crs.to_string(), local.to_string())
        return local
    if crs.to_epsg() in _MERCATOR:  # web mercator metres are 1/cos(lat) too long
        tr = transformer(crs, "EPSG:4326")
        lon, lat = tr.transform((bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0)
        local = local_projected_crs(CRS.from_epsg(4326), lon, lat)
        log.info("%s: web mercator %s, working in %s", path, crs.to_string(), local.to_string())
        return local
    if not linear_unit_is_metre(crs):
        raise CRSError(
            f"{path}: projected CRS {crs.to_string()} is not in metres; reproject the raster to "
            "a metric CRS (UTM or CGCS2000 Gauss–Krüger)"
        )
    return crs


def reproject_geometry(
    geom: BaseGeometry, src: CRS, dst: CRS, densify: float | None = None
) -> BaseGeometry:
    """Reproject a shapely geometry from ``src`` to ``dst`` (densified first when asked)."""
    if src == dst or geom.is_empty:
        return geom
    if densify:
        geom = shapely.segmentize(geom, densify)
    tr = transformer(src, dst)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def ground_gsd_m(
    crs: CRS, bounds: tuple[float, float, float, float], res: float, path: str | Path = "raster"
) -> float:
    """The ground size (m) of a ``res``-unit pixel at the centre of ``bounds`` in ``crs``.

    Measured in the working CRS (:func:`working_crs_for`), so degrees and web-mercator metres
    come out as true metres on the ground.
    """
    work = working_crs_for(crs, bounds, path)
    cx, cy = (bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0
    if work == crs:
        return float(res)
    tr = transformer(crs, work)
    x0, y0 = tr.transform(cx, cy)
    x1, y1 = tr.transform(cx + res, cy)
    x2, y2 = tr.transform(cx, cy + res)
    return float(min(math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x0, y2 - y0)))
