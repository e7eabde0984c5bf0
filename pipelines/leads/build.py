"""Assemble leads: apply the filters, join units, number them, attach provenance.

The result is a GeoDataFrame with exactly the columns of :data:`pipelines.schema.LEAD_COLUMNS`
(in that order) plus ``geometry``, in the working (projected) CRS.

Lead ids are ``<flight_id>-<nnnnn>`` numbered in reading order of the centroids (north to south,
then west to east, at centimetre precision), so a rerun on the same inputs gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from geo.joins import JOIN_COLUMNS, join_units
from geo.units import Units
from models.classes import CLASS_NAMES
from pipelines.config import FiltersConfig
from pipelines.leads.filters import (
    FilterCounts,
    active_permits,
    fraction_covered_by,
    fraction_inside,
    threshold_mask,
)
from pipelines.leads.georef import MapCandidates
from pipelines.schema import LEAD_COLUMNS

__all__ = ["Provenance", "Selection", "select_leads", "build_leads", "lead_order", "LONLAT_CRS"]

LONLAT_CRS = "EPSG:4490"


@dataclass(frozen=True)
class Provenance:
    """Where a lead came from: written on every lead."""

    flight_id: str
    baseline_id: str
    flight_date: str = ""
    coreg_status: str = ""
    model_name: str = ""
    model_sha256: str = ""
    thresholds: str = "{}"
    software_version: str = ""


@dataclass(frozen=True)
class Selection:
    """The merged candidates that passed, with their status and flags, and what was dropped."""

    candidates: MapCandidates
    status: np.ndarray  # "lead" | "permitted"
    known_building: np.ndarray  # bool
    counts: FilterCounts


def select_leads(
    merged: MapCandidates,
    filters: FiltersConfig,
    *,
    coverage: shapely.Geometry | None = None,
    not_comparable: shapely.Geometry | None = None,
    permits: gpd.GeoDataFrame | None = None,
    known_buildings: gpd.GeoDataFrame | None = None,
    flight_date: date | None = None,
) -> Selection:
    """Apply score, area, coverage, co-registration, permit and known-building rules.

    ``coverage`` is where both epochs hold valid data (None: everywhere); a lead less than
    ``filters.min_coverage_fraction`` inside it is *unknown coverage*, never a lead.
    ``not_comparable`` is where co-registration found the epochs misregistered beyond its gate;
    leads mostly inside are dropped (the area is reported as not comparable, never as clear).
    """
    counts = FilterCounts()
    geoms = merged.geometry
    keep = threshold_mask(merged.class_id, merged.score, filters.min_score)
    counts.below_score = int((~keep).sum())
    area_ok = threshold_mask(merged.class_id, shapely.area(geoms), filters.min_area_m2)
    counts.below_area = int((keep & ~area_ok).sum())
    keep &= area_ok
    if coverage is not None:
        covered = fraction_inside(geoms, coverage) >= filters.min_coverage_fraction
        counts.unknown_coverage = int((keep & ~covered).sum())
        keep &= covered
    if not_comparable is not None and not not_comparable.is_empty:
        failed = fraction_inside(geoms, not_comparable) > 0.5
        counts.not_comparable = int((keep & failed).sum())
        keep &= ~failed
    kept = merged.take(keep)
    status = np.full(len(kept), "lead", dtype=object)
    if permits is not None and len(permits) and len(kept):
        valid = permits.loc[active_permits(permits, flight_date)]
        share = fraction_covered_by(kept.geometry, valid.geometry.to_numpy())
        status[share >= filters.permit_min_overlap] = "permitted"
    known = np.zeros(len(kept), bool)
    if known_buildings is not None and len(known_buildings) and len(kept):
        share = fraction_covered_by(kept.geometry, known_buildings.geometry.to_numpy())
        known = share >= filters.known_building_min_overlap
    return Selection(kept, status, known, counts)


def lead_order(geoms: np.ndarray) -> np.ndarray:
    """Reading order of centroids: north → south, then west → east (centimetre precision)."""
    cent = shapely.centroid(geoms)
    x = np.round(shapely.get_x(cent), 2)
    y = np.round(shapely.get_y(cent), 2)
    return np.lexsort((x, -y))


def _lonlat(geoms: np.ndarray, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    if not len(geoms):
        return np.empty(0), np.empty(0)
    cent = shapely.centroid(geoms)
    to_ll = Transformer.from_crs(CRS.from_user_input(crs), LONLAT_CRS, always_xy=True)
    lon, lat = to_ll.transform(shapely.get_x(cent), shapely.get_y(cent))
    return np.round(np.asarray(lon), 7), np.round(np.asarray(lat), 7)


def build_leads(
    selection: Selection, crs: Any, provenance: Provenance, units: Units | None = None
) -> gpd.GeoDataFrame:
    """The leads GeoDataFrame (schema :data:`LEAD_COLUMNS` + geometry) in ``crs``.

    ``crs`` must be projected: areas are square metres.
    """
    if not CRS.from_user_input(crs).is_projected:
        raise ValueError(f"leads must be built in a projected CRS, got {crs}")
    order = lead_order(selection.candidates.geometry)
    cands = selection.candidates.take(order)
    geoms = cands.geometry
    n = len(cands)
    lon, lat = _lonlat(geoms, crs)
    data: dict[str, Any] = {
        "lead_id": [f"{provenance.flight_id}-{i + 1:05d}" for i in range(n)],
        "score": np.round(cands.score.astype(np.float64), 4),
        "class": np.array(CLASS_NAMES, dtype=object)[cands.class_id] if n else [],
        "area_m2": np.round(shapely.area(geoms), 2),
        "lon": lon,
        "lat": lat,
        "status": selection.status[order],
        "known_building": selection.known_building[order],
    }
    if units is not None and n:
        joined = join_units(geoms, units)
        for col in JOIN_COLUMNS:
            data[col] = joined[col].to_numpy(dtype=object)
    else:
        for col in JOIN_COLUMNS:
            data[col] = ["unassigned" if col == "unit_type" else ""] * n
    data["evidence_before"] = [""] * n
    data["evidence_after"] = [""] * n
    for key, value in provenance.__dict__.items():
        data[key] = [value] * n
    frame = pd.DataFrame(data, columns=list(LEAD_COLUMNS))
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs).values, crs=crs)
