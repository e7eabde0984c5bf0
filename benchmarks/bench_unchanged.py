"""What the unchanged-structure test drops, per way of matching: true buildings against false leads.

Every ``new_building`` candidate the bare detector gives at or above ``--score`` is matched
against its baseline as :mod:`models.unchanged` does, once per variant — by box, by outline, by
outline with a ring of ground, by outline at a peak of the correlation (the default) — and the
share of candidates each would drop at each ``min_ncc`` is counted:

* on the calibration pseudo pairs (held-out fair-drone mosaics and synthetic chips, as
  ``buildwatch calibrate`` builds them), split into true new buildings (IoU >= 0.25 with a
  label) and false leads;
* on held-out no-change pseudo pairs per kind (``bench_nochange_pseudo.py``'s chip sets), where
  every candidate is false.

A good variant drops few true buildings and many false leads. The seconds each variant spent
matching are printed beside it (one run, the same candidates).

    python benchmarks/bench_unchanged.py [--weights W] [--score 0.45] [--min-ncc 0.75 0.8 0.85]
        [--chips runs/calibrate/fairdrone/images/val runs/calibrate/synthetic/images/val]
        [--kinds plain water nuisance relief] [--json out.json]

Needs the calibration chips (``buildwatch calibrate`` writes them under runs/calibrate) and
``.device/fairdrone`` for the no-change sets; exits with a message where they are absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
from bench_nochange_pseudo import KINDS, chip_set

#: name -> keyword arguments of models.unchanged.best_match beyond tile, box, radius
VARIANTS: dict[str, dict[str, Any]] = {
    "box": {"outline": False, "ring_px": 0, "min_peak": 0.0},
    "outline": {"outline": True, "ring_px": 0, "min_peak": 0.0},
    "outline + 0.4 m ring": {"outline": True, "ring_px": 2, "min_peak": 0.0},
    "outline at a peak 0.02 (default)": {"outline": True, "ring_px": 0, "min_peak": 0.02},
    "outline at a peak 0.03": {"outline": True, "ring_px": 0, "min_peak": 0.03},
}


def candidate_scores(det: Any, folder: Path, score: float, radius_px: int) -> dict[str, Any]:
    """Per candidate of ``folder``'s chips: matched a label (or -1 without labels) and each
    variant's best match; and the seconds each variant took."""
    import shapely

    from models.consensus import candidate_geometries
    from models.datasets.writer import read_chip, read_polygons
    from models.evaluate import iou_matrix, match_greedy
    from models.unchanged import best_match

    files = sorted(folder.glob("*.tif"))
    labels = Path(str(folder).replace("images", "labels"))
    true: list[int] = []
    best: dict[str, list[float]] = {k: [] for k in VARIANTS}
    seconds = dict.fromkeys(VARIANTS, 0.0)
    for i in range(0, len(files), 8):
        chips = [read_chip(f) for f in files[i : i + 8]]
        for f, chip, c in zip(files[i : i + 8], chips, det.predict(chips, conf=score), strict=True):
            c = c[(c.class_id == 0) & (c.score >= score)]
            if not len(c):
                continue
            h, w = chip.shape[:2]
            txt = labels / f"{f.stem}.txt"
            polys = read_polygons(txt, w, h) if txt.is_file() else []
            truth = np.asarray([shapely.make_valid(shapely.Polygon(p))
                                for k, p in polys if k == 0 and len(p) >= 3], object)  # fmt: skip
            if len(truth):
                m = match_greedy(iou_matrix(candidate_geometries(c), truth), c.score, 0.25)
                true += [int(j >= 0) for j in m]
            else:
                true += [0] * len(c)
            for name, kw in VARIANTS.items():
                t0 = time.perf_counter()
                for j in range(len(c)):
                    shape = c.outline[j] if kw["outline"] else None
                    best[name].append(best_match(chip, c.xyxy[j], radius_px, shape,
                                                 kw["ring_px"], kw["min_peak"]))  # fmt: skip
                seconds[name] += time.perf_counter() - t0
    return {"true": np.asarray(true, int), "best": {k: np.asarray(v) for k, v in best.items()},
            "seconds": seconds}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="default: the shipped weights")
    ap.add_argument("--score", type=float, default=0.45, help="candidates at or above this")
    ap.add_argument("--min-ncc", type=float, nargs="+", default=[0.75, 0.8, 0.85])
    ap.add_argument("--radius-m", type=float, default=3.0)
    ap.add_argument("--chips", type=Path, nargs="+", default=[
        Path("runs/calibrate/fairdrone/images/val"), Path("runs/calibrate/synthetic/images/val")])  # fmt: skip
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--n", type=int, default=160, help="no-change chips per kind")
    ap.add_argument("--seed", type=int, default=9092, help="no-change chip seed")
    ap.add_argument("--prepared", type=Path, default=Path(".device/fairdrone"))
    ap.add_argument("--root", type=Path, default=Path("/tmp/buildwatch-bench/nochange-pseudo"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    missing = [str(d) for d in args.chips if not d.is_dir()]
    if missing:
        sys.exit(f"no calibration chips at {', '.join(missing)}: run `buildwatch calibrate` "
                 "first (it writes them under runs/calibrate), or pass --chips")  # fmt: skip
    if not any(args.prepared.glob("*.json")):
        sys.exit(f"no prepared fair-drone mosaics in {args.prepared}: run "
                 f"`buildwatch build-dataset fairdrone-prepare {args.prepared}` first")  # fmt: skip

    from models.detector import ChangeDetector

    det = ChangeDetector.load(args.weights, device="cpu")  # bare: the test is what is measured
    radius_px = int(round(args.radius_m / float(det.card.working_gsd_m)))
    sets: dict[str, dict[str, Any]] = {}
    for d in args.chips:
        sets[d.parent.parent.name] = candidate_scores(det, d, args.score, radius_px)
    for kind in args.kinds:
        folder = chip_set(args.root, args.prepared, kind, args.n, args.seed)
        sets[f"no change {kind}"] = candidate_scores(det, folder, args.score, radius_px)

    rows = []
    head = ["variant", "min_ncc"] + [f"{k}: true dropped" for k in sets if "no change" not in k]
    head += ["pseudo pairs: false dropped"] + [k for k in sets if "no change" in k] + ["s"]
    print(f"{len(sets)} sets; candidates: "
          + ", ".join(f"{k} {len(v['true'])}" for k, v in sets.items()))  # fmt: skip
    print(" | ".join(head))
    for name in VARIANTS:
        spent = sum(v["seconds"][name] for v in sets.values())
        for t in args.min_ncc:
            row: dict[str, Any] = {"variant": name, "min_ncc": t, "seconds": round(spent, 1)}
            false_drop, false_n = 0, 0
            for k, v in sets.items():
                drop = v["best"][name] >= t
                if "no change" in k:
                    row[k] = round(float(drop.mean()), 3) if len(drop) else None
                else:
                    is_true = v["true"] == 1
                    row[f"{k}: true dropped"] = round(float(drop[is_true].mean()), 3) \
                        if is_true.any() else None  # fmt: skip
                    false_drop += int(drop[~is_true].sum())
                    false_n += int((~is_true).sum())
            row["pseudo pairs: false dropped"] = round(false_drop / false_n, 3) if false_n else None
            rows.append(row)

            def cell(x: Any) -> str:
                return "–" if x is None else f"{100 * x:.1f} %"

            print(" | ".join([name, f"{t:.2f}"]
                             + [cell(row[h]) for h in head[2:-1]] + [f"{spent:.1f}"]))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
