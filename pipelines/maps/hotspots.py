"""Hot spots: clusters of cases in metres, regardless of unit boundaries (DBSCAN on centroids).

A case is a *core* case when at least ``min_samples`` case centroids (itself included) lie within
``eps_m`` metres; core cases within ``eps_m`` of each other join one cluster; other cases within
``eps_m`` of a core case join its cluster (the first such core); the rest are noise (label -1).
Each cluster becomes a hull polygon (convex hull of its cases, buffered by half the link distance
capped at 20 m) with its counts and the units and townships it touches, so a hot spot that spans
several compounds/villages shows as one area to clear together.

>>> import geopandas as gpd
>>> from shapely.geometry import Point
>>> pts = [Point(0, 0), Point(10, 0), Point(0, 10), Point(500, 500)]
>>> g = gpd.GeoDataFrame({"unit_code": ["a", "a", "b", "c"]}, geometry=pts, crs="EPSG:4544")
>>> cluster_labels(g, eps_m=20, min_samples=3).tolist()
[0, 0, 0, -1]
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geo.errors import ConfigError, CRSError
from pipelines.cases.states import CLOSED_STATES

__all__ = ["HOTSPOT_COLUMNS", "cluster_labels", "find_hotspots"]

HOTSPOT_COLUMNS = (
    "hotspot_id",
    "n_cases",
    "case_area_m2",
    "hull_area_ha",
    "density_per_ha",
    "n_units",
    "unit_codes",
    "unit_names",
    "crosses_units",
    "township_codes",
    "district_code",
    "geometry",
)


def _check(frame: gpd.GeoDataFrame, eps_m: float, min_samples: int) -> None:
    if eps_m <= 0:
        raise ConfigError(f"maps.hotspot_eps_m must be > 0 metres, got {eps_m}")
    if min_samples < 1:
        raise ConfigError(f"maps.hotspot_min_samples must be >= 1, got {min_samples}")
    if frame.crs is None or not frame.crs.is_projected:
        raise CRSError(
            f"hot spots need cases in a projected CRS in metres, got {frame.crs}; reproject first"
        )


def cluster_labels(cases: gpd.GeoDataFrame, eps_m: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels (0..k-1, -1 = noise) of the cases' centroids, distances in metres."""
    _check(cases, eps_m, min_samples)
    n = len(cases)
    labels = np.full(n, -1, dtype=int)
    if n == 0:
        return labels
    xy = np.column_stack([cases.geometry.centroid.x, cases.geometry.centroid.y])
    tree = cKDTree(xy)
    neigh = tree.query_ball_point(xy, r=eps_m)
    core = np.array([len(nb) >= min_samples for nb in neigh])
    rows, cols = [], []
    for i in np.flatnonzero(core):
        for j in neigh[i]:
            if core[j]:
                rows.append(i)
                cols.append(j)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    core_ids = np.unique(comp[core])
    relabel = {c: k for k, c in enumerate(core_ids)}
    labels[core] = [relabel[c] for c in comp[core]]
    for i in np.flatnonzero(~core):
        for j in neigh[i]:
            if core[j]:
                labels[i] = labels[j]
                break
    return labels


def _join(values: pd.Series) -> str:
    return ",".join(sorted({str(v) for v in values if str(v)}))


def find_hotspots(
    cases: gpd.GeoDataFrame,
    eps_m: float = 150.0,
    min_samples: int = 3,
    open_only: bool = True,
) -> gpd.GeoDataFrame:
    """Hot-spot polygons (:data:`HOTSPOT_COLUMNS`), largest first, ids ``HS-001``...

    ``cases`` follows the cases contract, in a projected CRS; with ``open_only`` rejected and
    closed cases are left out.
    """
    _check(cases, eps_m, min_samples)
    use = cases
    if open_only and "state" in cases.columns:
        use = cases.loc[~cases["state"].astype(str).isin(CLOSED_STATES)]
    labels = cluster_labels(use, eps_m, min_samples)
    rows = []
    pad = min(eps_m / 2.0, 20.0)
    for k in range(labels.max() + 1 if len(labels) else 0):
        part = use.loc[labels == k]
        hull = shapely.convex_hull(shapely.union_all(part.geometry.to_numpy())).buffer(pad)
        area_col = part["area_m2"] if "area_m2" in part.columns else part.geometry.area
        hull_ha = hull.area / 10_000.0
        units = part.get("unit_code", pd.Series([], dtype=str))
        rows.append(
            {
                "n_cases": len(part),
                "case_area_m2": round(float(area_col.sum()), 1),
                "hull_area_ha": round(hull_ha, 3),
                "density_per_ha": round(len(part) / hull_ha, 3) if hull_ha > 0 else 0.0,
                "n_units": len({u for u in units if str(u)}),
                "unit_codes": _join(units),
                "unit_names": _join(part.get("unit_name", pd.Series([], dtype=str))),
                "township_codes": _join(part.get("township_code", pd.Series([], dtype=str))),
                "district_code": _join(part.get("district_code", pd.Series([], dtype=str))),
                "geometry": hull,
            }
        )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=cases.crs) if rows else None
    if frame is None:
        empty = {c: [] for c in HOTSPOT_COLUMNS if c != "geometry"}
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=cases.crs), crs=cases.crs)
    frame = frame.sort_values(["n_cases", "case_area_m2"], ascending=False, kind="mergesort")
    frame["crosses_units"] = frame["n_units"] > 1
    frame["hotspot_id"] = [f"HS-{i:03d}" for i in range(1, len(frame) + 1)]
    return gpd.GeoDataFrame(frame[list(HOTSPOT_COLUMNS)].reset_index(drop=True), crs=cases.crs)
