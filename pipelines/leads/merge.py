"""Seam merging in map units: one structure seen in two overlapping tiles is one lead.

Two candidates are duplicates when their intersection covers at least ``iosa`` of the *smaller*
one (intersection over the smaller area: a part seen at a tile edge is inside the whole seen by
the neighbouring tile). Candidates from two different tiles are compared only where both tiles
saw the ground (the intersection of the two tiles): a building wider than the overlap is cut
by both tiles, and only inside their common strip do the two views have to agree. Duplicates are linked transitively (connected components) and each
group is fused:

* outline: when the members carry outlines (a segment model), the union of their outlines, each
  first cut back to its own tile's interior where another member saw that part whole, and
  simplified - so a structure straddling a seam gets its whole footprint back; with boxes only,
  per envelope side, the score-weighted mean of the members whose side is not cut by a tile
  edge; when every member is cut there, the outermost, while two complete views are averaged;
* score: the best member's score (the clearest view);
* class: the class with the highest summed score.

Pairs come from an STRtree bulk query, so the cost is O(n log n) in the number of candidates.

>>> import numpy as np, shapely
>>> from pipelines.leads.georef import MapCandidates
>>> g = np.array([shapely.box(0, 0, 10, 10), shapely.box(8, 0, 20, 10)])
>>> mc = MapCandidates(g, np.array([0.8, 0.6], np.float32), np.array([0, 0]), np.array([0, 1]),
...                    np.array([[0, 0, 1, 0], [1, 0, 0, 0]], bool))
>>> merged, n = merge_candidates(mc, iosa=0.1)
>>> len(merged), n, merged.geometry[0].bounds
(1, 1, (0.0, 0.0, 20.0, 10.0))
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geo.outlines import join_outlines, touching_groups
from pipelines.leads.georef import MapCandidates

__all__ = ["duplicate_pairs", "merge_candidates", "dissolve_touching"]


def duplicate_pairs(
    geometry: np.ndarray,
    iosa: float,
    class_id: np.ndarray | None = None,
    tile_bounds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, whose intersection / smaller area >= ``iosa``.

    With ``class_id`` given, only pairs of the same class count. With ``tile_bounds`` ((N, 4)
    map envelopes of each candidate's tile; NaN = unknown) both are first clipped to the area
    the two tiles share.
    """
    if len(geometry) < 2:
        empty = np.empty(0, np.int64)
        return empty, empty
    tree = shapely.STRtree(geometry)
    left, right = tree.query(geometry, predicate="intersects")
    keep = left < right
    if class_id is not None:
        keep &= class_id[left] == class_id[right]
    left, right = left[keep], right[keep]
    if not len(left):
        return left, right
    ga, gb = geometry[left], geometry[right]
    if tile_bounds is not None:
        lo = np.maximum(tile_bounds[left, :2], tile_bounds[right, :2])
        hi = np.minimum(tile_bounds[left, 2:], tile_bounds[right, 2:])
        known = np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1) & (hi > lo).all(axis=1)
        if known.any():
            shared = shapely.box(lo[known, 0], lo[known, 1], hi[known, 0], hi[known, 1])
            ga, gb = ga.copy(), gb.copy()
            ga[known] = shapely.intersection(ga[known], shared)
            gb[known] = shapely.intersection(gb[known], shared)
    inter = shapely.area(shapely.intersection(ga, gb))
    smaller = np.minimum(shapely.area(ga), shapely.area(gb))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(smaller > 0, inter / smaller, 0.0)
    keep = ratio >= iosa
    return left[keep], right[keep]


def merge_candidates(
    candidates: MapCandidates, iosa: float = 0.5, class_agnostic: bool = True
) -> tuple[MapCandidates, int]:
    """Fuse duplicate candidates; return the merged candidates and how many were absorbed.

    Singletons keep their exact polygon; fused groups become the fused envelope box.
    """
    n = len(candidates)
    if n < 2:
        return candidates, 0
    left, right = duplicate_pairs(
        candidates.geometry,
        iosa,
        None if class_agnostic else candidates.class_id,
        candidates.bounds_of_tiles,
    )
    if not len(left):
        return candidates, 0
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n))
    n_groups, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels, minlength=n_groups)

    single = sizes[labels] == 1
    multi_idx = np.flatnonzero(~single)
    groups = labels[multi_idx]
    order = np.argsort(groups, kind="stable")
    multi_idx, groups = multi_idx[order], groups[order]
    uniq, starts = np.unique(groups, return_index=True)

    bounds = shapely.bounds(candidates.geometry[multi_idx])  # minx, miny, maxx, maxy
    score = candidates.score[multi_idx].astype(np.float64)
    clipped = candidates.clipped[multi_idx]
    fused = np.empty((len(uniq), 4))
    for side in range(4):
        w = score * ~clipped[:, side]
        wsum = np.add.reduceat(w, starts)
        wmean = np.add.reduceat(w * bounds[:, side], starts) / np.where(wsum > 0, wsum, 1)
        outer = (np.minimum if side < 2 else np.maximum).reduceat(bounds[:, side], starts)
        fused[:, side] = np.where(wsum > 0, wmean, outer)
    # a fused side can only be degenerate if inputs were: keep boxes valid
    fused[:, 2] = np.maximum(fused[:, 2], fused[:, 0])
    fused[:, 3] = np.maximum(fused[:, 3], fused[:, 1])
    best_score = np.maximum.reduceat(score, starts)
    n_cls = int(candidates.class_id.max()) + 1
    class_votes = np.zeros((len(uniq), n_cls))
    group_pos = np.repeat(np.arange(len(uniq)), np.diff(np.append(starts, len(multi_idx))))
    np.add.at(class_votes, (group_pos, candidates.class_id[multi_idx]), score)
    fused_class = class_votes.argmax(axis=1)
    fused_tile = np.minimum.reduceat(candidates.tile_id[multi_idx], starts)
    fused_clipped = np.logical_and.reduceat(clipped, starts, axis=0)
    tb = candidates.bounds_of_tiles[multi_idx]
    fused_tile_bounds = np.column_stack(
        [
            np.minimum.reduceat(tb[:, 0], starts),
            np.minimum.reduceat(tb[:, 1], starts),
            np.maximum.reduceat(tb[:, 2], starts),
            np.maximum.reduceat(tb[:, 3], starts),
        ]
    )

    kept = candidates.take(single)
    geometry = shapely.box(fused[:, 0], fused[:, 1], fused[:, 2], fused[:, 3])
    outlined = np.logical_or.reduceat(candidates.is_outline[multi_idx], starts)
    for g in np.flatnonzero(outlined):
        members = multi_idx[starts[g] : (starts[g + 1] if g + 1 < len(starts) else len(multi_idx))]
        geometry[g] = _fused_outline(candidates, members)
    merged = MapCandidates(
        geometry,
        best_score.astype(np.float32),
        fused_class.astype(np.int64),
        fused_tile.astype(np.int64),
        fused_clipped,
        fused_tile_bounds,
        outlined,
    )
    return MapCandidates.concat([kept, merged]), int(len(multi_idx) - len(uniq))


def _fused_outline(candidates: MapCandidates, members: np.ndarray) -> shapely.Geometry:
    """The union of the members' outlines (boxes where a member has none), simplified.

    Where a member's outline touches its tile's edge it saw only part of the structure; the
    member whose view is whole (the best-scoring one not cut) gives the outline there, so a
    complete view is not blurred by a neighbour's partial one.
    """
    geoms = candidates.geometry[members]
    whole = ~candidates.clipped[members].any(axis=1)
    if whole.any():  # the best complete view is the outline
        best = members[whole][np.argmax(candidates.score[members][whole])]
        return candidates.geometry[best]
    union = shapely.union_all(geoms)
    if union.geom_type != "Polygon":
        union = union.convex_hull
    return shapely.normalize(union.simplify(0.05))


def dissolve_touching(candidates: MapCandidates, gap_m: float = 0.3) -> tuple[MapCandidates, int]:
    """Join outlines of one class that touch (closer than ``gap_m``) into one structure.

    A segment model may outline one large building as several parts (roof planes, units of a
    terrace); the parts touch, while separate buildings stand apart. Each group of touching
    outlines (:func:`geo.outlines.touching_groups`) becomes one candidate: the union of its parts
    with the gap closed (:func:`geo.outlines.join_outlines`), the best score, the union of its
    tiles. Boxes and ``gap_m <= 0`` are left alone. Returns the candidates and how many were
    absorbed.
    """
    idx = np.flatnonzero(candidates.is_outline)
    groups = touching_groups(candidates.geometry[idx], candidates.class_id[idx], gap_m)
    if not groups:
        return candidates, 0
    absorbed = np.zeros(len(candidates), bool)
    parts: list[MapCandidates] = []
    for members in groups:
        rows = idx[members]
        absorbed[rows] = True
        best = rows[np.argmax(candidates.score[rows])]
        tb = candidates.bounds_of_tiles[rows]
        bounds = np.array([[np.nanmin(tb[:, 0]), np.nanmin(tb[:, 1]),
                            np.nanmax(tb[:, 2]), np.nanmax(tb[:, 3])]])  # fmt: skip
        parts.append(MapCandidates(
            np.array([join_outlines(candidates.geometry[rows], gap_m)], object),
            candidates.score[[best]],
            candidates.class_id[[best]],
            candidates.tile_id[[best]],
            np.logical_and.reduce(candidates.clipped[rows], axis=0)[None, :],
            bounds,
            np.ones(1, bool),
        ))  # fmt: skip
    return MapCandidates.concat([candidates.take(~absorbed), *parts]), int(
        absorbed.sum() - len(groups)
    )
