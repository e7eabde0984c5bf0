"""Pseudo before/after pairs from real single-date drone imagery (STAR-style supervision).

Input: the folder :func:`models.datasets.fairdrone_prepare.prepare_fairdrone` wrote (``NAME.jpg``
mosaic at a known ground GSD + ``NAME_ids.png`` building ids). For each chip a random window is
read, degraded to a native GSD drawn from ``gsd_range`` and resampled to the working GSD; the
real image is the *flight*; a *baseline* is made by removing a random subset of its buildings
(transplanting nearby building-free ground, or inpainting, on a dilated mask), then given
between-date realism. Three kinds of change, so the detector sees how real new structures arrive:

* ``remove``: a random subset of the buildings is removed from the baseline (one at a time);
* ``estate``: a whole block (a random region, up to the whole chip) is bare land in the baseline, so
  every building and road in it is new, as when an estate is built on a field at once;
* ``paste``: real building cut-outs (with the ground and shadow just around them) are pasted onto
  another window's building-free ground in the flight; the baseline is that ground.

With ``nuisance`` > 0, that share of the chips (of every kind) also gets change that is not a new
structure, painted by :mod:`models.datasets.nuisance`: cars that moved, a plot of ground in
another season's cover, re-roofed and demolished buildings; the labels stay the same. With
``relief`` > 0, that share of the baselines sees the standing buildings' roofs leaning, as an
off-nadir satellite or aerial frame does (:func:`models.datasets.nuisance.lean_roofs`). With
``magnify`` > 0, that share of the chips shows its window 1.25-2x larger than life (a smaller
window resampled to the chip; blur drawn as for the others, in the enlarged units): the six
mosaics' houses are small (40-80 m2), the users' villages, suburbs and sheds are not. With
``water`` > 0, that share of the chips has standing water on one date only — a pond, flooded
paddies, puddles (:func:`models.datasets.nuisance.flood_ground`) — away from every building.
With ``match_flight`` > 0 (metres), the flight is seen at the baseline's detail GSD where that is
coarser than it, as the product shows it (:func:`models.datasets.realism.matched_flight`).
With ``roof_planes`` > 0, that share of the chips shows its new buildings' roofs in two or four
tones (:func:`split_roof_tones`): the planes of a gable or hip roof lit and shaded by the sun, a
wing or garage covered in another material. Each building keeps its one outline, so the detector
learns that a tone edge inside a roof does not split a building (on a real suburb the shipped
detector outlines such houses as two to four parts).
With ``grow`` > 0, that share of the change chips shows its new buildings larger than the mosaics
build them (:func:`grow_buildings`): each new roof, with its shadow and a metre of ground, is
enlarged in place 1.4-2.6x (and in some stretched up to 2x more along its ridge) wherever that
clears every other building, so new detached houses of 150-300 m2, long sheds and commercial roofs
appear among the mosaics' 40-80 m2 houses at the true GSD of the ground around them. Unlike
``magnify`` (the whole window larger, ground and cars too), the scene's scale stays true.

Each new building is labelled with its **outline** (from the OSM footprint), class
``new_building``. ``no_change_fraction`` of the chips change nothing (nuisance differences only).
Needs only OpenCV, NumPy and Shapely.
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
from models.datasets.writer import Label, write_chip, write_data_yaml

__all__ = [
    "FairDroneSpec",
    "build_fairdrone",
    "remove_buildings",
    "bare_land",
    "outline_of",
    "other_sun",
    "grow_buildings",
    "VAL_MOSAICS",
]

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
    estate_fraction: float = 0.25
    paste_fraction: float = 0.15
    other_sun: float = 0.0
    nuisance: float = 0.0
    relief: float = 0.0
    magnify: float = 0.0
    water: float = 0.0
    roof_planes: float = 0.0
    match_flight: float = 0.0
    grow: float = 0.0
    seed: int = 0


#: how much larger than life a magnified chip shows its window (linear, uniform)
MAGNIFY_RANGE: tuple[float, float] = (1.25, 2.0)
#: how much larger a grown building is drawn (linear, uniform), and the extra stretch along its
#: main axis that some get (sheds, rows, commercial roofs)
GROW_RANGE: tuple[float, float] = (1.4, 2.6)
STRETCH_RANGE: tuple[float, float] = (1.0, 2.0)


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


def outline_of(mask: np.ndarray, scale: float = 1.0, eps_px: float = 0.7) -> np.ndarray | None:
    """The outer outline (``(k, 2)`` x, y vertices times ``scale``) of the largest blob in ``mask``."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    c = cv2.approxPolyDP(c, eps_px, True).reshape(-1, 2).astype(np.float64)
    if len(c) < 3:
        return None
    # vertex coordinates are pixel centres; push them out half a pixel from the centroid
    centre = c.mean(axis=0)
    d = c - centre
    norm = np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    return (c + 0.5 + 0.5 * d / norm) * scale


def _ground_patch(
    img: np.ndarray, ids: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray | None:
    """A real building-free window of ``size`` px from the mosaic (mirror-tiled from a smaller one)."""
    h, w = ids.shape
    blocked = (ids > 0) | (img.max(axis=2) == 0)
    for side in (size, size // 2, size // 4):
        if side < 32 or side > min(h, w):
            continue
        integral = np.pad(blocked.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        for _ in range(40):
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            hits = (integral[y + side, x + side] - integral[y, x + side]
                    - integral[y + side, x] + integral[y, x])  # fmt: skip
            if hits == 0:
                patch = img[y : y + side, x : x + side]
                reps = -(-size // side)
                row = np.concatenate(
                    [patch if j % 2 == 0 else patch[:, ::-1] for j in range(reps)], 1
                )
                tile = np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(reps)], 0)
                return np.ascontiguousarray(tile[:size, :size])
    return None


def bare_land(shape: tuple[int, int], rng: np.random.Generator, gsd: float) -> np.ndarray:
    """A field or cleared plot as seen from above: soil or dry grass at low frequency, grain, tracks."""
    h, w = shape
    palette = np.array([[150, 120, 85], [170, 150, 110], [125, 115, 80], [110, 120, 70],
                        [185, 170, 140], [140, 100, 70]], np.float32)  # fmt: skip
    base = palette[int(rng.integers(len(palette)))] + rng.normal(0, 12, 3)
    gh, gw = max(2, h // 64), max(2, w // 64)
    coarse = rng.normal(0, 1, (gh, gw, 1)) + 0.25 * rng.normal(
        0, 1, (gh, gw, 3)
    )  # mostly brightness
    field = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    field = field * float(rng.uniform(6, 18))
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)[..., None]
    out = base[None, None, :] + field + fine * float(rng.uniform(4, 12))
    for _ in range(int(rng.integers(0, 4))):  # vehicle tracks and paths across the plot
        p0 = rng.uniform(0, [w, h]).astype(int)
        p1 = rng.uniform(0, [w, h]).astype(int)
        width = max(1, round(float(rng.uniform(0.4, 3.0)) / gsd))
        shade = float(rng.uniform(-25, 30))
        layer = np.zeros((h, w), np.float32)
        cv2.line(layer, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1.0, width)
        out += cv2.GaussianBlur(layer, (0, 0), 1.5)[..., None] * shade
    return np.clip(out, 0, 255).astype(np.uint8)


def _feather(mask: np.ndarray, px: float) -> np.ndarray:
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(0.5, px))
    return np.maximum(alpha, mask.astype(np.float32))[..., None]


def _estate(
    img: np.ndarray, ids: np.ndarray, rng: np.random.Generator, gsd: float
) -> tuple[np.ndarray, list[int]]:
    """Baseline where a block (up to the whole window) was bare land; the ids of buildings in it."""
    h, w = ids.shape
    region = np.zeros((h, w), np.uint8)
    if rng.random() < 0.4:
        region[:] = 1
    else:  # a random block: a rotated rectangle covering 30-80 % of the window
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        bw, bh = rng.uniform(0.5, 1.0) * w, rng.uniform(0.5, 1.0) * h
        pts = cv2.boxPoints(((cx, cy), (bw, bh), float(rng.uniform(0, 90))))
        cv2.fillPoly(region, [pts.astype(np.int32)], 1)
    hit = [int(i) for i in np.unique(ids[region > 0]) if i]
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(1.0 / gsd) + 1,) * 2)
    if hit:  # whole buildings, with a margin for their shadows, are inside the block
        region = np.maximum(region, cv2.dilate(np.isin(ids, hit).astype(np.uint8), margin))
    ground = _ground_patch(img, ids, max(h, w), rng) if rng.random() < 0.5 else None
    if ground is None:
        ground = bare_land((h, w), rng, gsd)
    else:
        ground = ground[:h, :w]
    alpha = _feather(region, 2.0 / gsd * 0.3)
    before = ground.astype(np.float32) * alpha + img.astype(np.float32) * (1 - alpha)
    return np.clip(before, 0, 255).astype(np.uint8), hit


def _paste(
    img: np.ndarray,
    ids: np.ndarray,
    rng: np.random.Generator,
    gsd: float,
    donor: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Paste the donor window's whole buildings onto this window's ground (or bare land).

    Returns ``(flight, baseline, new_ids)``: the baseline is the ground, the flight has the
    buildings (each with about a metre of its own surroundings, so its shadow comes along).
    """
    h, w = ids.shape
    d_img, d_ids = donor
    ground = _ground_patch(img, ids, max(h, w), rng)
    ground = bare_land((h, w), rng, gsd) if ground is None else ground[:h, :w]
    present = [int(i) for i in np.unique(d_ids) if i]
    if not present:
        return None
    keep = [i for i in present if rng.random() < 0.6] or present[:1]
    mask = np.isin(d_ids, keep).astype(np.uint8)
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(0.8 / gsd)) + 1,) * 2)
    alpha = _feather(cv2.dilate(mask, margin), 1.5)
    flight = ground.astype(np.float32) * (1 - alpha) + d_img.astype(np.float32) * alpha
    new_ids = np.where(mask > 0, d_ids, 0).astype(ids.dtype)
    return np.clip(flight, 0, 255).astype(np.uint8), ground, new_ids


def other_sun(
    img: np.ndarray, buildings: np.ndarray, rng: np.random.Generator, gsd: float
) -> np.ndarray:
    """Cast the shadows ``buildings`` (a mask) would throw under another sun onto ``img``.

    The footprint shifted 0.5-3 m away from a random sun azimuth, minus the footprint itself,
    is darkened (soft edge): a baseline taken at another hour or season has its shadows
    elsewhere, which a detector must not read as a new structure.
    """
    h, w = buildings.shape
    length = float(rng.uniform(0.5, 3.0)) / gsd
    azimuth = float(rng.uniform(0, 2 * np.pi))
    m = np.array([[1, 0, length * np.cos(azimuth)], [0, 1, length * np.sin(azimuth)]], np.float32)
    mask = buildings.astype(np.uint8)
    cast = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST)
    shadow = ((cast > 0) & (mask == 0)).astype(np.float32)
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.5, 0.15 / gsd)) * (mask == 0)
    shadow = shadow[..., None]
    depth = float(rng.uniform(0.35, 0.65))
    tint = np.array([0.95, 1.0, 1.1], np.float32)  # shadows are lit by the blue sky
    out = img.astype(np.float32) * (1 - shadow * (1 - depth * tint))
    return np.clip(out, 0, 255).astype(np.uint8)


def split_roof_tones(
    img: np.ndarray, ids: np.ndarray, buildings: list[int], rng: np.random.Generator
) -> np.ndarray:
    """Give each of ``buildings`` (ids in ``ids``) a roof of two or four tones, in ``img``'s copy.

    A building is cut through its centroid along or across its main axis (a gable roof's two
    planes, a wing in another material), or along both (a hip roof's four planes); every other
    part is darkened to 0.5-0.85 or lightened to 1.15-1.4 of its brightness, a little warmer or
    cooler. Pixels outside the buildings are untouched.
    """
    out = img.astype(np.float32)
    for i in buildings:
        rows, cols = np.nonzero(ids == i)
        if len(rows) < 16 or rng.random() < 0.2:  # some roofs stay one tone
            continue
        y, x = rows - rows.mean(), cols - cols.mean()
        theta = 0.5 * np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean())
        along = x * np.cos(theta) + y * np.sin(theta)  # the main axis
        across = -x * np.sin(theta) + y * np.cos(theta)
        kind = int(rng.integers(3))  # 0: ridge along the main axis, 1: across it, 2: hip (both)
        side = (
            (across > 0) if kind == 0 else (along > 0) if kind == 1 else (along > 0) ^ (across > 0)
        )
        part = rows[side], cols[side]
        factor = float(rng.uniform(0.5, 0.85) if rng.random() < 0.6 else rng.uniform(1.15, 1.4))
        tint = 1.0 + rng.uniform(-0.06, 0.06, 3).astype(np.float32)
        out[part] = out[part] * factor * tint
    return np.clip(out, 0, 255).astype(np.uint8)


def grow_buildings(
    img: np.ndarray,
    ids: np.ndarray,
    buildings: list[int],
    rng: np.random.Generator,
    gsd: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``buildings`` (ids in ``ids``) larger in ``img``; returns ``(img, ids)`` copies.

    Each building, with a metre of what is around it (its shadow, its yard), is scaled about its
    centroid by a factor from :data:`GROW_RANGE` (and in 40 % of them stretched along its main
    axis by one from :data:`STRETCH_RANGE`) and laid over the image with a soft edge; its id
    covers the grown footprint. A building is grown only as far as its footprint stays a metre
    clear of every other building and on the imaged part of the window (the factor is lowered
    step by step, down to 1.2, else it keeps its size), so no roof is half covered and every
    outline stays whole. Pixels outside the grown buildings and their margins are untouched.
    """
    h, w = ids.shape
    out_img = img.copy()
    out_ids = ids.copy()
    imaged = img.max(axis=2) > 0
    clear = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(1.0 / gsd)) + 1,) * 2)
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(0.8 / gsd)) + 1,) * 2)
    for i in [int(b) for b in rng.permutation(np.asarray(buildings, dtype=np.int64))]:
        mask = (out_ids == i).astype(np.uint8)
        rows, cols = np.nonzero(mask)
        if len(rows) < 16:
            continue
        cy, cx = float(rows.mean()), float(cols.mean())
        y, x = rows - cy, cols - cx
        theta = 0.5 * np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean())
        scale = float(rng.uniform(*GROW_RANGE))
        stretch = float(rng.uniform(*STRETCH_RANGE)) if rng.random() < 0.4 else 1.0
        others = cv2.dilate(((out_ids > 0) & (out_ids != i)).astype(np.uint8), clear) > 0
        while scale >= 1.2:
            c, s_ = np.cos(theta), np.sin(theta)
            rot = np.array([[c, -s_], [s_, c]])
            lin = rot @ np.diag([scale * stretch, scale]) @ rot.T  # the stretch is along the axis
            shift = np.array([cx, cy]) - lin @ np.array([cx, cy])
            m = np.hstack([lin, shift[:, None]]).astype(np.float32)
            grown = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST)
            on = grown > 0
            if on.any() and not (on & others).any() and imaged[on].all():
                break
            scale *= 0.85
        else:
            continue
        drawn = cv2.warpAffine(out_img, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        alpha = _feather(cv2.dilate(grown, margin) & imaged.astype(np.uint8), 1.5)
        alpha *= (~others)[..., None]  # the margin stops short of the neighbours too
        blend = drawn.astype(np.float32) * alpha + out_img.astype(np.float32) * (1 - alpha)
        out_img = np.clip(blend, 0, 255).astype(np.uint8)
        out_ids[out_ids == i] = 0
        out_ids[on] = i
    return out_img, out_ids


def _make_chip(args: tuple[str, str, str, int, list[str], FairDroneSpec]) -> int:
    prepared, root, split, index, names, spec = args
    rng = np.random.default_rng(
        spec.seed * 7_000_003 + (0 if split == "train" else 5_000_000) + index
    )
    name = names[int(rng.integers(len(names)))]
    img, ids, stored_gsd, counts = _load(Path(prepared), name)
    scale_jitter = float(rng.uniform(0.85, 1.15))
    larger = 1.0  # its own generator: the chip is otherwise the one at true size
    rng_m = np.random.default_rng([spec.seed, int(split == "train"), index, 0x6D61])
    if spec.magnify > 0 and rng_m.random() < spec.magnify:
        larger = float(rng_m.uniform(*MAGNIFY_RANGE))
    window = round(spec.size_px * spec.working_gsd * scale_jitter / (stored_gsd * larger))
    win_img, win_ids = _window(img, ids, window, rng)
    present = [int(i) for i in np.unique(win_ids) if i]
    no_change = bool(rng.random() < spec.no_change_fraction) or not present
    u = float(rng.random())
    after, new_ids = win_img, win_ids
    new: list[int] = []
    pasted_kind = False
    if no_change:
        before = win_img
    elif u < spec.estate_fraction:
        before, new = _estate(win_img, win_ids, rng, stored_gsd)
    elif u < spec.estate_fraction + spec.paste_fraction:
        donor = _window(img, ids, window, rng)
        pasted = _paste(win_img, win_ids, rng, stored_gsd, donor)
        if pasted is None:
            before = win_img
        else:
            after, before, new_ids = pasted
            new = [int(i) for i in np.unique(new_ids) if i]
            pasted_kind = True
    else:
        win_counts = np.bincount(win_ids.ravel().astype(np.int64), minlength=len(counts))
        full = [i for i in present if win_counts[i] > 0.7 * counts[i]]
        new = [i for i in full if rng.random() < spec.remove_probability] or full[:1]
        dilate = max(1, round(0.6 / stored_gsd))
        before = remove_buildings(win_img, win_ids, new, rng, dilate)
    if rng.random() < spec.other_sun:  # the buildings that stand on both dates: another sun
        kept = np.isin(win_ids, [i for i in present if i not in new]) if present else None
        if kept is not None and kept.any():
            before = other_sun(before, kept, rng, stored_gsd)
    if spec.grow > 0 and new:  # its own generator: the chip is otherwise the one at true size
        rng_g = np.random.default_rng([spec.seed, int(split == "train"), index, 0x6772])
        if rng_g.random() < spec.grow:
            after, new_ids = grow_buildings(after, new_ids, new, rng_g, stored_gsd)
    if spec.roof_planes > 0 and new:  # its own generator, as for the nuisance below
        rng_p = np.random.default_rng([spec.seed, int(split == "train"), index, 0x7270])
        if rng_p.random() < spec.roof_planes:
            after = split_roof_tones(after, new_ids, new, rng_p)
    if spec.nuisance > 0:  # its own generator: the chip is otherwise the one without nuisance
        from models.datasets.nuisance import add_nuisance

        rng_n = np.random.default_rng([spec.seed, int(split == "train"), index, 0x6E75])
        if rng_n.random() < spec.nuisance:
            standing = [] if pasted_kind else [i for i in present if i not in new]
            new_mask = np.isin(new_ids, new) if new else np.zeros(new_ids.shape, bool)
            after, before = add_nuisance(
                after, before, new_ids, new_mask, standing, rng_n, stored_gsd
            )
    if spec.relief > 0 and not pasted_kind:  # an off-nadir baseline: standing roofs lean
        from models.datasets.nuisance import lean_roofs

        rng_r = np.random.default_rng([spec.seed, int(split == "train"), index, 0x7265])
        standing = [i for i in present if i not in new]
        if standing and rng_r.random() < spec.relief:
            before = lean_roofs(before, win_ids, standing, rng_r, stored_gsd)
    if spec.water > 0:  # water on one date: its own generator, as above
        from models.datasets.nuisance import add_water

        rng_w = np.random.default_rng([spec.seed, int(split == "train"), index, 0x7761])
        if rng_w.random() < spec.water:
            after, before = add_water(after, before, win_ids, new_ids > 0, rng_w, stored_gsd)
    native_gsd = float(rng.uniform(*spec.gsd_range))
    chips = []
    for arr in (after, before):
        f = min(1.0, stored_gsd * larger / native_gsd)  # blur in the chip's (enlarged) units
        arr = cv2.resize(arr, (max(1, round(window * f)),) * 2, interpolation=cv2.INTER_AREA)
        chips.append(cv2.resize(arr, (spec.size_px,) * 2, interpolation=cv2.INTER_LINEAR))
    k = spec.size_px / window
    labels: list[Label] = []
    for i in new:
        outline = outline_of(new_ids == i, k)
        if outline is not None:
            labels.append((CLASS_IDS["new_building"], outline))
    valid = chips[0].max(axis=2) > 0
    flight, baseline = between_dates(
        chips[0], chips[1], rng, spec.working_gsd, match_above_m=spec.match_flight
    )
    flight[~valid] = 0
    baseline[~valid] = 0
    flight, baseline, labels = dihedral(
        flight, baseline, labels, int(rng.integers(4)), bool(rng.random() < 0.5)
    )
    write_chip(root, split, f"fd_{split}_{index:06d}", flight, baseline, labels)
    return len(labels)


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
    log.info("fair-drone: %d chips, %d new-building outlines", len(jobs), sum(counts))
    return write_data_yaml(root)
