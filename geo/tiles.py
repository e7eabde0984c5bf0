"""The public entry point: a flight/baseline pair as aligned tile pairs on the working grid.

Usage::

    with open_pair("flight.tif", "baseline.tif", gsd=0.2) as pair:
        for tp in pair.tiles(size=512, overlap=64, prefetch=2):
            detect(np.concatenate([tp.flight, tp.baseline], axis=2), tp.valid)

Tiles are all ``size`` × ``size``; at the right/bottom edge of the working grid they are
**padded** with zeros and ``valid=False`` (the overlap between neighbours is always exactly
``overlap``). ``tp.valid`` is True where both epochs have data and co-registration did not fail;
areas only the flight covers are *unknown* (``pair.footprints.unknown``) and never valid.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio.env
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from geo.coreg import Measure, Registration, coregister
from geo.coverage import Footprints, pair_footprints
from geo.errors import ConfigError, CoregistrationError
from geo.pairing import coreg_windows, make_measure, pair_luts, scan_epoch, working_grid
from geo.warp import EpochSpec, ReaderPool
from geo.windows import Grid, TileWindow, bounds_to_window, tile_grid

__all__ = ["open_pair", "ImageryPair", "TilePair", "Registration", "Footprints", "select_tiles"]

log = logging.getLogger(__name__)

#: GDAL block cache cap (bytes) applied by open_pair unless GDAL_CACHEMAX is set by the user
GDAL_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class TilePair:
    """One aligned tile of both epochs at the working GSD."""

    tile: TileWindow
    flight: np.ndarray  # (h, w, 3) uint8 RGB
    baseline: np.ndarray  # (h, w, 3) uint8 RGB, warped, corrected, radiometrically normalised
    valid: np.ndarray  # (h, w) bool
    transform: Affine  # tile pixel -> pair.crs


def select_tiles(
    windows: Sequence[TileWindow], grid_transform: Affine, area: BaseGeometry
) -> list[TileWindow]:
    """The windows whose footprint overlaps ``area`` with positive area (pure)."""
    if area.is_empty or not windows:
        return []
    boxes = np.array([box(*w.bounds(grid_transform)) for w in windows])
    shapely.prepare(area)
    hit = shapely.intersects(boxes, area)
    keep = np.zeros(len(windows), dtype=bool)
    idx = np.flatnonzero(hit)
    if idx.size:
        keep[idx] = shapely.area(shapely.intersection(boxes[idx], area)) > 0
    return [w for w, k in zip(windows, keep, strict=True) if k]


class ImageryPair:
    """An open flight/baseline pair on the working grid; use :func:`open_pair` to make one."""

    def __init__(
        self,
        flight: EpochSpec,
        baseline: EpochSpec,
        footprints: Footprints,
        registration: Registration,
    ) -> None:
        self._flight = flight
        self._baseline = baseline
        self.footprints = footprints
        self.registration = registration
        self._pool = ReaderPool()
        self.usable = shapely.make_valid(footprints.common.difference(registration.failed_areas))

    # -- the working grid ------------------------------------------------------------------
    @property
    def crs(self) -> CRS:
        return self._flight.crs

    @property
    def grid(self) -> Grid:
        return self._flight.grid

    @property
    def gsd(self) -> float:
        return self.grid.gsd

    @property
    def transform(self) -> Affine:
        return self.grid.transform

    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def flight_id(self) -> str:
        return Path(self._flight.path).stem

    @property
    def baseline_id(self) -> str:
        return Path(self._baseline.path).stem

    # -- reading ---------------------------------------------------------------------------
    def tile_windows(self, size: int = 512, overlap: int = 64) -> list[TileWindow]:
        """The tiles :meth:`tiles` will read (those overlapping the usable common area)."""
        return select_tiles(
            tile_grid(self.width, self.height, size, overlap), self.transform, self.usable
        )

    def read_tile(
        self, win: TileWindow, pool: ReaderPool | None = None, *, masked: bool = True
    ) -> TilePair:
        """Read one window of the working grid (may extend past it: padded).

        ``masked=False`` leaves co-registration failures valid (for diagnostics: measuring the
        residual misregistration there); tiles for detection are always masked.
        """
        pool = pool or self._pool
        f_rgb, f_valid = pool.get(self._flight).read(win)
        b_rgb, b_valid = pool.get(self._baseline).read(win)
        valid = f_valid & b_valid
        transform = win.transform(self.transform)
        failed = self.registration.failed_areas
        if masked and not failed.is_empty and valid.any():
            tb = box(*win.bounds(self.transform))
            if failed.intersects(tb):
                valid &= rasterio.features.geometry_mask(
                    [failed], out_shape=valid.shape, transform=transform
                )
        b_rgb[~valid] = 0
        return TilePair(win, f_rgb, b_rgb, valid, transform)

    def tiles(self, size: int = 512, overlap: int = 64, prefetch: int = 2) -> Iterator[TilePair]:
        """Aligned tile pairs in row-major order, skipping tiles without valid overlap.

        ``prefetch`` tiles are decoded ahead in a thread pool (``prefetch`` threads, 0 = read in
        the caller's thread) so decoding overlaps whatever the caller does with each tile.
        """
        windows = self.tile_windows(size, overlap)
        log.info("%s: %d tiles of %d px (overlap %d)", self.flight_id, len(windows), size, overlap)
        if prefetch <= 0:
            for w in windows:
                tp = self.read_tile(w)
                if tp.valid.any():
                    yield tp
            return
        pool = ReaderPool()
        ex = ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="bw-tiles")
        pending: deque[Future[TilePair]] = deque()
        it = iter(windows)
        try:
            for w in it:
                pending.append(ex.submit(self.read_tile, w, pool))
                if len(pending) > prefetch:
                    break
            while pending:
                tp = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(ex.submit(self.read_tile, nxt, pool))
                if tp.valid.any():
                    yield tp
        finally:
            for f in pending:
                f.cancel()
            ex.shutdown(wait=True, cancel_futures=True)
            pool.close()

    def read_window(
        self, bounds: tuple[float, float, float, float], pad_m: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, Affine]:
        """Both epochs over map ``bounds`` (pair.crs) grown by ``pad_m``, at the working GSD.

        Returns ``(flight_rgb, baseline_rgb, transform)``; pixels outside either epoch are zero.
        """
        left, bottom, right, top = bounds
        if not (right > left and top > bottom):
            raise ValueError(f"bounds must be (left, bottom, right, top), got {bounds}")
        grown = (left - pad_m, bottom - pad_m, right + pad_m, top + pad_m)
        tp = self.read_tile(bounds_to_window(self.transform, grown))
        return tp.flight, tp.baseline, tp.transform

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> ImageryPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ImageryPair({self.flight_id!r} vs {self.baseline_id!r}, {self.crs.to_string()}, "
            f"{self.width}x{self.height} px @ {self.gsd} m, {self.registration.message!r})"
        )


def _dense_measure(common: BaseGeometry, fspec: EpochSpec, bspec: EpochSpec) -> Measure:
    """The measurement behind the local field: up to 144 sub-windows of 128 px."""
    windows, _ = coreg_windows(common, fspec.grid, win_px=128, max_windows=144)
    return make_measure(fspec, bspec, windows)


def open_pair(
    flight_path: str | Path,
    baseline_path: str | Path,
    gsd: float = 0.2,
    *,
    coreg: Literal["auto", "off"] = "auto",
    max_residual_m: float = 0.1,
    max_window_residual_m: float | None = 0.5,
    radiometric: Literal["histogram", "off"] = "histogram",
    strict: bool = False,
    local: bool = True,
    max_local_m: float = 3.0,
) -> ImageryPair:
    """Open, validate, co-register and normalise a flight/baseline pair on a working grid.

    The co-registration gate fails when the median residual after correction exceeds
    ``max_residual_m`` (0.1 m = 0.5 px at 0.2 m); a sub-window whose own residual exceeds
    ``max_window_residual_m`` (None = ``max_residual_m``) is marked failed (not valid).

    ``local=True`` adds a local residual-shift field (at most ``max_local_m``) where the
    misregistration left by the global shift/affine varies across the scene (measured on a
    denser set of 128 px sub-windows; see :mod:`geo.coreg_local`); it is applied per pixel to
    every baseline read and the gate judges the pair with it applied. ``local=False`` keeps the
    global correction only (areas it leaves misregistered are marked failed).

    ``strict=True`` raises :class:`CoregistrationError` when the gate fails instead of marking
    the failed areas (the whole common area, for a global failure) as not valid.
    """
    if coreg not in ("auto", "off"):
        raise ConfigError(f"coreg must be 'auto' or 'off', got {coreg!r}")
    if radiometric not in ("histogram", "off"):
        raise ConfigError(f"radiometric must be 'histogram' or 'off', got {radiometric!r}")
    if not gsd > 0:
        raise ConfigError(f"gsd must be > 0 metres, got {gsd!r}")
    if local and not max_local_m > 0:
        raise ConfigError(f"max_local_m must be > 0 metres (or local=False), got {max_local_m!r}")
    if "GDAL_CACHEMAX" not in os.environ:
        current = int(rasterio.env.get_gdal_config("GDAL_CACHEMAX") or 0)
        if current == 0 or current > GDAL_CACHE_BYTES:
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_BYTES)
    fscan = scan_epoch(flight_path, "flight")
    bscan = scan_epoch(baseline_path, "baseline")
    crs, grid = working_grid(fscan, gsd)
    fp = pair_footprints(
        fscan.footprint,
        fscan.crs,
        bscan.footprint,
        bscan.crs,
        crs,
        flight_path=str(flight_path),
        baseline_path=str(baseline_path),
    )
    fspec = EpochSpec(str(flight_path), grid, crs, fscan.stretch)
    bspec = EpochSpec(str(baseline_path), grid, crs, bscan.stretch)
    if radiometric == "histogram":
        bspec = bspec.with_lut(pair_luts(fscan, bscan, fp.common, crs))
    if coreg == "auto":
        windows, cells = coreg_windows(fp.common, grid)
        reg = coregister(
            make_measure(fspec, bspec, windows),
            cells,
            gsd,
            max_residual_m=max_residual_m,
            max_window_residual_m=max_window_residual_m,
            area=fp.common,
            local_measure=_dense_measure(fp.common, fspec, bspec) if local else None,
            max_local_m=max_local_m,
        )
        if reg.gate_passed or reg.n_estimates:
            bspec = bspec.with_correction(reg.correction).with_local(reg.local)
    else:
        reg = Registration(
            message="co-registration off: baseline used as georeferenced (not checked)"
        )
    if not reg.gate_passed:
        if strict:
            raise CoregistrationError(f"{flight_path} vs {baseline_path}: {reg.message}")
        log.warning("%s vs %s: %s", flight_path, baseline_path, reg.message)
    return ImageryPair(fspec, bspec, fp, reg)
