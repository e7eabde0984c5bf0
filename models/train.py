"""Train the change detector from a :class:`models.config.TrainConfig`: data, fit, validate, card.

:func:`train` builds each enabled dataset under ``out/data/<builder>`` (or once, in a chip store
shared between runs: ``data.chips_dir``), trains ultralytics YOLO on all of them together (seeded,
device auto, ``plots=False``; fp32, or bfloat16 autocast with ``precision: bf16``, on a CPU
too), validates the best weights on each builder's
validation split separately, then writes ``out/<name>.pt`` and the model card ``out/<name>.yaml``
beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import models.backbone  # noqa: F401  (registers the pretrained backbone the model YAMLs may name)
from geo.atomic import write_text_atomic
from geo.errors import ConfigError, InputFileError, ModelError
from models.card import ModelCard, read_card, sha256, write_card
from models.classes import CLASS_NAMES
from models.config import TrainConfig
from models.datasets.writer import write_data_yaml
from models.runtime import configure_ultralytics, set_threads

__all__ = ["TrainResult", "train", "build_datasets", "resolve_device"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the weights and card went, and the validation metrics per dataset."""

    weights: Path
    card: Path
    metrics: dict[str, Any]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda:0`` when torch sees a GPU, else ``cpu``; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def build_datasets(cfg: TrainConfig, root: Path) -> dict[str, Path]:
    """Build every enabled dataset under ``root``; returns builder name -> its ``data.yaml``."""
    workers = cfg.data.workers or os.cpu_count() or 1
    out: dict[str, Path] = {}
    syn = cfg.data.synthetic
    if syn.enabled and syn.n_train + syn.n_val:
        from models.datasets.synthetic import SyntheticSpec, build_synthetic

        spec = SyntheticSpec(
            n_train=syn.n_train,
            n_val=syn.n_val,
            size_px=cfg.imgsz,
            working_gsd=cfg.working_gsd_m,
            gsd_range=syn.gsd_range,
            no_change_fraction=syn.no_change_fraction,
            seed=cfg.seed if syn.seed is None else syn.seed,
            renderer=syn.renderer,
            match_flight=syn.match_flight,
        )
        syn_dir = _chip_folder(cfg, root, "synthetic", spec)
        out["synthetic"] = _reuse_or_build(
            syn_dir, spec, lambda: build_synthetic(syn_dir, spec, workers, syn.time_budget_s)
        )
    fd = cfg.data.fairdrone
    if fd.enabled and fd.n_train + fd.n_val:
        prepared = Path(fd.prepared)
        if not any(prepared.glob("*.json")) and Path(fd.source).is_dir():
            from models.datasets.fairdrone_prepare import prepare_fairdrone

            prepare_fairdrone(fd.source, prepared, gsd=cfg.working_gsd_m / 2)
        if any(prepared.glob("*.json")):
            from models.datasets.fairdrone import FairDroneSpec, build_fairdrone

            spec_fd = FairDroneSpec(
                n_train=fd.n_train,
                n_val=fd.n_val,
                size_px=cfg.imgsz,
                working_gsd=cfg.working_gsd_m,
                gsd_range=fd.gsd_range,
                no_change_fraction=fd.no_change_fraction,
                estate_fraction=fd.estate_fraction,
                paste_fraction=fd.paste_fraction,
                other_sun=fd.other_sun,
                nuisance=fd.nuisance,
                relief=fd.relief,
                magnify=fd.magnify,
                water=fd.water,
                roof_planes=fd.roof_planes,
                match_flight=fd.match_flight,
                grow=fd.grow,
                seed=cfg.seed if fd.seed is None else fd.seed,
            )
            fd_dir = _chip_folder(cfg, root, "fairdrone", spec_fd)
            out["fairdrone"] = _reuse_or_build(
                fd_dir, spec_fd, lambda: build_fairdrone(prepared, fd_dir, spec_fd, workers)
            )
        elif fd.required:
            raise InputFileError(
                f"{prepared}: no prepared fair-drone mosaics and no source at {fd.source}; "
                "run `buildwatch build-dataset fairdrone-prepare` or disable data.fairdrone"
            )
        else:
            log.warning("fair-drone data not found at %s or %s; skipped", prepared, fd.source)
    if cfg.data.labelled:
        out["labelled"] = build_labelled_pairs(cfg, root / "labelled")
    if cfg.data.hard_negatives.enabled:
        out["hard_negatives"] = build_hard_negatives(cfg, root / "hard_negatives", workers)
    if not out:
        raise ConfigError("training config enables no dataset with chips; enable data.synthetic")
    return out


#: spec fields added after chip stores existed, all off at 0: left out of the record when off, so
#: a store built before a field existed (or recorded with it at 0) is still the same chips
_LATER_FIELDS = (
    "nuisance",
    "relief",
    "magnify",
    "water",
    "roof_planes",
    "match_flight",
    "grow",
)


def _normalised(fields: dict[str, Any]) -> str:
    fields = {k: v for k, v in fields.items() if not (k in _LATER_FIELDS and not v)}
    return json.dumps(fields, sort_keys=True, default=list)


def _spec_json(spec: Any) -> str:
    return _normalised(dataclasses.asdict(spec))


def _same_spec(record: Path, wanted: str) -> bool:
    try:
        return _normalised(json.loads(record.read_text())) == wanted
    except (OSError, ValueError, AttributeError):
        return False


def _chip_folder(cfg: TrainConfig, root: Path, source: str, spec: Any) -> Path:
    """Where ``source``'s chips of ``spec`` live: the run's ``root/<source>``, or, with
    ``data.chips_dir``, the shared store's ``<source>-<hash of the spec>`` (so runs that differ
    only in the model or the optimiser train on one copy of the same chips)."""
    if not cfg.data.chips_dir:
        return root / source
    digest = hashlib.sha256(_spec_json(spec).encode()).hexdigest()[:12]
    return Path(cfg.data.chips_dir).resolve() / f"{source}-{digest}"


def _reuse_or_build(root: Path, spec: Any, build: Callable[[], Path]) -> Path:
    """``root/data.yaml`` when ``root`` already holds the chips of exactly ``spec``, else build.

    The chips are seeded, so the same spec gives the same chips: a rerun of a stopped training
    (or one with other training settings) need not render them again. The spec is recorded in
    ``root/spec.json`` after a complete build; a partial build has none and is rebuilt. The check
    and the build hold an exclusive lock (``<root>.lock``), so two runs sharing a chip store
    build a set once: the second waits and then reuses it.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = root / "spec.json"
        wanted = _spec_json(spec)
        data_yaml = root / "data.yaml"
        if record.is_file() and data_yaml.is_file() and _same_spec(record, wanted):
            log.info("%s: chips already built for this spec; reused", root)
            return data_yaml
        record.unlink(missing_ok=True)
        data_yaml = build()
        write_text_atomic(record, wanted)
        return data_yaml


def build_labelled_pairs(cfg: TrainConfig, root: Path) -> Path:
    """Tile every ``data.labelled`` pair into one dataset under ``root``; returns its data.yaml."""
    from models.datasets.labelled import build_labelled

    for i, entry in enumerate(cfg.data.labelled):
        for key in ("flight", "baseline", "labels") + (("negatives",) if entry.negatives else ()):
            path = Path(getattr(entry, key))
            if not path.is_file():
                raise InputFileError(
                    f"data.labelled[{i}].{key}: {path} not found; fix the path in the training "
                    "config (relative paths are read from the folder you run buildwatch in)"
                )
        build_labelled(
            entry.flight, entry.baseline, entry.labels, root, layer=entry.layer,
            negatives=entry.negatives, negative_fraction=entry.negative_fraction,
            flight_id=entry.flight_id, val_fraction=entry.val_fraction,
            tag=f"{i:02d}_{Path(entry.flight).stem}", gsd=cfg.working_gsd_m, size=cfg.imgsz,
            overlap=cfg.overlap_px, seed=cfg.seed + i,
        )  # fmt: skip
    from models.datasets.writer import write_data_yaml as _write

    return _write(root)


def build_hard_negatives(cfg: TrainConfig, root: Path, workers: int) -> Path:
    """Mine ``data.hard_negatives`` with its weights (default: ``cfg.model``); its data.yaml."""
    from models.datasets.hard_negatives import HardNegativeSpec, mine_hard_negatives
    from models.detector import ChangeDetector

    hn = cfg.data.hard_negatives
    weights = hn.weights or cfg.model
    if not weights.endswith(".pt") or not Path(weights).is_file():
        raise ConfigError(
            f"data.hard_negatives.weights: {weights!r} is not a weights file; mining needs trained "
            "weights: fine-tune from a *.pt (model: ...) or set data.hard_negatives.weights"
        )
    device = "cpu" if resolve_device(cfg.device) == "cpu" else "cuda"
    detector = ChangeDetector.load(weights, device=device)
    spec = HardNegativeSpec(
        pool=hn.pool, conf=hn.conf, repeat=hn.repeat, val_fraction=hn.val_fraction,
        size_px=cfg.imgsz, working_gsd=cfg.working_gsd_m, gsd_range=cfg.data.synthetic.gsd_range,
        seed=cfg.seed, renderer=hn.renderer, real_pool=hn.real_pool,
        prepared=str(cfg.data.fairdrone.prepared) if hn.real_pool else None,
    )  # fmt: skip
    return mine_hard_negatives(
        root, spec, lambda chips: detector.predict(chips, conf=hn.conf), workers
    )


def _has_images(folder: str | Path) -> bool:
    return Path(folder).is_dir() and any(Path(folder).glob("*.tif"))


def _combined_yaml(datasets: dict[str, Path], root: Path) -> Path:
    trains, vals = [], []
    for data_yaml in datasets.values():
        raw = yaml.safe_load(data_yaml.read_text())
        trains += raw["train"] if isinstance(raw["train"], list) else [raw["train"]]
        vals.append(raw["val"])
    trains = [t for t in trains if _has_images(t)]
    vals = [v for v in vals if _has_images(v)] or trains  # a labelled-only run may lack a val split
    if not trains:
        raise ConfigError(
            "the enabled datasets wrote no training chips; check data.* in the config"
        )
    data = {"path": str(root.resolve()), "train": trains, "val": vals, "channels": 6,
            "names": dict(enumerate(CLASS_NAMES))}  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    path = root / "data.yaml"
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))
    sources = {name: str(p.resolve()) for name, p in datasets.items()}
    write_text_atomic(root / "sources.json", json.dumps(sources, indent=1))
    return path


def _metrics(model: Any, data_yaml: Path, cfg: TrainConfig, device: str, project: Path) -> dict:
    res = model.val(data=str(data_yaml), imgsz=cfg.imgsz, batch=cfg.batch, device=device,
                    plots=False, verbose=False, project=str(project), name="val",
                    exist_ok=True, workers=cfg.workers)  # fmt: skip
    box = res.box
    per_class = {}
    for i, name in enumerate(CLASS_NAMES):
        idx = list(getattr(box, "ap_class_index", []))
        if i in idx:
            j = idx.index(i)
            per_class[name] = {"precision": round(float(box.p[j]), 4), "recall": round(float(box.r[j]), 4),
                               "map50": round(float(box.ap50[j]), 4)}  # fmt: skip
    out = {"precision": round(float(box.mp), 4), "recall": round(float(box.mr), 4),
           "map50": round(float(box.map50), 4), "map50_95": round(float(box.map), 4),
           "per_class": per_class}  # fmt: skip
    seg = getattr(res, "seg", None)
    if seg is not None:  # a segment model: the outlines' own scores
        out["mask_map50"] = round(float(seg.map50), 4)
        out["mask_map50_95"] = round(float(seg.map), 4)
    return out


def _built_datasets(root: Path) -> dict[str, Path]:
    """The datasets an earlier run trained on (builder name -> data.yaml): those its
    ``root/sources.json`` names (a shared chip store), else the ones built under ``root``."""
    record = root / "sources.json"
    if record.is_file():
        found = {name: Path(p) for name, p in json.loads(record.read_text()).items()}
        missing = [str(p) for p in found.values() if not p.is_file()]
        if missing:
            raise ConfigError(
                f"{record}: the run's chips are gone ({missing[0]}); start the run again "
                "without --resume to rebuild them"
            )
        return found
    return {p.parent.name: p for p in sorted(root.glob("*/data.yaml"))}


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    command: str = "",
    resume: bool = False,
    finish: bool = False,
) -> TrainResult:
    """Build data, train, validate and write ``<name>.pt`` + ``<name>.yaml`` under ``out``.

    ``resume=True`` continues the run in ``out`` from its last epoch checkpoint
    (``out/train/weights/last.pt``, written after every epoch) on the chips already built, so a
    CPU training can be stopped and taken up again across sessions. ``finish=True`` ends a
    stopped run where it is: its best epoch so far becomes ``<name>.pt``, validated and carded.
    """
    out = Path(out or cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    configure_ultralytics()
    t0 = time.monotonic()
    last = out / "train" / "weights" / "last.pt"
    if resume or finish:
        datasets = _built_datasets(out / "data")
        if not last.is_file() or not datasets:
            raise ConfigError(
                f"{last}: no checkpoint to resume (or no chips under {out / 'data'}); "
                "start the run without --resume"
            )
    else:
        datasets = build_datasets(cfg, out / "data")
        _combined_yaml(datasets, out / "data")
    t_data = time.monotonic() - t0
    from ultralytics import YOLO

    set_threads()
    device = resolve_device(cfg.device)
    if finish:
        log.info("finishing %s at its best epoch so far (%s)", cfg.name, last.parent)
        return _finish(cfg, out, datasets, device, command, t_data, 0.0)
    if resume:
        log.info("resuming %s from %s", cfg.name, last)
        best = last.parent / "best.pt"
        if best.is_file() and _unreadable(best):  # killed mid-write; ultralytics would trip on it
            log.warning("%s: unreadable (killed while writing it?); removed, the run goes on", best)
            best.unlink()
        t1 = time.monotonic()
        with cpu_bf16(device, cfg.precision):
            YOLO(str(last)).train(resume=True)
        return _finish(cfg, out, datasets, device, command, t_data, time.monotonic() - t1)
    data_yaml = out / "data" / "data.yaml"
    model = YOLO(cfg.model)
    args: dict[str, Any] = dict(
        data=str(data_yaml), imgsz=cfg.imgsz, epochs=cfg.epochs, batch=cfg.batch, seed=cfg.seed,
        deterministic=True, device=device, workers=cfg.workers,
        amp="bf16" if cfg.precision == "bf16" else False, plots=False,
        project=str(out), name="train", exist_ok=True, cache=cfg.cache, patience=cfg.patience,
        verbose=False,
    )  # fmt: skip
    if cfg.time_hours:
        args["time"] = cfg.time_hours
    args.update(cfg.train_args)
    log.info("training %s on %s (%s)", cfg.model, device, ", ".join(datasets))
    t1 = time.monotonic()
    with cpu_bf16(device, cfg.precision):
        model.train(**args)
    return _finish(cfg, out, datasets, device, command, t_data, time.monotonic() - t1)


@contextlib.contextmanager
def cpu_bf16(device: str, precision: str) -> Any:
    """Let ultralytics train under bfloat16 autocast on a CPU while the block runs.

    ultralytics runs ``amp="bf16"`` on CUDA only: its ``autocast`` refuses bfloat16 elsewhere. On
    a CPU with AMX (this project's machines) bfloat16 convolutions cost about 0.6x fp32's; the
    weights, optimiser and gradients stay fp32 (no loss scaling is needed for bfloat16). Outside
    the block, and for any other device or precision, ultralytics is untouched.
    """
    if precision != "bf16" or device != "cpu":
        yield
        return
    import torch
    import ultralytics.engine.trainer as trainer

    original = trainer.autocast

    def autocast(enabled: bool | torch.dtype, device: str = "cuda") -> Any:
        if enabled is torch.bfloat16 and device == "cpu":
            return torch.amp.autocast("cpu", dtype=torch.bfloat16)
        return original(enabled, device=device)

    log.info("training under bfloat16 autocast on the CPU (%s)",
             torch.backends.cpu.get_cpu_capability())  # fmt: skip
    trainer.autocast = autocast
    try:
        yield
    finally:
        trainer.autocast = original


def _unreadable(path: Path) -> str:
    """Why ``path`` is no checkpoint ("" when it loads)."""
    import torch

    if not path.is_file():
        return "missing"
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, empty file, bad pickle: all unreadable
        return f"unreadable ({type(exc).__name__})"
    return ""


def _loadable_checkpoint(folder: Path) -> Path:
    """``best.pt``, or ``last.pt`` when best is missing or unreadable.

    ultralytics writes both files in place, so a run killed while writing ``best.pt`` leaves it
    truncated, and a resumed run that never beats that epoch does not write it again; the last
    checkpoint is then the one to keep (said in one warning).
    """
    tried: list[str] = []
    for name in ("best.pt", "last.pt"):
        path = folder / name
        problem = _unreadable(path)
        if problem:
            tried.append(f"{name} {problem}")
            continue
        if tried:
            log.warning("%s: %s; keeping %s", folder, "; ".join(tried), name)
        return path
    raise ModelError(
        f"{folder}: no readable checkpoint ({'; '.join(tried)}); see the ultralytics log above, "
        "or start the run again without --resume"
    )


def _finish(
    cfg: TrainConfig, out: Path, datasets: dict[str, Path], device: str, command: str,
    t_data: float, t_train: float,
) -> TrainResult:  # fmt: skip
    """Copy the best weights to ``out/<name>.pt``, validate them per dataset, write the card."""
    from ultralytics import YOLO

    run_dir = out / "train"
    best = _loadable_checkpoint(run_dir / "weights")
    weights = out / f"{cfg.name}.pt"
    shutil.copyfile(best, weights)
    from ultralytics.utils.torch_utils import strip_optimizer

    strip_optimizer(weights)  # a run stopped early leaves the optimizer state in its checkpoints
    trained = YOLO(str(weights))
    metrics = {
        name: (
            _metrics(trained, y, cfg, device, out)
            if name != "hard_negatives"
            else background_metrics(
                weights, y.parent / "images" / "val", cfg.data.hard_negatives.conf, device
            )
        )
        for name, y in datasets.items()
        if _has_images(y.parent / "images" / "val")
    }
    results_csv = run_dir / "results.csv"
    rows = results_csv.read_text().splitlines() if results_csv.is_file() else []
    epochs_run = max(0, len(rows) - 1)
    if not t_train and epochs_run:  # finished from checkpoints: the run's own clock
        with contextlib.suppress(ValueError, IndexError):
            t_train = float(rows[-1].split(",")[rows[0].split(",").index("time")])
    parent = parent_lineage(cfg.model)
    fusion = ("Siamese: one backbone pass per date, features and their difference fused"
              if "siamese" in Path(cfg.model).name.lower()
              else "6-channel early fusion (flight RGB + baseline RGB)")  # fmt: skip
    architecture = f"{cfg.model}, {fusion}"
    if parent:
        architecture = (
            f"{parent['architecture']}; fine-tuned from {parent['name']} "
            f"(sha256 {parent['sha256'][:16]})"
        )
    card = ModelCard(
        name=cfg.name,
        weights=weights.name,
        working_gsd_m=cfg.working_gsd_m,
        imgsz=cfg.imgsz,
        overlap_px=cfg.overlap_px,
        architecture=architecture,
        description=cfg.description,
        training_data={name: _describe(y) for name, y in datasets.items()},
        metrics={"validation": metrics},
        train_settings={
            "epochs_run": epochs_run,
            "epochs": cfg.epochs,
            "time_hours": cfg.time_hours,
            "batch": cfg.batch,
            "seed": cfg.seed,
            "device": device,
            "precision": cfg.precision,
            "data_seconds": round(t_data, 1),
            "train_seconds": round(t_train, 1),
            **{k: v for k, v in cfg.train_args.items()},
        },  # fmt: skip
        reproduce=command,
        sha256=sha256(weights),
        extra={"parent": parent} if parent else {},
    )
    card_path = write_card(card, weights.with_suffix(".yaml"))
    log.info("wrote %s and %s", weights, card_path)
    return TrainResult(weights, card_path, metrics)


def background_metrics(
    weights: str | Path, val_dir: str | Path, conf: float, device: str = "cpu"
) -> dict[str, Any]:
    """How often ``weights`` still fire (a box scoring >= ``conf``) on box-free chips in ``val_dir``.

    For the mined hard negatives every chip fired for the parent weights (that is why it was
    kept), so ``fire_rate`` after training is what the fine-tune unlearned; mAP is undefined there.
    """
    from models.datasets.writer import read_chip
    from models.detector import ChangeDetector

    files = sorted(Path(val_dir).glob("*.tif"))
    dev = "cpu" if device == "cpu" else "cuda"
    detector = ChangeDetector.load(weights, device=dev, backend="torch")
    firing = 0
    for i in range(0, len(files), 16):
        chips = [read_chip(f) for f in files[i : i + 16]]
        firing += sum(len(c.score) > 0 for c in detector.predict(chips, conf=conf))
    return {"chips": len(files), "chips_firing": int(firing), "conf": conf,
            "fire_rate": round(firing / max(1, len(files)), 4)}  # fmt: skip


def parent_lineage(model: str) -> dict[str, Any] | None:
    """What a fine-tune starts from: the card of ``model`` when it is a *.pt with a card beside it.

    The returned dict (name, sha256, architecture, training data and settings, how it was
    reproduced, and its own parent) goes into the new card's ``extra.parent``, so a fine-tuned
    card still tells the whole training history.
    """
    path = Path(model)
    card_path = path.with_suffix(".yaml")
    if path.suffix != ".pt" or not card_path.is_file():
        return None
    card = read_card(card_path)
    return {
        "name": card.name,
        "weights": str(path),
        "sha256": card.sha256 or sha256(path),
        "architecture": card.architecture,
        "training_data": card.training_data,
        "train_settings": card.train_settings,
        "reproduce": card.reproduce,
        "parent": card.extra.get("parent"),
    }


def _describe(data_yaml: Path) -> dict[str, Any]:
    root = data_yaml.parent
    count = {s: len(list((root / "images" / s).glob("*.tif"))) for s in ("train", "val")}
    return {"chips": count, "gsd_m": None}


_ = write_data_yaml
