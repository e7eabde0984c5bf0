"""Geometry and state of the synthetic world: shapes, the pixel frame, the occupancy grid.

Everything lives in a *local* frame in metres (x right, y down) that :class:`Frame` rotates and
scales onto the image. A coarse occupancy grid (1 m cells, codes below) records what is where so
that layout and change planning can find free room (:func:`_free`) and claim it (:func:`_mark`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    "FREE",
    "PAVED",
    "BUILT",
    "TREE",
    "WATER",
    "YARD",
    "FIELD",
    "Rect",
    "Building",
    "Tree",
    "Car",
    "Field",
    "Road",
    "Cell",
    "Frame",
    "World",
]

# occupancy codes (1 m grid in the local frame)
FREE, PAVED, BUILT, TREE, WATER, YARD, FIELD = 0, 1, 2, 3, 4, 5, 6


@dataclass
class Rect:
    """A rotated rectangle in local metres: centre, size along its own axes, angle (rad)."""

    cx: float
    cy: float
    w: float
    h: float
    ang: float = 0.0

    def corners(self) -> np.ndarray:
        c, s = math.cos(self.ang), math.sin(self.ang)
        u = np.array([c, s]) * self.w / 2
        v = np.array([-s, c]) * self.h / 2
        p = np.array([self.cx, self.cy])
        return np.array([p - u - v, p + u - v, p + u + v, p - u + v])

    def grown(self, d: float) -> Rect:
        return Rect(self.cx, self.cy, self.w + 2 * d, self.h + 2 * d, self.ang)


@dataclass
class Building:
    """A box: footprint, height (m), base height (m, > 0 for things on a roof), roof colour."""

    bid: int
    rect: Rect
    height: float
    roof: int  # palette label
    kind: str  # block | house | shed | tower | gatehouse | extension | rooftop | new
    shape: str  # flat | gable | steel
    base: float = 0.0
    parent: int | None = None
    solar: int = 0


@dataclass
class Tree:
    cx: float
    cy: float
    r: float
    height: float
    tone: int
    lobes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # dx, dy, r (x crown r)


@dataclass
class Car:
    cid: int
    rect: Rect
    paint: int


@dataclass
class Field:
    fid: int
    poly: np.ndarray
    crop: int
    rows_ang: float


@dataclass
class Road:
    p0: tuple[float, float]
    p1: tuple[float, float]
    width: float
    main: bool


@dataclass
class Cell:
    """One block between road centrelines; the unit (village or community) it becomes."""

    idx: int
    bounds: tuple[float, float, float, float]  # x0, y0, x1, y1 (road centrelines)
    interior: tuple[float, float, float, float]
    kind: str  # compound | village | park
    col: int = 0
    row: int = 0


@dataclass(frozen=True)
class Frame:
    """Local metres -> image pixels: rotate by ``angle`` about the centres, divide by ``gsd``."""

    extent_m: float
    size_px: int
    gsd: float
    angle: float

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        q = np.asarray(pts, float) - self.extent_m / 2
        x = (c * q[..., 0] - s * q[..., 1]) / self.gsd + self.size_px / 2
        y = (s * q[..., 0] + c * q[..., 1]) / self.gsd + self.size_px / 2
        return np.stack([x, y], -1)

    def to_local(self, px: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        q = (np.asarray(px, float) - self.size_px / 2) * self.gsd
        x = c * q[..., 0] + s * q[..., 1] + self.extent_m / 2
        y = -s * q[..., 0] + c * q[..., 1] + self.extent_m / 2
        return np.stack([x, y], -1)


@dataclass
class World:
    """Everything in the scene before any change, in local metres."""

    frame: Frame
    cells: list[Cell]
    xs: np.ndarray
    ys: np.ndarray
    roads: list[Road]
    grounds: list[tuple[np.ndarray, int]]  # filled polygons (label), drawn in order
    paths: list[tuple[np.ndarray, float, int, bool]]  # polyline, width m, label, closed
    fields: list[Field]
    waters: list[np.ndarray]
    buildings: list[Building]
    trees: list[Tree]
    cars: list[Car]
    roof_by_material: dict[str, list[int]]
    occ: np.ndarray
    next_id: list[int] = field(default_factory=lambda: [1])

    def new_id(self) -> int:
        self.next_id[0] += 1
        return self.next_id[0]

    def cell_at(self, x: float, y: float) -> Cell | None:
        for c in self.cells:
            x0, y0, x1, y1 = c.bounds
            if x0 <= x < x1 and y0 <= y < y1:
                return c
        return None


def _mark(occ: np.ndarray, pts: np.ndarray, code: int, grow: float = 0.0) -> None:
    p = np.asarray(pts, float)
    c = p.mean(0)
    if grow:
        d = p - c
        n = np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
        p = p + d / n * grow
    cv2.fillPoly(occ, [np.round(p).astype(np.int32)], code)


def _free(occ: np.ndarray, pts: np.ndarray, margin: float, ok: tuple[int, ...] = (FREE,)) -> bool:
    p = np.asarray(pts)
    x0, y0 = np.floor(p.min(0) - margin).astype(int)
    x1, y1 = np.ceil(p.max(0) + margin).astype(int)
    if x0 < 0 or y0 < 0 or x1 >= occ.shape[1] or y1 >= occ.shape[0]:
        return False
    return bool(np.isin(occ[y0 : y1 + 1, x0 : x1 + 1], ok).all())
