"""Between-date realism: what makes a real baseline differ from a flight even where nothing changed.

Pure functions on ``(h, w, 3)`` uint8 arrays and a seeded ``numpy.random.Generator``: satellite-like
degradation of the baseline (coarser GSD, blur, JPEG), sub-metre misregistration, colour and
illumination jitter, scale resampling, and dihedral transforms applied identically to both epochs
and their boxes. The builders combine them through :func:`between_dates`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from models.datasets.writer import Label, label_polygon

__all__ = [
    "resample",
    "degrade_like_satellite",
    "misregister",
    "color_jitter",
    "dihedral",
    "between_dates",
]


def resample(img: np.ndarray, factor: float, interpolation: int | None = None) -> np.ndarray:
    """Scale an image by ``factor`` (``> 1`` enlarges); area interpolation when shrinking."""
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if interpolation is None:
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(img, size, interpolation=interpolation)
    return out if out.ndim == img.ndim else out[..., None]


def degrade_like_satellite(img: np.ndarray, rng: np.random.Generator, gsd: float) -> np.ndarray:
    """Make an image look like 0.3-1.0 m satellite imagery resampled back to ``gsd`` m/px."""
    h, w = img.shape[:2]
    coarse = float(rng.uniform(0.3, 1.0))
    factor = min(1.0, gsd / coarse)
    out = resample(img, factor)
    out = cv2.resize(
        out, (w, h), interpolation=cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR
    )
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.3:  # pansharpening / sharpening halos: unsharp mask at the coarse scale
        sigma = max(0.8, coarse / gsd * 0.6)
        soft = cv2.GaussianBlur(out, (0, 0), sigma).astype(np.float32)
        amount = float(rng.uniform(0.3, 1.0))
        out = np.clip(out + amount * (out.astype(np.float32) - soft), 0, 255).astype(np.uint8)
    if rng.random() < 0.2:  # haze: contrast lost towards a bright, bluish veil
        veil = np.array([200, 205, 215], np.float32) + rng.normal(0, 8, 3)
        t = float(rng.uniform(0.1, 0.35))
        out = np.clip(out * (1 - t) + veil * t, 0, 255).astype(np.uint8)
    if rng.random() < 0.8:
        quality = int(rng.integers(35, 90))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded
    noise = rng.normal(0.0, float(rng.uniform(0.0, 4.0)), out.shape)
    return np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def misregister(
    img: np.ndarray, rng: np.random.Generator, gsd: float, max_m: float = 0.6
) -> np.ndarray:
    """Shift (and very slightly rotate) an image by up to ``max_m`` metres, sub-pixel."""
    h, w = img.shape[:2]
    shift_px = float(rng.uniform(0.0, max_m)) / gsd
    angle = float(rng.uniform(0, 2 * np.pi))
    dx, dy = shift_px * np.cos(angle), shift_px * np.sin(angle)
    rot = float(rng.uniform(-0.3, 0.3))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rot, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def color_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Per-channel gain, brightness, contrast, gamma and saturation changes (sun, season, sensor)."""
    x = img.astype(np.float32) / 255.0
    gain = 1.0 + rng.normal(0.0, 0.06 * strength, 3)
    x = x * gain[None, None, :]
    mean = x.mean()
    x = (x - mean) * float(1.0 + rng.normal(0.0, 0.15 * strength)) + mean
    x = x + float(rng.normal(0.0, 0.06 * strength))
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * float(np.clip(1.0 + rng.normal(0.0, 0.2 * strength), 0.3, 1.8))
    x = np.clip(x, 0.0, 1.0) ** float(np.exp(rng.normal(0.0, 0.12 * strength)))
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _dihedral_label(label: Label, k: int, flip: bool, w: int, h: int) -> Label:
    cls, pts = label_polygon(label)
    xs, ys = pts[:, 0].copy(), pts[:, 1].copy()
    if flip:
        xs = w - xs
    cw, ch = w, h
    for _ in range(k % 4):  # np.rot90 (counter-clockwise): (x, y) -> (y, W - x)
        xs, ys = ys, cw - xs
        cw, ch = ch, cw
    if len(label) == 2:
        return (cls, np.stack([xs, ys], axis=1))
    return (cls, float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def dihedral(
    flight: np.ndarray, baseline: np.ndarray, boxes: Sequence[Label], k: int, flip: bool
) -> tuple[np.ndarray, np.ndarray, list[Label]]:
    """Flip left-right (optional) then rotate by ``k`` quarter turns; epochs and labels alike."""
    h, w = flight.shape[:2]
    out_boxes = [_dihedral_label(b, k, flip, w, h) for b in boxes]
    if flip:
        flight, baseline = flight[:, ::-1], baseline[:, ::-1]
    flight, baseline = np.rot90(flight, k), np.rot90(baseline, k)
    return np.ascontiguousarray(flight), np.ascontiguousarray(baseline), out_boxes


def between_dates(
    flight: np.ndarray,
    baseline: np.ndarray,
    rng: np.random.Generator,
    gsd: float,
    max_shift_m: float = 0.6,
    match_above_m: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply realistic between-date differences: the baseline gets older-sensor looks.

    ``match_above_m`` > 0: where the baseline then resolves coarser than that (its detail GSD
    measured against the flight, :func:`geo.tiles.detail_gsd`), the flight is seen at that GSD
    (:func:`geo.tiles.see_at_gsd`), as the product shows the detector a flight against a coarse
    baseline (``input.match_baseline_above_m``).
    """
    if rng.random() < 0.8:
        baseline = degrade_like_satellite(baseline, rng, gsd)
    if rng.random() < 0.85:
        baseline = misregister(baseline, rng, gsd, max_shift_m)
    baseline = color_jitter(baseline, rng, strength=1.0)
    flight = color_jitter(flight, rng, strength=0.7)
    if rng.random() < 0.15:  # a softer flight (motion blur, haze)
        flight = cv2.GaussianBlur(flight, (0, 0), float(rng.uniform(0.3, 0.9)))
    if match_above_m > 0:
        flight = matched_flight(flight, baseline, gsd, match_above_m)
    return flight, baseline


def matched_flight(
    flight: np.ndarray, baseline: np.ndarray, gsd: float, above_m: float
) -> np.ndarray:
    """``flight`` seen at the baseline's detail GSD where that is coarser than ``above_m`` and
    than ``DETAIL_MARGIN`` times the chip's pixel (the product's rule, :func:`geo.tiles.open_pair`
    with the chip's ``gsd`` as both epochs' declared pixel); else ``flight`` itself.

    >>> rng = np.random.default_rng(0)
    >>> f = cv2.GaussianBlur(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8), (0, 0), 1.0)
    >>> from geo.tiles import see_at_gsd
    >>> matched_flight(f, see_at_gsd(f, 0.8, 0.2), 0.2, 0.4) is f
    False
    >>> matched_flight(f, f, 0.2, 0.4) is f
    True
    """
    from geo.tiles import DETAIL_MARGIN, detail_gsd, see_at_gsd

    valid = (flight.max(axis=2) > 0) & (baseline.max(axis=2) > 0)
    detail = detail_gsd(flight, baseline, valid, gsd)
    if detail is None or not detail > above_m or not detail > DETAIL_MARGIN * gsd:
        return flight
    return see_at_gsd(flight, detail, gsd)
