"""Write chips, labels and ``data.yaml`` in the ultralytics 6-channel layout.

A chip is a flight RGB array and a baseline RGB array on the same pixel grid, plus boxes in pixels.
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


def stack_pair(flight: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Stack two ``(h, w, 3)`` uint8 RGB arrays into one ``(h, w, 6)`` detector input."""
    if flight.shape != baseline.shape or flight.ndim != 3 or flight.shape[2] != 3:
        raise ValueError(
            f"flight {flight.shape} and baseline {baseline.shape} must both be (h, w, 3) on one grid"
        )
    return np.ascontiguousarray(
        np.concatenate([flight, baseline], axis=2).astype(np.uint8, copy=False)
    )


def yolo_lines(boxes: Iterable[Box], width: int, height: int, min_px: float = 3.0) -> list[str]:
    """Clip pixel boxes to the chip and format them as YOLO label lines (tiny slivers dropped)."""
    lines = []
    for cls, x0, y0, x1, y1 in boxes:
        x0, x1 = max(0.0, min(x0, x1)), min(float(width), max(x0, x1))
        y0, y1 = max(0.0, min(y0, y1)), min(float(height), max(y0, y1))
        if x1 - x0 < min_px or y1 - y0 < min_px:
            continue
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        w, h = (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def write_chip(
    root: str | Path,
    split: str,
    name: str,
    flight: np.ndarray,
    baseline: np.ndarray,
    boxes: Sequence[Box],
) -> Path:
    """Write one chip (6-page TIFF) and its label file; returns the image path."""
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


def read_labels(path: str | Path, width: int, height: int) -> list[Box]:
    """Read a YOLO label file back into pixel boxes."""
    boxes: list[Box] = []
    text = Path(path).read_text() if Path(path).is_file() else ""
    for line in text.splitlines():
        if not line.strip():
            continue
        c, cx, cy, w, h = line.split()
        fx, fy, fw, fh = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
        boxes.append((int(c), fx - fw / 2, fy - fh / 2, fx + fw / 2, fy + fh / 2))
    return boxes
