"""Evaluate the detector on non-georeferenced image pairs (``A/`` before, ``B/`` after, ``label/``).

The layout of public change-detection sets (WHU-CD, DSIFN-CD, LEVIR-CD): same-named PNGs in
``A`` (before = baseline), ``B`` (after = flight) and ``label`` (255 = changed). Each pair is
resampled from its native GSD to the detector's working GSD, tiled with the card's overlap,
predicted, merged across tiles (class-agnostic NMS), and matched against the connected
components of the label mask (their bounding boxes). Validation only: never train on these.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from geo.errors import InputFileError
from models.candidates import Candidates
from models.card import ModelCard
from models.evaluate import evaluate_objects, iou_matrix

__all__ = ["evaluate_image_pairs", "label_boxes", "tile_origins"]

log = logging.getLogger(__name__)


class _Detector(Protocol):
    card: ModelCard

    def predict(self, images: list[np.ndarray], conf: float = ...) -> list[Candidates]: ...


def tile_origins(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``size`` overlapping by ``overlap``.

    >>> tile_origins(1000, 512, 64)
    [0, 448, 488]
    """
    if length <= size:
        return [0]
    step = size - overlap
    starts = list(range(0, length - size + 1, step))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def label_boxes(mask: np.ndarray, min_area_px: int = 16) -> np.ndarray:
    """Bounding boxes ``(n, 4)`` xyxy of the connected changed regions of a binary mask."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:n] if area >= min_area_px]
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def _nms(c: Candidates, iou: float = 0.5) -> Candidates:
    if len(c) < 2:
        return c
    order = np.argsort(-c.score)
    m = iou_matrix(c.xyxy[order].astype(np.float64), c.xyxy[order].astype(np.float64))
    keep: list[int] = []
    for i in range(len(order)):
        if all(m[i, j] < iou for j in keep):
            keep.append(i)
    return c[order[keep]]


def _read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise InputFileError(f"{path}: not a readable image")
    return img


def evaluate_image_pairs(
    detector: _Detector,
    root: str | Path,
    native_gsd: float,
    conf: float = 0.25,
    iou_threshold: float = 0.25,
    min_area_m2: float = 4.0,
) -> dict[str, Any]:
    """Pooled object-level report over every pair under ``root`` (plus per-pair counts)."""
    root = Path(root)
    names = sorted(p.name for p in (root / "A").glob("*.png")) if (root / "A").is_dir() else []
    if not names:
        raise InputFileError(f"{root}: expected A/, B/ and label/ folders of same-named PNGs")
    card = detector.card
    gsd, size, overlap = float(card.working_gsd_m), int(card.imgsz), int(card.overlap_px)
    factor = native_gsd / gsd
    all_pred, all_cls, all_score, all_truth = [], [], [], []
    area_km2 = 0.0
    per_pair = {}
    offset = 0.0
    for name in names:
        before = _read(root / "A" / name)[:, :, ::-1]
        after = _read(root / "B" / name)[:, :, ::-1]
        label = _read(root / "label" / name, cv2.IMREAD_GRAYSCALE)
        h, w = label.shape
        nh, nw = round(h * factor), round(w * factor)
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        before = cv2.resize(before, (nw, nh), interpolation=interp)
        after = cv2.resize(after, (nw, nh), interpolation=interp)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
        stack = np.concatenate([after, before], axis=2)
        tiles, origins = [], []
        for y in tile_origins(nh, size, overlap):
            for x in tile_origins(nw, size, overlap):
                tiles.append(stack[y : y + size, x : x + size])
                origins.append((x, y))
        parts = []
        for cands, (x, y) in zip(
            detector.predict(tiles, conf=min(conf, 0.01)), origins, strict=True
        ):
            shifted = cands.xyxy + np.array([x, y, x, y], np.float32)
            parts.append(Candidates(shifted, cands.score, cands.class_id))
        merged = _nms(Candidates.merge(parts))
        truth = label_boxes(label, int(min_area_m2 / gsd**2))
        # pairs are pooled by shifting each onto its own stretch of an imaginary strip
        all_pred.append(merged.xyxy + [offset, 0, offset, 0])
        all_cls.append(merged.class_id)
        all_score.append(merged.score)
        all_truth.append(truth + [offset, 0, offset, 0])
        offset += nw + 10 * size
        area_km2 += nh * nw * gsd**2 / 1e6
        per_pair[name] = {"truth": len(truth), "detections": int((merged.score >= conf).sum())}
    n_truth = sum(len(t) for t in all_truth)
    report = evaluate_objects(
        np.concatenate(all_pred).astype(np.float64),
        np.concatenate(all_cls),
        np.concatenate(all_score),
        np.concatenate(all_truth),
        np.zeros(n_truth, np.int64),  # label masks do not say the class: score class-agnostic
        iou_threshold=iou_threshold,
        conf=conf,
        area_km2=area_km2,
    )
    report["note"] = (
        "truth = connected components of label masks (class unknown): read class_agnostic; "
        f"pairs resampled from {native_gsd} m to {gsd} m"
    )
    report["pairs"] = per_pair
    return report
