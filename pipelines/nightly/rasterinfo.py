"""Small raster facts the nightly job needs: footprint, date, GSD, CRS and a content hash.

Everything here reads only the header (and, for the hash, streams the bytes); no pixels are
loaded. Footprints are returned in EPSG:4326 (lon/lat) so flights and baselines in different
CRSs can be compared; areas are then computed back in a projected CRS, never in degrees.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from shapely import Polygon, box, segmentize
from shapely.ops import transform as shp_transform

from geo.errors import CRSError, RasterError
from geo.hashing import file_sha256

__all__ = ["RasterInfo", "read_raster_info", "file_sha256", "to_crs", "parse_date"]

#: GeoTIFF metadata tags that may carry the acquisition date, in order of preference
_DATE_TAGS = ("ACQUISITION_DATE", "DATE", "TIFFTAG_DATETIME")


@dataclass(frozen=True)
class RasterInfo:
    """Header facts of one GeoTIFF.

    Attributes:
        crs: the raster's CRS as ``EPSG:nnnn`` (or WKT when it has no EPSG code).
        gsd_m: ground sampling distance in metres per pixel (x resolution, projected CRS).
        footprint: the raster's bounds as a polygon in EPSG:4326 (densified edges).
        date: acquisition date from an ``ACQUISITION_DATE``, ``DATE`` or ``TIFFTAG_DATETIME``
            tag, when present.
    """

    crs: str
    gsd_m: float
    footprint: Polygon
    date: dt.date | None


def parse_date(value: object, *, where: str) -> dt.date:
    """A date from a sidecar/tag value: ``date``, ``datetime`` or an ISO-like string.

    >>> parse_date("2024-05-01", where="x"), parse_date("2024:05:01 22:10:00", where="x")
    (datetime.date(2024, 5, 1), datetime.date(2024, 5, 1))
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    match = re.match(r"^(\d{4})[-:/]?(\d{2})[-:/]?(\d{2})", text)
    if match:
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    raise RasterError(f"{where}: date {value!r} is not a date; write it as YYYY-MM-DD")


def to_crs(geom: Polygon, src: str, dst: str) -> Polygon:
    """Reproject a shapely geometry between two CRSs (always x=lon/easting first)."""
    transformer = Transformer.from_crs(
        CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True
    )
    return shp_transform(transformer.transform, geom)


def read_raster_info(path: Path) -> RasterInfo:
    """Read :class:`RasterInfo` from a GeoTIFF header.

    Raises:
        RasterError: the file cannot be opened as a raster.
        CRSError: the raster has no CRS or a geographic one (GSD would not be in metres).
    """
    try:
        with rasterio.open(path) as src:
            crs, bounds, res = src.crs, src.bounds, src.res
            tags = src.tags()
    except rasterio.errors.RasterioIOError as exc:
        raise RasterError(f"{path}: not a readable raster ({exc}); pass a GeoTIFF") from exc
    if crs is None:
        raise CRSError(f"{path}: raster has no CRS; georeference it (e.g. gdal_edit.py -a_srs)")
    pcrs = CRS.from_user_input(crs.to_wkt())
    if not pcrs.is_projected:
        raise CRSError(
            f"{path}: CRS {crs} is geographic; reproject the raster to a projected CRS in metres"
        )
    epsg = crs.to_epsg()
    crs_text = f"EPSG:{epsg}" if epsg else crs.to_wkt()
    width, height = bounds.right - bounds.left, bounds.top - bounds.bottom
    outline = segmentize(box(*bounds), max(width, height) / 16)
    footprint = to_crs(outline, crs_text, "EPSG:4326")
    if footprint.is_empty or not np.isfinite(shapely.get_coordinates(footprint)).all():
        raise CRSError(
            f"{path}: bounds {tuple(round(b) for b in bounds)} are outside the valid area of {crs_text}; "
            "check the raster's CRS (e.g. a zone-prefixed easting in a CRS without zone prefix)"
        )
    key = next((k for k in _DATE_TAGS if tags.get(k)), None)
    date = parse_date(tags[key], where=f"{path} tag {key}") if key else None
    unit_factor = pcrs.axis_info[0].unit_conversion_factor if pcrs.axis_info else 1.0
    return RasterInfo(
        crs=crs_text, gsd_m=float(res[0]) * unit_factor, footprint=footprint, date=date
    )
