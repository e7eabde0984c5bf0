"""Object-level evaluation: match detections to truth (IoU >= 0.25), per-class P/R/F1, mAP50.

Pure functions on geometries (shapely polygons, or ``(n, 4)`` xyxy boxes) plus a JSON writer.
Matching is greedy by descending score, one truth object per detection, within each class.

>>> import numpy as np
>>> truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
>>> pred = np.array([[1, 1, 10, 10], [50, 50, 60, 60]], float)
>>> r = evaluate_objects(pred, [0, 0], [0.9, 0.8], truth, [0, 0])
>>> r["per_class"]["new_building"]["tp"], r["per_class"]["new_building"]["fp"], r["per_class"]["new_building"]["fn"]
(1, 1, 1)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.atomic import write_text_atomic
from models.classes import CLASS_NAMES

__all__ = ["iou_matrix", "match_greedy", "average_precision", "evaluate_objects", "write_report"]

Geoms = Sequence[BaseGeometry] | np.ndarray


def _as_geoms(g: Geoms) -> np.ndarray:
    if isinstance(g, np.ndarray) and g.dtype != object:
        boxes = np.asarray(g, float).reshape(-1, 4)
        return np.asarray(shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]), object)
    return np.asarray(list(g), dtype=object)


def iou_matrix(a: Geoms, b: Geoms) -> np.ndarray:
    """Intersection-over-union of every geometry in ``a`` with every one in ``b`` (``len(a) x len(b)``)."""
    ga, gb = _as_geoms(a), _as_geoms(b)
    if not len(ga) or not len(gb):
        return np.zeros((len(ga), len(gb)))
    tree = shapely.STRtree(gb)
    ia, ib = tree.query(ga, predicate="intersects")
    out = np.zeros((len(ga), len(gb)))
    if len(ia):
        inter = shapely.area(shapely.intersection(ga[ia], gb[ib]))
        union = shapely.area(ga[ia]) + shapely.area(gb[ib]) - inter
        out[ia, ib] = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return out


def match_greedy(iou: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """For detections in descending-score order, the truth index each matches (``-1`` = none).

    Returns an array aligned with the *input* order of detections.
    """
    matched = np.full(iou.shape[0], -1, np.int64)
    taken = np.zeros(iou.shape[1], bool)
    for i in np.argsort(-np.asarray(scores, float), kind="stable"):
        if not iou.shape[1]:
            break
        cand = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] >= threshold:
            matched[i] = j
            taken[j] = True
    return matched


def average_precision(tp_sorted: np.ndarray, n_truth: int) -> float:
    """All-point interpolated AP from TP flags ordered by descending score."""
    if n_truth == 0:
        return float("nan")
    tp = np.asarray(tp_sorted, float)
    if not len(tp):
        return 0.0
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    recall = ctp / n_truth
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _class_ids(classes: Sequence[Any] | np.ndarray) -> np.ndarray:
    ids = []
    for c in classes:
        if isinstance(c, str):
            if c not in CLASS_NAMES:
                raise ValueError(f"class {c!r} is not one of {CLASS_NAMES}")
            ids.append(CLASS_NAMES.index(c))
        else:
            ids.append(int(c))
    return np.asarray(ids, np.int64)


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(f1, 4)}  # fmt: skip


def evaluate_objects(
    pred: Geoms,
    pred_class: Sequence[Any] | np.ndarray,
    pred_score: Sequence[float] | np.ndarray,
    truth: Geoms,
    truth_class: Sequence[Any] | np.ndarray,
    iou_threshold: float = 0.25,
    conf: float = 0.0,
    area_km2: float | None = None,
) -> dict[str, Any]:
    """Per-class and overall P/R/F1 at ``iou_threshold`` (detections with score >= ``conf``),
    per-class AP50 over all scores, mAP50, a class-agnostic score, and false detections per km².
    """
    gp, gt = _as_geoms(pred), _as_geoms(truth)
    cp, ct = _class_ids(pred_class), _class_ids(truth_class)
    sp = np.asarray(pred_score, float).reshape(-1)
    if not (len(gp) == len(cp) == len(sp)) or len(gt) != len(ct):
        raise ValueError(
            f"lengths differ: {len(gp)} predictions, {len(cp)} classes, {len(sp)} scores; "
            f"{len(gt)} truth objects, {len(ct)} truth classes"
        )
    per_class: dict[str, Any] = {}
    aps = []
    totals = [0, 0, 0]
    for k, name in enumerate(CLASS_NAMES):
        pk, tk = np.where(cp == k)[0], np.where(ct == k)[0]
        iou = iou_matrix(gp[pk], gt[tk])
        # AP50 over every score
        m50 = match_greedy(iou, sp[pk], 0.5)
        order = np.argsort(-sp[pk], kind="stable")
        ap = average_precision((m50[order] >= 0).astype(float), len(tk))
        # P/R/F1 at the operating threshold
        keep = sp[pk] >= conf
        m = match_greedy(iou[keep], sp[pk][keep], iou_threshold)
        tp = int((m >= 0).sum())
        fp, fn = int(keep.sum()) - tp, len(tk) - tp
        per_class[name] = {**_prf(tp, fp, fn), "n_truth": len(tk),
                           "ap50": None if np.isnan(ap) else round(ap, 4)}  # fmt: skip
        if not np.isnan(ap):
            aps.append(ap)
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
    keep = sp >= conf
    m_any = match_greedy(iou_matrix(gp[keep], gt), sp[keep], iou_threshold)
    tp_any = int((m_any >= 0).sum())
    report: dict[str, Any] = {
        "iou_threshold": iou_threshold,
        "conf": conf,
        "per_class": per_class,
        "overall": _prf(*totals),
        "class_agnostic": _prf(tp_any, int(keep.sum()) - tp_any, len(gt) - tp_any),
        "map50": round(float(np.mean(aps)), 4) if aps else None,
        "n_pred": int(keep.sum()),
        "n_truth": len(gt),
    }
    if area_km2:
        report["area_km2"] = round(area_km2, 6)
        report["false_detections_per_km2"] = round(report["class_agnostic"]["fp"] / area_km2, 3)
    return report


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write a report as pretty JSON (temp file then rename)."""
    path = Path(path)
    text = json.dumps(report, indent=2, ensure_ascii=False, default=float)
    return write_text_atomic(path, text, mkdir=True)
