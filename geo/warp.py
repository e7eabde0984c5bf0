"""Read one epoch onto windows of the working grid, lazily (no raster is ever materialised).

An :class:`EpochReader` owns open GDAL handles, so it belongs to one thread; the
:class:`ReaderPool` hands each thread its own. Two read paths:

* **direct** — the source is already in the working CRS, north-up and uncorrected (the usual
  flight): a windowed, resampled read (GDAL picks overviews), placed into a zero-padded tile;
* **warped** — anything else (the baseline; a geographic or rotated flight): one
  :class:`rasterio.vrt.WarpedVRT` over the whole working grid, whose destination transform is
  ``correction @ grid.transform`` so co-registration is applied as the pixels are warped; reading
  a window warps only that window. The source is opened at the coarsest overview that is still
  at least as fine as the working GSD.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geo.coreg_local import remap_tile
from geo.errors import RasterError
from geo.raster import Stretch, overview_level_for, rgb_bands
from geo.registration import LocalField
from geo.windows import Grid, TileWindow, clip_window

__all__ = ["EpochSpec", "EpochReader", "ReaderPool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochSpec:
    """Everything needed to read one epoch onto the working grid (a picklable value)."""

    path: str
    grid: Grid
    crs: CRS
    stretch: Stretch
    correction: Affine = Affine.identity()
    lut: np.ndarray | None = field(default=None, compare=False)
    #: residual displacement field applied per pixel before ``correction`` (geo.registration)
    local: LocalField | None = field(default=None, compare=False)

    def aligned(self, correction: Affine, local: LocalField | None = None) -> EpochSpec:
        """This epoch read through ``correction`` and the ``local`` field (geo.registration)."""
        return EpochSpec(self.path, self.grid, self.crs, self.stretch, correction, self.lut, local)

    def with_lut(self, lut: np.ndarray | None) -> EpochSpec:
        return EpochSpec(
            self.path, self.grid, self.crs, self.stretch, self.correction, lut, self.local
        )


class EpochReader:
    """Reads windows of the working grid from one raster as (h, w, 3) uint8 RGB + valid mask."""

    def __init__(self, spec: EpochSpec) -> None:
        self.spec = spec
        self._ds = rasterio.open(spec.path)
        self._src: rasterio.DatasetReader | None = None
        self._vrt: WarpedVRT | None = None
        self._vrt_alpha: int | None = None
        self.bands, alpha = rgb_bands(self._ds)
        t = self._ds.transform
        north_up = t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0
        self.direct = self._ds.crs == spec.crs and north_up and spec.correction == Affine.identity()
        if not self.direct:
            self._open_vrt(alpha)

    def _open_vrt(self, alpha: int | None) -> None:
        spec = self.spec
        level = overview_level_for(self._ds, spec.grid.gsd)
        src = self._ds
        if level is not None:
            self._src = src = rasterio.open(spec.path, overview_level=level)
        src_res = min(abs(src.res[0]), abs(src.res[1]))
        if src.crs.is_geographic:  # degrees -> metres, roughly, to choose the resampling
            src_res *= 111_320.0
        resampling = Resampling.average if src_res < 0.75 * spec.grid.gsd else Resampling.bilinear
        add_alpha = alpha is None and src.nodata is None
        self._vrt = WarpedVRT(
            src,
            crs=spec.crs,
            transform=spec.correction @ spec.grid.transform,
            width=spec.grid.width,
            height=spec.grid.height,
            resampling=resampling,
            add_alpha=add_alpha,
        )
        ci = list(self._vrt.colorinterp)
        if ColorInterp.alpha in ci:
            self._vrt_alpha = ci.index(ColorInterp.alpha) + 1

    def read(self, win: TileWindow) -> tuple[np.ndarray, np.ndarray]:
        """``win`` (may leave the grid: padded with zeros, valid False) -> (rgb, valid)."""
        local = self.spec.local
        if local is None:
            return self._read(win)
        gsd = self.spec.grid.gsd
        margin = int(np.ceil(local.max_m / gsd)) + 2
        grown = TileWindow(
            win.index,
            win.row_off - margin,
            win.col_off - margin,
            win.height + 2 * margin,
            win.width + 2 * margin,
        )
        rgb, valid = self._read(grown)
        return remap_tile(rgb, valid, margin, local, win.transform(self.spec.grid.transform), gsd)

    def _read(self, win: TileWindow) -> tuple[np.ndarray, np.ndarray]:
        rgb = np.zeros((win.height, win.width, 3), dtype=np.uint8)
        valid = np.zeros((win.height, win.width), dtype=bool)
        part = clip_window(win, self.spec.grid.width, self.spec.grid.height)
        if part is None:
            return rgb, valid
        try:
            data, mask = self._read_direct(part) if self.direct else self._read_warped(part)
        except RasterioError as exc:
            raise RasterError(
                f"{self.spec.path}: reading window {part} failed (GDAL: {exc}); the file is "
                "probably truncated or corrupt"
            ) from exc
        data = self.spec.stretch.apply(data)
        if self.spec.lut is not None:
            data = np.stack([self.spec.lut[i][data[i]] for i in range(3)])
        r0, c0 = part.row_off - win.row_off, part.col_off - win.col_off
        sl = (slice(r0, r0 + part.height), slice(c0, c0 + part.width))
        rgb[sl] = np.moveaxis(data, 0, -1)
        valid[sl] = mask
        rgb[~valid] = 0
        return rgb, valid

    def _read_direct(self, part: TileWindow) -> tuple[np.ndarray, np.ndarray]:
        ds, grid = self._ds, self.spec.grid
        inv = ~ds.transform
        x0, y0 = grid.transform @ (part.col_off, part.row_off)
        x1, y1 = grid.transform @ (part.col_off + part.width, part.row_off + part.height)
        c0, r0 = inv @ (x0, y0)
        c1, r1 = inv @ (x1, y1)
        c0, r0 = max(c0, 0.0), max(r0, 0.0)
        c1, r1 = min(c1, float(ds.width)), min(r1, float(ds.height))
        window = Window(c0, r0, c1 - c0, r1 - r0)
        shape = (part.height, part.width)
        down = (c1 - c0) > 1.33 * part.width
        resampling = Resampling.average if down else Resampling.bilinear
        data = ds.read(
            list(self.bands), window=window, out_shape=(3, *shape), resampling=resampling
        )
        mask = ds.read_masks(1, window=window, out_shape=shape, resampling=Resampling.nearest)
        return data, mask > 0

    def _read_warped(self, part: TileWindow) -> tuple[np.ndarray, np.ndarray]:
        assert self._vrt is not None
        window = Window(part.col_off, part.row_off, part.width, part.height)
        if self._vrt_alpha is not None:  # one warp for colour and validity
            data = self._vrt.read([*self.bands, self._vrt_alpha], window=window)
            return data[:3], data[3] > 0
        data = self._vrt.read(list(self.bands), window=window)
        mask = self._vrt.read_masks(1, window=window)
        return data, mask > 0

    def close(self) -> None:
        for h in (self._vrt, self._src, self._ds):
            if h is not None:
                h.close()


class ReaderPool:
    """One :class:`EpochReader` per (thread, spec); all closed together by :meth:`close`."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[EpochReader] = []
        self._lock = threading.Lock()

    def get(self, spec: EpochSpec) -> EpochReader:
        cache: dict[int, EpochReader] = getattr(self._local, "cache", None) or {}
        self._local.cache = cache
        key = id(spec)
        reader = cache.get(key)
        if reader is None or reader.spec is not spec:
            reader = EpochReader(spec)
            cache[key] = reader
            with self._lock:
                self._all.append(reader)
        return reader

    def close(self) -> None:
        with self._lock:
            for r in self._all:
                r.close()
            self._all.clear()
