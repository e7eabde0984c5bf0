"""GPU inference speed: end-to-end tiles/s vs the bare forward pass, same model, same device, one run.

End to end = ``ChangeDetector.predict`` on a list of uint8 (512, 512, 6) tiles: host
preprocessing, host->device copy, fp16 network, NMS, Candidates. Bare = the same fp16 network
on a batch already on the GPU, synchronised. The gap is what the pipeline costs around the net.
Prepared for one device call (writes ``$OUT/gpu_inference.json`` when ``OUT`` is set):

    python3 benchmarks/gpu_inference.py --weights models/weights/buildwatch-cd-yolo11n.pt
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import bench_tiles, bench_weights

from models.detector import ChangeDetector, preprocess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--tiles", type=int, default=512)
    ap.add_argument("--batches", default="8,32,64")
    ap.add_argument("--imgsz", type=int, default=512)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on the GPU machine")
    weights = bench_weights(
        args.weights, Path(tempfile.gettempdir()) / "buildwatch-bench", args.imgsz
    )
    unique = bench_tiles(32, args.imgsz)
    tiles = [unique[i % len(unique)] for i in range(args.tiles)]
    det = ChangeDetector.load(weights, device="cuda")
    model = det.backend.model  # type: ignore[attr-defined]
    rows = []
    for b in (int(x) for x in args.batches.split(",")):
        det.predict(tiles[:b])  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, len(tiles), b):
            det.predict(tiles[i : i + b])
        torch.cuda.synchronize()
        e2e = len(tiles) / (time.perf_counter() - t0)
        x, _ = preprocess(tiles[:b], args.imgsz)
        xt = torch.from_numpy(x).cuda().half()
        with torch.inference_mode():
            for _ in range(3):
                model(xt)
            torch.cuda.synchronize()
            reps = max(3, len(tiles) // b)
            t0 = time.perf_counter()
            for _ in range(reps):
                model(xt)
            torch.cuda.synchronize()
        bare = reps * b / (time.perf_counter() - t0)
        rows.append({"batch": b, "end_to_end_tiles_per_s": round(e2e, 1),
                     "bare_forward_tiles_per_s": round(bare, 1),
                     "overhead_fraction": round(1 - e2e / bare, 3)})  # fmt: skip
        print(f"batch {b:3d}: end-to-end {e2e:8.1f} tiles/s   bare forward {bare:8.1f} tiles/s")
    result = {"device": torch.cuda.get_device_name(0), "weights": weights.name, "fp16": True,
              "imgsz": args.imgsz, "tiles": len(tiles), "rows": rows}  # fmt: skip
    print(json.dumps(result))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_inference.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
