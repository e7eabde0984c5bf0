"""Where the detector fails on real pairs: before / after / prediction chips, written locally.

    python benchmarks/failure_chips.py [--weights W] [--out runs/failures] [--per-kind 6]

Each WHU-CD and DSIFN-CD pair (validation only) runs through ``detect_leads``; leads are matched to
the label's changed blobs at IoU >= 0.25. For up to ``--per-kind`` misses (truth no lead found),
false leads and matches, a PNG shows the baseline, the flight with the truth outline (green) and
the leads (red, with scores), at the pair's own pixels, per set. The research-use imagery stays out of
the repository, so these are written under ``--out`` for the model card's reader to make.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import _common  # noqa: F401  (puts the repository on sys.path)
import cv2
import numpy as np
import rasterio

from geo.pairsets import georeference_pair, list_pairs
from models.evaluate import iou_matrix, match_greedy
from pipelines.detect import detect_leads

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _rgb(path: Path) -> tuple[np.ndarray, object]:
    with rasterio.open(path) as ds:
        return np.ascontiguousarray(np.moveaxis(ds.read([1, 2, 3]), 0, -1)), ds.transform


def _draw(img: np.ndarray, transform: object, geoms, color, labels=None) -> None:  # type: ignore[no-untyped-def]
    inv = ~transform  # type: ignore[operator]
    for k, g in enumerate(geoms):
        ring = np.asarray(g.exterior.coords)
        cols, rows = inv * (ring[:, 0], ring[:, 1])
        pts = np.round(np.column_stack([cols, rows])).astype(np.int32)
        cv2.polylines(img, [pts], True, color, 2)
        if labels is not None:
            cv2.putText(img, labels[k], tuple(int(v) for v in pts[0]), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, (255, 255, 0), 1)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/failures"))
    ap.add_argument("--per-kind", type=int, default=6)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from models.detector import ChangeDetector
    from pipelines.config import BuildwatchConfig
    from pipelines.detect import wrap_detector

    det = wrap_detector(ChangeDetector.load(args.weights, device="cpu"), BuildwatchConfig())
    args.out.mkdir(parents=True, exist_ok=True)
    total = {"miss": 0, "false": 0, "hit": 0}
    for set_name, gsd in (("whu-cd", 0.2), ("dsifn-cd", 0.5)):
        written = dict.fromkeys(total, 0)  # --per-kind per set
        root = DATA / set_name
        if not root.is_dir():
            print(f"({root} absent: skipped)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for name in list_pairs(root):
                gp = georeference_pair(root, name, Path(tmp) / Path(name).stem, gsd)
                res = detect_leads(gp.flight, gp.baseline, predict=det)
                leads = res.leads[res.leads["status"] == "lead"] if len(res.leads) else res.leads
                g = np.asarray(leads.geometry.values, object)
                truth = np.asarray(gp.truth.to_crs(res.crs).geometry.values, object)
                m = match_greedy(iou_matrix(g, truth), np.asarray(leads["score"], float), 0.25)
                after, t_after = _rgb(gp.flight)
                before, _ = _rgb(gp.baseline)
                matched = set(int(j) for j in m if j >= 0)
                cases = [("miss", truth[j], None) for j in range(len(truth)) if j not in matched]
                cases += [("false", g[i], float(leads["score"].iloc[i]))
                          for i in range(len(g)) if m[i] < 0]  # fmt: skip
                cases += [("hit", g[i], float(leads["score"].iloc[i]))
                          for i in range(len(g)) if m[i] >= 0]  # fmt: skip
                for kind, geom, _score in cases:
                    if written[kind] >= args.per_kind:
                        continue
                    inv = ~t_after
                    x0, y0, x1, y1 = geom.bounds
                    c0, r1 = inv * (x0, y0)
                    c1, r0 = inv * (x1, y1)
                    pad = 40
                    r0, c0 = max(0, int(r0) - pad), max(0, int(c0) - pad)
                    r1, c1 = int(r1) + pad, int(c1) + pad
                    a = after.copy()
                    _draw(a, t_after, truth, (0, 255, 0))
                    _draw(a, t_after, g, (255, 0, 0), [f"{s:.2f}" for s in leads["score"]])
                    tile = np.concatenate([before[r0:r1, c0:c1], after[r0:r1, c0:c1],
                                           a[r0:r1, c0:c1]], axis=1)  # fmt: skip
                    scale = max(1, 256 // max(1, tile.shape[0]))
                    tile = cv2.resize(tile, None, fx=scale, fy=scale,
                                      interpolation=cv2.INTER_NEAREST)  # fmt: skip
                    path = args.out / f"{kind}_{set_name}_{Path(name).stem}_{written[kind]}.png"
                    cv2.imwrite(str(path), tile[:, :, ::-1])
                    written[kind] += 1
                    total[kind] += 1
    print(f"wrote {total} under {args.out} (baseline | flight | truth green, leads red)")


if __name__ == "__main__":
    main()
