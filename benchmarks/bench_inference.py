"""CPU inference speed of the change detector: PyTorch vs ONNX Runtime vs OpenVINO.

Same weights, same tiles, one run, threads = this machine's cores. Tiles/s is end to end
(``ChangeDetector.predict``: preprocessing, network, NMS). The fastest is what
``ChangeDetector.load(device="cpu", backend="auto")`` picks.

    python benchmarks/bench_inference.py [--weights W] [--tiles 32] [--batch 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import bench_tiles, bench_weights

from models.backends import available_cpu_backends
from models.detector import ChangeDetector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--tiles", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    scratch = Path(tempfile.gettempdir()) / "buildwatch-bench"
    weights = bench_weights(args.weights, scratch, args.imgsz)
    tiles = bench_tiles(args.tiles, args.imgsz)
    threads = os.cpu_count() or 1
    rows = []
    for name in available_cpu_backends():
        det = ChangeDetector.load(weights, device="cpu", backend=name, batch=args.batch,
                                  cache_dir=scratch / "exports", threads=threads)  # fmt: skip
        det.predict(tiles[: args.batch])  # warm-up
        t0 = time.perf_counter()
        n = sum(len(c) for c in det.predict(tiles, conf=0.25))
        dt = time.perf_counter() - t0
        rows.append({"backend": name, "tiles": len(tiles), "seconds": round(dt, 3),
                     "tiles_per_s": round(len(tiles) / dt, 2), "detections": n})  # fmt: skip
    print(f"weights {weights.name}, {len(tiles)} tiles of {args.imgsz} px, batch {args.batch}, "
          f"{threads} threads")  # fmt: skip
    print(f"{'backend':10s} {'tiles/s':>8s} {'seconds':>8s} {'dets':>6s}")
    for r in rows:
        print(
            f"{r['backend']:10s} {r['tiles_per_s']:8.2f} {r['seconds']:8.2f} {r['detections']:6d}"
        )
    best = max(rows, key=lambda r: r["tiles_per_s"])
    print(f"fastest: {best['backend']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
