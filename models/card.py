"""The model card: the YAML file beside each weights file, read by the detector and the pipeline.

It says what the weights expect (classes, 6-channel band order, working GSD, tile size, overlap,
normalisation), how they were trained (data, credits, the exact command) and how well they do.

>>> card = ModelCard(name="m", weights="m.pt")
>>> card.working_gsd_m, card.imgsz, card.channels
(0.2, 512, 6)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geo.atomic import write_text_atomic
from geo.errors import ModelError
from geo.hashing import file_sha256
from models.classes import CLASS_NAMES
from models.datasets.writer import BAND_ORDER

__all__ = ["ModelCard", "read_card", "write_card", "sha256", "CREDITS"]

CREDITS: dict[str, str] = {
    "fair-drone": "imagery OpenAerialMap contributors (CC-BY 4.0); building outlines (c) "
    "OpenStreetMap contributors (ODbL); prepared by the HOT fAIr project (hotosm/fAIr-utilities)",
    "synthetic": "buildwatch synthetic district renderer (procedurally generated, no third-party data)",
}


@dataclass
class ModelCard:
    """Everything needed to use (and trust) a weights file."""

    name: str
    weights: str
    classes: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    channels: int = 6
    band_order: list[str] = field(default_factory=lambda: list(BAND_ORDER))
    working_gsd_m: float = 0.2
    imgsz: int = 512
    overlap_px: int = 64
    normalisation: str = (
        "uint8 / 255 (as ultralytics does); no mean/std; no BGR flip for 6 channels"
    )
    #: how the baseline was colour-normalised in training: "none" (colour jitter only, the
    #: shipped weights) or "histogram" (matched to the flight); the pipeline applies the same
    baseline_radiometry: str = "none"
    architecture: str = "yolo11n.yaml, 6-channel early fusion"
    description: str = ""
    training_data: dict[str, Any] = field(default_factory=dict)
    credits: dict[str, str] = field(default_factory=lambda: dict(CREDITS))
    metrics: dict[str, Any] = field(default_factory=dict)
    train_settings: dict[str, Any] = field(default_factory=dict)
    reproduce: str = ""
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def overlap(self) -> int:
        """Tile overlap in pixels (alias of ``overlap_px`` used by the tiling code)."""
        return int(self.overlap_px)


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (the weights' identity in the card and on every lead)."""
    return file_sha256(path)


def write_card(card: ModelCard, path: str | Path) -> Path:
    """Write the card as YAML (temp file then rename)."""
    return write_text_atomic(
        path, yaml.safe_dump(asdict(card), sort_keys=False, allow_unicode=True)
    )


def read_card(path: str | Path) -> ModelCard:
    """Read a card; unknown keys go to ``extra`` so older readers keep working."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(
            f"{path}: cannot read the model card ({exc}); re-export the weights"
        ) from exc
    known = set(ModelCard.__dataclass_fields__)
    extra = {k: v for k, v in raw.items() if k not in known}
    data = {k: v for k, v in raw.items() if k in known}
    if "name" not in data or "weights" not in data:
        raise ModelError(
            f"{path}: model card lacks 'name' or 'weights'; it is not a buildwatch card"
        )
    card = ModelCard(**data)
    card.extra.update(extra)
    return card
