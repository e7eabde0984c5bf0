"""The public entry point: a flight/baseline pair as aligned tile pairs on the working grid.

Usage::

    with open_pair("flight.tif", "baseline.tif", gsd=0.2) as pair:
        for tp in pair.tiles(size=512, overlap=64, prefetch=2):
            detect(np.concatenate([tp.flight, tp.baseline], axis=2), tp.valid)

Tiles are all ``size`` × ``size``; at the right/bottom edge of the working grid they are
**padded** with zeros and ``valid=False`` (the overlap between neighbours is always exactly
``overlap``). ``tp.valid`` is True where both epochs have data and the area is comparable;
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
from typing import Any, Literal

import cv2
import numpy as np
import rasterio.env
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from geo.coverage import Footprints, pair_footprints
from geo.errors import ConfigError, CoregistrationError, RasterError
from geo.memory import release_memory
from geo.pairing import pair_luts, register_pair, scan_epoch, working_grid
from geo.raster import DEFAULT_MAX_PIXELS
from geo.registration import DEFAULT_MIN_PSR, Gate, Registration
from geo.warp import EpochSpec, ReaderPool
from geo.windows import Grid, TileWindow, bounds_to_window, tile_grid

__all__ = [
    "open_pair",
    "check_native_gsd",
    "see_at_gsd",
    "detail_gsd",
    "ImageryPair",
    "TilePair",
    "Registration",
    "Footprints",
    "select_tiles",
]

log = logging.getLogger(__name__)

#: the gate's defaults, in pixels of the reference GSD (see :func:`open_pair`)
DEFAULT_MAX_RESIDUAL_PX = 1.0
DEFAULT_MAX_WINDOW_RESIDUAL_PX = 2.5

#: GDAL block cache cap (bytes) applied by open_pair unless GDAL_CACHEMAX is set by the user
GDAL_CACHE_BYTES = 64 * 1024 * 1024


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


def see_at_gsd(img: np.ndarray, native_gsd: float, work_gsd: float) -> np.ndarray:
    """``img`` (H, W, bands at ``work_gsd`` m/px) as a ``native_gsd`` m capture read back onto
    the same grid: block-averaged down (``cv2.INTER_AREA``), resampled up bilinearly — what the
    windowed warp does to a ``native_gsd`` m GeoTIFF. Returned unchanged when ``native_gsd`` is
    not coarser than ``work_gsd``.

    >>> im = np.zeros((40, 40, 3), np.uint8); im[18:22, 18:22] = 255
    >>> out = see_at_gsd(im, 0.8, 0.2)
    >>> out.shape, out.dtype.name, 0 < int(out.max()) < 255
    ((40, 40, 3), 'uint8', True)
    >>> see_at_gsd(im, 0.2, 0.2) is im
    True
    """
    if not native_gsd > work_gsd:
        return img
    h, w = img.shape[:2]
    f = work_gsd / native_gsd
    small = cv2.resize(
        img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
    )
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(img.shape)


#: the GSDs (m) the flight is seen at when measuring a baseline's detail GSD (:func:`detail_gsd`)
DETAIL_LADDER_M = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0)


#: a baseline's detail GSD counts only this much coarser than its declared pixel: the estimate
#: is within about 10 % on honest files (a 0.6 m baseline measures 0.6-0.66 m), a resampled
#: product is off by 2x or more
DETAIL_MARGIN = 1.25


def _detail(gray: np.ndarray, valid: np.ndarray) -> float | None:
    """Mean gradient magnitude over the standard deviation on ``valid`` (None: too little)."""
    gx = np.abs(np.diff(gray, axis=1))[:-1, :]
    gy = np.abs(np.diff(gray, axis=0))[:, :-1]
    inner = valid[:-1, :-1] & valid[1:, :-1] & valid[:-1, 1:]
    if inner.sum() < 1000:
        return None
    sd = float(gray[valid].std())
    if sd < 2.0:  # a flat window (water, blank): no detail to compare
        return None
    return float((gx[inner] + gy[inner]).mean()) / sd


def detail_gsd(
    flight: np.ndarray, baseline: np.ndarray, valid: np.ndarray, work_gsd: float
) -> float | None:
    """The GSD (m) at which ``flight`` (seen at it, :func:`see_at_gsd`) has as much fine detail
    as ``baseline``: the baseline's resolution measured against the flight on one window of both
    dates (H, W, 3 uint8 on the working grid). None where the window is flat or too small; the
    working GSD where the baseline is at least as detailed; the ladder's end where it is coarser.

    >>> rng = np.random.default_rng(0)
    >>> f = cv2.GaussianBlur(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), (0, 0), 1.0)
    >>> v = np.ones((256, 256), bool)
    >>> round(detail_gsd(f, see_at_gsd(f, 0.6, 0.2), v, 0.2), 1)
    0.6
    >>> detail_gsd(f, f, v, 0.2)
    0.2
    """
    gf = cv2.cvtColor(flight, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(baseline, cv2.COLOR_RGB2GRAY).astype(np.float32)
    target = _detail(gb, valid)
    if target is None:
        return None
    ladder = [g for g in DETAIL_LADDER_M if g > work_gsd]
    prev_g, prev_d = work_gsd, _detail(gf, valid)
    if prev_d is None:
        return None
    if target >= prev_d:
        return work_gsd
    for g in ladder:
        d = _detail(see_at_gsd(gf, g, work_gsd), valid)
        if d is None:
            return None
        if d <= target:  # crossed: interpolate in log GSD
            t = (prev_d - target) / (prev_d - d) if prev_d > d else 1.0
            return float(np.exp(np.log(prev_g) + t * (np.log(g) - np.log(prev_g))))
        prev_g, prev_d = g, d
    return float(DETAIL_LADDER_M[-1])


def match_at(declared_m: float, resolved_m: float, full_to_m: float | None) -> float:
    """The GSD (m) to see the flight at against a baseline that declares ``declared_m`` and
    resolves ``resolved_m``: fully (``resolved_m``) up to ``full_to_m``; beyond, half-way in log
    GSD between the two, never finer than ``full_to_m`` (None: always fully).

    >>> match_at(0.3, 0.5, 0.6), match_at(0.5, 0.93, 0.6), match_at(0.4, 0.76, 0.6)
    (0.5, 0.682, 0.6)
    >>> match_at(0.5, 0.93, None), match_at(0.8, 0.8, 0.6)
    (0.93, 0.8)
    """
    if full_to_m is None or resolved_m <= full_to_m or not declared_m > 0:
        return resolved_m
    half = declared_m * (resolved_m / declared_m) ** 0.5
    return round(min(resolved_m, max(full_to_m, half)), 3)


def match_gsd_for(
    native_gsd_m: dict[str, float], work_gsd: float, above_m: float | None
) -> float | None:
    """The GSD (m) to see the flight at so it resolves no more than the baseline, or None.

    The baseline's native pixel, when it is coarser than ``above_m``, than the flight's native
    pixel (by more than 5 %) and than the working grid; otherwise None (``above_m`` None: never).

    >>> match_gsd_for({"flight": 0.05, "baseline": 0.6}, 0.2, 0.4)
    0.6
    >>> match_gsd_for({"flight": 0.05, "baseline": 0.3}, 0.2, 0.4) is None
    True
    >>> match_gsd_for({"flight": 0.5, "baseline": 0.5}, 0.2, 0.4) is None
    True
    """
    base = native_gsd_m.get("baseline")
    flight = native_gsd_m.get("flight")
    if above_m is None or base is None or not base > above_m * (1 + 1e-6):
        return None
    if flight is not None and not base > flight * 1.05:
        return None
    return float(base) if base > work_gsd else None


class ImageryPair:
    """An open flight/baseline pair on the working grid; use :func:`open_pair` to make one.

    ``flight_seen_at_m`` (set by :func:`open_pair`'s ``match_baseline_above_m``): the GSD the
    flight is seen at in :meth:`tiles` and :meth:`read_tile` — the baseline's (the coarser of its
    declared pixel and ``baseline_detail_gsd_m``), when it is so much coarser that detail only
    the flight resolves would read as change. :meth:`read_window`
    (evidence) always returns the flight as flown.
    """

    def __init__(
        self,
        flight: EpochSpec,
        baseline: EpochSpec,
        footprints: Footprints,
        registration: Registration,
        native_gsd_m: dict[str, float] | None = None,
        flight_seen_at_m: float | None = None,
    ) -> None:
        self._flight = flight
        self._baseline = baseline
        self.footprints = footprints
        self.registration = registration
        #: each epoch's native ground pixel (m): {"flight": …, "baseline": …}
        self.native_gsd_m = dict(native_gsd_m or {})
        #: the GSD (m) detection sees the flight at, when matched to a coarse baseline; else None
        self.flight_seen_at_m = flight_seen_at_m
        #: the baseline's resolution measured against the flight (:meth:`measure_baseline_detail`)
        self.baseline_detail_gsd_m: float | None = None
        self._pool = ReaderPool()
        self.usable = shapely.make_valid(footprints.common.difference(registration.not_comparable))

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
        self,
        win: TileWindow,
        pool: ReaderPool | None = None,
        *,
        masked: bool = True,
        as_flown: bool = False,
    ) -> TilePair:
        """Read one window of the working grid (may extend past it: padded).

        ``masked=False`` leaves areas that are not comparable valid (for diagnostics: measuring the
        residual misregistration there); tiles for detection are always masked. The flight is
        seen at ``flight_seen_at_m`` when that is set, unless ``as_flown``.
        """
        return self._read(win, pool, masked=masked, as_flown=as_flown)

    def _read(
        self, win: TileWindow, pool: ReaderPool | None, *, masked: bool, as_flown: bool
    ) -> TilePair:
        pool = pool or self._pool
        f_rgb, f_valid = pool.get(self._flight).read(win)
        if self.flight_seen_at_m is not None and not as_flown:
            f_rgb = see_at_gsd(f_rgb, self.flight_seen_at_m, self.gsd)
        b_rgb, b_valid = pool.get(self._baseline).read(win)
        valid = f_valid & b_valid
        transform = win.transform(self.transform)
        failed = self.registration.not_comparable
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

    def measure_baseline_detail(self, n: int = 12, size: int = 256) -> float | None:
        """The baseline's detail GSD (m): the median of :func:`detail_gsd` on up to ``n``
        windows of ``size`` px spread over the compared area (None: fewer than 3 measurable)."""
        windows = self.tile_windows(size, 0)
        if not windows:
            return None
        pick = np.unique(np.linspace(0, len(windows) - 1, min(len(windows), 4 * n)).round())
        found: list[float] = []
        for i in pick.astype(int):
            tp = self._read(windows[i], None, masked=True, as_flown=True)  # part of opening
            if tp.valid.mean() < 0.8:
                continue
            g = detail_gsd(tp.flight, tp.baseline, tp.valid, self.gsd)
            if g is not None:
                found.append(g)
            if len(found) >= n:
                break
        if len(found) < 3:
            return None
        return round(float(np.median(found)), 3)

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
        tp = self.read_tile(bounds_to_window(self.transform, grown), as_flown=True)
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


def check_native_gsd(scan: Any, role: str, limit_m: float | None, setting: str) -> None:
    """Raise :class:`RasterError` when ``scan``'s native ground pixel is coarser than ``limit_m``.

    ``setting`` names the option that moves the limit, for the message.

    >>> from types import SimpleNamespace
    >>> check_native_gsd(SimpleNamespace(path="f.tif", gsd_m=0.5), "flight", 1.0, "x")
    >>> check_native_gsd(SimpleNamespace(path="f.tif", gsd_m=2.0), "flight", 1.0, "x")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    geo.errors.RasterError: f.tif: the flight's native pixel is 2.00 m on the ground, coarser ...
    """
    if limit_m is None or not scan.gsd_m > limit_m * (1 + 1e-6):
        return
    raise RasterError(
        f"{scan.path}: the {role}'s native pixel is {scan.gsd_m:.2f} m on the ground, coarser "
        f"than {limit_m:g} m, the coarsest {role} the detector was measured to compare reliably "
        f"(model card, Input GSD); use a {role} of {limit_m:g} m or finer, or set {setting} "
        "higher to compare it anyway"
    )


def open_pair(
    flight_path: str | Path,
    baseline_path: str | Path,
    gsd: float = 0.2,
    *,
    coreg: Literal["auto", "off"] = "auto",
    max_residual_px: float = DEFAULT_MAX_RESIDUAL_PX,
    max_window_residual_px: float = DEFAULT_MAX_WINDOW_RESIDUAL_PX,
    min_psr: float = DEFAULT_MIN_PSR,
    radiometric: Literal["histogram", "off"] = "histogram",
    strict: bool = False,
    local: bool = True,
    max_local_m: float = 3.0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_flight_gsd_m: float | None = None,
    max_baseline_gsd_m: float | None = None,
    match_baseline_above_m: float | None = None,
    match_full_to_m: float | None = None,
) -> ImageryPair:
    """Open, validate, co-register and normalise a flight/baseline pair on a working grid.

    The baseline's path, in order: open both epochs (:func:`geo.pairing.scan_epoch`) →
    footprints (:func:`geo.coverage.pair_footprints`) → register
    (:func:`geo.pairing.register_pair`: global shift/affine, then with ``local`` a local field
    of at most ``max_local_m``) → readers (:meth:`geo.warp.EpochSpec.aligned`) → tile pairs.

    The gate is in pixels of the reference GSD (the coarser native GSD of the two epochs, never
    finer than ``gsd``): the pair fails when the median residual after correction exceeds
    ``max_residual_px``; a sub-window above ``max_window_residual_px`` makes its area not
    comparable; an estimate counts when its correlation peak's significance reaches
    ``min_psr``. Outcomes: :mod:`geo.registration` (``verified``, ``unverified`` — too little
    evidence, used as georeferenced —, ``failed``).

    ``strict=True`` raises :class:`CoregistrationError` when the pair failed instead of marking
    the whole common area not comparable. ``max_pixels`` refuses a raster declaring more pixels
    (None: no limit; :func:`geo.raster.open_raster`). ``max_flight_gsd_m`` /
    ``max_baseline_gsd_m`` refuse an epoch whose native pixel is coarser (None: any): a detector
    cannot see buildings in imagery far coarser than it was measured on, and comparing it anyway
    would report an area as looked at where nothing could have been found
    (:func:`check_native_gsd`). ``match_baseline_above_m``: when the baseline's native pixel is
    coarser than this and than the flight's, detection sees the flight at the baseline's GSD
    (:func:`match_gsd_for`, :attr:`ImageryPair.flight_seen_at_m`; None: never). The baseline's
    resolution is its detail measured against the flight
    (:meth:`ImageryPair.measure_baseline_detail`) where that is more than ``DETAIL_MARGIN`` times
    its declared pixel, else the declared pixel: a resampled product declares a finer pixel than
    it resolves. ``match_full_to_m``: the flight is matched fully to a baseline resolving up to
    that, and beyond it half-way in log GSD (:func:`match_at`; None: always fully).
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
    # open
    fscan = scan_epoch(flight_path, "flight", max_pixels)
    check_native_gsd(fscan, "flight", max_flight_gsd_m, "input.max_flight_gsd_m")
    bscan = scan_epoch(baseline_path, "baseline", max_pixels)
    check_native_gsd(bscan, "baseline", max_baseline_gsd_m, "input.max_baseline_gsd_m")
    crs, grid = working_grid(fscan, gsd)
    # footprints
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
    # register
    if coreg == "auto":
        try:
            gate = Gate(
                ref_gsd=max(fscan.gsd_m, bscan.gsd_m, gsd),
                max_residual_px=max_residual_px,
                max_window_px=max_window_residual_px,
                min_psr=min_psr,
            )
        except ValueError as exc:
            raise ConfigError(f"coreg: {exc}") from exc
        reg = register_pair(fspec, bspec, fp.common, gate, local=local, max_local_m=max_local_m)
    else:
        reg = Registration(
            status="off",
            gsd=gsd,
            message="co-registration off: baseline used as georeferenced (not checked)",
        )
    if reg.status == "failed" and strict:
        raise CoregistrationError(f"{flight_path} vs {baseline_path}: {reg.message}")
    # readers -> tile pairs
    release_memory()  # the scans' and registration's buffers, before the tile loop starts
    native = {"flight": round(fscan.gsd_m, 4), "baseline": round(bscan.gsd_m, 4)}
    pair = ImageryPair(fspec, bspec.aligned(reg.correction, reg.local), fp, reg, native)
    if match_baseline_above_m is not None:
        detail = pair.baseline_detail_gsd_m = pair.measure_baseline_detail()
        effective = dict(native)
        if detail is not None and detail > DETAIL_MARGIN * native["baseline"]:
            effective["baseline"] = detail
        seen = match_gsd_for(effective, gsd, match_baseline_above_m)
        if seen is not None:
            seen = match_at(native["baseline"], seen, match_full_to_m)
        pair.flight_seen_at_m = seen
        if pair.flight_seen_at_m is not None:
            log.info(
                "%s: the flight is seen at the baseline's %.2f m (declared %.2f m, detail %s m; "
                "input.match_baseline_above_m %g)",
                Path(flight_path).stem,
                pair.flight_seen_at_m,
                native["baseline"],
                detail,
                match_baseline_above_m,
            )
    return pair
