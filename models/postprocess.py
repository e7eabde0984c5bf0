"""YOLO head output → detections, in numpy: confidence filter, class-aware NMS, ``max_det``.

The same decoding as ultralytics' ``non_max_suppression`` (single label per box, classes kept
apart by offsetting their boxes, greedy IoU suppression), without torch, so the CPU inference
path never imports it. ``raw`` is one image's ``(4 + nc + nm, N)`` head output: box centre x, y,
width, height in input pixels, ``nc`` class scores (already sigmoid), then ``nm`` mask
coefficients for segment models.

>>> raw = np.zeros((4 + 2, 3), np.float32)
>>> raw[:4] = [[10, 11, 50], [10, 10, 50], [8, 8, 8], [8, 8, 8]]  # two overlapping, one apart
>>> raw[4] = [0.9, 0.8, 0.1]; raw[5] = [0.0, 0.0, 0.7]
>>> det = non_max_suppression(raw, nc=2, conf=0.25, iou=0.5)
>>> [round(float(s), 2) for s in det[:, 4]], det[:, 5].tolist()
([0.9, 0.7], [0.0, 1.0])
"""

from __future__ import annotations

import numpy as np

__all__ = ["non_max_suppression", "nms_indices", "box_iou"]

#: class offset (ultralytics' ``max_wh``): boxes of different classes never overlap after it
MAX_WH = 7680.0
#: at most this many boxes (highest confidence) enter the suppression (ultralytics' ``max_nms``)
MAX_NMS = 30000


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box with each of ``boxes`` (``(n, 4)``)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms_indices(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first (ties: lower index first)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest]) <= iou]
    return np.asarray(keep, np.int64)


def non_max_suppression(
    raw: np.ndarray, nc: int, conf: float = 0.25, iou: float = 0.5, max_det: int = 300
) -> np.ndarray:
    """Detections ``(n, 6 + nm)``: ``x0, y0, x1, y1, score, class, *mask_coefficients``.

    Sorted by score, at most ``max_det``; boxes in the network input's pixels.
    """
    pred = np.asarray(raw, np.float32).T  # (N, 4 + nc + nm)
    scores = pred[:, 4 : 4 + nc]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(pred)), cls]
    hit = best > conf
    pred, cls, best = pred[hit], cls[hit], best[hit]
    if len(pred) > MAX_NMS:
        top = np.argsort(-best, kind="stable")[:MAX_NMS]
        pred, cls, best = pred[top], cls[top], best[top]
    xy, wh = pred[:, :2], pred[:, 2:4] / 2
    xyxy = np.concatenate([xy - wh, xy + wh], axis=1)
    offset = cls[:, None].astype(np.float32) * MAX_WH
    keep = nms_indices(xyxy + offset, best, iou)[:max_det]
    out = np.concatenate(
        [xyxy[keep], best[keep, None], cls[keep, None].astype(np.float32), pred[keep, 4 + nc :]],
        axis=1,
    )
    return out.astype(np.float32)
