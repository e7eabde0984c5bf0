"""CPU cost of the candidate architectures: YOLO11n/s/m, detect vs segment, 6-channel, 512 px.

Also the ImageNet-pretrained EfficientNet-Lite0 backbone, early fusion and Siamese, under
YOLO11n-seg's head (``models/arch/buildwatch-efflite0-seg.yaml``,
``buildwatch-efflite0-siamese-seg.yaml``).

Untrained weights have the trained ones' network speed, so every size is timed here even where
only one is trained; the shipped weights (outlining and box) are timed too, since their
post-processing (masks traced per detection) depends on how many structures they find. One run,
same tiles, PyTorch and OpenVINO (when installed), threads = cores, ``conf`` 0.45 (the shipped
threshold); tiles/s end to end (``ChangeDetector.predict``: preprocessing, network, NMS, outlines).
km²/h follows from the working GSD: a 512 px tile with 64 px overlap covers (448 x GSD)² m².

    python benchmarks/bench_model_size.py [--tiles 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import bench_tiles

import models.backbone  # noqa: F401  (registers the pretrained backbone for its model YAML)
from models.card import ModelCard, sha256, write_card
from models.detector import ChangeDetector
from models.runtime import configure_ultralytics


def untrained(arch: str, folder: Path, imgsz: int) -> Path:
    """An untrained 6-channel, 2-class model of ``arch`` saved as ultralytics weights + card."""
    configure_ultralytics()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel

    out = folder / f"{Path(arch).stem}-6ch.pt"
    if out.is_file():
        return out
    model = YOLO(arch)
    cls = SegmentationModel if "-seg" in arch else DetectionModel
    model.model = cls(arch, ch=6, nc=2, verbose=False)
    model.model.names = {0: "new_building", 1: "construction"}
    model.save(str(out))
    write_card(ModelCard(name=out.stem, weights=out.name, imgsz=imgsz, sha256=sha256(out)),
               out.with_suffix(".yaml"))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument(
        "--archs",
        default="yolo11n.yaml,yolo11n-seg.yaml,yolo11s-seg.yaml,yolo11m-seg.yaml,"
        "models/arch/buildwatch-efflite0-seg.yaml,models/arch/buildwatch-efflite0-siamese-seg.yaml",
        help="model YAMLs (timed untrained) or *.pt weights, comma-separated",
    )
    ap.add_argument("--backends", default="torch,openvino")
    ap.add_argument("--conf", type=float, default=0.45)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tiles = bench_tiles(args.tiles, args.imgsz)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        from models.detector import DEFAULT_WEIGHTS

        shipped = [DEFAULT_WEIGHTS, DEFAULT_WEIGHTS.with_name("buildwatch-cd-yolo11n.pt")]
        for arch in [str(p) for p in shipped if p.is_file()] + args.archs.split(","):
            weights = Path(arch) if arch.endswith(".pt") else untrained(arch, Path(tmp), args.imgsz)
            for backend in args.backends.split(","):
                try:
                    det = ChangeDetector.load(weights, device="cpu", backend=backend,
                                              batch=args.batch, cache_dir=Path(tmp))  # fmt: skip
                except Exception as exc:  # an absent runtime is a row, not a crash
                    rows.append({"arch": arch, "backend": backend, "error": str(exc)[:80]})
                    continue
                det.predict(tiles[: args.batch], conf=args.conf)  # warm-up
                t0 = time.perf_counter()
                found = sum(len(c) for c in det.predict(tiles, conf=args.conf))
                dt = time.perf_counter() - t0
                tps = len(tiles) / dt
                row = {"arch": Path(arch).name, "backend": backend, "tiles_per_s": round(tps, 2),
                       "detections": found,
                       "km2_per_h_at_0.2m": round(tps * 3600 * (448 * 0.2) ** 2 / 1e6, 1),
                       "params_mb": round(weights.stat().st_size / 1e6, 1)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"threads {os.cpu_count()}, {len(tiles)} tiles of {args.imgsz} px, batch {args.batch}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
