"""Sweep ``filters.dissolve_gap_m``: how close two outlines must be to count as one structure.

For each ``--gaps`` value, the shipped detector (as configured: the ensemble, the unchanged-structure
test) is measured twice over:

* on the held-out calibration chips (pseudo pairs from held-out fair-drone mosaics, and synthetic
  districts seeded apart from training): the candidates at or above each class's shipped
  threshold are joined as ``pipelines.leads.merge.dissolve_touching`` joins them in the product
  (the gap in the chip's pixels at ``--gsd``), then matched to the labelled outlines at IoU ≥ 0.25
  (new_building; false leads counted on the chips where nothing changed);
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
import numpy as np
import shapely
from sweep_ensemble import CHIPS, CachedDetector, _runs

from models.calibrate import _pred_geoms
from models.classes import CLASS_NAMES
from models.datasets.writer import read_chip, read_polygons
from models.detector import ChangeDetector
from models.evaluate import iou_matrix, match_greedy
from pipelines.config import BuildwatchConfig
from pipelines.detect import _load_member, wrap_detector
from pipelines.leads.georef import MapCandidates
from pipelines.leads.merge import dissolve_touching

#: one chip: (which source, its candidates, its labelled outlines, its area in km²)
Chip = tuple[str, Any, list[Any], float]


def chip_predictions(det: Any, dirs: list[str], conf: float, gsd: float) -> list[Chip]:
    """``det``'s candidates on every chip under ``dirs``, with the chip's labels."""
    files = [f for d in dirs for f in sorted(Path(d).glob("*.tif"))]
    out: list[Chip] = []
    for start in range(0, len(files), 8):
        chunk = files[start : start + 8]
        images = [read_chip(f) for f in chunk]
        for f, im, cands in zip(chunk, images, det.predict(images, conf=conf), strict=True):
            h, w = im.shape[:2]
            label = Path(str(f.parent).replace("images", "labels")) / f"{f.stem}.txt"
            source = f.parents[2].name  # runs/calibrate/<source>/images/val/chip.tif
            out.append((source, cands, read_polygons(label, w, h), h * w * gsd * gsd / 1e6))
    return out


def score_chips(chips: list[Chip], gap_px: float, min_score: dict[str, float]) -> dict[str, Any]:
    """new_building tp/fp/fn, F1 and area ratio per source after joining at ``gap_px``."""
    thr = np.array([min_score[c] for c in CLASS_NAMES])
    out: dict[str, Any] = {}
    for source in sorted({c[0] for c in chips}):
        tp = fp = fn = quiet_fp = 0
        km2 = 0.0
        ratios: list[float] = []
        for src, cands, truth, area in chips:
            if src != source:
                continue
            keep = cands.score >= thr[cands.class_id]
            geoms = _pred_geoms(cands)[keep]
            n = len(geoms)
            outlined = np.array([o is not None and len(o) >= 3 for o in cands.outline[keep]], bool)
            mc = MapCandidates(geoms, cands.score[keep], cands.class_id[keep],
                               np.zeros(n, np.int64), np.zeros((n, 4), bool),
                               np.zeros((n, 4)), outlined)  # fmt: skip
            mc, _ = dissolve_touching(mc, gap_px)
            if not truth:
                km2 += area
                quiet_fp += len(mc)
                continue
            sel = mc.class_id == 0
            g = np.asarray([shapely.make_valid(x) for x in mc.geometry[sel]], object)
            t = np.asarray([shapely.make_valid(shapely.Polygon(p)) for k, p in truth
                            if k == 0 and len(p) >= 3], object)  # fmt: skip
            m = match_greedy(iou_matrix(g, t), mc.score[sel], 0.25)
            k = int((m >= 0).sum())
            tp, fp, fn = tp + k, fp + len(g) - k, fn + len(t) - k
            ratios += [float(g[i].area / t[j].area) for i, j in enumerate(m) if j >= 0]
        out[f"chips_{source}"] = {
            "tp": tp, "fp": fp, "fn": fn, "f1": sets._prf(tp, fp, fn),
            "false_per_km2": round(quiet_fp / km2, 2) if km2 else None,
            "area_ratio": round(float(np.median(ratios)), 2) if ratios else None,
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
    chips = chip_predictions(det, args.chips, min(min_score.values()), args.gsd)
    rows: list[dict[str, Any]] = []
    for gap in args.gaps:
        t0 = time.perf_counter()
        row: dict[str, Any] = {"gap_m": gap, **score_chips(chips, gap / args.gsd, min_score)}
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
