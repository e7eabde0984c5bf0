"""False detections per km² on held-out no-change pseudo pairs, plain and with each nuisance kind.

Every chip is a window of a fair-drone mosaic held out of training (``VAL_MOSAICS``) on both
dates, degraded to a satellite-like or aerial baseline as the training chips are; nothing was
built, so every detection is false. The same chips are built once plain and once per nuisance
kind switched fully on (``water``: a pond, flooded paddies or puddles on one date; ``nuisance``:
moved cars, another ground cover, re-roofed and demolished buildings; ``relief``: leaning roofs
in the baseline), so each row differs from ``plain`` by that kind only. Counted as the
calibration counts them (``models.calibrate``: each candidate at or above the threshold on a
512 px chip at 0.2 m).

    python benchmarks/bench_nochange_pseudo.py [--weights W ...] [--kinds plain water ...]
        [--n 160] [--seed 9092] [--root DIR] [--no-unchanged] [--consensus]

The chip sets are built under ``--root`` (default /tmp/buildwatch-bench/nochange-pseudo) and
reused when their recorded spec matches. Needs ``.device/fairdrone`` (``buildwatch
build-dataset fairdrone-prepare``); exits with a message where it is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

import _common  # (also puts the repository on sys.path)

from models.calibrate import calibrate
from models.datasets.fairdrone import FairDroneSpec, build_fairdrone

KINDS = ("plain", "water", "nuisance", "relief")


def chip_set(root: Path, prepared: Path, kind: str, n: int, seed: int) -> Path:
    """The folder of ``n`` no-change chips with ``kind`` fully on, built unless it exists."""
    extra = {} if kind == "plain" else {kind: 1.0}
    spec = FairDroneSpec(n_train=0, n_val=n, size_px=512, working_gsd=0.2, seed=seed,
                         no_change_fraction=1.0, **extra)  # fmt: skip
    out = root / f"{kind}-n{n}-s{seed}"
    record = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=list)
    stamp = out / "spec.json"
    if not (stamp.is_file() and stamp.read_text() == record):
        build_fairdrone(prepared, out, spec, os.cpu_count() or 1)
        stamp.write_text(record)
    return out / "images" / "val"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", default=[None])
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=["plain", "water"])
    ap.add_argument("--n", type=int, default=160, help="chips per set (512 px at 0.2 m each)")
    ap.add_argument("--seed", type=int, default=9092, help="chip seed (apart from training's)")
    ap.add_argument("--prepared", type=Path, default=Path(".device/fairdrone"))
    ap.add_argument("--root", type=Path, default=Path("/tmp/buildwatch-bench/nochange-pseudo"))
    ap.add_argument("--min-score", type=float, nargs="+",
                    default=[0.2, 0.3, 0.4, 0.45, 0.5, 0.6])  # fmt: skip
    _common.add_check_flags(ap)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not any(args.prepared.glob("*.json")):
        sys.exit(f"{args.prepared}: no prepared fair-drone mosaics; run "
                 "`buildwatch build-dataset fairdrone-prepare .device/fairdrone` first")  # fmt: skip
    logging.disable(logging.WARNING)
    from models.detector import ChangeDetector
    from pipelines.config import BuildwatchConfig
    from pipelines.detect import wrap_detector

    config = BuildwatchConfig.model_validate(_common.check_config(args))
    sets = {k: chip_set(args.root, args.prepared, k, args.n, args.seed) for k in args.kinds}
    thresholds = sorted(args.min_score)
    rows = []
    print("weights | kind | km² | " + " | ".join(f"≥{t:g}" for t in thresholds))
    for weights in args.weights:
        # the detector as `detect` runs it: the checks the config switches on around it
        det = wrap_detector(ChangeDetector.load(weights, device="cpu"), config)
        for kind, folder in sets.items():
            t0 = time.perf_counter()
            cal = calibrate(det, [folder], thresholds=thresholds, gsd=0.2)
            per_km2 = {t: cal.false_per_km2("new_building", t) for t in thresholds}
            rows.append({"weights": str(weights or "shipped"), "kind": kind,
                         **_common.checks_label(config),
                         "km2": round(cal.nochange_km2, 3),
                         "false_per_km2": {str(t): round(v or 0.0, 2) for t, v in per_km2.items()},
                         "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
            cells = " | ".join(f"{v or 0.0:.1f}" for v in per_km2.values())
            print(f"{weights or 'shipped'} | {kind} | {cal.nochange_km2:.2f} | {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
