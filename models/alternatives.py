"""A classical alternative to the YOLO change detector: image differencing (no training).

Post-classification-free change detection on one aligned 6-channel tile (flight RGB + baseline
RGB, the detector's input): the baseline is histogram-matched to the flight channel by channel
(removing global illumination/season differences), then a per-pixel change signal is built from

* the absolute colour difference (mean over R, G, B, in [0, 1]) and
* the absolute difference of gradient magnitudes (Sobel on grey, in [0, 1]),

both after a light Gaussian blur (residual misregistration). The signal is thresholded (Otsu on
the tile, never below a fixed floor, so an unchanged tile stays quiet), cleaned by morphological
opening/closing, split into connected components, and each component of a plausible size becomes
a ``new_building`` box whose score grows with its mean signal. It is the baseline the YOLO
detector is compared against in ``benchmarks/bench_alternatives.py``.

>>> import numpy as np
>>> ground = np.random.default_rng(0).integers(60, 120, (128, 128, 3), dtype=np.uint8)
>>> tile = np.concatenate([ground, ground], axis=2)
>>> tile[40:70, 40:80, :3] = 230                  # a bright new roof in the flight only
>>> det = DifferenceDetector()
>>> c = det([tile])[0]
>>> len(c), c.xyxy[0].round().tolist(), int(c.class_id[0])
(1, [39.0, 39.0, 81.0, 71.0], 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from geo.errors import ModelError
from models.candidates import Candidates
from models.card import ModelCard
from models.classes import CLASS_IDS

__all__ = ["DiffParams", "DifferenceDetector", "change_signal", "match_histograms"]


@dataclass(frozen=True)
class DiffParams:
    """Settings of the difference detector (pixels are at the working GSD, 0.2 m by default)."""

    blur_sigma: float = 1.0
    colour_weight: float = 1.0
    gradient_weight: float = 1.0
    threshold: float | None = None  # fixed threshold on the signal; None: Otsu, floored
    min_threshold: float = 0.3  # Otsu floor; best F1 on tuning district seed 777001 (0.15-0.4)
    open_px: int = 5  # removes edges left by misregistration (1 m at 0.2 m/px)
    close_px: int = 7
    min_area_px: int = 100  # 4 m2 at 0.2 m/px: the pipeline's smallest new_building
    max_area_px: int = 50_000  # 2000 m2: larger blobs are whole-scene shifts, not structures
    score_scale: float = 0.25  # score = 1 - exp(-(mean signal - floor) / scale) ... see score()
    gsd_m: float = 0.2
    imgsz: int = 512
    overlap_px: int = 64


def match_histograms(source: np.ndarray, reference: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Map each channel of ``source`` so its histogram (over ``valid``) matches ``reference``'s."""
    if int(np.count_nonzero(valid)) < 16:
        return source.copy()
    mask = valid.astype(np.uint8)
    channels = []
    for k in range(source.shape[2]):
        src = np.ascontiguousarray(source[..., k])
        ref = np.ascontiguousarray(reference[..., k])
        s_hist = cv2.calcHist([src], [0], mask, [256], [0, 256]).ravel().astype(np.float64)
        r_hist = cv2.calcHist([ref], [0], mask, [256], [0, 256]).ravel().astype(np.float64)
        s_cdf = np.cumsum(s_hist) / s_hist.sum()
        r_cdf = np.cumsum(r_hist) / r_hist.sum()
        lut = np.interp(s_cdf, r_cdf, np.arange(256)).round().clip(0, 255).astype(np.uint8)
        channels.append(cv2.LUT(src, lut))
    return np.asarray(cv2.merge(channels), np.uint8)


def _gradient(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.asarray(cv2.magnitude(gx, gy) / (4 * 255.0), np.float32)


def change_signal(
    tile: np.ndarray, params: DiffParams = DiffParams()
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel change signal of one ``(h, w, 6)`` uint8 tile and the mask where it is defined."""
    flight = np.ascontiguousarray(tile[..., :3])
    base = np.ascontiguousarray(tile[..., 3:6])
    valid = (cv2.cvtColor(flight, cv2.COLOR_RGB2GRAY) > 0) & (
        cv2.cvtColor(base, cv2.COLOR_RGB2GRAY) > 0
    )
    valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    base = match_histograms(base, flight, valid)
    if params.blur_sigma:
        flight = cv2.GaussianBlur(flight, (0, 0), params.blur_sigma)
        base = cv2.GaussianBlur(base, (0, 0), params.blur_sigma)
    diff = cv2.absdiff(flight, base)
    colour = cv2.transform(diff.astype(np.float32), np.full((1, 3), 1 / (3 * 255.0), np.float32))
    grey_f = cv2.cvtColor(flight, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey_b = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = cv2.absdiff(_gradient(grey_f), _gradient(grey_b))
    signal = params.colour_weight * colour.astype(np.float32) + params.gradient_weight * grad
    signal[~valid] = 0.0
    return np.asarray(signal, np.float32), valid


def _threshold(signal: np.ndarray, valid: np.ndarray, params: DiffParams) -> float:
    if params.threshold is not None:
        return float(params.threshold)
    values = signal[valid]
    if values.size < 16:
        return float("inf")
    q = np.clip(values / 2.0 * 255.0, 0, 255).astype(np.uint8).reshape(-1, 1)
    otsu, _ = cv2.threshold(q, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return max(float(otsu) / 255.0 * 2.0, params.min_threshold)


def _score(mean_signal: float, threshold: float, params: DiffParams) -> float:
    """0.5 at the threshold, rising towards 1 as the mean signal exceeds it."""
    excess = max(0.0, mean_signal - threshold)
    return float(0.5 + 0.5 * (1.0 - np.exp(-excess / params.score_scale)))


class DifferenceDetector:
    """Classical change detector with the :class:`~models.detector.ChangeDetector` interface.

    Use it as a ``predict`` callback (``det(tiles)``) or as a detector (``det.predict(tiles,
    conf=...)``, ``det.card``) with :func:`pipelines.detect.detect_leads` and
    :func:`models.evaluate_pairs.evaluate_image_pairs`. Every box is classed ``new_building``.
    """

    def __init__(self, params: DiffParams = DiffParams()) -> None:
        self.params = params
        self.card = ModelCard(
            name="classical-difference",
            weights="",
            working_gsd_m=params.gsd_m,
            imgsz=params.imgsz,
            overlap_px=params.overlap_px,
            architecture="histogram-matched colour + gradient difference, Otsu, morphology",
            description="classical post-classification-free difference detector (no training)",
        )
        self.weights = None

    def __repr__(self) -> str:
        return f"DifferenceDetector({self.params})"

    def detect_one(self, tile: np.ndarray) -> Candidates:
        """Boxes of the changed regions of one ``(h, w, 6)`` uint8 tile."""
        arr = np.asarray(tile)
        if arr.ndim != 3 or arr.shape[2] != 6 or arr.dtype != np.uint8:
            raise ModelError(
                f"expected an (h, w, 6) uint8 tile (flight RGB + baseline RGB), got shape "
                f"{arr.shape} dtype {arr.dtype}"
            )
        p = self.params
        signal, valid = change_signal(arr, p)
        thr = _threshold(signal, valid, p)
        mask = (signal >= thr).astype(np.uint8)
        if p.open_px > 1:
            kernel = np.ones((p.open_px, p.open_px), np.uint8)
            mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel), np.uint8)
        if p.close_px > 1:
            kernel = np.ones((p.close_px, p.close_px), np.uint8)
            mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel), np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        boxes, scores = [], []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if not p.min_area_px <= area <= p.max_area_px:
                continue
            mean = float(signal[y : y + h, x : x + w][labels[y : y + h, x : x + w] == i].mean())
            boxes.append((x, y, x + w, y + h))
            scores.append(_score(mean, thr, p))
        if not boxes:
            return Candidates.empty()
        cls = np.full(len(boxes), CLASS_IDS["new_building"], np.int64)
        return Candidates(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), cls)

    def predict(self, images: Sequence[np.ndarray], conf: float = 0.0) -> list[Candidates]:
        """One :class:`Candidates` per tile, boxes with score below ``conf`` dropped."""
        out = []
        for tile in images:
            c = self.detect_one(tile)
            out.append(c[c.score >= conf] if len(c) else c)
        return out

    def __call__(self, images: Sequence[np.ndarray]) -> list[Candidates]:
        return self.predict(images)
