"""Pixel → map: tile detections become polygons through the tile's affine transform.

A candidate's outline (from a segment model) maps vertex by vertex through the tile transform (tile
pixel → map); a candidate with only a box maps to the polygon of its four corners, so rotated or
sheared grids stay exact. Each box also records which
of its map-envelope sides lie on the tile's edge (``clipped``): a structure cut by a tile edge is
only partly seen there, and the seam merge must not let that side pull the fused outline inward.

>>> import numpy as np
>>> from affine import Affine
>>> from models.candidates import Candidates
>>> c = Candidates(np.array([[0, 0, 10, 5]], np.float32), np.array([0.9], np.float32), np.array([0]))
>>> mc = georeference(c, Affine(0.2, 0, 1000, 0, -0.2, 2000), tile_shape=(512, 512))
>>> round(mc.geometry[0].area, 3), mc.clipped[0].tolist()
(2.0, [True, False, False, True])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine

from models.candidates import Candidates

__all__ = ["MapCandidates", "georeference", "boxes_to_polygons", "outline_to_polygon"]

#: a box side within this many pixels of the tile edge counts as cut by the edge
EDGE_TOLERANCE_PX = 1.5


@dataclass(frozen=True)
class MapCandidates:
    """N candidates in map coordinates (aligned arrays, like :class:`Candidates`).

    Attributes:
        geometry: (N,) shapely polygons in the working CRS.
        score: (N,) float32 confidence.
        class_id: (N,) int64 class index.
        tile_id: (N,) int64 tile index (``-1`` unknown).
        clipped: (N, 4) bool: envelope side ``minx, miny, maxx, maxy`` lies on the tile edge.
        tile_bounds: (N, 4) float64 map envelope of the tile each box came from (NaN unknown).
        outlined: (N,) bool: the geometry is the structure's outline, not its box.
    """

    geometry: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    tile_id: np.ndarray
    clipped: np.ndarray
    tile_bounds: np.ndarray | None = None
    outlined: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.geometry)
        if self.tile_bounds is None:
            object.__setattr__(self, "tile_bounds", np.full((n, 4), np.nan))
        if self.outlined is None:
            object.__setattr__(self, "outlined", np.zeros(n, bool))
        for name in ("score", "class_id", "tile_id", "clipped", "tile_bounds", "outlined"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"MapCandidates.{name} has {len(getattr(self, name))} rows, not {n}"
                )

    def __len__(self) -> int:
        return len(self.geometry)

    def take(self, index: np.ndarray) -> MapCandidates:
        """Subset by a boolean mask or integer index array."""
        return MapCandidates(
            self.geometry[index],
            self.score[index],
            self.class_id[index],
            self.tile_id[index],
            self.clipped[index],
            self.bounds_of_tiles[index],
            self.is_outline[index],
        )

    @property
    def is_outline(self) -> np.ndarray:
        """``outlined`` (never None after construction)."""
        assert self.outlined is not None
        return self.outlined

    @property
    def bounds_of_tiles(self) -> np.ndarray:
        """``tile_bounds`` (never None after construction)."""
        assert self.tile_bounds is not None
        return self.tile_bounds

    @classmethod
    def empty(cls) -> MapCandidates:
        return cls(
            np.empty(0, object),
            np.empty(0, np.float32),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty((0, 4), bool),
            np.empty((0, 4)),
            np.empty(0, bool),
        )

    @classmethod
    def concat(cls, parts: Sequence[MapCandidates]) -> MapCandidates:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.geometry for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.tile_id for p in parts]),
            np.concatenate([p.clipped for p in parts]),
            np.concatenate([p.bounds_of_tiles for p in parts]),
            np.concatenate([p.is_outline for p in parts]),
        )


def boxes_to_polygons(xyxy: np.ndarray, transform: Affine) -> np.ndarray:
    """Map (N, 4) pixel boxes through ``transform`` to (N,) shapely polygons (corner-exact)."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if not len(xyxy):
        return np.empty(0, object)
    x0, y0, x1, y1 = xyxy.T
    cols = np.stack([x0, x1, x1, x0], axis=1)
    rows = np.stack([y0, y0, y1, y1], axis=1)
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    mx = a * cols + b * rows + c
    my = d * cols + e * rows + f
    coords = np.stack([mx, my], axis=-1)
    polys = shapely.polygons(coords)
    return shapely.normalize(polys)


def outline_to_polygon(pts: np.ndarray, transform: Affine) -> shapely.Polygon | None:
    """Map a ``(k, 2)`` tile-pixel outline through ``transform``; a valid polygon or None."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return None
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    mx = a * pts[:, 0] + b * pts[:, 1] + c
    my = d * pts[:, 0] + e * pts[:, 1] + f
    poly = shapely.make_valid(shapely.Polygon(np.column_stack([mx, my])))
    if poly.geom_type != "Polygon":  # a self-touching trace: keep its largest part
        parts = [g for g in getattr(poly, "geoms", []) if g.geom_type == "Polygon"]
        if not parts:
            return None
        poly = max(parts, key=lambda g: g.area)
    return None if poly.is_empty or poly.area <= 0 else shapely.normalize(poly)


def _tile_edge_flags(
    xyxy: np.ndarray, transform: Affine, tile_shape: tuple[int, int]
) -> np.ndarray:
    """Which map-envelope sides (minx, miny, maxx, maxy) of each box touch the tile edge."""
    h, w = tile_shape
    tol = EDGE_TOLERANCE_PX
    px = np.stack(
        [xyxy[:, 0] <= tol, xyxy[:, 1] <= tol, xyxy[:, 2] >= w - tol, xyxy[:, 3] >= h - tol], axis=1
    )  # pixel sides: left, top, right, bottom
    flags = np.zeros_like(px)
    # a pixel side maps to the map side its outward normal points to (north-up or flipped grids)
    for side, normal in ((0, (-1, 0)), (1, (0, -1)), (2, (1, 0)), (3, (0, 1))):
        mx = transform.a * normal[0] + transform.b * normal[1]
        my = transform.d * normal[0] + transform.e * normal[1]
        if abs(mx) >= abs(my):
            flags[:, 2 if mx > 0 else 0] |= px[:, side]
        else:
            flags[:, 3 if my > 0 else 1] |= px[:, side]
    return flags


def georeference(
    candidates: Candidates, transform: Affine, tile_shape: tuple[int, int], tile_id: int = -1
) -> MapCandidates:
    """Tile-pixel candidates → :class:`MapCandidates` through the tile's affine ``transform``.

    ``tile_shape`` is the tile's (height, width) in pixels, used to flag boxes cut by its edge.
    """
    if not len(candidates):
        return MapCandidates.empty()
    geometry = boxes_to_polygons(candidates.xyxy, transform)
    outlined = np.array([o is not None for o in candidates.outline], bool)
    for i in np.flatnonzero(outlined):
        poly = outline_to_polygon(candidates.outline[i], transform)
        if poly is None:
            outlined[i] = False
        else:
            geometry[i] = poly
    tile_ids = candidates.tile_id if tile_id < 0 else np.full(len(candidates), tile_id, np.int64)
    clipped = _tile_edge_flags(candidates.xyxy.astype(np.float64), transform, tile_shape)
    h, w = tile_shape
    tile_poly = boxes_to_polygons(np.array([[0, 0, w, h]], np.float64), transform)[0]
    tile_bounds = np.tile(np.asarray(tile_poly.bounds, np.float64), (len(candidates), 1))
    return MapCandidates(
        geometry, candidates.score, candidates.class_id, tile_ids, clipped, tile_bounds, outlined
    )
