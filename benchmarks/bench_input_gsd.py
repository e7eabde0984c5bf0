"""How coarse an input the shipped detector still sees buildings in: F1 against native GSD.

    .venv/bin/python benchmarks/bench_input_gsd.py [--gsds 0.2 0.35 0.5 …] [--json out.json]

The held-out real pseudo pairs (``runs/calibrate/fairdrone/images/val``: 240 chips of 512 px at
the working 0.2 m, cut from the two fair-drone mosaics training never saw; ``buildwatch
calibrate`` builds them) are shown to the shipped detector, as the default config wraps it, as
if they had been captured coarser: each epoch is block-averaged down to the native GSD ``G``
(``cv2.INTER_AREA``) and resampled back up to 0.2 m bilinearly, which is what the product's
windowed warp does to a ``G`` m GeoTIFF. Per ``G`` and per mode:

* ``both`` — flight and baseline at ``G`` (a satellite pair, as DSIFN-CD);
* ``flight`` — the flight at ``G``, the baseline as it was (a coarse flight);
* ``baseline`` — the baseline at ``G``, the flight as it was (a drone flight against an old,
  coarse baseline: the product's usual case);

it prints new-building tp/fp/fn, F1 at IoU >= 0.25 (touching outlines joined as leads are) and
false detections per km² on the 31 chips where nothing changed, at the shipped threshold
(``filters.min_score.new_building``). This is where ``detector.max_native_gsd_m`` comes from
(model card, *Input GSD*). Held-out pseudo pairs only: no validation set is read.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import numpy as np

from geo.tiles import see_at_gsd
from models.calibrate import calibrate
from models.detector import ChangeDetector
from pipelines.config import BuildwatchConfig
from pipelines.detect import wrap_detector

CHIPS = Path("runs/calibrate/fairdrone/images/val")
WORK_GSD = 0.2


def coarsen(img: np.ndarray, gsd: float, work: float = WORK_GSD) -> np.ndarray:
    """``img`` (at ``work`` m/px) as a ``gsd`` m capture resampled back to ``work`` m/px: the
    product's own :func:`geo.tiles.see_at_gsd`, which matches a flight to a coarse baseline."""
    return see_at_gsd(img, gsd, work)


class Coarsened:
    """A detector whose input chips (flight RGB in 0:3, baseline in 3:6) are seen coarser."""

    def __init__(self, detector: Any, gsd: float, mode: str) -> None:
        self.detector, self.gsd, self.mode = detector, gsd, mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def predict(self, images: list[np.ndarray], conf: float = 0.25, **kw: Any) -> list[Any]:
        out = []
        for im in images:
            im = im.copy()
            if self.mode in ("both", "flight"):
                im[..., :3] = coarsen(np.ascontiguousarray(im[..., :3]), self.gsd)
            if self.mode in ("both", "baseline"):
                im[..., 3:6] = coarsen(np.ascontiguousarray(im[..., 3:6]), self.gsd)
            out.append(im)
        return self.detector.predict(out, conf=conf, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gsds", nargs="+", type=float, default=[0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0])
    ap.add_argument("--modes", nargs="+", default=["both", "flight", "baseline"],
                    choices=["both", "flight", "baseline"])  # fmt: skip
    ap.add_argument("--chips", type=Path, default=CHIPS)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    if not args.chips.is_dir():
        raise SystemExit(f"{args.chips}: held-out chips not found; build them with "
                         "`buildwatch calibrate` (model card, Reproduce)")  # fmt: skip
    config = BuildwatchConfig()
    t = float(config.filters.min_score["new_building"])
    det = wrap_detector(ChangeDetector.load(None, device="cpu"), config)
    join = config.filters.dissolve_gap_m / WORK_GSD
    rows = []
    for mode in args.modes:
        for gsd in args.gsds:
            if mode != "both" and gsd <= WORK_GSD:
                continue  # the same as "both" at the working GSD
            t0 = time.perf_counter()
            cal = calibrate(Coarsened(det, gsd, mode), [args.chips], thresholds=[t],
                            gsd=WORK_GSD, join_gap_px=join)  # fmt: skip
            tp, fp, fn = cal.counts["new_building"][t]
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / (tp + fn) if tp + fn else 0.0
            fp_nc = cal.nochange_fp["new_building"][t]
            row = {"mode": mode, "native_gsd_m": gsd, "threshold": t, "tp": tp, "fp": fp,
                   "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
                   "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
                   "nochange_false_per_km2": round(fp_nc / cal.nochange_km2, 2),
                   "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
