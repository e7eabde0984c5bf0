"""Synthetic training chips: rendered district patches with scale and between-date realism.

Each chip is rendered at a native GSD drawn from ``gsd_range`` (0.12-0.35 m: drone to aerial)
and resampled to the working GSD, so objects of many native resolutions look right. The baseline
then gets satellite-like degradation, misregistration and colour jitter; a random dihedral
transform is applied to both epochs and the boxes. About ``no_change_fraction`` of chips show the
same scene on both dates (only nuisance differences) and carry no boxes: with the geo renderer a
rendered no-change scene (``style={"changes": False}``: other season, sun and shadows, moved cars,
vegetation), with the procedural one the baseline epoch copied.

Rendering uses ``geo.synthetic.scene.render_pair`` when it is importable, else (or when
``renderer="procedural"``) the built-in :mod:`models.datasets.procedural` renderer.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from models.classes import CLASS_IDS
from models.datasets import procedural
from models.datasets.realism import between_dates, dihedral
from models.datasets.writer import Label, write_chip, write_data_yaml

__all__ = ["SyntheticSpec", "build_synthetic", "chip_from_pair", "resolve_renderer", "Renderer"]

log = logging.getLogger(__name__)

Renderer = Literal["auto", "geo", "procedural", "mixed"]
RenderFn = Callable[..., Any]


@dataclass(frozen=True)
class SyntheticSpec:
    """What to render: counts per split, chip size, GSDs, seed and renderer choice."""

    n_train: int = 64
    n_val: int = 16
    size_px: int = 512
    working_gsd: float = 0.2
    gsd_range: tuple[float, float] = (0.12, 0.35)
    no_change_fraction: float = 0.15
    seed: int = 0
    renderer: Renderer = "auto"
    #: > 0: the flight seen at the baseline's detail GSD where that is coarser (metres)
    match_flight: float = 0.0


def _geo_render() -> RenderFn | None:
    try:
        module = importlib.import_module("geo.synthetic.scene")
    except ImportError as exc:
        log.info("geo.synthetic.scene not importable (%s); using the procedural renderer", exc)
        return None
    return getattr(module, "render_pair", None)


def resolve_renderer(choice: Renderer, index: int) -> tuple[str, RenderFn]:
    """Pick the render function for chip ``index`` under ``choice``."""
    if choice == "procedural":
        return "procedural", procedural.render_pair
    geo = _geo_render()
    if geo is None:
        if choice == "geo":
            raise ImportError("renderer='geo' but geo.synthetic.scene.render_pair is missing")
        return "procedural", procedural.render_pair
    if choice == "mixed" and index % 3 == 0:  # one chip in three from the procedural renderer
        return "procedural", procedural.render_pair
    return "geo", geo


def _boxes_from_changes(changes: Any, scale: tuple[float, float]) -> list[Label]:
    """The outlines (chip pixels) of the changes a detector must report."""
    boxes: list[Label] = []
    for ch in changes:
        if ch.expected not in ("lead", "permitted") or ch.cls not in CLASS_IDS:
            continue
        poly = np.asarray(ch.polygon, np.float64).reshape(-1, 2) * np.asarray(scale)
        boxes.append((CLASS_IDS[ch.cls], poly))
    return boxes


def chip_from_pair(
    pair: Any,
    size_px: int,
    gsd: float,
    rng: np.random.Generator,
    no_change: bool = False,
    match_above_m: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, list[Label]]:
    """Turn a rendered pair into one training chip ``(flight, baseline, boxes)`` of ``size_px``
    (``match_above_m``: :func:`models.datasets.realism.between_dates`)."""
    h, w = pair.after.shape[:2]
    if pair.before.shape != pair.after.shape or pair.after.ndim != 3:
        raise ValueError(f"before {pair.before.shape} and after {pair.after.shape} differ")
    scale = (size_px / w, size_px / h)
    interp = cv2.INTER_AREA if max(h, w) > size_px else cv2.INTER_LINEAR
    after = cv2.resize(pair.after, (size_px, size_px), interpolation=interp)
    before = cv2.resize(pair.before, (size_px, size_px), interpolation=interp)
    valid = cv2.resize(
        (np.asarray(pair.valid_after) & np.asarray(pair.valid_before)).astype(np.uint8),
        (size_px, size_px),
        interpolation=cv2.INTER_NEAREST,
    ).astype(bool)
    boxes = [] if no_change else _boxes_from_changes(pair.changes, scale)
    if no_change:
        after = before.copy()
    flight, baseline = between_dates(after, before, rng, gsd, match_above_m=match_above_m)
    flight[~valid] = 0
    baseline[~valid] = 0
    return dihedral(flight, baseline, boxes, int(rng.integers(4)), bool(rng.random() < 0.5))


def _make_chip(args: tuple[str, str, int, SyntheticSpec]) -> tuple[int, int]:
    root, split, index, spec = args
    offset = 0 if split == "train" else 10_000_000
    seed = spec.seed * 1_000_003 + offset + index
    rng = np.random.default_rng(seed)
    native_gsd = float(rng.uniform(*spec.gsd_range))
    native = max(32, math.ceil(spec.size_px * spec.working_gsd / native_gsd))
    name, render = resolve_renderer(spec.renderer, index)
    no_change = bool(rng.random() < spec.no_change_fraction)
    try:
        if name == "procedural":
            pair = render(seed, native, native_gsd)
            flight, baseline, boxes = chip_from_pair(
                pair, spec.size_px, spec.working_gsd, rng, no_change, spec.match_flight
            )
        else:  # a real no-change scene: other season, sun and shadows, moved cars, vegetation
            extra = {"style": {"changes": False}} if no_change else {}
            pair = render(seed=seed, size_px=native, gsd=native_gsd, **extra)
            flight, baseline, boxes = chip_from_pair(
                pair, spec.size_px, spec.working_gsd, rng, match_above_m=spec.match_flight
            )
    except Exception as exc:  # a renderer bug must not sink a whole training run
        if name == "procedural" or spec.renderer == "geo":
            raise
        log.warning("geo renderer failed on seed %d (%s: %s); chip rendered procedurally",
                    seed, type(exc).__name__, exc)  # fmt: skip
        pair = procedural.render_pair(seed, native, native_gsd)
        flight, baseline, boxes = chip_from_pair(
            pair, spec.size_px, spec.working_gsd, rng, no_change, spec.match_flight
        )
    write_chip(root, split, f"syn_{split}_{index:06d}", flight, baseline, boxes)
    return len(boxes), int(no_change)


def build_synthetic(
    root: str | Path, spec: SyntheticSpec, workers: int = 1, time_budget_s: float | None = None
) -> Path:
    """Render ``spec`` into an ultralytics dataset under ``root``; returns ``data.yaml``.

    With ``time_budget_s``, training chips stop being rendered once the budget is spent
    (validation chips are rendered first, so the validation set is always complete).
    """
    root = Path(root)
    jobs = [(str(root), "val", i, spec) for i in range(spec.n_val)]
    jobs += [(str(root), "train", i, spec) for i in range(spec.n_train)]
    start = time.monotonic()
    results: list[tuple[int, int]] = []
    chunk = max(1, workers) * 16
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        for i in range(0, len(jobs), chunk):
            part = jobs[i : i + chunk]
            results += list(
                pool.map(_make_chip, part, chunksize=4) if pool else map(_make_chip, part)
            )
            if (
                time_budget_s
                and time.monotonic() - start > time_budget_s
                and i + chunk >= spec.n_val
            ):
                log.warning("synthetic: time budget %.0f s spent after %d of %d chips",
                            time_budget_s, len(results), len(jobs))  # fmt: skip
                break
    finally:
        if pool:
            pool.shutdown()
    n_boxes = sum(r[0] for r in results)
    log.info("synthetic: %d chips in %.1f s, %d boxes, %d no-change", len(results),
             time.monotonic() - start, n_boxes, sum(r[1] for r in results))  # fmt: skip
    return write_data_yaml(root)
