"""What bfloat16 training saves on this CPU: the same training in fp32 and in bf16, in one run.

    python benchmarks/bench_train_precision.py [--n-train 96] [--epochs 2] [--imgsz 512]
        [--model yolo11n-seg.yaml] [--batch 8] [--json out.json]

Two measures, fp32 first then bf16, each in a process of its own (so each peak RSS is its own):

* **the product's path**: ``models.train.train`` (what ``buildwatch train`` runs) on one set of
  seeded synthetic chips built once in a shared chip store, the shipped recipe's network, image
  size and batch, ``--epochs`` epochs; seconds per epoch from ultralytics' ``results.csv`` (the
  last epoch, so the first epoch's warm-up is not counted; each epoch includes its validation on
  the few validation chips), and the training's mean box loss after the last epoch (the same
  seed and chips: the two losses should agree to a few per cent);
* **the bare network**: forward + backward of the same network on one random batch of the same
  size, no data loading, no loss (median of 5 after 2 warm-up steps).

Ratios bf16 / fp32 for both, so what the data loading (in the training process on a CPU:
ultralytics runs no loader workers there) leaves of the network's gain shows.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)

HERE = Path(__file__).resolve()


def _child(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    import torch

    from models.config import TrainConfig
    from models.runtime import configure_ultralytics, set_threads
    from models.train import train

    logging.disable(logging.WARNING)
    configure_ultralytics()
    set_threads()
    bf16 = args.child == "bf16"
    out = Path(args.out) / args.child
    cfg = TrainConfig.model_validate(
        {
            "name": "bench-precision",
            "model": args.model,
            "imgsz": args.imgsz,
            "epochs": args.epochs,
            "batch": args.batch,
            "seed": 0,
            "device": "cpu",
            "precision": args.child,
            "out": str(out),
            "data": {
                "workers": 1,
                "chips_dir": str(Path(args.out) / "chips"),
                "synthetic": {"n_train": args.n_train, "n_val": 4, "renderer": "procedural"},
                "fairdrone": {"enabled": False},
            },
            "train_args": {"optimizer": "AdamW", "lr0": 0.001, "warmup_epochs": 0.5},
        }
    )
    train(cfg, out)
    with open(out / "train" / "results.csv") as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    times = [float(r["time"]) for r in rows]
    epoch_s = times[-1] - times[-2] if len(times) > 1 else times[-1]

    from ultralytics.nn.tasks import DetectionModel, SegmentationModel

    kind = SegmentationModel if "seg" in args.model else DetectionModel
    net = kind(args.model, ch=6, nc=2, verbose=False)
    net.train()
    x = torch.rand(args.batch, 6, args.imgsz, args.imgsz)

    def flat(o: Any) -> list[Any]:
        if torch.is_tensor(o):
            return [o]
        if isinstance(o, dict):
            o = list(o.values())
        if isinstance(o, (list, tuple)):
            return [t for e in o for t in flat(e)]
        return []

    steps = []
    for i in range(7):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = sum(t.float().mean() for t in flat(net(x)))
        loss.backward()
        net.zero_grad(set_to_none=True)
        if i >= 2:
            steps.append(time.perf_counter() - t0)
    return {
        "precision": args.child,
        "epoch_s": round(epoch_s, 1),
        "epochs": len(rows),
        "box_loss": float(rows[-1]["train/box_loss"]),
        "net_step_s": round(statistics.median(steps), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpu": torch.backends.cpu.get_cpu_capability(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--model", default="yolo11n-seg.yaml")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            cmd = [sys.executable, str(HERE), "--child", precision, "--out", tmp,
                   "--n-train", str(args.n_train), "--epochs", str(args.epochs),
                   "--imgsz", str(args.imgsz), "--batch", str(args.batch), "--model", args.model]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"{precision} training failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    fp32, bf16 = rows
    ratios = {
        "epoch_bf16_over_fp32": round(bf16["epoch_s"] / fp32["epoch_s"], 3),
        "net_step_bf16_over_fp32": round(bf16["net_step_s"] / fp32["net_step_s"], 3),
        "box_loss_bf16_over_fp32": round(bf16["box_loss"] / fp32["box_loss"], 3),
    }
    print(
        f"{args.model} {args.imgsz} px, batch {args.batch}, {args.n_train} chips: "
        f"an epoch {fp32['epoch_s']} s fp32, {bf16['epoch_s']} s bf16 "
        f"(x{ratios['epoch_bf16_over_fp32']}); the bare network's step {fp32['net_step_s']} s, "
        f"{bf16['net_step_s']} s (x{ratios['net_step_bf16_over_fp32']}); box loss after "
        f"{fp32['epochs']} epochs {fp32['box_loss']:.4f} / {bf16['box_loss']:.4f}; "
        f"peak RSS {fp32['peak_rss_mb']} / {bf16['peak_rss_mb']} MB; CPU {bf16['cpu']}"
    )
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "ratios": ratios}, indent=1) + "\n")


if __name__ == "__main__":
    main()
