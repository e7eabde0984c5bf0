"""Hot spots: DBSCAN-like clusters in metres across unit boundaries."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from geo.errors import ConfigError, CRSError
from pipelines.maps.hotspots import cluster_labels, find_hotspots


def _cases(points, units, states=None):
    geoms = [box(x - 4, y - 4, x + 4, y + 4) for x, y in points]
    return gpd.GeoDataFrame(
        {
            "case_id": [f"c{i}" for i in range(len(points))],
            "unit_code": units,
            "state": states or ["discovered"] * len(points),
            "area_m2": [64.0] * len(points),
        },
        geometry=geoms,
        crs="EPSG:4544",
    )


def test_cluster_crosses_unit_boundary():
    # five cases along a line 40 m apart straddling units A|B; one far away; a pair too small
    pts = [(0, 0), (40, 0), (80, 0), (120, 0), (160, 0), (5000, 0), (9000, 0), (9030, 0)]
    g = _cases(pts, ["A", "A", "A", "B", "B", "C", "D", "D"])
    labels = cluster_labels(g, eps_m=50, min_samples=3)
    assert list(labels) == [0, 0, 0, 0, 0, -1, -1, -1]
    hot = find_hotspots(g, eps_m=50, min_samples=3)
    assert len(hot) == 1
    h = hot.iloc[0]
    assert (h["hotspot_id"], h["n_cases"], h["n_units"], h["unit_codes"]) == ("HS-001", 5, 2, "A,B")
    assert bool(h["crosses_units"]) and h["case_area_m2"] == pytest.approx(320.0)
    assert all(hot.geometry.iloc[0].contains(geom) for geom in g.geometry[:5])


def test_eps_is_metres_and_closed_cases_are_left_out():
    pts = [(0, 0), (40, 0), (80, 0)]
    assert (cluster_labels(_cases(pts, ["A"] * 3), eps_m=39, min_samples=3) == -1).all()
    assert (cluster_labels(_cases(pts, ["A"] * 3), eps_m=41, min_samples=2) == 0).all()
    closed = _cases(pts, ["A"] * 3, ["discovered", "removed", "rejected"])
    assert len(find_hotspots(closed, eps_m=100, min_samples=2)) == 0
    assert len(find_hotspots(closed, eps_m=100, min_samples=2, open_only=False)) == 1


def test_border_points_join_and_ids_by_size():
    rng = np.random.default_rng(0)
    big = [(float(x), float(y)) for x, y in rng.normal(0, 20, size=(12, 2))]
    small = [(3000.0, 0.0), (3010.0, 0.0), (3020.0, 0.0)]
    hot = find_hotspots(_cases(big + small, ["A"] * 15), eps_m=60, min_samples=3)
    assert list(hot["n_cases"]) == [12, 3] and list(hot["hotspot_id"]) == ["HS-001", "HS-002"]


def test_bad_parameters_are_named():
    g = _cases([(0, 0)], ["A"])
    with pytest.raises(ConfigError, match="hotspot_eps_m must be > 0"):
        find_hotspots(g, eps_m=0)
    with pytest.raises(CRSError, match="projected CRS in metres"):
        find_hotspots(g.to_crs("EPSG:4490"))
    empty = find_hotspots(g.iloc[0:0])
    assert len(empty) == 0 and "hotspot_id" in empty.columns
