"""Read and validate the administrative units GeoPackage (``units.gpkg``).

Layers and required columns (the contract with the synthetic generator; see data/README.md):

=================  ===================================================================
``districts``      district_code, district_name
``townships``      township_code, township_name, township_kind (township|street), district_code
``villages``       unit_code, unit_name, unit_type (village|community), committee_name,
                   township_code
``compounds``      unit_code, unit_name, property_company, township_code
``permits``        permit_id, permit_no, holder, valid_from, valid_to (optional here)
``known_buildings`` building_id (optional)
=================  ===================================================================

Every layer is reprojected to the working CRS; invalid geometries are repaired with
``make_valid`` and reported; codes are read as strings. Problems raise
:class:`~geo.errors.VectorError` naming the file, layer and column.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from geo.errors import CRSError, InputFileError, VectorError

__all__ = ["UNIT_LAYERS", "Units", "read_layer", "read_units", "repair_geometries"]

log = logging.getLogger(__name__)

#: layer name -> required columns
UNIT_LAYERS: dict[str, tuple[str, ...]] = {
    "districts": ("district_code", "district_name"),
    "townships": ("township_code", "township_name", "township_kind", "district_code"),
    "villages": ("unit_code", "unit_name", "unit_type", "committee_name", "township_code"),
    "compounds": ("unit_code", "unit_name", "property_company", "township_code"),
    "permits": ("permit_id", "permit_no", "holder", "valid_from", "valid_to"),
    "known_buildings": ("building_id",),
}
REQUIRED_LAYERS = ("districts", "townships", "villages", "compounds")
_ALLOWED_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("townships", "township_kind"): ("township", "street"),
    ("villages", "unit_type"): ("village", "community"),
}
_CODE_COLUMNS = ("district_code", "township_code", "unit_code", "permit_id", "building_id")


@dataclass(frozen=True)
class Units:
    """The unit layers in one working CRS, plus a list of repairs made while reading."""

    path: Path
    crs: Any
    districts: gpd.GeoDataFrame
    townships: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    compounds: gpd.GeoDataFrame
    permits: gpd.GeoDataFrame | None = None
    known_buildings: gpd.GeoDataFrame | None = None
    repairs: list[str] = field(default_factory=list)


def _layers_of(path: Path) -> list[str]:
    if not path.exists():
        raise InputFileError(f"{path}: units file not found; pass the units GeoPackage")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory; pass the units GeoPackage file")
    try:
        return [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise InputFileError(f"{path}: not a readable vector file ({exc})") from exc


def repair_geometries(gdf: gpd.GeoDataFrame, label: str) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Repair invalid polygons with ``make_valid`` and drop empty ones; return what was done.

    Only the polygonal part of a repaired geometry is kept (a bow-tie becomes a multipolygon).
    """
    notes: list[str] = []
    geom = gdf.geometry.array
    missing = shapely.is_missing(geom) | shapely.is_empty(geom)
    if missing.any():
        notes.append(f"{label}: dropped {int(missing.sum())} feature(s) with empty geometry")
        gdf = gdf.loc[~missing].copy()
        geom = gdf.geometry.array
    invalid = ~shapely.is_valid(geom)
    if invalid.any():
        fixed = shapely.make_valid(geom[invalid])
        polygonal = [_polygonal_part(g) for g in fixed]
        gdf = gdf.copy()
        gdf.loc[gdf.index[invalid], gdf.geometry.name] = polygonal
        notes.append(
            f"{label}: repaired {int(invalid.sum())} invalid geometr(y/ies) with make_valid"
        )
        still_empty = shapely.is_empty(gdf.geometry.array)
        if still_empty.any():
            gdf = gdf.loc[~still_empty].copy()
    return gdf, notes


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [
        g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")
    ]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def read_layer(
    path: str | Path,
    layer: str,
    crs: Any,
    required: tuple[str, ...] | None = None,
    repairs: list[str] | None = None,
) -> gpd.GeoDataFrame:
    """Read one polygon layer, check its columns, reproject to ``crs`` and repair geometries.

    ``required`` defaults to :data:`UNIT_LAYERS` for known layer names. Appends repair notes
    to ``repairs`` when given.
    """
    path = Path(path)
    layers = _layers_of(path)
    if layer not in layers:
        raise VectorError(
            f"{path}: layer {layer!r} not found (layers: {', '.join(layers) or 'none'}); "
            f"add it or point the config at the right layer"
        )
    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:
        raise VectorError(f"{path}: layer {layer!r} could not be read ({exc})") from exc
    need = UNIT_LAYERS.get(layer, ()) if required is None else required
    missing = [c for c in need if c not in gdf.columns]
    if missing:
        raise VectorError(
            f"{path}: layer {layer!r} lacks required column {missing[0]!r} "
            f"(required: {', '.join(need)}; found: {', '.join(map(str, gdf.columns))})"
        )
    if gdf.crs is None:
        raise CRSError(f"{path}: layer {layer!r} has no CRS; declare it (e.g. EPSG:4490)")
    types = set(gdf.geometry.geom_type.dropna()) - {"Polygon", "MultiPolygon"}
    if types:
        raise VectorError(
            f"{path}: layer {layer!r} has {sorted(types)[0]} geometries; polygons are required"
        )
    for col in _CODE_COLUMNS:
        if col in gdf.columns:
            gdf[col] = gdf[col].map(lambda v: "" if pd.isna(v) else str(v)).astype(object)
    for (lyr, col), allowed in _ALLOWED_VALUES.items():
        if lyr == layer and col in gdf.columns:
            bad = sorted(set(gdf[col].dropna().astype(str)) - set(allowed))
            if bad:
                raise VectorError(
                    f"{path}: layer {layer!r} column {col!r} has value {bad[0]!r}; "
                    f"allowed: {', '.join(allowed)}"
                )
    if gdf.crs.is_geographic and len(gdf):
        minx, miny, maxx, maxy = gdf.total_bounds
        if not (-180.0 <= minx <= maxx <= 360.0 and -90.0 <= miny <= maxy <= 90.0):
            raise CRSError(
                f"{path}: layer {layer!r} declares the geographic CRS {gdf.crs.to_string()} but "
                f"its coordinates ({minx:.0f}, {miny:.0f}, {maxx:.0f}, {maxy:.0f}) are not "
                "degrees; it is in a projected CRS (metres): declare the right one"
            )
    gdf, notes = repair_geometries(gdf, f"{path.name}:{layer}")
    if gdf.crs != crs:
        gdf = gdf.to_crs(crs)
        # reprojection can itself produce slightly invalid rings
        gdf, more = repair_geometries(gdf, f"{path.name}:{layer} (after reprojection)")
        notes += more
    for note in notes:
        log.warning("%s", note)
    if repairs is not None:
        repairs.extend(notes)
    return gdf.reset_index(drop=True)


#: required layers that must hold at least one feature (compounds may be none, e.g. rural areas)
NON_EMPTY_LAYERS = ("districts", "townships", "villages")


def check_units_cover(units: Units, area: Any, area_name: str, crs: Any) -> float:
    """The share of ``area`` (e.g. the flight's footprint, in ``crs``) inside the townships.

    Raises :class:`VectorError` naming the layer and both extents when they do not meet at all
    (units in the wrong CRS, or the units of another district); logs a warning below 50 %.
    """
    towns = units.townships
    if area is None or area.is_empty or towns.empty:
        return 1.0
    union = towns.geometry.union_all()
    share = float(union.intersection(area).area / area.area) if area.area > 0 else 1.0
    if share <= 0.0:
        fx = ", ".join(f"{v:.0f}" for v in area.bounds)
        ux = ", ".join(f"{v:.0f}" for v in towns.total_bounds)
        raise VectorError(
            f"{units.path}: layer 'townships' (extent {ux}) does not meet {area_name} (extent "
            f"{fx}) in {crs}; the units are in another CRS than they declare, or belong to "
            "another district. Fix the layer's CRS or pass the right units file"
        )
    if share < 0.5:
        log.warning(
            "%s: the townships cover only %.0f%% of %s; leads outside them are unassigned",
            units.path,
            100 * share,
            area_name,
        )
    return share


def read_units(path: str | Path, crs: Any, optional: bool = True) -> Units:
    """Read ``units.gpkg``: the four required unit layers plus, when present and ``optional``,
    ``permits`` and ``known_buildings``; all in ``crs``.

    >>> read_units("/nonexistent/units.gpkg", "EPSG:4544")
    Traceback (most recent call last):
    ...
    geo.errors.InputFileError: /nonexistent/units.gpkg: units file not found; pass the units GeoPackage
    """
    path = Path(path)
    layers = _layers_of(path)
    missing = [name for name in REQUIRED_LAYERS if name not in layers]
    if missing:
        raise VectorError(
            f"{path}: required layer {missing[0]!r} not found "
            f"(required: {', '.join(REQUIRED_LAYERS)}; found: {', '.join(layers) or 'none'})"
        )
    repairs: list[str] = []
    frames = {name: read_layer(path, name, crs, repairs=repairs) for name in REQUIRED_LAYERS}
    for name in NON_EMPTY_LAYERS:
        if frames[name].empty:
            raise VectorError(
                f"{path}: layer {name!r} has no features; every lead would be 'unassigned' and "
                "reach no one. Fill it (every place belongs to a village or community)"
            )
    extra: dict[str, gpd.GeoDataFrame | None] = {"permits": None, "known_buildings": None}
    if optional:
        for name in extra:
            if name in layers:
                extra[name] = read_layer(path, name, crs, repairs=repairs)
    return Units(
        path=path,
        crs=crs,
        districts=frames["districts"],
        townships=frames["townships"],
        villages=frames["villages"],
        compounds=frames["compounds"],
        permits=extra["permits"],
        known_buildings=extra["known_buildings"],
        repairs=repairs,
    )
