"""Per-class score thresholds calibrated on held-out pseudo pairs, with the precision/recall curve.

The detector's score is not a probability, and it shifts with every training run, so the threshold
that turns a candidate into a lead is *measured* for each weights file: the detector runs on chips
it never trained on (pseudo pairs from held-out mosaics and synthetic districts seeded apart from
training - never the real validation sets), each prediction (its outline, else its box) is matched
to the labelled outlines at IoU >= 0.25, and precision, recall and F1 are tabulated for every
threshold, together with the false leads per km² on the chips where nothing changed. The chosen
threshold per class is the one with the best F1 among those that keep no-change chips at or below
``max_false_per_km2`` (the product's target, 1 per km²); where none does, the one with the fewest
false leads there.

The leads stage joins outlines of one class that touch into one structure
(``filters.dissolve_gap_m``; :mod:`geo.outlines`); with ``join_gap_px`` the predictions above each
threshold are joined the same way, in chip pixels, before they are matched and counted, so the
curve counts what the product would hand on: two touching houses joined into one lead are a
false lead and two misses here as well.

>>> import numpy as np
>>> curve = {0.3: (8, 4, 2), 0.5: (7, 1, 3), 0.7: (4, 0, 6)}   # threshold: (tp, fp, fn)
>>> pick_threshold(curve)
0.5
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geo.outlines import join_outlines, touching_groups
from models.classes import CLASS_NAMES
from models.evaluate import iou_matrix, match_greedy

__all__ = ["Calibration", "calibrate", "pick_threshold", "THRESHOLDS"]

#: thresholds tabulated (the detector runs once at the lowest)
THRESHOLDS: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


@dataclass
class Calibration:
    """Counts per class and threshold, the chosen thresholds, and where the chips came from."""

    counts: dict[str, dict[float, tuple[int, int, int]]]
    chips: int
    sources: list[str] = field(default_factory=list)
    iou: float = 0.25
    #: false detections per class and threshold on the chips with no change at all
    nochange_fp: dict[str, dict[float, int]] = field(default_factory=dict)
    nochange_km2: float = 0.0
    max_false_per_km2: float = 1.0
    #: touching outlines closer than this (chip pixels) were joined before matching (0: none)
    join_gap_px: float = 0.0
    #: per class, the lowest threshold allowed whatever the chips pick (:attr:`min_score`), set
    #: where a measurement the chips cannot make (whole no-change districts of another season)
    #: needs a higher one; recorded with the pick beside it
    floor: dict[str, float] = field(default_factory=dict)

    def false_per_km2(self, cls: str, t: float) -> float | None:
        if self.nochange_km2 <= 0:
            return None
        return self.nochange_fp.get(cls, {}).get(t, 0) / self.nochange_km2

    @property
    def min_score(self) -> dict[str, float]:
        """Per class: :attr:`picked`, raised to the class's :attr:`floor` where it is below."""
        return {c: max(t, self.floor.get(c, 0.0)) for c, t in self.picked.items()}

    @property
    def picked(self) -> dict[str, float]:
        """Per class: the best-F1 threshold that keeps no-change chips within the false-lead cap."""
        out = {}
        for c, by_t in self.counts.items():
            ok = {t: v for t, v in by_t.items()
                  if (self.false_per_km2(c, t) or 0.0) <= self.max_false_per_km2}  # fmt: skip
            if ok:
                out[c] = pick_threshold(ok)
            else:  # nothing meets the cap: the fewest false leads where nothing changed
                out[c] = float(min(by_t, key=lambda t: (self.nochange_fp[c][t], -t)))
        return out

    def curve(self) -> dict[str, list[dict[str, float | None]]]:
        """Precision/recall/F1 against threshold per class (for the model card)."""
        out: dict[str, list[dict[str, float | None]]] = {}
        for cls, by_t in self.counts.items():
            rows = []
            for t, (tp, fp, fn) in sorted(by_t.items()):
                p, r, f1 = _prf(tp, fp, fn)
                fpk = self.false_per_km2(cls, t)
                rows.append({"threshold": t, "precision": p, "recall": r, "f1": f1,
                             "tp": tp, "fp": fp, "fn": fn,
                             "nochange_false_per_km2": None if fpk is None else round(fpk, 2)})  # fmt: skip
            out[cls] = rows
        return out

    def as_card(self) -> dict[str, Any]:
        out = {"min_score": self.min_score, "iou": self.iou, "chips": self.chips,
                "sources": self.sources, "nochange_km2": round(self.nochange_km2, 4),
                "max_false_per_km2": self.max_false_per_km2,
                "join_gap_px": self.join_gap_px, "curve": self.curve()}  # fmt: skip
        if self.floor:
            out |= {"picked": self.picked, "floor": dict(self.floor)}
        return out

    def table(self) -> str:
        """A plain-text table: threshold, then P/R/F1 per class."""
        head = "thr   " + "  ".join(f"{c[:12]:>12s} P    R    F1   nc/km²" for c in self.counts)
        lines = [head]
        for t in sorted(next(iter(self.counts.values()), {})):
            cells = []
            for c in self.counts:
                p, r, f1 = _prf(*self.counts[c][t])
                fpk = self.false_per_km2(c, t)
                nc = "    -" if fpk is None else f"{fpk:6.1f}"
                cells.append(f"{'':>12s} {p:.2f} {r:.2f} {f1:.2f} {nc}")
            lines.append(f"{t:.2f}  " + "  ".join(cells))
        return "\n".join(lines)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return round(p, 4), round(r, 4), round(f1, 4)


def pick_threshold(by_threshold: Mapping[float, tuple[int, int, int]]) -> float:
    """The threshold with the best F1 (ties: the higher threshold, fewer false leads)."""
    best, best_f1 = 0.5, -1.0
    for t, counts in sorted(by_threshold.items()):
        tp, fp, fn = counts
        if tp + fp + fn == 0:
            continue
        f1 = _prf(tp, fp, fn)[2]
        if f1 >= best_f1:
            best, best_f1 = float(t), f1
    return best


def _pred_geoms(cands: Any) -> np.ndarray:
    return _pred_outlines(cands)[0]


def _pred_outlines(cands: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's outline polygon (its box where it has none), and which are outlines."""
    geoms = np.asarray(shapely.box(*cands.xyxy.T.astype(np.float64)), object).reshape(-1)
    outlined = np.zeros(len(geoms), bool)
    for i, pts in enumerate(cands.outline):
        if pts is not None and len(pts) >= 3:
            poly = shapely.make_valid(shapely.Polygon(np.asarray(pts, np.float64)))
            if not poly.is_empty and poly.area > 0:
                geoms[i], outlined[i] = poly, True
    return geoms, outlined


def _joined(
    geoms: np.ndarray, scores: np.ndarray, outlined: np.ndarray, gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Outlines closer than ``gap`` joined as the leads stage joins them (boxes left alone)."""
    idx = np.flatnonzero(outlined)
    groups = touching_groups(geoms[idx], np.zeros(len(idx), np.int64), gap)
    if not groups:
        return geoms, scores
    keep = np.ones(len(geoms), bool)
    extra_g, extra_s = [], []
    for members in groups:
        rows = idx[members]
        keep[rows] = False
        extra_g.append(shapely.make_valid(join_outlines(geoms[rows], gap)))
        extra_s.append(scores[rows].max())
    joined = np.empty(len(extra_g), object)
    joined[:] = extra_g
    return np.concatenate([geoms[keep], joined]), np.concatenate(
        [scores[keep], np.asarray(extra_s, scores.dtype)]
    )


def calibrate(
    predict: Any,
    chip_dirs: Sequence[str | Path],
    thresholds: Iterable[float] = THRESHOLDS,
    iou: float = 0.25,
    batch: int = 8,
    gsd: float = 0.2,
    max_false_per_km2: float = 1.0,
    join_gap_px: float = 0.0,
) -> Calibration:
    """Run ``predict`` (a :class:`ChangeDetector`) on every chip under ``chip_dirs`` and tabulate.

    Each folder holds 6-page chips (``*.tif``) with YOLO label files in the sibling ``labels``
    folder (``.../images/val`` -> ``.../labels/val``), as the dataset builders write them; a chip
    with an empty label file is a no-change chip, whose area (at ``gsd`` m/px) counts for the
    false-lead rate. ``join_gap_px`` > 0 joins touching outlines of a class above each threshold
    before matching (module doc), as the leads stage does with ``filters.dissolve_gap_m``.
    """
    from models.datasets.writer import read_chip, read_polygons

    thresholds = sorted(float(t) for t in thresholds)
    counts = {c: {t: [0, 0, 0] for t in thresholds} for c in CLASS_NAMES}
    nochange = {c: dict.fromkeys(thresholds, 0) for c in CLASS_NAMES}
    nochange_km2 = 0.0
    files = [f for d in chip_dirs for f in sorted(Path(d).glob("*.tif"))]
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        chips = [read_chip(f) for f in chunk]
        preds = predict.predict(chips, conf=thresholds[0])
        for f, chip, cands in zip(chunk, chips, preds, strict=True):
            h, w = chip.shape[:2]
            label = Path(str(f.parent).replace("images", "labels")) / f"{f.stem}.txt"
            truth = read_polygons(label, w, h)
            geoms, outlined = _pred_outlines(cands)
            if not truth:
                nochange_km2 += h * w * gsd * gsd / 1e6
            for k, cls in enumerate(CLASS_NAMES):
                tg = np.asarray([shapely.make_valid(shapely.Polygon(p)) for c, p in truth
                                 if c == k and len(p) >= 3], object)  # fmt: skip
                sel = cands.class_id == k
                for t in thresholds:
                    keep = sel & (cands.score >= t)
                    g, sc = geoms[keep], cands.score[keep]
                    if join_gap_px > 0:
                        g, sc = _joined(g, sc, outlined[keep], join_gap_px)
                    if not truth:
                        nochange[cls][t] += len(g)
                    m = match_greedy(iou_matrix(g, tg), sc, iou)
                    tp = int((m >= 0).sum())
                    row = counts[cls][t]
                    row[0] += tp
                    row[1] += len(g) - tp
                    row[2] += len(tg) - tp
    frozen = {c: {t: (v[0], v[1], v[2]) for t, v in by.items()} for c, by in counts.items()}
    return Calibration(frozen, len(files), [str(d) for d in chip_dirs], iou, nochange,
                       nochange_km2, max_false_per_km2, float(join_gap_px))  # fmt: skip
