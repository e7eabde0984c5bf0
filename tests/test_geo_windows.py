"""Pure window/tile maths: Hypothesis properties (cover, overlap, round trips) and doctests."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geo.tiles import select_tiles
from geo.windows import (
    TileWindow,
    bounds_to_window,
    clip_window,
    grid_for_bounds,
    map_to_pixel,
    pixel_to_map,
    tile_grid,
    tile_offsets,
)

sizes = st.integers(min_value=8, max_value=96)


@given(length=st.integers(1, 2000), size=sizes, data=st.data())
def test_tile_offsets_cover_axis_with_exact_overlap(length: int, size: int, data) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    offs = tile_offsets(length, size, overlap)
    assert offs[0] == 0
    assert offs[-1] + size >= length  # last tile reaches the end (padded past it)
    assert offs[-1] < max(length, 1)  # no tile starts beyond the grid
    assert all(b - a == size - overlap for a, b in zip(offs, offs[1:], strict=False))
    if len(offs) > 1:  # minimal: without the last tile the axis would not be covered
        assert offs[-2] + size < length


@given(w=st.integers(1, 700), h=st.integers(1, 700), size=sizes, data=st.data())
@settings(max_examples=60)
def test_tile_grid_covers_every_pixel(w: int, h: int, size: int, data) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    tiles = tile_grid(w, h, size, overlap)
    cover = np.zeros((h + size, w + size), dtype=np.int32)
    for t in tiles:
        assert (t.height, t.width) == (size, size)
        cover[t.slices()] += 1
    assert (cover[:h, :w] >= 1).all()
    assert [t.index for t in tiles] == list(range(len(tiles)))


rects = st.tuples(st.floats(0, 90), st.floats(0, 90), st.floats(1, 60), st.floats(1, 60))


@given(parts=st.lists(rects, min_size=1, max_size=4), size=st.integers(8, 40), data=st.data())
@settings(max_examples=60, deadline=None)
def test_selected_tiles_cover_valid_area_exactly(parts, size: int, data) -> None:
    overlap = data.draw(st.integers(0, size // 2))
    grid = grid_for_bounds((0.0, 0.0, 100.0, 100.0), 1.0)
    area = shapely.union_all([box(x, y, x + w, y + h) for x, y, w, h in parts]).intersection(
        box(0, 0, 100, 100)
    )
    tiles = tile_grid(grid.width, grid.height, size, overlap)
    chosen = select_tiles(tiles, grid.transform, area)
    # every chosen tile overlaps the area; every skipped one does not
    for t in tiles:
        overlaps = box(*t.bounds(grid.transform)).intersection(area).area > 0
        assert overlaps == (t in chosen)
    # every pixel whose centre is in the area lies in a chosen tile
    covered = np.zeros((grid.height + size, grid.width + size), dtype=bool)
    for t in chosen:
        covered[t.slices()] = True
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    centres = shapely.points(cols.ravel() + 0.5, 100.0 - rows.ravel() - 0.5)
    inside = shapely.contains(area, centres).reshape(grid.height, grid.width)
    assert not (inside & ~covered[: grid.height, : grid.width]).any()


coords = st.floats(-1e6, 1e6, allow_nan=False)


@given(
    x0=coords, y0=coords, gsd=st.floats(0.01, 10), r=st.floats(-1e4, 1e4), c=st.floats(-1e4, 1e4)
)
def test_pixel_map_round_trip(x0: float, y0: float, gsd: float, r: float, c: float) -> None:
    t = Affine(gsd, 0, x0, 0, -gsd, y0)
    xs, ys = pixel_to_map(t, [r], [c])
    rows, cols = map_to_pixel(t, xs, ys)
    assert rows[0] == pytest.approx(r, abs=1e-6 * max(1.0, abs(r)) + 1e-4)
    assert cols[0] == pytest.approx(c, abs=1e-6 * max(1.0, abs(c)) + 1e-4)


@given(
    left=st.floats(0, 500),
    bottom=st.floats(0, 500),
    w=st.floats(0.5, 300),
    h=st.floats(0.5, 300),
    gsd=st.sampled_from([0.2, 0.3, 1.0]),
)
def test_bounds_to_window_contains_bounds(left, bottom, w, h, gsd) -> None:
    t = Affine(gsd, 0, 0.0, 0, -gsd, 1000.0)
    win = bounds_to_window(t, (left, bottom, left + w, bottom + h))
    wl, wb, wr, wt = win.bounds(t)
    tol = 1e-6 * 1000
    assert (
        wl <= left + tol and wb <= bottom + tol and wr >= left + w - tol and wt >= bottom + h - tol
    )
    assert win.width * gsd <= w + 2 * gsd + tol


def test_clip_window_and_errors() -> None:
    assert clip_window(TileWindow(3, -5, 90, 20, 20), 100, 100) == TileWindow(3, 0, 90, 15, 10)
    assert clip_window(TileWindow(0, 200, 0, 10, 10), 100, 100) is None
    with pytest.raises(ValueError, match="overlap must be in"):
        tile_offsets(100, 64, 64)
    with pytest.raises(ValueError, match="gsd must be > 0"):
        grid_for_bounds((0, 0, 1, 1), 0)
    with pytest.raises(ValueError, match="smaller than one pixel"):
        grid_for_bounds((0, 0, 0.1, 0.1), 0.2)


@pytest.mark.parametrize("name", ["geo.windows", "geo.crs", "geo.raster", "geo.radiometry"])
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
