"""Write chips, labels and ``data.yaml`` in the ultralytics 6-channel layout.

A chip is a flight RGB array and a baseline RGB array on the same pixel grid, plus labels in
pixels: outlines (``(class_id, (k, 2) array)``) or boxes (``(class_id, x0, y0, x1, y1)``). Every
label is written as a YOLO *segment* line (class, then normalised polygon vertices; a box becomes its
four corners), so one dataset trains both the ``detect`` and the ``segment`` task.
Images are 6-page TIFFs written with ``cv2.imwritemulti`` (one band per page), which is what
ultralytics' reader stacks into an ``(h, w, 6)`` array; no BGR/RGB flip happens for 6 channels, so
page order = channel order = flight R, G, B, baseline R, G, B.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

from geo.atomic import atomic_path, write_text_atomic
from models.classes import CLASS_NAMES

__all__ = [
    "BAND_ORDER",
    "Box",
    "Label",
    "Outline",
    "label_polygon",
    "read_polygons",
    "stack_pair",
    "write_chip",
    "write_data_yaml",
    "yolo_lines",
    "read_chip",
    "read_labels",
    "SPLITS",
]

#: channel order of every 6-channel chip and of the detector's input
BAND_ORDER: tuple[str, ...] = (
    "flight_red",
    "flight_green",
    "flight_blue",
    "baseline_red",
    "baseline_green",
    "baseline_blue",
)
SPLITS: tuple[str, ...] = ("train", "val")

#: one labelled box: (class_id, x0, y0, x1, y1) in chip pixels
Box = tuple[int, float, float, float, float]
#: one labelled outline: (class_id, (k, 2) float array of x, y vertices in chip pixels)
Outline = tuple[int, np.ndarray]
Label = Box | Outline


def label_polygon(label: Label) -> tuple[int, np.ndarray]:
    """``(class_id, (k, 2) vertices)`` of a box or outline label."""
    if len(label) == 2:
        cls, pts = label  # type: ignore[misc]
        return int(cls), np.asarray(pts, np.float64).reshape(-1, 2)
    cls, x0, y0, x1, y1 = label  # type: ignore[misc]
    return int(cls), np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _clip_outline(pts: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """The largest part of polygon ``pts`` inside the chip, as exterior vertices (or None)."""
    from shapely.geometry import Polygon, box

    if len(pts) < 3:
        return None
    poly = Polygon(pts)
    if not poly.is_valid:
        poly = poly.buffer(0)
    inside = poly.intersection(box(0, 0, width, height))
    if inside.is_empty:
        return None
    parts = [g for g in getattr(inside, "geoms", [inside]) if g.geom_type == "Polygon"]
    if not parts:
        return None
    best = max(parts, key=lambda g: g.area)
    return np.asarray(best.exterior.coords, np.float64)[:-1]


def stack_pair(flight: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Stack two ``(h, w, 3)`` uint8 RGB arrays into one ``(h, w, 6)`` detector input."""
    if flight.shape != baseline.shape or flight.ndim != 3 or flight.shape[2] != 3:
        raise ValueError(
            f"flight {flight.shape} and baseline {baseline.shape} must both be (h, w, 3) on one grid"
        )
    return np.ascontiguousarray(
        np.concatenate([flight, baseline], axis=2).astype(np.uint8, copy=False)
    )


def yolo_lines(labels: Iterable[Label], width: int, height: int, min_px: float = 3.0) -> list[str]:
    """Clip labels to the chip and format them as YOLO segment lines (tiny slivers dropped)."""
    lines = []
    for label in labels:
        cls, pts = label_polygon(label)
        clipped = _clip_outline(pts, width, height)
        if clipped is None:
            continue
        span = clipped.max(axis=0) - clipped.min(axis=0)
        if span[0] < min_px or span[1] < min_px:
            continue
        norm = clipped / np.array([width, height], np.float64)
        lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in norm.clip(0, 1).ravel()))
    return lines


def write_chip(
    root: str | Path,
    split: str,
    name: str,
    flight: np.ndarray,
    baseline: np.ndarray,
    boxes: Sequence[Label],
) -> Path:
    """Write one chip (6-page TIFF) and its label file (outlines or boxes); returns the image path."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    root = Path(root)
    img_dir, lbl_dir = root / "images" / split, root / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    stack = stack_pair(flight, baseline)
    h, w = stack.shape[:2]
    img_path = img_dir / f"{name}.tif"
    pages = [np.ascontiguousarray(stack[:, :, i]) for i in range(6)]
    with atomic_path(img_path) as tmp:
        if not cv2.imwritemulti(str(tmp), pages):
            raise OSError(f"{tmp}: OpenCV could not write the 6-page TIFF; check disk space")
    lines = yolo_lines(boxes, w, h)
    write_text_atomic(lbl_dir / f"{name}.txt", "\n".join(lines) + ("\n" if lines else ""))
    return img_path


def write_data_yaml(root: str | Path, extra_train: Sequence[str | Path] = ()) -> Path:
    """Write ``root/data.yaml`` (``channels: 6``); ``extra_train`` adds other image folders."""
    root = Path(root).resolve()
    train: list[str] = [str(root / "images" / "train")] + [
        str(Path(p).resolve()) for p in extra_train
    ]
    data = {
        "path": str(root),
        "train": train if len(train) > 1 else train[0],
        "val": str(root / "images" / "val"),
        "channels": 6,
        "names": dict(enumerate(CLASS_NAMES)),
    }
    path = root / "data.yaml"
    return write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


def read_chip(path: str | Path) -> np.ndarray:
    """Read a 6-page chip back as ``(h, w, 6)`` uint8 (for checks and evaluation)."""
    ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
    if not ok or len(pages) != 6:
        raise OSError(f"{path}: expected a 6-page TIFF, got {len(pages) if ok else 0} pages")
    return np.stack(pages, axis=2)


def read_polygons(path: str | Path, width: int, height: int) -> list[Outline]:
    """Read a YOLO label file (segment or box lines) back into pixel outlines."""
    out: list[Outline] = []
    text = Path(path).read_text() if Path(path).is_file() else ""
    for line in text.splitlines():
        if not line.strip():
            continue
        c, *vals = line.split()
        v = np.asarray(vals, np.float64)
        if len(v) == 4:  # a box line: cx cy w h
            cx, cy, w, h = v * [width, height, width, height]
            out.append(label_polygon((int(c), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
        else:
            out.append((int(c), v.reshape(-1, 2) * [width, height]))
    return out


def read_labels(path: str | Path, width: int, height: int) -> list[Box]:
    """Read a YOLO label file back into pixel boxes (the bounds of each outline)."""
    boxes: list[Box] = []
    for cls, pts in read_polygons(path, width, height):
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        boxes.append((cls, float(x0), float(y0), float(x1), float(y1)))
    return boxes
