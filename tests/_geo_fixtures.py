"""Seeded, tiny raster fixtures for the geo tests and benchmarks (no real imagery).

``make_world`` draws a textured scene (smooth noise + bright "roofs"); ``write_epoch`` samples
it into a GeoTIFF in any CRS/GSD/dtype, optionally displaced by a known shift/rotation (in the
world's CRS), with an alpha band or nodata.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.warp import calculate_default_transform, reproject

GK = CRS.from_epsg(4544)  # CGCS2000 3-degree Gauss–Krüger CM 105E
ORIGIN = (500_000.0, 3_270_000.0)  # ~29.5N 105E


def make_world(size: int = 1200, seed: int = 0, gsd: float = 0.2) -> tuple[np.ndarray, Affine]:
    """(3, size, size) uint8 textured scene and its transform in :data:`GK`."""
    rng = np.random.default_rng(seed)
    base = np.zeros((size, size), np.float32)
    for sigma, weight in ((1.5, 0.5), (6.0, 1.0), (25.0, 1.5)):
        n = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
        base += weight * n / (n.std() + 1e-6)
    img = np.stack([base * 25 + 110, base * 22 + 120, base * 20 + 100])
    for _ in range(size * size // 6000):
        r, c = rng.integers(0, size - 40, 2)
        h, w = rng.integers(8, 40, 2)
        img[:, r : r + h, c : c + w] = rng.integers(150, 250)
    world = np.clip(img, 0, 255).astype(np.uint8)
    return world, Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1])


def write_epoch(
    path: Path,
    world: np.ndarray,
    world_transform: Affine,
    *,
    crs: CRS = GK,
    gsd: float | None = None,
    shift: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
    crop: tuple[float, float, float, float] | None = None,
    dtype: str = "uint8",
    alpha: bool = False,
    alpha_cut: float = 0.0,
    gain: tuple[float, float] = (1.0, 0.0),
    overviews: bool = False,
) -> Path:
    """Sample ``world`` into a GeoTIFF at ``path``.

    The content is displaced by ``shift`` metres and rotated by ``rotation_deg`` about the world
    centre (both in :data:`GK`), so the true correction is ``C = shift ∘ rotation``. ``crop`` is
    (left, bottom, right, top) in :data:`GK` of the output extent; ``alpha_cut`` makes the left
    fraction of the raster transparent; ``gain`` = (a, b) changes colours to a*v+b.
    """
    h, w = world.shape[1:]
    cx, cy = world_transform @ (w / 2, h / 2)
    moved = (
        Affine.translation(*shift)
        @ Affine.translation(cx, cy)
        @ Affine.rotation(rotation_deg)
        @ Affine.translation(-cx, -cy)
        @ world_transform
    )
    left, top = world_transform @ (0, 0)
    right, bottom = world_transform @ (w, h)
    if crop is not None:
        left, bottom, right, top = crop
    src_res = world_transform.a
    if crs == GK:
        res = gsd or src_res
        transform = Affine(res, 0, left, 0, -res, top)
        width, height = int(round((right - left) / res)), int(round((top - bottom) / res))
    else:
        transform, width, height = calculate_default_transform(
            GK,
            crs,
            int(round((right - left) / src_res)),
            int(round((top - bottom) / src_res)),
            left,
            bottom,
            right,
            top,
            resolution=gsd,
        )
    out = np.zeros((3, height, width), np.float32)
    cover = np.zeros((height, width), np.float32)
    for b in range(3):
        reproject(
            world[b].astype(np.float32),
            out[b],
            src_transform=moved,
            src_crs=GK,
            dst_transform=transform,
            dst_crs=crs,
            resampling=Resampling.bilinear,
            src_nodata=None,
            dst_nodata=np.nan,
        )
    cover = np.isfinite(out[0])
    data = np.nan_to_num(out) * gain[0] + gain[1]
    if dtype == "uint16":
        data = data * 40 + 1000
    data = np.clip(data, 0, np.iinfo(dtype).max).astype(dtype)
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=4 if alpha else 3,
        dtype=dtype,
        crs=crs,
        transform=transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        photometric="RGB" if dtype == "uint8" else "MINISBLACK",
    )
    if alpha:
        profile["alpha"] = "YES" if dtype == "uint8" else "UNSPECIFIED"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, [1, 2, 3])
        if alpha:
            a = np.where(cover, np.iinfo(dtype).max, 0).astype(dtype)
            a[:, : int(width * alpha_cut)] = 0
            ds.write(a, 4)
            ds.colorinterp = [
                ColorInterp.red,
                ColorInterp.green,
                ColorInterp.blue,
                ColorInterp.alpha,
            ]
        if overviews:
            ds.build_overviews([2, 4, 8], Resampling.average)
    return path


def write_pair(
    tmp: Path,
    *,
    shift=(0.0, 0.0),
    rotation_deg=0.0,
    baseline_crs=CRS.from_epsg(3857),
    size: int = 1000,
    seed: int = 0,
    **flight_kw,
) -> tuple[Path, Path, np.ndarray, Affine]:
    """A flight (GK, 0.2 m, inner part of the world) and a baseline (0.3 m, shifted)."""
    world, wt = make_world(size + 200, seed)
    x0, y0 = wt @ (100, 100)
    crop = (x0, y0 - size * 0.2, x0 + size * 0.2, y0)
    flight = write_epoch(tmp / "flight.tif", world, wt, crop=crop, **flight_kw)
    baseline = write_epoch(
        tmp / "baseline.tif",
        world,
        wt,
        crs=baseline_crs,
        gsd=0.3 if baseline_crs == GK else None,
        shift=shift,
        rotation_deg=rotation_deg,
        gain=(0.8, 30.0),
    )
    return flight, baseline, world, wt


def write_step_pair(
    tmp: Path,
    west: tuple[float, float],
    east: tuple[float, float],
    *,
    size: int = 1000,
    seed: int = 3,
    gsd: float = 0.2,
) -> tuple[Path, Path, tuple[float, float, float, float]]:
    """Flight (GK, ``gsd``) and a baseline (GK 0.3 m) whose west half is displaced by ``west``
    and east half by ``east`` metres: a seam down the middle, as from a mosaic of two
    differently registered images. Returns (flight, baseline, flight bounds)."""
    world, wt = make_world(size + 200, seed)
    x0, y0 = wt @ (100, 100)
    crop = (x0, y0 - size * gsd, x0 + size * gsd, y0)
    flight = write_epoch(tmp / "flight.tif", world, wt, crop=crop)
    halves = [
        write_epoch(tmp / f"half{i}.tif", world, wt, crs=GK, gsd=0.3, shift=s, gain=(0.8, 30.0))
        for i, s in enumerate((west, east))
    ]
    with rasterio.open(halves[0]) as wds, rasterio.open(halves[1]) as eds:
        xs = wds.transform.c + wds.transform.a * (np.arange(wds.width) + 0.5)
        data = np.where((xs >= (crop[0] + crop[2]) / 2)[None, None, :], eds.read(), wds.read())
        profile = wds.profile
    baseline = tmp / "baseline.tif"
    with rasterio.open(baseline, "w", **profile) as ds:
        ds.write(data)
    return flight, baseline, crop
