"""Outlines that touch: which polygons are parts of one structure, and the outline they make.

A segment model may outline one building as several parts (roof planes of another tone, the
units of a terrace); the parts touch while separate buildings stand apart. Two outlines of the
same kind closer than ``gap`` (in their own units: metres on the map, pixels in a tile) are one
structure, transitively (connected components of an STRtree query on the outlines grown by half
the gap, O(n log n)). The structure's outline is the union of its parts with the gap closed
(grown by half the gap, joined, shrunk back; mitred, so corners stay square).

The leads stage joins candidates on the map with these (``pipelines.leads.merge``), and the
threshold calibration joins them in tile pixels (``models.calibrate``), so both count structures
alike.

>>> import numpy as np, shapely
>>> parts = np.array([shapely.box(0, 0, 4, 4), shapely.box(4.2, 0, 8, 4), shapely.box(20, 0, 24, 4)])
>>> [g.tolist() for g in touching_groups(parts, np.zeros(3, int), gap=0.3)]
[[0, 1]]
>>> join_outlines(parts[:2], gap=0.3).bounds
(0.0, 0.0, 8.0, 4.0)
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry.base import BaseGeometry

__all__ = ["touching_groups", "join_outlines"]


def touching_groups(geoms: np.ndarray, keys: np.ndarray, gap: float) -> list[np.ndarray]:
    """Index arrays of the groups of two or more ``geoms`` with the same key closer than ``gap``.

    Geometries that touch nothing are in no group. ``gap <= 0`` joins nothing.
    """
    geoms = np.asarray(geoms, object).reshape(-1)
    keys = np.asarray(keys).reshape(-1)
    if gap <= 0 or len(geoms) < 2:
        return []
    grown = shapely.buffer(geoms, gap / 2, join_style="mitre")
    left, right = shapely.STRtree(grown).query(grown, predicate="intersects")
    keep = (left < right) & (keys[left] == keys[right])
    left, right = left[keep], right[keep]
    if not len(left):
        return []
    n = len(geoms)
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n))
    n_groups, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels, minlength=n_groups)
    return [np.flatnonzero(labels == g) for g in range(n_groups) if sizes[g] > 1]


def join_outlines(parts: np.ndarray, gap: float) -> BaseGeometry:
    """One polygon for ``parts`` that touch: their union with gaps under ``gap`` closed.

    Where the parts still fall apart (a chain joined through a part that the closing cannot
    bridge), the largest piece is kept; with no polygon at all, the union's convex hull - a
    group is never lost.
    """
    grown = shapely.buffer(np.asarray(parts, object), gap / 2, join_style="mitre")
    union = shapely.buffer(shapely.union_all(grown), -gap / 2, join_style="mitre")
    if union.geom_type != "Polygon":
        pieces = [g for g in getattr(union, "geoms", []) if g.geom_type == "Polygon"]
        union = (
            max(pieces, key=lambda g: g.area)
            if pieces
            else shapely.union_all(np.asarray(parts, object)).convex_hull
        )
    return shapely.normalize(union)
