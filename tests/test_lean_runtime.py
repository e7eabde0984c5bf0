"""The CPU inference path without torch: the shipped OpenVINO model, numpy NMS, the import graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.backends import shipped_openvino
from models.card import read_card, sha256
from models.detector import DEFAULT_WEIGHTS, ChangeDetector
from models.postprocess import non_max_suppression

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_openvino_model_comes_from_the_shipped_weights() -> None:
    card = read_card(DEFAULT_WEIGHTS.with_suffix(".yaml"))
    xml = shipped_openvino(DEFAULT_WEIGHTS, int(card.imgsz), sha256(DEFAULT_WEIGHTS))
    assert xml is not None, (
        "re-export it: python -c 'from models.backends import export_shipped_openvino; ...' "
        "(see models/weights/README.md)"
    )
    assert shipped_openvino(DEFAULT_WEIGHTS, int(card.imgsz), "0" * 64) is None  # other weights
    assert shipped_openvino(DEFAULT_WEIGHTS, 640, sha256(DEFAULT_WEIGHTS)) is None  # other size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_nms_matches_ultralytics(seed: int) -> None:
    torch = pytest.importorskip("torch")
    from ultralytics.utils.nms import non_max_suppression as ul_nms

    rng = np.random.default_rng(seed)
    nc, nm, n = 2, 32, 2000
    raw = np.zeros((1, 4 + nc + nm, n), np.float32)
    centres = rng.uniform(0, 512, (2, n))
    clusters = rng.integers(0, 40, n)  # boxes pile up around 40 sites, as real outputs do
    raw[0, 0] = centres[0] * 0.1 + clusters * 12.0
    raw[0, 1] = centres[1] * 0.1 + clusters * 11.0
    raw[0, 2:4] = rng.uniform(8, 60, (2, n))
    raw[0, 4 : 4 + nc] = rng.uniform(0, 1, (nc, n)) ** 3
    raw[0, 4 + nc :] = rng.standard_normal((nm, n))
    want = ul_nms(torch.from_numpy(raw), 0.25, 0.5, max_det=300, nc=nc)[0].numpy()
    got = non_max_suppression(raw[0], nc, 0.25, 0.5, 300)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_openvino_and_torch_find_the_same_structures() -> None:
    pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _common import bench_tiles

    tiles = bench_tiles(8, seed=3)
    lean = ChangeDetector.load(device="cpu", precision="f32")  # bf16 arithmetic is checked below
    assert lean.backend.name == "openvino"
    full = ChangeDetector.load(device="cpu", backend="torch")
    for a, b in zip(lean.predict(tiles, conf=0.05), full.predict(tiles, conf=0.05), strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1.5)  # fp16 weights: within a pixel
        np.testing.assert_allclose(a.score, b.score, atol=0.02)
        assert (a.class_id == b.class_id).all()


def test_detect_never_imports_torch(tmp_path: Path) -> None:
    """``buildwatch detect`` and ``run`` on a tiny synthetic pair, in a fresh interpreter: neither
    torch nor ultralytics is imported, and the detector really ran."""
    from geo.synthetic.district import generate_district

    d = generate_district(tmp_path / "d", seed=5, size_m=150.0)
    config = tmp_path / "config.yaml"
    config.write_text(f"units:\n  path: {d.units}\nledger:\n  url: {tmp_path / 'ledger.gpkg'}\n")
    code = f"""
import json, sys
from pipelines.cli import main
codes = []
for argv in (["-q", "detect", "--flight", {str(d.flight)!r}, "--baseline", {str(d.baseline)!r},
              "--units", {str(d.units)!r}, "--out", {str(tmp_path / "leads.gpkg")!r}],
             ["run", "--config", {str(config)!r}, "--flight", {str(d.flight)!r},
              "--baseline", {str(d.baseline)!r}, "--out", {str(tmp_path / "run")!r}]):
    try:
        main(argv)
    except SystemExit as exc:
        codes.append(exc.code)
print(json.dumps({{"codes": codes, "heavy": sorted(m for m in sys.modules
      if m.split(".")[0] in ("torch", "ultralytics", "torchvision")),
      "openvino": "openvino" in sys.modules}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    facts = json.loads(lines[-1])
    assert facts["codes"] == [0, 0], done.stderr[-3000:]
    # detect ran with --quiet (nothing printed); run printed its summary with the speed line
    assert lines[0].startswith("buildwatch run"), lines[:3]
    assert any(line.startswith("speed: ") and "km²/h" in line for line in lines)
    assert facts["openvino"] is True  # the model ran
    assert facts["heavy"] == []
