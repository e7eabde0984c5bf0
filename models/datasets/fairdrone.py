"""Pseudo before/after pairs from real single-date drone imagery (STAR-style supervision).

Input: the folder :func:`models.datasets.fairdrone_prepare.prepare_fairdrone` wrote (``NAME.jpg``
mosaic at a known ground GSD + ``NAME_ids.png`` building ids). For each chip a random window is
read, degraded to a native GSD drawn from ``gsd_range`` and resampled to the working GSD; the
real image is the *flight*; a *baseline* is made by removing a random subset of its buildings
(transplanting nearby building-free ground, or inpainting, on a dilated mask), then given
between-date realism. Removed buildings are ``new_building`` boxes. ``no_change_fraction`` of the
chips remove nothing (nuisance differences only). Needs only OpenCV and NumPy (runs on the GPU
machine).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from geo.errors import InputFileError
from models.classes import CLASS_IDS
from models.datasets.realism import between_dates, dihedral
from models.datasets.writer import Box, write_chip, write_data_yaml

__all__ = ["FairDroneSpec", "build_fairdrone", "remove_buildings", "VAL_MOSAICS"]

log = logging.getLogger(__name__)

#: mosaics kept for validation (never trained on)
VAL_MOSAICS: tuple[str, ...] = ("area2_cluster01_z21", "area4_cluster02_z21")


@dataclass(frozen=True)
class FairDroneSpec:
    """Counts, chip size, GSDs, seed and the share of no-change chips."""

    n_train: int = 64
    n_val: int = 16
    size_px: int = 512
    working_gsd: float = 0.2
    gsd_range: tuple[float, float] = (0.1, 0.35)
    no_change_fraction: float = 0.2
    remove_probability: float = 0.5
    seed: int = 0


def _bboxes(ids: np.ndarray, remove: list[int]) -> dict[int, tuple[int, int, int, int]]:
    out = {}
    for bid in remove:
        ys, xs = np.nonzero(ids == bid)
        if len(ys):
            out[bid] = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    return out


def remove_buildings(
    img: np.ndarray, ids: np.ndarray, remove: list[int], rng: np.random.Generator, dilate_px: int
) -> np.ndarray:
    """Return ``img`` with the buildings ``remove`` (ids in ``ids``) replaced by plausible ground.

    Each building is handled alone: its dilated footprint is filled with building-free ground
    copied from a nearby offset (feathered edge); where no clean offset exists, it is inpainted
    and given grain so the fill is not a flat smear.
    """
    out = img.copy()
    if not remove:
        return out
    h, w = ids.shape
    d = dilate_px + 3
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1,) * 2)
    blocked = cv2.dilate((ids > 0).astype(np.uint8), kernel) | (img.max(axis=2) == 0)
    integral = np.pad(blocked.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    for bid, (y0, y1, x0, x1) in _bboxes(ids, remove).items():
        y0, y1, x0, x1 = max(0, y0 - d), min(h, y1 + d), max(0, x0 - d), min(w, x1 + d)
        bh, bw = y1 - y0, x1 - x0
        mask = cv2.dilate((ids[y0:y1, x0:x1] == bid).astype(np.uint8), kernel)
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)
        alpha = np.maximum(alpha, mask.astype(np.float32))[..., None]
        region = out[y0:y1, x0:x1]
        source, best = None, None
        for _ in range(60):
            sy0 = int(rng.integers(0, h - bh + 1))
            sx0 = int(rng.integers(0, w - bw + 1))
            if abs(sy0 - y0) < bh and abs(sx0 - x0) < bw:
                continue
            hits = (integral[sy0 + bh, sx0 + bw] - integral[sy0, sx0 + bw]
                    - integral[sy0 + bh, sx0] + integral[sy0, sx0])  # fmt: skip
            if best is None or hits < best[0]:
                best = (hits, sy0, sx0)
            if hits == 0:
                break
        if best is not None and best[0] <= 0.2 * bh * bw:
            _, sy0, sx0 = best
            source = img[sy0 : sy0 + bh, sx0 : sx0 + bw].astype(np.float32)
        else:  # inpaint at quarter resolution (smooth, no star artefacts) plus grain
            small = cv2.resize(
                region, (max(1, bw // 4), max(1, bh // 4)), interpolation=cv2.INTER_AREA
            )
            small_mask = cv2.resize(mask, small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            small = cv2.inpaint(
                small, cv2.dilate(small_mask, np.ones((3, 3), np.uint8)), 3, cv2.INPAINT_NS
            )
            filled = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_CUBIC)
            grain = rng.normal(0, float(region.std() * 0.12 + 2), region.shape)
            source = np.clip(filled + grain, 0, 255).astype(np.float32)
        out[y0:y1, x0:x1] = (source * alpha + region * (1 - alpha)).astype(np.uint8)
    return out


_CACHE: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, float, np.ndarray]] = {}


def _load(prepared: Path, name: str) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    key = (str(prepared), name)
    if key not in _CACHE:
        _CACHE[key] = _read(prepared, name)
    return _CACHE[key]


def _read(prepared: Path, name: str) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    meta = json.loads((prepared / f"{name}.json").read_text())
    img = cv2.imread(str(prepared / f"{name}.jpg"), cv2.IMREAD_COLOR)
    ids = cv2.imread(str(prepared / f"{name}_ids.png"), cv2.IMREAD_UNCHANGED)
    if img is None or ids is None:
        raise InputFileError(f"{prepared}/{name}: unreadable mosaic or id mask; re-run prepare")
    counts = np.bincount(ids.ravel().astype(np.int64))
    return img[:, :, ::-1].copy(), ids, float(meta["gsd_m"]), counts


def _window(img: np.ndarray, ids: np.ndarray, size: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    h, w = ids.shape
    y = int(rng.integers(0, max(1, h - size + 1)))
    x = int(rng.integers(0, max(1, w - size + 1)))
    win_img = np.zeros((size, size, 3), np.uint8)
    win_ids = np.zeros((size, size), ids.dtype)
    sub = img[y : y + size, x : x + size]
    win_img[: sub.shape[0], : sub.shape[1]] = sub
    win_ids[: sub.shape[0], : sub.shape[1]] = ids[y : y + size, x : x + size]
    return win_img, win_ids


def _make_chip(args: tuple[str, str, str, int, list[str], FairDroneSpec]) -> int:
    prepared, root, split, index, names, spec = args
    rng = np.random.default_rng(
        spec.seed * 7_000_003 + (0 if split == "train" else 5_000_000) + index
    )
    name = names[int(rng.integers(len(names)))]
    img, ids, stored_gsd, counts = _load(Path(prepared), name)
    scale_jitter = float(rng.uniform(0.85, 1.15))
    window = round(spec.size_px * spec.working_gsd * scale_jitter / stored_gsd)
    win_img, win_ids = _window(img, ids, window, rng)
    present = [int(i) for i in np.unique(win_ids) if i]
    no_change = bool(rng.random() < spec.no_change_fraction) or not present
    remove: list[int] = []
    if not no_change:
        win_counts = np.bincount(win_ids.ravel().astype(np.int64), minlength=len(counts))
        full = [i for i in present if win_counts[i] > 0.7 * counts[i]]
        remove = [i for i in full if rng.random() < spec.remove_probability] or full[:1]
    dilate = max(1, round(0.6 / stored_gsd))
    before = remove_buildings(win_img, win_ids, remove, rng, dilate)
    native_gsd = float(rng.uniform(*spec.gsd_range))
    chips = []
    for arr in (win_img, before):
        f = min(1.0, stored_gsd / native_gsd)
        arr = cv2.resize(arr, (max(1, round(window * f)),) * 2, interpolation=cv2.INTER_AREA)
        chips.append(cv2.resize(arr, (spec.size_px,) * 2, interpolation=cv2.INTER_LINEAR))
    k = spec.size_px / window
    boxes: list[Box] = []
    for i in remove:
        ys, xs = np.nonzero(win_ids == i)
        boxes.append((CLASS_IDS["new_building"], xs.min() * k, ys.min() * k,
                      (xs.max() + 1) * k, (ys.max() + 1) * k))  # fmt: skip
    valid = chips[0].max(axis=2) > 0
    flight, baseline = between_dates(chips[0], chips[1], rng, spec.working_gsd)
    flight[~valid] = 0
    baseline[~valid] = 0
    flight, baseline, boxes = dihedral(
        flight, baseline, boxes, int(rng.integers(4)), bool(rng.random() < 0.5)
    )
    write_chip(root, split, f"fd_{split}_{index:06d}", flight, baseline, boxes)
    return len(boxes)


def build_fairdrone(
    prepared: str | Path, root: str | Path, spec: FairDroneSpec, workers: int = 1
) -> Path:
    """Write fair-drone pseudo pairs under ``root``; returns ``data.yaml``."""
    prepared = Path(prepared)
    names = sorted(p.stem for p in prepared.glob("*.json"))
    if not names:
        raise InputFileError(
            f"{prepared}: no prepared mosaics (NAME.json/.jpg/_ids.png); run prepare_fairdrone first"
        )
    train_names = [n for n in names if n not in VAL_MOSAICS] or names
    val_names = [n for n in names if n in VAL_MOSAICS] or names
    jobs = [(str(prepared), str(root), "train", i, train_names, spec) for i in range(spec.n_train)]
    jobs += [(str(prepared), str(root), "val", i, val_names, spec) for i in range(spec.n_val)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            counts = list(pool.map(_make_chip, jobs, chunksize=4))
    else:
        counts = [_make_chip(j) for j in jobs]
    log.info("fair-drone: %d chips, %d removed-building boxes", len(jobs), sum(counts))
    return write_data_yaml(root)
