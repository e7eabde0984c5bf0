"""Shared helpers for the detector benchmarks: weights to time and realistic 6-channel tiles."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.card import ModelCard, sha256, write_card  # noqa: E402
from models.datasets.procedural import render_pair  # noqa: E402
from models.datasets.synthetic import chip_from_pair  # noqa: E402
from models.detector import DEFAULT_WEIGHTS  # noqa: E402
from models.runtime import configure_ultralytics  # noqa: E402


def bench_weights(path: str | None, scratch: Path, imgsz: int = 512) -> Path:
    """The weights to time: ``path``, else the shipped ones, else an untrained yolo11n (same speed)."""
    if path:
        return Path(path)
    if DEFAULT_WEIGHTS.is_file():
        return DEFAULT_WEIGHTS
    configure_ultralytics()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / "untrained-yolo11n-6ch.pt"
    if not out.is_file():
        model = YOLO("yolo11n.yaml")
        model.model = DetectionModel("yolo11n.yaml", ch=6, nc=2, verbose=False)
        model.model.names = {0: "new_building", 1: "construction"}
        model.save(str(out))
        write_card(ModelCard(name=out.stem, weights=out.name, imgsz=imgsz, sha256=sha256(out)),
                   out.with_suffix(".yaml"))  # fmt: skip
    return out


def bench_tiles(n: int, size: int = 512, seed: int = 0) -> list[np.ndarray]:
    """``n`` synthetic (size, size, 6) uint8 tiles with buildings and changes."""
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(n):
        pair = render_pair(seed + i, size, 0.2)
        f, b, _ = chip_from_pair(pair, size, 0.2, rng)
        tiles.append(np.concatenate([f, b], axis=2))
    return tiles
