"""Public change-detection pair sets as georeferenced GeoTIFF pairs, with known misregistration.

The layout of WHU-CD, DSIFN-CD, LEVIR-CD and the like: same-named images in ``A/`` (before =
baseline), ``B/`` (after = flight) and ``label/`` (non-zero = changed). They carry no
georeferencing, so to run them through exactly the product's path (``buildwatch detect``) each
pair is written as two GeoTIFFs in a projected CRS at its native GSD, and the baseline's
georeferencing can be made wrong by a known shift (pixels, along a fixed bearing) and rotation
(degrees about the centre), as real baselines are. The label's changed blobs become truth
polygons in the same CRS.

>>> shift_vector(2.0)
(1.732, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS

from geo.atomic import atomic_path
from geo.errors import InputFileError

__all__ = ["GeoPair", "list_pairs", "georeference_pair", "label_polygons", "shift_vector"]

#: UTM 50N, a projected CRS over southern China; the origin is an arbitrary point inside it
DEFAULT_CRS = CRS.from_epsg(32650)
DEFAULT_ORIGIN = (500_000.0, 3_400_000.0)
#: bearing of the known shift (degrees anticlockwise from east): not along an axis
SHIFT_BEARING_DEG = 30.0
_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclass(frozen=True)
class GeoPair:
    """One pair written as GeoTIFFs; ``true_shift_m`` is the baseline's georeferencing error."""

    name: str
    flight: Path
    baseline: Path
    truth: gpd.GeoDataFrame
    gsd: float
    shift_px: float
    rotation_deg: float

    @property
    def true_shift_m(self) -> tuple[float, float]:
        sx, sy = shift_vector(self.shift_px)
        return sx * self.gsd, sy * self.gsd


def shift_vector(shift_px: float) -> tuple[float, float]:
    """(east, north) components of a shift of ``shift_px`` along :data:`SHIFT_BEARING_DEG`."""
    b = math.radians(SHIFT_BEARING_DEG)
    return round(shift_px * math.cos(b), 3), round(shift_px * math.sin(b), 3)


def list_pairs(root: str | Path) -> list[str]:
    """Names present in all of ``A/``, ``B/`` and ``label/`` (sorted); one clear error if none."""
    root = Path(root)
    dirs = [root / d for d in ("A", "B", "label")]
    missing = [d.name for d in dirs if not d.is_dir()]
    if missing:
        raise InputFileError(
            f"{root}: missing folder(s) {', '.join(missing)}; a pair set holds A/ (before), "
            "B/ (after) and label/ (changed mask) with same-named images"
        )
    names = [
        {p.name for p in d.iterdir() if p.suffix.lower() in _EXTENSIONS and p.is_file()}
        for d in dirs
    ]
    both = sorted(names[0] & names[1] & names[2])
    if not both:
        raise InputFileError(f"{root}: no image name is present in all of A/, B/ and label/")
    return both


def _read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise InputFileError(f"{path}: not a readable image (PNG, TIFF or JPEG expected)")
    return img


def label_polygons(mask: np.ndarray, transform: Affine, min_area_m2: float = 4.0) -> list:
    """Polygons of the changed blobs (non-zero, 8-connected) of ``mask``, at least
    ``min_area_m2`` in map units², holes kept."""
    binary = (mask > 0).astype(np.uint8)
    n, labels = cv2.connectedComponents(binary, connectivity=8)
    polys = []
    for geom, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=binary.astype(bool), transform=transform, connectivity=8
    ):
        if value <= 0:
            continue
        polys.append((int(value), shapely.geometry.shape(geom)))
    by_blob: dict[int, list] = {}
    for value, poly in polys:
        by_blob.setdefault(value, []).append(poly)
    out = [shapely.union_all(parts) for _, parts in sorted(by_blob.items())]
    return [g for g in out if g.area >= min_area_m2]


def _write(path: Path, rgb: np.ndarray, transform: Affine, crs: CRS) -> None:
    with (
        atomic_path(path, mkdir=True) as tmp,
        rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            width=rgb.shape[1],
            height=rgb.shape[0],
            count=3,
            dtype="uint8",
            crs=crs,
            transform=transform,
            compress="deflate",
            tiled=True,
            photometric="RGB",
        ) as ds,
    ):
        ds.write(np.moveaxis(rgb, -1, 0))


def georeference_pair(
    root: str | Path,
    name: str,
    out_dir: str | Path,
    gsd: float,
    *,
    shift_px: float = 0.0,
    rotation_deg: float = 0.0,
    crs: CRS = DEFAULT_CRS,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    min_area_m2: float = 4.0,
) -> GeoPair:
    """Write pair ``name`` of ``root`` as ``out_dir/flight.tif`` (B) and ``baseline.tif`` (A).

    Both keep their pixels at ``gsd`` m; the baseline's georeferencing is displaced by
    ``shift_px`` pixels along :data:`SHIFT_BEARING_DEG` and rotated by ``rotation_deg`` about
    the image centre, so its content appears that far from where the flight shows it.
    """
    if not gsd > 0:
        raise ValueError(f"gsd must be > 0 m, got {gsd!r}")
    root, out = Path(root), Path(out_dir)
    before = _read(root / "A" / name)[:, :, ::-1]
    after = _read(root / "B" / name)[:, :, ::-1]
    label = _read(root / "label" / name, cv2.IMREAD_GRAYSCALE)
    if not (before.shape[:2] == after.shape[:2] == label.shape[:2]):
        raise InputFileError(
            f"{root}: pair {name}: A {before.shape[:2]}, B {after.shape[:2]} and label "
            f"{label.shape[:2]} differ in size; the three images must be the same size"
        )
    h, w = label.shape
    transform = Affine(gsd, 0, origin[0], 0, -gsd, origin[1])
    cx, cy = transform @ (w / 2, h / 2)
    sx, sy = shift_vector(shift_px)
    moved = (
        Affine.translation(sx * gsd, sy * gsd)
        @ Affine.translation(cx, cy)
        @ Affine.rotation(rotation_deg)
        @ Affine.translation(-cx, -cy)
        @ transform
    )
    _write(out / "flight.tif", np.ascontiguousarray(after), transform, crs)
    _write(out / "baseline.tif", np.ascontiguousarray(before), moved, crs)
    blobs = label_polygons(label, transform, min_area_m2)
    truth = gpd.GeoDataFrame({"class": ["new_building"] * len(blobs)}, geometry=blobs, crs=crs)
    return GeoPair(
        name, out / "flight.tif", out / "baseline.tif", truth, gsd, shift_px, rotation_deg
    )
