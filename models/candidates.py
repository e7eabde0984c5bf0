"""``Candidates``: the one container for model detections (aligned arrays, validated).

A candidate is one structure the detector found in one tile, in that tile's *pixel* coordinates at
the working GSD: its box, and (from a segment model) its outline. Turning candidates into map
polygons is the job of the leads stage.

>>> import numpy as np
>>> c = Candidates(xyxy=np.array([[0, 0, 10, 10]], np.float32), score=np.array([0.9], np.float32),
...                class_id=np.array([0]))
>>> len(c), len(Candidates.merge([c, Candidates.empty()]))
(1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Candidates"]


@dataclass(frozen=True)
class Candidates:
    """Aligned arrays of N detections.

    Attributes:
        xyxy: (N, 4) float32 boxes ``x0, y0, x1, y1`` in tile pixels (x = column, y = row).
        score: (N,) float32 confidence in [0, 1].
        class_id: (N,) int64 index into :data:`models.classes.CLASS_NAMES`.
        tile_id: (N,) int64 index of the tile each box came from (``-1`` when unknown).
        outline: (N,) object array: each row a ``(k, 2)`` float32 array of the structure's outline
            vertices (x, y in tile pixels), or ``None`` where only the box is known.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    tile_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    outline: np.ndarray = field(default_factory=lambda: np.empty(0, object))

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(xyxy)
        score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        tile_id = np.asarray(self.tile_id, dtype=np.int64).reshape(-1)
        if tile_id.size == 0 and n:
            tile_id = np.full(n, -1, np.int64)
        outline = np.empty(n, object)
        given = np.asarray(self.outline, dtype=object).reshape(-1) if len(self.outline) else ()
        if len(given) not in (0, n):
            raise ValueError(f"Candidates.outline has {len(given)} rows but xyxy has {n}")
        for i, pts in enumerate(given):
            outline[i] = None if pts is None else np.asarray(pts, np.float32).reshape(-1, 2)
        for name, arr in (("score", score), ("class_id", class_id), ("tile_id", tile_id)):
            if len(arr) != n:
                raise ValueError(f"Candidates.{name} has {len(arr)} rows but xyxy has {n}")
        if n and (np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1])):
            raise ValueError("Candidates.xyxy must have x1 >= x0 and y1 >= y0 in every row")
        if n and (np.any(score < 0) or np.any(score > 1) or np.any(~np.isfinite(score))):
            raise ValueError("Candidates.score must be finite and within [0, 1]")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "tile_id", tile_id)
        object.__setattr__(self, "outline", outline)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | int) -> Candidates:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Candidates(
            self.xyxy[index], self.score[index], self.class_id[index], self.tile_id[index],
            self.outline[index],
        )  # fmt: skip

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64))

    @classmethod
    def merge(cls, parts: Sequence[Candidates]) -> Candidates:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.tile_id for p in parts]),
            np.concatenate([p.outline for p in parts]),
        )

    @property
    def has_outlines(self) -> bool:
        """True when at least one candidate carries an outline (a segment model made them)."""
        return any(o is not None for o in self.outline)

    def with_tile_id(self, tile_id: int) -> Candidates:
        return Candidates(
            self.xyxy, self.score, self.class_id, np.full(len(self), tile_id), self.outline
        )
