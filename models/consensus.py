"""Scale consensus: a candidate stands only where a coarser look at the same tile also finds one.

A new structure is still there when the tile is seen at 1.5× the working GSD (the default
``scale`` of 2/3: a 0.2 m tile looked at as 0.3 m); a texture artefact, a seasonal field edge or
a shadow that fires at one scale often does not. :class:`ScaleConsensus` wraps a detector: it runs
each tile as given and shrunk by ``scale`` (``cv2.INTER_AREA`` on each date's three bands), and
keeps a full-scale candidate when some coarse candidate scoring at least ``min_score`` covers
``min_overlap`` of the smaller of the two (class-agnostic). The kept candidates are the
full-scale ones, untouched: outlines and scores are those of the working GSD.

It costs one more forward pass per tile (the coarse tile is padded to the model's input size).
Measured on the model card (``Scale consensus``): it is off by default and switched on with
``detector.consensus.enabled`` in the pipeline config.

>>> from models.candidates import Candidates
>>> class Fixed:  # finds one structure at full scale, none when shrunk
...     def predict(self, images, conf=0.25):
...         big = images[0].shape[0] == 64
...         box = np.array([[8, 8, 24, 24]] if big else np.empty((0, 4)), np.float32)
...         return [Candidates(box, np.full(len(box), 0.9, np.float32), np.zeros(len(box), np.int64))]
>>> tile = np.zeros((64, 64, 6), np.uint8)
>>> len(ScaleConsensus(Fixed()).predict([tile])[0])
0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import shapely
import shapely.affinity

from models.candidates import Candidates

__all__ = ["ScaleConsensus", "candidate_geometries", "shrink_tile"]


def shrink_tile(tile: np.ndarray, scale: float) -> np.ndarray:
    """``tile`` (h, w, 6) resampled by ``scale`` (< 1) with pixel-area averaging, per date."""
    h, w = tile.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    halves = [
        cv2.resize(np.ascontiguousarray(tile[..., k : k + 3]), size, interpolation=cv2.INTER_AREA)
        for k in range(0, tile.shape[2], 3)
    ]
    return np.concatenate([h_.reshape(size[1], size[0], -1) for h_ in halves], axis=2)


def candidate_geometries(cands: Candidates) -> np.ndarray:
    """Each candidate's outline as a polygon (its box where it has no usable outline)."""
    geoms = np.asarray(shapely.box(*cands.xyxy.T.astype(np.float64)), object).reshape(-1)
    for i, pts in enumerate(cands.outline):
        if pts is not None and len(pts) >= 3:
            poly = shapely.make_valid(shapely.Polygon(np.asarray(pts, np.float64)))
            if not poly.is_empty and poly.area > 0:
                geoms[i] = poly
    return geoms


class ScaleConsensus:
    """A detector whose candidates must also be found at a coarser scale (see module doc).

    Everything but :meth:`predict` (``card``, ``weights``, ``backend``…) is the wrapped
    detector's, so the pipeline records the same model; :attr:`consensus` says what was added.
    """

    def __init__(
        self,
        detector: Any,
        scale: float = 2 / 3,
        min_score: float = 0.1,
        min_overlap: float = 0.3,
    ) -> None:
        if not 0 < scale < 1:
            raise ValueError(f"consensus scale must be between 0 and 1 (exclusive), got {scale!r}")
        if not 0 <= min_score <= 1:
            raise ValueError(f"consensus min_score must be in [0, 1], got {min_score!r}")
        if not 0 < min_overlap <= 1:
            raise ValueError(f"consensus min_overlap must be in (0, 1], got {min_overlap!r}")
        self.detector = detector
        self.scale = float(scale)
        self.min_score = float(min_score)
        self.min_overlap = float(min_overlap)

    def __getattr__(self, name: str) -> Any:
        if name == "detector":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.detector, name)

    @property
    def consensus(self) -> dict[str, float]:
        """The settings, for provenance."""
        return {"scale": round(self.scale, 4), "min_score": self.min_score,
                "min_overlap": self.min_overlap}  # fmt: skip

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, **kwargs: Any
    ) -> list[Candidates]:
        """The wrapped detector's candidates on ``images`` that the coarse look confirms."""
        full = self.detector.predict(images, conf=conf, **kwargs)
        if not any(len(c) for c in full):
            return list(full)
        todo = [i for i, c in enumerate(full) if len(c)]
        coarse = self.detector.predict(
            [shrink_tile(images[i], self.scale) for i in todo], conf=self.min_score, **kwargs
        )
        out = list(full)
        for i, seen in zip(todo, coarse, strict=True):
            out[i] = full[i][self._confirmed(full[i], seen)]
        return out

    def _confirmed(self, full: Candidates, coarse: Candidates) -> np.ndarray:
        keep = np.zeros(len(full), bool)
        sel = coarse.score >= self.min_score
        if not sel.any():
            return keep
        back = 1.0 / self.scale
        seen = [shapely.affinity.scale(g, back, back, origin=(0, 0))
                for g in candidate_geometries(coarse[sel])]  # fmt: skip
        tree = shapely.STRtree(seen)
        geoms = candidate_geometries(full)
        pairs = tree.query(geoms, predicate="intersects")
        for i, j in zip(*pairs, strict=True):
            if keep[i]:
                continue
            a, b = geoms[i], seen[j]
            smaller = min(a.area, b.area)
            if smaller > 0 and a.intersection(b).area / smaller >= self.min_overlap:
                keep[i] = True
        return keep
