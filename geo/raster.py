"""Open and validate rasters; pick RGB/alpha bands; decimated reads; the robust 8-bit stretch.

Everything here reads through overviews or decimated reads: a whole raster is never decoded at
full resolution. Errors name the file and say how to fix it.

>>> Stretch.identity(3).apply(np.array([[[7]], [[8]], [[9]]], dtype=np.uint8)).ravel().tolist()
[7, 8, 9]
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from geo.crs import require_crs
from geo.errors import InputFileError, RasterError
from geo.jpegtiles import JpegTiles

__all__ = [
    "RasterInfo",
    "Stretch",
    "open_raster",
    "raster_info",
    "rgb_bands",
    "warn_unflagged_alpha",
    "overview_level_for",
    "overview_factors",
    "open_overview",
    "read_decimated",
    "compute_stretch",
    "SUPPORTED_DTYPES",
]

log = logging.getLogger(__name__)

#: the data types of drone and satellite RGB products; anything else is refused at the door
#: (a float orthophoto holding NaN/inf would otherwise be read as garbage)
SUPPORTED_DTYPES = ("uint8", "uint16")
#: largest raster (width x height) opened unless ``max_pixels`` says otherwise: 60,000² px,
#: e.g. 3 km x 3 km at 5 cm; a bigger declared size is refused before any work
DEFAULT_MAX_PIXELS = 3_600_000_000
#: long side (px) of the decimated reads used for stretch, footprints and histograms
DECIMATED_SIZE = 1024


@dataclass(frozen=True)
class RasterInfo:
    """What ``buildwatch inspect`` prints about a raster."""

    path: str
    driver: str
    crs: str
    width: int
    height: int
    count: int
    dtype: str
    res: tuple[float, float]
    bounds: tuple[float, float, float, float]
    rgb_bands: tuple[int, int, int]
    alpha_band: int | None
    nodata: float | None
    overviews: tuple[int, ...]
    block_shape: tuple[int, int]


@dataclass(frozen=True)
class Stretch:
    """Per-band linear stretch ``lo..hi -> 0..255`` (identity for uint8 input)."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    identity_uint8: bool = False

    @classmethod
    def identity(cls, bands: int = 3) -> Stretch:
        return cls((0.0,) * bands, (255.0,) * bands, identity_uint8=True)

    def apply(self, arr: np.ndarray) -> np.ndarray:
        """(bands, h, w) array of any dtype -> (bands, h, w) uint8."""
        if self.identity_uint8 and arr.dtype == np.uint8:
            return arr
        out = np.empty(arr.shape, dtype=np.uint8)
        for i in range(arr.shape[0]):
            lo, hi = self.lo[i], self.hi[i]
            scaled = (arr[i].astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))
            np.clip(scaled, 0, 255, out=scaled)
            out[i] = (scaled + 0.5).astype(np.uint8)
        return out


def open_raster(
    path: str | Path, role: str = "raster", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> rasterio.DatasetReader:
    """Open ``path`` read-only and validate it for buildwatch at the door, before any work:
    CRS, bands, data type (uint8/uint16), declared size (``max_pixels``; None = no limit) and
    completeness (the first and last full-resolution blocks must decode: a file cut short while
    being copied is refused even when its overviews still read).

    Raises :class:`InputFileError` (missing file, directory), :class:`RasterError` (not a raster,
    too few bands, unsupported dtype, too large, truncated) or :class:`geo.errors.CRSError`.
    """
    p = Path(path)
    if not p.exists() and "://" not in str(path) and not str(path).startswith("/vsi"):
        raise InputFileError(f"{role} {path}: no such file; check the path")
    if p.is_dir():
        raise InputFileError(
            f"{role} {path}: is a directory, not a raster; pass the orthophoto file inside it "
            "(e.g. odm_orthophoto/odm_orthophoto.tif)"
        )
    try:
        with warnings.catch_warnings():  # a bad file gets one clear line below, not GDAL noise
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(p)
    except RasterioError as exc:
        raise RasterError(
            f"{role} {path}: not a readable raster (GDAL: {exc}); is the file truncated or "
            "corrupt? re-export or re-download it"
        ) from exc
    try:
        if p.suffix.lower() in (".tif", ".tiff") and ds.driver not in ("GTiff", "COG"):
            raise RasterError(
                f"{role} {path}: is a {ds.driver} image, not a GeoTIFF (despite its name); "
                "export the orthophoto as a GeoTIFF with its CRS"
            )
        require_crs(ds.crs, path)
        if ds.count < 3:
            raise RasterError(
                f"{role} {path}: has {ds.count} band(s); an RGB orthophoto needs 3 bands "
                "(or 4 with alpha)"
            )
        if ds.dtypes[0] not in SUPPORTED_DTYPES:
            raise RasterError(
                f"{role} {path}: data type {ds.dtypes[0]} is not supported (only "
                f"{' and '.join(SUPPORTED_DTYPES)} RGB); convert it, e.g. "
                "gdal_translate -ot Byte -scale IN.tif OUT.tif"
            )
        if ds.transform.is_identity:
            raise RasterError(f"{role} {path}: has a CRS but no geotransform; georeference it")
        if max_pixels is not None and ds.width * ds.height > max_pixels:
            raise RasterError(
                f"{role} {path}: declares {ds.width} x {ds.height} px "
                f"({ds.width * ds.height / 1e9:.1f} Gpx), above the limit of "
                f"{max_pixels / 1e9:.1f} Gpx; split the flight into parts, or raise "
                "input.max_pixels in the config if it is really that large"
            )
        _check_complete(ds, role, path)
    except Exception:
        ds.close()
        raise
    return ds


def _check_complete(ds: rasterio.DatasetReader, role: str, path: str | Path) -> None:
    """Decode the first and the last full-resolution block of band 1 (cheap: two blocks)."""
    bh, bw = ds.block_shapes[0]
    last_row = ((ds.height - 1) // bh) * bh
    last_col = ((ds.width - 1) // bw) * bw
    for row, col in ((0, 0), (last_row, last_col)):
        window = Window(col, row, min(bw, ds.width - col), min(bh, ds.height - row))
        try:
            ds.read(1, window=window)
        except RasterioError as exc:
            raise RasterError(
                f"{role} {path}: the full-resolution data is incomplete (block at row {row}, "
                f"column {col} does not decode: {exc}); the file was probably truncated while "
                "being copied: copy it again"
            ) from exc


def rgb_bands(ds: rasterio.DatasetReader) -> tuple[tuple[int, int, int], int | None]:
    """((r, g, b) band indexes, alpha band index or None) from colour interpretation.

    Bands tagged red/green/blue are used when present, else bands 1-3; a band tagged alpha (or
    the 4th band of a 4-band uint8 raster whose mask flags say alpha, as ODM writes) is alpha.
    """
    ci = list(ds.colorinterp)
    alpha = next((i + 1 for i, c in enumerate(ci) if c == ColorInterp.alpha), None)
    if (
        alpha is None and ds.count == 4 and any(f.name == "alpha" for f in ds.mask_flag_enums[0])
    ):  # pragma: no cover - GDAL reports colorinterp alpha in this case
        alpha = 4
    try:
        rgb = (ci.index(ColorInterp.red) + 1, ci.index(ColorInterp.green) + 1)
        rgb3 = (*rgb, ci.index(ColorInterp.blue) + 1)
    except ValueError:
        rgb3 = tuple(b for b in range(1, ds.count + 1) if b != alpha)[:3]  # type: ignore[assignment]
    return rgb3, alpha


def warn_unflagged_alpha(ds: rasterio.DatasetReader, name: str) -> bool:
    """Warn (and return True) when a 4-band uint8 raster's band 4 holds only 0 and 255 but is
    not flagged alpha: its transparent part would then be read as black imagery and counted as
    compared. GDAL's reading is kept (no guessing); the warning names the file and the fix."""
    if ds.count != 4 or ds.dtypes[3] != "uint8" or ds.nodata is not None:
        return False
    if ds.colorinterp[3] == ColorInterp.alpha or any(
        f.name in ("alpha", "per_dataset") for f in ds.mask_flag_enums[0]
    ):
        return False
    k = min(32, ds.width, ds.height)  # corners and centre: a few blocks, whatever the size
    cols, rows = (0, (ds.width - k) // 2, ds.width - k), (0, (ds.height - k) // 2, ds.height - k)
    values = np.unique(
        np.concatenate([ds.read(4, window=Window(c, r, k, k)).ravel() for c in cols for r in rows])
    )
    if not (len(values) == 2 and values[0] == 0 and values[1] == 255):
        return False
    log.warning(
        "%s: band 4 holds only 0 and 255 but is not flagged as alpha, so its transparent part "
        "is read as black imagery and counted as compared; if it is a mask, flag it: "
        "gdal_translate -colorinterp_4 alpha IN.tif OUT.tif",
        name,
    )
    return True


def raster_info(path: str | Path) -> RasterInfo:
    """Open, validate and describe ``path``."""
    with open_raster(path) as ds:
        rgb, alpha = rgb_bands(ds)
        return RasterInfo(
            path=str(path),
            driver=ds.driver,
            crs=ds.crs.to_string(),
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtype=ds.dtypes[0],
            res=(float(ds.res[0]), float(ds.res[1])),
            bounds=tuple(ds.bounds),  # type: ignore[arg-type]
            rgb_bands=rgb,
            alpha_band=alpha,
            nodata=ds.nodata,
            overviews=tuple(ds.overviews(1)),
            block_shape=tuple(ds.block_shapes[0]),  # type: ignore[arg-type]
        )


def open_overview(path: str, level: int) -> rasterio.DatasetReader:
    """``path`` opened at its overview ``level`` (an index into ``ds.overviews``)."""
    return rasterio.open(path, overview_level=level)


def overview_factors(ds: rasterio.DatasetReader) -> list[int]:
    """Reduction factors of the file's own overviews, by level.

    GDAL's *implicit* overviews of a JPEG GeoTIFF are not used: rasterio's GDAL keeps about 1 MB
    per tile decoded through them for the life of the process. A JPEG flight without overviews is
    read at reduced size by :mod:`geo.jpegtiles` instead.
    """
    return [int(f) for f in ds.overviews(1)]


def overview_level_for(ds: rasterio.DatasetReader, target_res: float) -> int | None:
    """Index of the coarsest overview whose resolution is still <= ``target_res``, or None.

    Pass it to ``rasterio.open(path, overview_level=...)`` so reads decode no finer than needed.
    """
    base = min(abs(ds.res[0]), abs(ds.res[1]))
    best = None
    for i, factor in enumerate(overview_factors(ds)):
        if base * factor <= target_res * 1.0001:
            best = i
    return best


#: rasters up to this many pixels are resampled by GDAL in one read; larger ones in strips
SMALL_READ_PX = 2048 * 2048


def _area_resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """(bands, H, W) -> (bands, h, w) by area averaging (cv2 handles up to 4 channels at once)."""
    out = [
        cv2.resize(np.ascontiguousarray(np.moveaxis(img[i : i + 3], 0, -1)), (w, h),
                   interpolation=cv2.INTER_AREA).reshape(h, w, -1)
        for i in range(0, img.shape[0], 3)
    ]  # fmt: skip
    return np.moveaxis(np.concatenate(out, axis=2), -1, 0)


def _read_reduced_strips(
    src: rasterio.DatasetReader,
    bands: tuple[int, ...],
    h: int,
    w: int,
    jpeg: JpegTiles | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A big raster reduced to (h, w) strip by strip: memory stays a strip, not the raster.

    Each strip is read at the source's own resolution — or, for a JPEG file (``jpeg``), decoded
    directly at 1/2, 1/4 or 1/8 by DCT scaling — (GDAL's resampling of a whole large raster
    holds it all and is slow), reduced by the remaining whole factor with area averaging, and
    the reduced strips are brought to exactly (h, w) at the end.
    """
    big_h, big_w = src.height, src.width
    f = max(1, int(min(big_h / h, big_w / w)))
    dct = max((d for d in (8, 4, 2) if d <= f), default=1) if jpeg is not None else 1
    f2 = max(1, f // dct)  # left for area averaging after the DCT reduction
    rows = jpeg.block[0] * f2 if jpeg is not None else f * max(1, 512 // f)
    parts, masks = [], []
    for r0 in range(0, big_h, rows):
        rh = min(rows, big_h - r0)
        if jpeg is not None:
            part = jpeg.read(r0, 0, rh, big_w, dct)
            valid = np.full(part.shape[1:], 255, np.uint8)  # JpegTiles: no mask, no nodata
        else:
            win = Window(0, r0, big_w, rh)
            part = src.read(list(bands), window=win)
            valid = src.read_masks(1, window=win)
        sw, sh = max(1, part.shape[2] // f2), max(1, -(-part.shape[1] // f2))
        parts.append(_area_resize(part, sw, sh))
        masks.append(cv2.resize(valid, (sw, sh), interpolation=cv2.INTER_NEAREST))
    data = np.concatenate(parts, axis=1)
    mask = np.concatenate(masks, axis=0)
    if data.shape[1:] != (h, w):
        data = _area_resize(data, w, h)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    return data, mask > 0


def read_decimated(
    ds: rasterio.DatasetReader,
    bands: tuple[int, ...],
    max_size: int = DECIMATED_SIZE,
    path: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, Affine]:
    """The whole raster resampled so its long side is <= ``max_size`` (uses overviews; a JPEG
    file without them is decoded at reduced size by :mod:`geo.jpegtiles`).

    Returns ``(data (bands, h, w), valid (h, w) bool, transform)``.
    """
    scale = max(ds.width, ds.height) / max_size
    scale = max(scale, 1.0)
    h = max(1, int(math.ceil(ds.height / scale)))
    w = max(1, int(math.ceil(ds.width / scale)))
    level = overview_level_for(ds, min(abs(ds.res[0]), abs(ds.res[1])) * scale)
    jpeg = (
        JpegTiles.open(ds) if level is None and scale >= 2 and tuple(bands) == (1, 2, 3) else None
    )
    try:
        src = open_overview(ds.name, level) if level is not None else ds
        try:
            if jpeg is not None:
                data, mask = _read_reduced_strips(src, bands, h, w, jpeg)
            elif src.width * src.height <= SMALL_READ_PX:
                data = src.read(
                    list(bands), out_shape=(len(bands), h, w), resampling=Resampling.average
                )
                mask = src.read_masks(1, out_shape=(h, w), resampling=Resampling.nearest) > 0
            else:
                data, mask = _read_reduced_strips(src, bands, h, w)
        finally:
            if src is not ds:
                src.close()
            if jpeg is not None:
                jpeg.close()
    except RasterioError as exc:
        raise RasterError(
            f"{path or ds.name}: reading failed (GDAL: {exc}); the file is probably truncated "
            "or corrupt; re-export or re-download it"
        ) from exc
    transform = ds.transform @ Affine.scale(ds.width / w, ds.height / h)
    return data, mask, transform


def compute_stretch(
    data: np.ndarray, valid: np.ndarray, dtype: str, p_lo: float = 2.0, p_hi: float = 98.0
) -> Stretch:
    """Stretch parameters from a decimated read: identity for uint8, percentiles otherwise."""
    if dtype == "uint8":
        return Stretch.identity(data.shape[0])
    lo, hi = [], []
    for band in data:
        px = band[valid]
        if px.size == 0:
            lo.append(0.0)
            hi.append(1.0)
            continue
        a, b = np.percentile(px, [p_lo, p_hi])
        lo.append(float(a))
        hi.append(float(b) if b > a else float(a) + 1.0)
    log.debug("stretch %s: lo=%s hi=%s", dtype, lo, hi)
    return Stretch(tuple(lo), tuple(hi))
