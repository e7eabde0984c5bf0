"""Setting up a flight/baseline pair: scan each epoch, choose the working grid, place the
co-registration sub-windows and measure them, and compute the radiometric LUTs.

IO happens here (decimated reads and sub-window reads); the maths lives in :mod:`geo.coreg`,
:mod:`geo.radiometry`, :mod:`geo.coverage` and :mod:`geo.windows`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio.features
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from geo.coreg import Measure, ShiftEstimate, phase_shift, texture_score
from geo.coreg_local import LocalField
from geo.coverage import mask_footprint
from geo.crs import reproject_geometry, working_crs_for
from geo.radiometry import match_luts
from geo.raster import Stretch, compute_stretch, open_raster, read_decimated, rgb_bands
from geo.warp import EpochReader, EpochSpec
from geo.windows import Grid, TileWindow, bounds_to_window, grid_for_bounds

__all__ = [
    "EpochScan",
    "scan_epoch",
    "working_grid",
    "coreg_windows",
    "make_measure",
    "pair_luts",
]

log = logging.getLogger(__name__)


@dataclass
class EpochScan:
    """A decimated look at one epoch: stretch, 8-bit preview, valid mask and footprint."""

    path: str
    crs: CRS
    bounds: tuple[float, float, float, float]
    res: float
    stretch: Stretch
    preview: np.ndarray  # (3, h, w) uint8, stretched
    valid: np.ndarray  # (h, w) bool
    preview_transform: Affine
    footprint: BaseGeometry  # in self.crs


def scan_epoch(path: str | Path, role: str) -> EpochScan:
    """Open and validate ``path``; one decimated read gives stretch, preview and footprint."""
    with open_raster(path, role=role) as ds:
        bands, _ = rgb_bands(ds)
        data, valid, tr = read_decimated(ds, bands, path=f"{role} {path}")
        stretch = compute_stretch(data, valid, ds.dtypes[0])
        footprint = mask_footprint(valid, tr, path=f"{role} {path}")
        return EpochScan(
            path=str(path),
            crs=ds.crs,
            bounds=tuple(ds.bounds),  # type: ignore[arg-type]
            res=float(min(abs(ds.res[0]), abs(ds.res[1]))),
            stretch=stretch,
            preview=stretch.apply(data),
            valid=valid,
            preview_transform=tr,
            footprint=footprint,
        )


def working_grid(flight: EpochScan, gsd: float) -> tuple[CRS, Grid]:
    """The working CRS and the flight's extent at ``gsd`` in it."""
    crs = working_crs_for(flight.crs, flight.bounds, flight.path)
    bounds = flight.bounds
    if crs != flight.crs:
        bounds = transform_bounds(flight.crs, crs, *bounds, densify_pts=21)
    try:
        return crs, grid_for_bounds(bounds, gsd)
    except ValueError as exc:
        raise ValueError(f"flight {flight.path}: {exc}") from exc


def coreg_windows(
    common: BaseGeometry, grid: Grid, win_px: int = 256, max_windows: int = 36
) -> tuple[list[TileWindow], list[BaseGeometry]]:
    """Sub-windows (``win_px`` square on the grid) inside the common area, on a regular layout,
    and the cell (map area) each one stands for."""
    for size in (win_px, win_px // 2, win_px // 4):
        win_m = size * grid.gsd
        spacing = max(win_m, math.sqrt(max(common.area, 1.0) / max_windows))
        minx, miny, maxx, maxy = common.bounds
        nx = max(1, int((maxx - minx) // spacing))
        ny = max(1, int((maxy - miny) // spacing))
        ox = minx + ((maxx - minx) - nx * spacing) / 2.0
        oy = miny + ((maxy - miny) - ny * spacing) / 2.0
        wins: list[TileWindow] = []
        cells: list[BaseGeometry] = []
        prepared = prep(common.buffer(grid.gsd))
        for j in range(ny):
            for i in range(nx):
                cx, cy = ox + (i + 0.5) * spacing, oy + (j + 0.5) * spacing
                half = win_m / 2.0
                if not prepared.contains(box(cx - half, cy - half, cx + half, cy + half)):
                    continue
                w = bounds_to_window(grid.transform, (cx - half, cy - half, cx + half, cy + half))
                wins.append(TileWindow(len(wins), w.row_off, w.col_off, size, size))
                cell = box(cx - spacing / 2, cy - spacing / 2, cx + spacing / 2, cy + spacing / 2)
                cells.append(cell.intersection(common))
        if len(wins) >= 4:
            break
    return wins, cells


def make_measure(
    flight: EpochSpec,
    baseline: EpochSpec,
    windows: list[TileWindow],
    *,
    min_valid: float = 0.9,
    min_texture: float = 1.0,
) -> Measure:
    """A ``measure(correction, local=None)`` callback for :func:`geo.coreg.coregister`."""
    fr = EpochReader(flight)
    try:
        flights = [fr.read(w) for w in windows]
    finally:
        fr.close()
    grays = [(rgb.mean(axis=2), v) for rgb, v in flights]

    def measure(correction: Affine, local: LocalField | None = None) -> list[ShiftEstimate | None]:
        br = EpochReader(baseline.with_correction(correction).with_local(local))
        out: list[ShiftEstimate | None] = []
        try:
            for w, (fg, fv) in zip(windows, grays, strict=True):
                brgb, bv = br.read(w)
                valid = fv & bv
                if valid.mean() < min_valid or texture_score(fg, valid) < min_texture:
                    out.append(None)
                    continue
                sx, sy, conf = phase_shift(fg, brgb.mean(axis=2), valid)
                cx, cy = w.transform(flight.grid.transform) @ (w.width / 2, w.height / 2)
                out.append(ShiftEstimate(cx, cy, sx, sy, conf))
        finally:
            br.close()
        return out

    return measure


def pair_luts(flight: EpochScan, baseline: EpochScan, common: BaseGeometry, crs: CRS) -> np.ndarray:
    """(3, 256) LUTs matching the baseline's histograms to the flight's over the common area."""
    f_px = _pixels_in(flight, reproject_geometry(common, crs, flight.crs, densify=_step(common)))
    b_px = _pixels_in(
        baseline, reproject_geometry(common, crs, baseline.crs, densify=_step(common))
    )
    if len(f_px) < 100 or len(b_px) < 100:
        log.warning("too few common pixels for histogram matching; radiometry left unchanged")
        return np.tile(np.arange(256, dtype=np.uint8), (3, 1))
    return match_luts(b_px, f_px)


def _step(geom: BaseGeometry) -> float:
    minx, miny, maxx, maxy = geom.bounds
    return max(maxx - minx, maxy - miny, 1.0) / 64.0


def _pixels_in(scan: EpochScan, area: BaseGeometry) -> np.ndarray:
    h, w = scan.valid.shape
    inside = rasterio.features.geometry_mask(
        [area], out_shape=(h, w), transform=scan.preview_transform, invert=True
    )
    sel = inside & scan.valid
    return np.moveaxis(scan.preview, 0, -1)[sel]
