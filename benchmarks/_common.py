"""Shared helpers for the detector benchmarks: weights to time and realistic 6-channel tiles."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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


def add_check_flags(ap: Any) -> None:
    """``--consensus``, ``--unchanged [MIN_NCC]`` / ``--no-unchanged``, ``--no-ensemble``,
    ``--with-members``, ``--wholes`` and ``--direction`` / ``--no-direction`` on an argparse
    parser."""
    ap.add_argument("--consensus", action="store_true",
                    help="scale consensus on (detector.consensus defaults; models/consensus.py)")  # fmt: skip
    ap.add_argument("--unchanged", nargs="?", type=float, const=-1.0, default=None,
                    metavar="MIN_NCC", help="unchanged-structure test on (the default), "
                    "optionally at another min_ncc (models/unchanged.py)")  # fmt: skip
    ap.add_argument(
        "--no-unchanged",
        action="store_true",
        help="unchanged-structure test off, whatever the config default",
    )
    ap.add_argument("--no-ensemble", action="store_true",
                    help="the main detector alone: detector.ensemble off (models/ensemble.py)")  # fmt: skip
    ap.add_argument("--with-members", action="store_true",
                    help="detector.ensemble on even with --weights other than the shipped: the "
                    "config's other members beside them (a candidate measured as it would ship)")  # fmt: skip
    ap.add_argument("--wholes", action="store_true",
                    help="whole over parts on (detector.ensemble.wholes; models/ensemble.py)")  # fmt: skip
    ap.add_argument("--direction", action=argparse.BooleanOptionalAction, default=None,
                    help="the direction test on / off (detector.direction; models/direction.py) "
                    "[default: as the config has it: on]")  # fmt: skip


def check_config(args: Any, raw: dict | None = None) -> dict:
    """``raw`` config with ``detector.consensus`` / ``detector.unchanged`` as the flags ask."""
    raw = dict(raw or {})
    det = raw.setdefault("detector", {})
    if args.consensus:
        det["consensus"] = {"enabled": True}
    if getattr(args, "no_ensemble", False):
        det["ensemble"] = {"enabled": False}
    elif getattr(args, "with_members", False):
        det["ensemble"] = {"enabled": True}
    if getattr(args, "wholes", False):
        det.setdefault("ensemble", {})["wholes"] = {"enabled": True}
    if getattr(args, "direction", None) is not None:
        det["direction"] = {"enabled": bool(args.direction)}
    if args.no_unchanged:
        det["unchanged"] = {"enabled": False}
    elif args.unchanged is not None:  # on; at its default min_ncc unless one was given
        det["unchanged"] = {"enabled": True}
        if args.unchanged >= 0:
            det["unchanged"]["min_ncc"] = args.unchanged
    return raw


def checks_label(config: Any) -> dict:
    """What was switched on around the detector, for the benchmark's JSON rows."""
    d = config.detector
    return {"ensemble": d.ensemble.enabled, "consensus": d.consensus.enabled,  # None: auto
            "unchanged": d.unchanged.min_ncc if d.unchanged.enabled else None,
            "direction": d.direction.enabled,
            "wholes": getattr(getattr(d.ensemble, "wholes", None), "enabled", None)}  # fmt: skip


def shipped_radiometric(config: Any, weights: Path | None = None) -> str:
    """How ``detect`` treats the baseline's colours with ``config`` and ``weights`` (default: the
    shipped ones): ``pipelines.detect.radiometric_mode`` on their model card."""
    from models.detector import read_card
    from pipelines.detect import ModelInfo, radiometric_mode

    card = read_card(Path(weights or DEFAULT_WEIGHTS).with_suffix(".yaml"))
    info = ModelInfo(baseline_radiometry=getattr(card, "baseline_radiometry", None))
    return radiometric_mode(config, info)
