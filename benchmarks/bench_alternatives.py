"""The 6-channel early-fusion YOLO vs a classical difference detector, on the validation sets.

Both run through the same code: the full detect pipeline (:func:`pipelines.detect.detect_leads`,
default config thresholds, scored like ``buildwatch evaluate --flight ...``) on the held-out
synthetic test districts (seeds 1001, 2002, 3003; 800 m at 0.1 m; generated under ``--root``),
and :func:`models.evaluate_pairs.evaluate_image_pairs` on the public pairs (``whu-cd`` at 0.2 m,
``dsifn-cd`` at ``--dsifn-gsd``; skipped when ``../shared/data`` lacks them). Object-level P/R/F1
at IoU >= 0.25, class-agnostic ("any class": the classical detector has no classes) and per class
("overall"); tiles/s is ``predict`` alone on the same 32 tiles of 512 px on this machine.

    python benchmarks/bench_alternatives.py [--seeds 1001 2002 3003] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, bench_tiles
from bench_nochange import ensure_district

from models.alternatives import DifferenceDetector
from models.detector import ChangeDetector
from models.evaluate_pairs import evaluate_image_pairs
from pipelines.commands.train import _evaluate_flight
from pipelines.config import DEFAULT_MIN_SCORE


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(f1, 3)}  # fmt: skip


def _pool(reports: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return _prf(*(sum(r[key][k] for r in reports) for k in ("tp", "fp", "fn")))


def tiles_per_s(detector: Any, tiles: list, conf: float) -> float:
    detector.predict(tiles[:8], conf=conf)  # warm-up
    t0 = time.perf_counter()
    detector.predict(tiles, conf=conf)
    return round(len(tiles) / (time.perf_counter() - t0), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1001, 2002, 3003])
    ap.add_argument("--size-m", type=float, default=800.0)
    ap.add_argument("--gsd", type=float, default=0.1)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--dsifn-gsd", type=float, default=0.3, help="assumed GSD of DSIFN-CD (m)")
    ap.add_argument("--root", type=Path,
                    default=Path(tempfile.gettempdir()) / "buildwatch-bench" / "districts")  # fmt: skip
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    detectors = {"yolo11n-6ch": ChangeDetector.load(), "classical-diff": DifferenceDetector()}
    districts = [ensure_district(args.root, s, args.size_m, args.gsd, changes=True)
                 for s in args.seeds]  # fmt: skip
    pairs = [(n, args.data / n, g) for n, g in (("whu-cd", 0.2), ("dsifn-cd", args.dsifn_gsd))
             if (args.data / n / "A").is_dir()]  # fmt: skip
    tiles = bench_tiles(32, 512)
    pair_conf = min(DEFAULT_MIN_SCORE.values())
    rows: list[dict[str, Any]] = []
    for name, det in detectors.items():
        speed = tiles_per_s(det, tiles, 0.1)
        reports, seconds = [], 0.0
        for d in districts:
            r = _evaluate_flight(det, d / "flight.tif", d / "baseline.tif", d / "truth.gpkg",
                                 "changes", 0.0, 0.25)  # fmt: skip
            reports.append(r)
            seconds += r["inputs"]["elapsed_s"]
        rows.append({"model": name, "set": f"synthetic test ({len(districts)} districts)",
                     "any": _pool(reports, "class_agnostic"), "overall": _pool(reports, "overall"),
                     "tiles_per_s": speed, "pipeline_s": round(seconds, 1),
                     "per_district": [r["class_agnostic"]["f1"] for r in reports]})  # fmt: skip
        for set_name, root, gsd in pairs:
            r = evaluate_image_pairs(det, root, gsd, conf=pair_conf)
            rows.append({"model": name, "set": f"{set_name} @ {gsd:g} m", "any": r["class_agnostic"],
                         "overall": r["overall"], "tiles_per_s": speed})  # fmt: skip
    print("object-level P/R/F1 at IoU >= 0.25 (any class; F1 per class in 'cls F1'); "
          f"CPU tiles/s on 32 tiles of 512 px; pipeline thresholds min_score {pair_conf:g}")  # fmt: skip
    print(f"{'model':15s} {'set':32s} {'tp':>4s} {'fp':>5s} {'fn':>4s} {'P':>6s} {'R':>6s} "
          f"{'F1':>6s} {'cls F1':>6s} {'tiles/s':>8s}")  # fmt: skip
    for r in rows:
        a = r["any"]
        print(f"{r['model']:15s} {r['set']:32s} {a['tp']:4d} {a['fp']:5d} {a['fn']:4d} "
              f"{a['precision']:6.3f} {a['recall']:6.3f} {a['f1']:6.3f} {r['overall']['f1']:6.3f} "
              f"{r['tiles_per_s']:8.1f}")  # fmt: skip
    syn = {r["model"]: r["any"]["f1"] for r in rows if r["set"].startswith("synthetic")}
    best = max(syn, key=lambda k: syn[k])
    print(
        f"better on the held-out synthetic districts: {best} (the default detector is yolo11n-6ch)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
