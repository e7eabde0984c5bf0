"""Sweep ``filters.dissolve_gap_m``: how close two outlines must be to count as one structure.

For each ``--gaps`` value, the shipped detector (as configured: the ensemble, the unchanged-structure
test) is measured twice over:

* on the held-out calibration chips (pseudo pairs from held-out fair-drone mosaics, and synthetic
  districts seeded apart from training), per folder: new_building at its shipped threshold, the
  outlines that touch joined as the leads stage joins them (the gap in the chips' pixels at
  ``--gsd``), matched to the labelled outlines at IoU ≥ 0.25 (``models.calibrate``);
* on every detector set of ``bench_detector_sets.py`` through ``pipelines.detect.detect_leads``
  with only ``filters.dissolve_gap_m`` changed.

Each member predicts a tile once (cached by tile content), so every gap after the first costs only
the joining and the pipeline around it. Validation sets (WHU-CD, DSIFN-CD) are reported, never used
to choose (model card, *The parts of one building*).

    python benchmarks/sweep_dissolve.py [--gaps 0 0.15 0.3 0.6 1 1.5 2] \\
        [--chips runs/calibrate/fairdrone/images/val runs/calibrate/synthetic/images/val] \\
        [--sets synthetic whu dsifn nochange-syn nochange-real] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import bench_detector_sets as sets
from sweep_ensemble import CHIPS, CachedDetector, _runs

from models.calibrate import calibrate
from models.detector import ChangeDetector
from pipelines.config import BuildwatchConfig
from pipelines.detect import _load_member, wrap_detector


def score_chips(det: Any, dirs: list[str], gap_m: float, t: float, gsd: float) -> dict[str, Any]:
    """new_building tp/fp/fn and F1 at ``t`` per chip folder (chips at ``gsd`` m/px), touching
    outlines joined at ``gap_m`` (``models.calibrate``, as ``buildwatch calibrate`` counts them)."""
    out: dict[str, Any] = {}
    for d in dirs:
        cal = calibrate(det, [Path(d)], thresholds=[t], gsd=gsd, join_gap_px=gap_m / gsd)
        tp, fp, fn = cal.counts["new_building"][t]
        quiet = cal.false_per_km2("new_building", t)
        out[f"chips_{Path(d).parents[1].name}"] = {
            "tp": tp, "fp": fp, "fn": fn, "f1": sets._prf(tp, fp, fn),
            "false_per_km2": None if quiet is None else round(quiet, 2), "area_ratio": None,
        }  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gaps", nargs="+", type=float, default=[0.0, 0.15, 0.3, 0.6, 1.0, 1.5, 2.0])
    ap.add_argument("--chips", nargs="+", default=list(CHIPS))
    ap.add_argument("--gsd", type=float, default=0.2, help="the chips' m/px (the working GSD)")
    ap.add_argument("--sets", nargs="+",
                    default=["synthetic", "whu", "dsifn", "nochange-syn", "nochange-real"])  # fmt: skip
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    for c in args.chips:
        if not Path(c).is_dir():
            raise SystemExit(
                f"{c}: calibration chips not found; build them (model card, Reproduce)"
            )
    base = BuildwatchConfig()
    min_score = dict(base.filters.min_score)
    e = base.detector.ensemble
    members = [CachedDetector(ChangeDetector.load(None, device="cpu"))]
    members += [CachedDetector(_load_member(p, base)) for p in e.weights]
    if len(members) > 1:
        from models.ensemble import ModelEnsemble

        ens = ModelEnsemble(members, weights=e.member_weights, min_iou=e.min_iou,
                            member_conf=e.member_conf)  # fmt: skip
        ens.gate = ens.lossless_gate(min(min_score.values())) or None
        det = wrap_detector(ens, base)
    else:
        det = wrap_detector(members[0], base)
    rows: list[dict[str, Any]] = []
    for gap in args.gaps:
        t0 = time.perf_counter()
        chips = score_chips(det, args.chips, gap, min_score["new_building"], args.gsd)
        row: dict[str, Any] = {"gap_m": gap, **chips}
        config = BuildwatchConfig.model_validate({"filters": {"dissolve_gap_m": gap}})
        for name, runs in _runs(det, config, args.sets).items():
            row[name] = sets.score(runs, 0.0)  # leads are already at the shipped thresholds
        rows.append(row)
        shown = " | ".join(
            f"{k} {v['f1']} ({v['tp']}/{v['fp']}/{v['fn']}) {v['false_per_km2']}/km² "
            f"area {v['area_ratio']}"
            for k, v in row.items()
            if isinstance(v, dict)
        )
        print(f"gap {gap:g} m: {shown} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
