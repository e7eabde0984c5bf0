"""Setting up a flight/baseline pair: scan each epoch, choose the working grid, place the
co-registration sub-windows, measure and register them, and compute the radiometric LUTs.

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

from geo.coreg import coregister, phase_shift, texture_score
from geo.coverage import mask_footprint
from geo.crs import ground_gsd_m, reproject_geometry, working_crs_for
from geo.errors import RasterError
from geo.radiometry import match_luts
from geo.raster import (
    DEFAULT_MAX_PIXELS,
    Stretch,
    compute_stretch,
    open_raster,
    read_decimated,
    rgb_bands,
    warn_unflagged_alpha,
)
from geo.registration import Gate, LocalField, Measure, Registration, ShiftEstimate
from geo.warp import EpochReader, EpochSpec
from geo.windows import Grid, TileWindow, bounds_to_window, grid_for_bounds

__all__ = [
    "EpochScan",
    "scan_epoch",
    "working_grid",
    "coreg_windows",
    "make_measure",
    "register_pair",
    "pair_luts",
]

log = logging.getLogger(__name__)


@dataclass
class EpochScan:
    """A decimated look at one epoch: stretch, 8-bit preview, valid mask and footprint."""

    path: str
    crs: CRS
    bounds: tuple[float, float, float, float]
    res: float  # native pixel size in CRS units
    gsd_m: float  # native pixel size on the ground (m)
    stretch: Stretch
    preview: np.ndarray  # (3, h, w) uint8, stretched
    valid: np.ndarray  # (h, w) bool
    preview_transform: Affine
    footprint: BaseGeometry  # in self.crs


def scan_epoch(
    path: str | Path, role: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> EpochScan:
    """Open and validate ``path``; one decimated read gives stretch, preview and footprint."""
    with open_raster(path, role=role, max_pixels=max_pixels) as ds:
        bands, alpha = rgb_bands(ds)
        if alpha is None:
            warn_unflagged_alpha(ds, f"{role} {path}")
        data, valid, tr = read_decimated(ds, bands, path=f"{role} {path}")
        stretch = compute_stretch(data, valid, ds.dtypes[0])
        footprint = mask_footprint(valid, tr, path=f"{role} {path}")
        _refuse_blank(data, valid, f"{role} {path}")
        bounds: tuple[float, float, float, float] = tuple(ds.bounds)  # type: ignore[assignment]
        res = float(min(abs(ds.res[0]), abs(ds.res[1])))
        return EpochScan(
            path=str(path),
            crs=ds.crs,
            bounds=bounds,
            res=res,
            gsd_m=ground_gsd_m(ds.crs, bounds, res, f"{role} {path}"),
            stretch=stretch,
            preview=stretch.apply(data),
            valid=valid,
            preview_transform=tr,
            footprint=footprint,
        )


#: a valid area whose every band varies by less than this (DN, 8-bit scale) is blank
BLANK_STD = 0.5


def _refuse_blank(data: np.ndarray, valid: np.ndarray, name: str) -> None:
    """One clear error when the valid pixels are one colour: nothing to compare with."""
    px = data[:, valid].astype(np.float64)
    scale = 255.0 / max(float(px.max()), 255.0) if px.size else 1.0
    if px.size and float((px * scale).std(axis=1).max()) < BLANK_STD:
        raise RasterError(
            f"{name}: the image is blank (one colour, {px[:, 0].astype(int).tolist()}, over all "
            "its valid pixels): nothing to compare; check the export, or set its nodata value "
            "so the blank area counts as no data"
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
    and the cell (map area) each one stands for.

    Up to ``max_windows`` windows; on a small common area they overlap (spacing down to half a
    window), so a small pair still gets enough independent looks for a robust decision.
    """
    for size in (win_px, win_px // 2, win_px // 4):
        win_m = size * grid.gsd
        spacing = max(win_m, math.sqrt(max(common.area, 1.0) / max_windows))
        minx, miny, maxx, maxy = common.bounds
        if ((maxx - minx) // spacing) * ((maxy - miny) // spacing) < 16:
            spacing = max(win_m / 2.0, math.sqrt(max(common.area, 1.0) / max_windows))
        minx, miny, maxx, maxy = common.bounds
        nx = max(1, int((maxx - minx) // spacing))
        ny = max(1, int((maxy - miny) // spacing))
        ox = minx + ((maxx - minx) - nx * spacing) / 2.0
        oy = miny + ((maxy - miny) - ny * spacing) / 2.0
        wins: list[TileWindow] = []
        cells: list[BaseGeometry] = []
        prepared = prep(common.buffer(grid.gsd))
        half = win_m / 2.0
        taken: set[tuple[float, float]] = set()
        for j in range(ny):
            for i in range(nx):
                cx, cy = ox + (i + 0.5) * spacing, oy + (j + 0.5) * spacing
                # overlapping windows on a small area: pull the edge ones inside the bounds
                cx = min(max(cx, minx + half), maxx - half)
                cy = min(max(cy, miny + half), maxy - half)
                if (round(cx, 3), round(cy, 3)) in taken:
                    continue
                taken.add((round(cx, 3), round(cy, 3)))
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
        br = EpochReader(baseline.aligned(correction, local))
        out: list[ShiftEstimate | None] = []
        try:
            for w, (fg, fv) in zip(windows, grays, strict=True):
                brgb, bv = br.read(w)
                valid = fv & bv
                if valid.mean() < min_valid or texture_score(fg, valid) < min_texture:
                    out.append(None)
                    continue
                ps = phase_shift(fg, brgb.mean(axis=2), valid)
                cx, cy = w.transform(flight.grid.transform) @ (w.width / 2, w.height / 2)
                out.append(ShiftEstimate(cx, cy, ps.sx, ps.sy, ps.confidence, ps.psr))
        finally:
            br.close()
        return out

    return measure


def register_pair(
    flight: EpochSpec,
    baseline: EpochSpec,
    common: BaseGeometry,
    gate: Gate,
    *,
    local: bool = True,
    max_local_m: float = 3.0,
) -> Registration:
    """Measure sub-windows of the common area and register the baseline to the flight.

    Global (up to 36 sub-windows of 256 px), then, with ``local``, a local field measured on up
    to 144 sub-windows of 128 px; see :func:`geo.coreg.coregister` for the outcomes.
    """
    windows, cells = coreg_windows(common, flight.grid)
    dense: Measure | None = None
    if local:
        dense_windows, _ = coreg_windows(common, flight.grid, win_px=128, max_windows=144)
        dense = make_measure(flight, baseline, dense_windows)
    return coregister(
        make_measure(flight, baseline, windows),
        cells,
        flight.grid.gsd,
        gate,
        area=common,
        local_measure=dense,
        max_local_m=max_local_m,
    )


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
