"""Synthetic rasters for the benchmarks, generated quickly in /tmp (never committed).

* :func:`texture_tif` — a noise-texture GeoTIFF written block by block (bounded memory), tiled,
  with overviews.
* :func:`mosaic_vrt` — a large flight as a VRT mosaic of one texture tile repeated (a 40,000² px
  flight in seconds, no disk), at any GSD; readers cannot tell it from a big GeoTIFF.
* :func:`warped_copy` — a baseline made by warping a raster into another CRS/GSD with a known
  shift, window by window.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

GK = CRS.from_epsg(4544)
ORIGIN = (500_000.0, 3_270_000.0)


def _block(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = np.zeros((h, w), np.float32)
    for sigma, weight in ((2.0, 0.6), (8.0, 1.0), (30.0, 1.2)):
        n = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        base += weight * n / (n.std() + 1e-6)
    img = np.stack([base * 25 + 110, base * 22 + 120, base * 20 + 100])
    for _ in range(h * w // 20000):
        r, c = rng.integers(0, max(1, h - 120)), rng.integers(0, max(1, w - 120))
        img[:, r : r + rng.integers(20, 120), c : c + rng.integers(20, 120)] = rng.integers(
            150, 250
        )
    return np.clip(img, 0, 255).astype(np.uint8)


def texture_tif(path: Path, size: int, gsd: float, seed: int = 0, block: int = 2048) -> Path:
    """A ``size``² px RGB uint8 GeoTIFF in :data:`GK` at ``gsd``, written in blocks."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint8",
        crs=GK,
        transform=Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        photometric="RGB",
    )
    tmp = path.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", **profile) as ds:
        for r in range(0, size, block):
            for c in range(0, size, block):
                h, w = min(block, size - r), min(block, size - c)
                ds.write(_block(rng, h, w), window=Window(c, r, w, h))
        ds.build_overviews([2, 4, 8, 16], Resampling.average)
    tmp.rename(path)
    return path


def mosaic_vrt(
    path: Path, tile: Path, ground_m: float, gsd: float, shift: tuple[float, float] = (0, 0)
) -> Path:
    """``ground_m`` × ``ground_m`` of ``tile`` repeated, at ``gsd`` (resampled), shifted (m)."""
    with rasterio.open(tile) as t:
        ts, tres = t.width, t.res[0]
    step = int(round(ts * tres / gsd))
    size = int(round(ground_m / gsd))
    n = -(-size // step)
    x0, y0 = ORIGIN[0] + shift[0], ORIGIN[1] + shift[1]
    bands = []
    for b in (1, 2, 3):
        srcs = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{tile}</SourceFilename>'
            f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{ts}" ySize="{ts}"/>'
            f'<DstRect xOff="{j * step}" yOff="{i * step}" xSize="{step}" ySize="{step}"/>'
            "</SimpleSource>"
            for i in range(n)
            for j in range(n)
        )
        ci = ("Red", "Green", "Blue")[b - 1]
        bands.append(
            f'<VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{ci}</ColorInterp>{srcs}</VRTRasterBand>'
        )
    xml = (
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{GK.to_wkt()}</SRS>'
        f"<GeoTransform>{x0}, {gsd}, 0, {y0}, 0, {-gsd}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )
    path.write_text(xml)
    return path


def warped_copy(
    src_path: Path,
    path: Path,
    crs: CRS,
    gsd: float,
    shift: tuple[float, float],
    gain: float = 0.8,
    offset: float = 30.0,
) -> Path:
    """``src_path`` warped to ``crs`` at about ``gsd`` m, content displaced by ``shift`` m."""
    if path.exists():
        return path
    with rasterio.open(src_path) as src:
        t = src.transform
        moved = Affine.translation(*shift) @ t
        with WarpedVRT(src, src_transform=moved, crs=crs, resampling=Resampling.average) as v0:
            scale = gsd / abs(v0.res[0]) if crs.is_projected else gsd / (abs(v0.res[0]) * 111_320)
            w, h = int(v0.width / scale * abs(v0.res[0]) / abs(v0.res[0])), int(v0.height / scale)
            tr = v0.transform @ Affine.scale(v0.width / w, v0.height / h)
        with WarpedVRT(
            src,
            src_transform=moved,
            crs=crs,
            transform=tr,
            width=w,
            height=h,
            resampling=Resampling.average,
        ) as v:
            profile = dict(
                driver="GTiff",
                width=w,
                height=h,
                count=3,
                dtype="uint8",
                crs=crs,
                transform=tr,
                tiled=True,
                blockxsize=512,
                blockysize=512,
                photometric="RGB",
            )
            tmp = path.with_suffix(".part.tif")
            with rasterio.open(tmp, "w", **profile) as out:
                for r in range(0, h, 1024):
                    win = Window(0, r, w, min(1024, h - r))
                    data = v.read([1, 2, 3], window=win).astype(np.float32) * gain + offset
                    out.write(np.clip(data, 0, 255).astype(np.uint8), window=win)
                out.build_overviews([2, 4, 8], Resampling.average)
    tmp.rename(path)
    return path
