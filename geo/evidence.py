"""Before/after evidence chips: the same map window from both epochs, the lead outlined.

Pure rendering (:func:`render_chip`) is separate from reading (a ``read_window`` callable, e.g.
``TilePair``'s ``pair.read_window``) and writing (:func:`write_png`, atomic). Chips are PNG, RGB,
upscaled (nearest pixel) to at least ``min_px`` so a small structure is visible.

>>> import numpy as np, shapely
>>> from affine import Affine
>>> rgb = np.zeros((20, 20, 3), np.uint8)
>>> chip = render_chip(rgb, Affine(1, 0, 0, 0, -1, 20), shapely.box(5, 5, 15, 15), min_px=40)
>>> chip.shape, bool(chip[..., 0].max() == 255)
((40, 40, 3), True)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import shapely
from affine import Affine

from geo.atomic import write_bytes_atomic
from geo.errors import InputFileError

__all__ = ["chip_bounds", "render_chip", "write_png", "write_evidence_pair", "ReadWindow"]

#: read_window(bounds (minx, miny, maxx, maxy), pad_m) -> (flight_rgb, baseline_rgb, transform)
ReadWindow = Callable[..., tuple[np.ndarray, np.ndarray, Affine]]

OUTLINE_RGB = (255, 32, 32)


def chip_bounds(
    geom: shapely.Geometry, pad_m: float = 6.0, min_size_m: float = 20.0
) -> tuple[float, float, float, float]:
    """A square window around ``geom``: its envelope plus ``pad_m``, at least ``min_size_m`` wide.

    >>> chip_bounds(shapely.box(0, 0, 4, 2), pad_m=1, min_size_m=10)
    (-3.0, -4.0, 7.0, 6.0)
    """
    minx, miny, maxx, maxy = geom.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    half = max(maxx - minx, maxy - miny, min_size_m - 2 * pad_m) / 2 + pad_m
    return (cx - half, cy - half, cx + half, cy + half)


def _rings(geom: shapely.Geometry) -> list[np.ndarray]:
    parts = getattr(geom, "geoms", [geom])
    rings = []
    for part in parts:
        if part.geom_type == "Polygon":
            rings.append(np.asarray(part.exterior.coords))
            rings.extend(np.asarray(r.coords) for r in part.interiors)
    return rings


def render_chip(
    rgb: np.ndarray,
    transform: Affine,
    geom: shapely.Geometry,
    min_px: int = 256,
    color: tuple[int, int, int] = OUTLINE_RGB,
) -> np.ndarray:
    """Upscale an (h, w, 3) uint8 chip to >= ``min_px`` and outline ``geom`` (map coords) on it."""
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"chip must be (h, w, 3), got {rgb.shape}")
    h, w = rgb.shape[:2]
    scale = max(1, int(np.ceil(min_px / max(1, min(h, w)))))
    big = cv2.resize(
        np.ascontiguousarray(rgb[..., :3]), (w * scale, h * scale), interpolation=cv2.INTER_NEAREST
    )
    inv = ~transform
    thickness = max(2, scale // 2)
    for ring in _rings(geom):
        cols, rows = inv @ (ring[:, 0], ring[:, 1])
        pts = np.stack([np.asarray(cols) * scale, np.asarray(rows) * scale], axis=1)
        cv2.polylines(big, [np.round(pts).astype(np.int32)], True, color, thickness, cv2.LINE_AA)
    return big


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputFileError(f"{path}: PNG encoding failed for an image of shape {rgb.shape}")
    return write_bytes_atomic(path, buf.tobytes())


def write_evidence_pair(
    read_window: ReadWindow,
    geom: shapely.Geometry,
    before_path: str | Path,
    after_path: str | Path,
    pad_m: float = 6.0,
    min_px: int = 256,
) -> tuple[Path, Path]:
    """Read the window around ``geom`` from both epochs and write the two outlined chips.

    ``before`` is the baseline, ``after`` the flight; both show the same map window.
    """
    bounds = chip_bounds(geom, pad_m=pad_m)
    flight, baseline, transform = read_window(bounds, pad_m=0.0)
    after = render_chip(flight, transform, geom, min_px=min_px)
    before = render_chip(baseline, transform, geom, min_px=min_px)
    return write_png(before_path, before), write_png(after_path, after)
