"""Pure window and tile-grid maths on the working grid (no IO).

Windows are immutable values in pixel units of a north-up grid; transforms are
:class:`affine.Affine`. Tiles form a regular grid with a fixed stride ``size - overlap``: every
tile is exactly ``size`` × ``size``; tiles at the right/bottom edge extend past the grid and are
**padded** (zeros, ``valid=False``) by the readers, so the overlap between neighbours is always
exactly ``overlap``.

>>> [t.col_off for t in tile_grid(1000, 10, size=512, overlap=64)]
[0, 448, 896]
>>> TileWindow(0, 0, 0, 2, 2).bounds(Affine(0.2, 0, 100, 0, -0.2, 50))
(100.0, 49.6, 100.4, 50.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from affine import Affine

__all__ = [
    "TileWindow",
    "Grid",
    "grid_for_bounds",
    "tile_offsets",
    "tile_grid",
    "window_transform",
    "pixel_to_map",
    "map_to_pixel",
    "bounds_to_window",
    "clip_window",
]


@dataclass(frozen=True)
class TileWindow:
    """A window on the working grid: ``index`` (position in the tile grid) and pixel extent."""

    index: int
    row_off: int
    col_off: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        """(row slice, col slice) of the window on the (unbounded) grid."""
        return (
            slice(self.row_off, self.row_off + self.height),
            slice(self.col_off, self.col_off + self.width),
        )

    def transform(self, grid_transform: Affine) -> Affine:
        """Affine mapping window pixel (col, row) to map coordinates."""
        return window_transform(grid_transform, self.row_off, self.col_off)

    def bounds(self, grid_transform: Affine) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in map units for a north-up ``grid_transform``."""
        t = self.transform(grid_transform)
        x0, y0 = t @ (0, 0)
        x1, y1 = t @ (self.width, self.height)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: transform, width and height (the working grid of a pair)."""

    transform: Affine
    width: int
    height: int

    @property
    def gsd(self) -> float:
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return TileWindow(0, 0, 0, self.height, self.width).bounds(self.transform)


def grid_for_bounds(bounds: tuple[float, float, float, float], gsd: float) -> Grid:
    """The north-up grid at ``gsd`` anchored at the top-left of ``bounds``, inside them.

    Width/height are floored so every grid pixel lies within ``bounds`` (at most one pixel of
    margin is dropped at the right/bottom).
    """
    if not gsd > 0:
        raise ValueError(f"gsd must be > 0 metres, got {gsd!r}")
    left, bottom, right, top = bounds
    width = int(math.floor((right - left) / gsd + 1e-9))
    height = int(math.floor((top - bottom) / gsd + 1e-9))
    if width < 1 or height < 1:
        raise ValueError(f"bounds {bounds} are smaller than one pixel at gsd {gsd}")
    return Grid(Affine(gsd, 0.0, left, 0.0, -gsd, top), width, height)


def tile_offsets(length: int, size: int, overlap: int) -> list[int]:
    """Offsets of tiles of ``size`` with ``overlap`` along an axis of ``length`` pixels.

    The first offset is 0, the stride is ``size - overlap``, and the last tile reaches or passes
    ``length`` (it is padded there).
    """
    if size < 1:
        raise ValueError(f"tile size must be >= 1 px, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size={size}), got {overlap}")
    if length < 1:
        raise ValueError(f"grid length must be >= 1 px, got {length}")
    stride = size - overlap
    n = 1 + max(0, math.ceil((length - size) / stride))
    return [i * stride for i in range(n)]


def tile_grid(width: int, height: int, size: int = 512, overlap: int = 64) -> list[TileWindow]:
    """All tiles covering a ``width`` × ``height`` grid, row-major, indexed from 0."""
    rows = tile_offsets(height, size, overlap)
    cols = tile_offsets(width, size, overlap)
    return [
        TileWindow(i * len(cols) + j, r, c, size, size)
        for i, r in enumerate(rows)
        for j, c in enumerate(cols)
    ]


def window_transform(grid_transform: Affine, row_off: float, col_off: float) -> Affine:
    """Transform of a window whose top-left is at (``row_off``, ``col_off``) of the grid."""
    return grid_transform @ Affine.translation(col_off, row_off)


def pixel_to_map(transform: Affine, rows: Iterable[float], cols: Iterable[float]) -> tuple:
    """Map coordinates (xs, ys) of pixel *corners* (row, col) — add 0.5 for centres."""
    xs, ys = zip(*(transform @ (c, r) for r, c in zip(rows, cols, strict=True)), strict=True)
    return list(xs), list(ys)


def map_to_pixel(transform: Affine, xs: Iterable[float], ys: Iterable[float]) -> tuple:
    """Fractional pixel coordinates (rows, cols) of map points (inverse of pixel_to_map)."""
    inv = ~transform
    cols, rows = zip(*(inv @ (x, y) for x, y in zip(xs, ys, strict=True)), strict=True)
    return list(rows), list(cols)


def bounds_to_window(
    grid_transform: Affine, bounds: tuple[float, float, float, float], index: int = -1
) -> TileWindow:
    """The smallest whole-pixel window of the grid containing ``bounds`` (may leave the grid)."""
    left, bottom, right, top = bounds
    inv = ~grid_transform
    c0, r0 = inv @ (left, top)
    c1, r1 = inv @ (right, bottom)
    c0, c1 = sorted((c0, c1))
    r0, r1 = sorted((r0, r1))
    col = math.floor(c0 + 1e-6)
    row = math.floor(r0 + 1e-6)
    return TileWindow(
        index, row, col, max(1, math.ceil(r1 - 1e-6) - row), max(1, math.ceil(c1 - 1e-6) - col)
    )


def clip_window(win: TileWindow, width: int, height: int) -> TileWindow | None:
    """The part of ``win`` inside a ``width`` × ``height`` grid, or None if they are disjoint."""
    r0, c0 = max(win.row_off, 0), max(win.col_off, 0)
    r1 = min(win.row_off + win.height, height)
    c1 = min(win.col_off + win.width, width)
    if r1 <= r0 or c1 <= c0:
        return None
    return TileWindow(win.index, r0, c0, r1 - r0, c1 - c0)
