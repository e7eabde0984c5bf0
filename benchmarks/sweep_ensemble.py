"""Sweep an ensemble's member weights: calibration and every detector set, per variant and threshold.

How the shipped ensemble's 3:1 (model card, *Model ensemble*) and Training item 21's variants
were chosen: for each ``--variants`` weighting of the main detector and ``--member``, the
thresholds ``buildwatch calibrate`` picks on the held-out chips (since 2026-12-07 counting touching
outlines joined, as leads; the sweeps of the card's items 20-21 counted candidates one by one), then, at each ``--thresholds``
value (both classes), held-out pseudo-pair F1, synthetic districts, WHU-CD, DSIFN-CD, synthetic
other-season and real no-change pairs through ``pipelines.detect.detect_leads``. Each member
predicts a tile once: its candidates are cached by tile content, so every variant after the first
costs only the fusion and the pipeline around it. Validation sets are reported, never used to
choose.

    python benchmarks/sweep_ensemble.py --member runs/…/buildwatch-cd-efflite0-siamese-seg.pt \\
        [--member another.pt …] --variants 3,1 2,1 3,2 1,1 [--main W.pt] [--thresholds 0.25 0.3 …] \\
        [--chips runs/calibrate/fairdrone/images/val runs/calibrate/synthetic/images/val] \\
        [--sets synthetic whu dsifn nochange-syn nochange-real] [--direction] [--wholes] \\
        [--json out.json]

With several ``--member`` files each variant gives one weight per detector, the main one first
(``3,3,2``: main, first member, second member).

Needs the calibration chips (``buildwatch calibrate`` builds them; see the model card's
*Reproduce*); the real sets are skipped where ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import bench_detector_sets as sets
import numpy as np

from models.calibrate import calibrate
from models.detector import ChangeDetector
from models.ensemble import ModelEnsemble
from pipelines.config import BuildwatchConfig
from pipelines.detect import wrap_detector

CHIPS = ("runs/calibrate/fairdrone/images/val", "runs/calibrate/synthetic/images/val")


class CachedDetector:
    """A detector whose candidates are remembered per tile content and confidence floor."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.cache: dict[tuple[bytes, float], Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def predict(self, images: list[np.ndarray], conf: float = 0.25, **kw: Any) -> list[Any]:
        keys = [
            (hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).digest(),
             round(conf, 4))
            for im in images
        ]  # fmt: skip
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            found = self.detector.predict([images[i] for i in todo], conf=conf, **kw)
            for i, c in zip(todo, found, strict=True):
                self.cache[keys[i]] = c
        return [self.cache[k] for k in keys]


def _runs(det: Any, config: BuildwatchConfig, which: list[str]) -> dict[str, list[Any]]:
    runs: dict[str, list[Any]] = {}
    if "synthetic" in which:
        runs["synthetic"] = sets._runs_synthetic(det, config, True)
    if "whu" in which:
        runs["whu"] = sets._runs_pairs(det, config, "whu-cd", 0.2)
    if "dsifn" in which:
        runs["dsifn"] = sets._runs_pairs(det, config, "dsifn-cd", 0.5)
    if "nochange-syn" in which:
        runs["nochange_syn"] = sets._runs_synthetic(det, config, False)
    if "nochange-real" in which:
        runs["nochange_real"] = sets._runs_nochange_real(det, config)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--member",
        required=True,
        action="append",
        help="another member's weights (repeat for several)",
    )
    ap.add_argument("--main", default=None, help="the main detector (default: shipped)")
    ap.add_argument("--variants", nargs="+", default=["3,1"], help="main,member[,member…] weights")
    ap.add_argument("--thresholds", nargs="+", type=float,
                    default=[0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55])  # fmt: skip
    ap.add_argument("--chips", nargs="+", default=list(CHIPS))
    ap.add_argument("--sets", nargs="+",
                    default=["synthetic", "whu", "dsifn", "nochange-syn", "nochange-real"])  # fmt: skip
    ap.add_argument(
        "--direction",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the direction test on / off (detector.direction) [default: as the config: on]",
    )
    ap.add_argument("--wholes", action="store_true",
                    help="whole over parts on (detector.ensemble.wholes at its defaults)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    for c in args.chips:
        if not Path(c).is_dir():
            raise SystemExit(
                f"{c}: calibration chips not found; build them (model card, Reproduce)"
            )
    main_det = CachedDetector(ChangeDetector.load(args.main, device="cpu"))
    members = [CachedDetector(ChangeDetector.load(m, device="cpu")) for m in args.member]
    low = min(args.thresholds)
    on = {} if args.direction is None else {"detector": {"direction": {"enabled": args.direction}}}
    config = BuildwatchConfig.model_validate(
        {"filters": {"min_score": {"new_building": low, "construction": low}}} | on
    )
    every = BuildwatchConfig.model_validate(
        {"filters": {"min_score": {"new_building": 0.0, "construction": 0.0}}} | on
    )
    rows: list[dict[str, Any]] = []
    wholes = None
    if args.wholes:
        from models.ensemble import Wholes

        w = config.detector.ensemble.wholes
        wholes = Wholes(min_parts=w.min_parts, inside=w.inside, min_score=w.min_score,
                        min_cover=w.min_cover)  # fmt: skip
    for variant in args.variants:
        weights = [float(x) for x in variant.split(",")]
        if len(weights) != 1 + len(members):
            raise SystemExit(f"--variants {variant}: give {1 + len(members)} weights, the main "
                             f"detector's first, one per --member after it")  # fmt: skip
        t0 = time.perf_counter()
        ensemble = ModelEnsemble([main_det, *members], weights=weights, wholes=wholes)
        # calibration measures every threshold from 0, as `buildwatch calibrate` does: no gate
        # touching outlines joined as the leads stage joins them, as `buildwatch calibrate` counts
        join = every.filters.dissolve_gap_m / 0.2
        cal = calibrate(wrap_detector(ensemble, every), [Path(c) for c in args.chips],
                        gsd=0.2, max_false_per_km2=1.0, join_gap_px=join)  # fmt: skip
        det = wrap_detector(ensemble, config)
        curve = cal.curve()["new_building"]
        runs = _runs(det, config, args.sets)
        print(f"== {variant}: calibrated {cal.min_score} ({time.perf_counter() - t0:.0f} s)")
        for t in args.thresholds:
            point = next((r for r in curve if abs(r["threshold"] - t) < 1e-6), {})
            row: dict[str, Any] = {"variant": variant, "calibrated": cal.min_score,
                                   "threshold": t, "pseudo_f1": point.get("f1")}  # fmt: skip
            row.update({name: sets.score(r, t) for name, r in runs.items()})
            rows.append(row)
            shown = " | ".join(
                f"{k} {v['f1']} ({v['tp']}/{v['fp']}/{v['fn']}) {v['false_per_km2']}/km²"
                for k, v in row.items()
                if k in runs
            )
            print(f"  {t:.2f} pseudo-pair F1 {row['pseudo_f1']} | {shown}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
