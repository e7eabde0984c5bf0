"""The GPU training script, dry-run on the CPU at tiny sizes (DEVICE_TINY=1): what a lent GPU
session would run in one call, so the call is known to work before the device is there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


SHARED_FAIRDRONE = ROOT.parent / "shared" / "data" / "fair-drone"


@pytest.mark.skipif(not SHARED_FAIRDRONE.is_dir(), reason=f"{SHARED_FAIRDRONE} is absent")
def test_one_call_trains_two_sizes_on_one_chip_store(tmp_path):
    from models.datasets.fairdrone_prepare import prepare_fairdrone

    prepare_fairdrone(SHARED_FAIRDRONE, tmp_path / "fairdrone", gsd=0.1)  # what a call carries
    out, run = tmp_path / "out", tmp_path / "run"
    configs = ["models/configs/gpu_seg_n.yaml", "models/configs/gpu_seg_s.yaml"]
    env = {**os.environ, "DEVICE_TINY": "1", "OUT": str(out), "RUN": str(run),
           "PY": sys.executable, "TRAIN_CONFIGS": " ".join(configs),
           "FAIRDRONE": str(tmp_path / "fairdrone")}  # fmt: skip
    proc = subprocess.run(["bash", "scripts/device_train.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for size in "ns":
        name = f"buildwatch-cd-yolo11{size}-seg"
        card = yaml.safe_load((out / f"{name}.yaml").read_text())
        assert (out / f"{name}.pt").stat().st_size > 0
        assert card["architecture"].startswith(f"yolo11{size}-seg.yaml, 6-channel")
        assert card["training_data"]  # what it saw, for the card
        assert (out / f"{name}.results.csv").is_file()
    # the second size reused the first one's chips: one set per source in the shared store
    store = sorted(p.name.split("-")[0] for p in (run / "chips").iterdir() if p.is_dir())
    assert store == ["fairdrone", "synthetic"]
    assert proc.stdout.count("chips already built for this spec; reused") == 2
