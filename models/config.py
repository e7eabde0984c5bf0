"""The training config: one validated pydantic model loaded from YAML, defaults in one place.

>>> cfg = TrainConfig.model_validate({"name": "x", "epochs": 1})
>>> cfg.imgsz, cfg.model, cfg.data.synthetic.n_train
(512, 'yolo11n.yaml', 64)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo.errors import ConfigError

__all__ = [
    "SyntheticData",
    "FairDroneData",
    "LabelledPair",
    "DataConfig",
    "TrainConfig",
    "load_config",
    "apply_overrides",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticData(_Strict):
    """Rendered synthetic districts (:mod:`models.datasets.synthetic`)."""

    enabled: bool = True
    n_train: int = Field(default=64, ge=0)
    n_val: int = Field(default=16, ge=0)
    renderer: Literal["auto", "geo", "procedural", "mixed"] = "auto"
    gsd_range: tuple[float, float] = (0.12, 0.35)
    no_change_fraction: float = Field(default=0.15, ge=0, le=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    match_flight: float = Field(
        default=0.0,
        ge=0,
        description="metres; > 0: where the baseline resolves coarser than this, the flight is "
        "seen at the baseline's detail GSD, as the product shows it "
        "(models.datasets.realism.matched_flight; input.match_baseline_above_m)",
    )
    seed: int | None = Field(default=None, description="chip seed; default: the run's seed")


class FairDroneData(_Strict):
    """Pseudo pairs from real drone imagery (:mod:`models.datasets.fairdrone`)."""

    enabled: bool = False
    prepared: str = ".device/fairdrone"
    source: str = "../shared/data/fair-drone"
    required: bool = False
    n_train: int = Field(default=64, ge=0)
    n_val: int = Field(default=16, ge=0)
    gsd_range: tuple[float, float] = (0.1, 0.35)
    no_change_fraction: float = Field(default=0.2, ge=0, le=1)
    estate_fraction: float = Field(default=0.25, ge=0, le=1, description="whole blocks new")
    paste_fraction: float = Field(default=0.15, ge=0, le=1, description="buildings pasted in")
    other_sun: float = Field(
        default=0.0, ge=0, le=1, description="share of chips whose baseline has another sun"
    )
    nuisance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of chips given change that is not a new structure (cars, re-covered "
        "ground, re-roofed and demolished buildings; models.datasets.nuisance)",
    )
    relief: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of baselines whose standing roofs lean (off-nadir relief displacement)",
    )
    magnify: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of chips shown 1.25-2x larger than life (larger structures than the "
        "mosaics' houses)",
    )
    water: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of chips with standing water on one date only (a pond, flooded "
        "paddies, puddles; models.datasets.nuisance.flood_ground)",
    )
    roof_planes: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of chips whose new roofs show two or four tones (roof planes in sun "
        "and shade, a wing in another material; models.datasets.fairdrone.split_roof_tones)",
    )
    grow: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of change chips whose new buildings are drawn 1.4-2.6x larger in place "
        "(large houses, sheds, commercial roofs; models.datasets.fairdrone.grow_buildings)",
    )
    match_flight: float = Field(
        default=0.0,
        ge=0,
        description="metres; > 0: where the baseline resolves coarser than this, the flight is "
        "seen at the baseline's detail GSD, as the product shows it "
        "(models.datasets.realism.matched_flight; input.match_baseline_above_m)",
    )
    seed: int | None = Field(default=None, description="chip seed; default: the run's seed")


class LabelledPair(_Strict):
    """A user-labelled real pair (:mod:`models.datasets.labelled`), e.g. ledger feedback.

    ``labels``: a GeoPackage (or any vector file) with a polygon layer of new structures (optional
    ``class`` column), or the ledger's export (``buildwatch cases export-labels``, layer
    ``labels``): ``confirmed`` rows become boxes, ``rejected`` rows hard negatives.
    ``flight_id`` keeps only that flight's rows of a ledger export.
    """

    flight: str
    baseline: str
    labels: str
    layer: str | None = None
    flight_id: str | None = None
    negatives: str | None = Field(default=None, description="extra hard-negative polygons")
    negative_fraction: float = Field(default=0.2, ge=0, le=1)
    val_fraction: float = Field(default=0.2, ge=0, lt=1)


class HardNegativeData(_Strict):
    """No-change chips the weights still fire on (:mod:`models.datasets.hard_negatives`)."""

    enabled: bool = False
    weights: str | None = Field(
        default=None, description="weights that mine; default: ``model`` when it is a *.pt"
    )
    pool: int = Field(default=2000, ge=0, description="synthetic no-change chips scored")
    real_pool: int = Field(
        default=0,
        ge=0,
        description="real no-change chips scored: training drone mosaics (data.fairdrone.prepared) "
        "against a satellite-like degraded copy",
    )
    conf: float = Field(default=0.3, gt=0, lt=1, description="keep chips scoring at least this")
    repeat: int = Field(default=2, ge=1, le=8, description="training copies of each kept chip")
    val_fraction: float = Field(default=0.15, ge=0, lt=1)
    renderer: Literal["auto", "geo", "procedural", "mixed"] = "geo"


class DataConfig(_Strict):
    """Which builders feed training, and how many chips each."""

    synthetic: SyntheticData = SyntheticData()
    fairdrone: FairDroneData = FairDroneData()
    labelled: list[LabelledPair] = Field(default_factory=list)
    hard_negatives: HardNegativeData = HardNegativeData()
    workers: int = Field(
        default=0, ge=0, description="processes for chip generation; 0 = all cores"
    )
    chips_dir: str | None = Field(
        default=None,
        description="a chip store shared between runs: each seeded chip set (synthetic, "
        "fair-drone) in a subfolder named by its source and the hash of its spec, built once and "
        "reused by every run that asks for the same chips; default: each run's own <out>/data",
    )


class TrainConfig(_Strict):
    """Everything a training run needs; ``buildwatch train --config X.yaml`` loads one."""

    name: str = "buildwatch-cd-yolo11n"
    model: str = "yolo11n.yaml"
    imgsz: int = Field(default=512, ge=32)
    working_gsd_m: float = Field(default=0.2, gt=0)
    overlap_px: int = Field(default=64, ge=0)
    epochs: int = Field(default=1, ge=1)
    time_hours: float | None = Field(default=None, gt=0, description="hard cap on training time")
    batch: int = Field(default=16, ge=1)
    seed: int = 0
    device: str = "auto"
    workers: int = Field(default=0, ge=0, description="dataloader workers")
    cache: Literal[False, "ram", "disk"] = False
    patience: int = 100
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="bf16: forward and loss under bfloat16 autocast, weights and optimiser in "
        "fp32 (on a CPU with AMX about 1.7x the fp32 step; models.train)",
    )
    out: str = "runs/train"
    data: DataConfig = DataConfig()
    train_args: dict[str, Any] = Field(default_factory=dict)
    description: str = "6-channel early-fusion YOLO change detector (flight RGB + baseline RGB)"

    def model_post_init(self, __context: Any) -> None:
        if "amp" in self.train_args:
            raise ValueError(
                "train_args.amp: set precision (fp32 or bf16) instead; the run's precision is "
                "one setting so the card records it"
            )
        if self.model.endswith(".pt") and not Path(self.model).is_file():
            raise ValueError(
                f"model {self.model!r}: a *.pt name would be downloaded; use 'yolo11n.yaml' "
                "or the path of an existing weights file"
            )


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r}: expected KEY=VALUE, e.g. data.synthetic.n_train=16"
            )
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read and validate a training config; errors name the file and the bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the training config ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    raw = apply_overrides(raw, list(overrides or []))
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first['msg']} (got {first.get('input')!r})") from exc
