"""Tiny CPU training through the CLI, then the detector on its weights (network blocked)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from geo.errors import ConfigError, ModelError
from models.candidates import Candidates
from models.config import load_config
from models.detector import ChangeDetector, preprocess
from pipelines.cli import main


@pytest.fixture(scope="module")
def labelled_pair(tmp_path_factory):
    """A tiny georeferenced pair with a ledger export (confirmed + rejected) for training."""
    from tests._geo_fixtures import GK, write_pair
    from tests.test_models_datasets import _ledger_labels

    folder = tmp_path_factory.mktemp("pair")
    flight, baseline, _, wt = write_pair(folder, size=400)
    labels = _ledger_labels(folder / "labels.gpkg", wt, GK)
    return {"flight": str(flight), "baseline": str(baseline), "labels": str(labels),
            "layer": "labels", "flight_id": "F1", "val_fraction": 0.0}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, labelled_pair):
    """One tiny CPU training on synthetic chips plus the labelled pair (source c)."""
    out = tmp_path_factory.mktemp("tiny")
    pairs = json.dumps([labelled_pair])
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", "models/configs/tiny.yaml", "--out", str(out),
              "--set", f"data.labelled={pairs}"])  # fmt: skip
    assert exit_info.value.code == 0
    return out


def test_labelled_pair_feeds_training(trained):
    card = yaml.safe_load((trained / "tiny-cd.yaml").read_text())
    assert card["training_data"]["labelled"]["chips"]["train"] >= 2
    labels = trained / "data" / "labelled" / "labels" / "train"
    boxes = {f.stem: f.read_text().split() for f in labels.glob("*.txt")}
    assert any(b and b[0] == "0" for b in boxes.values())  # the confirmed new building
    assert any(not b for b in boxes.values())  # chips around the rejected case: no box
    combined = yaml.safe_load((trained / "data" / "data.yaml").read_text())
    assert any(t.endswith("labelled/images/train") for t in combined["train"])


def test_a_run_killed_while_writing_best_finishes_from_last(
    trained, labelled_pair, tmp_path, capsys
):
    """ultralytics writes best.pt in place: a kill mid-write leaves it truncated, and a resumed
    run that never beats that epoch keeps it so. --finish then keeps last.pt and says so."""
    import shutil

    import torch

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / "tiny-cd.pt").unlink()
    best = out / "train" / "weights" / "best.pt"
    best.write_bytes(best.read_bytes()[:4096])  # the zip's central directory is at the end
    pairs = json.dumps([labelled_pair])
    with pytest.raises(SystemExit) as ex:
        main(["train", "--config", "models/configs/tiny.yaml", "--out", str(out),
              "--set", f"data.labelled={pairs}", "--finish"])  # fmt: skip
    assert ex.value.code == 0
    err = capsys.readouterr().err  # the CLI's log handler
    assert "best.pt unreadable" in err and "keeping last.pt" in err
    torch.load(out / "tiny-cd.pt", map_location="cpu", weights_only=False)  # a whole checkpoint
    (out / "train" / "weights" / "last.pt").write_bytes(b"")
    from models.train import _loadable_checkpoint

    with pytest.raises(ModelError, match=r"no readable checkpoint \(best.pt unreadable .*last.pt"):
        _loadable_checkpoint(out / "train" / "weights")


def test_labelled_pair_missing_file_is_a_clear_error(tmp_path, labelled_pair):
    from geo.errors import InputFileError
    from models.train import build_datasets

    cfg = load_config("models/configs/tiny.yaml", ["data.synthetic.enabled=false"])
    cfg.data.labelled = [_pair(labelled_pair, flight="nope.tif")]
    with pytest.raises(InputFileError, match=r"data.labelled\[0\].flight: nope.tif not found"):
        build_datasets(cfg, tmp_path)


def _pair(raw, **changes):
    from models.config import LabelledPair

    return LabelledPair.model_validate(raw | changes)


def test_tiny_training_writes_weights_and_card(trained):
    weights, card_path = trained / "tiny-cd.pt", trained / "tiny-cd.yaml"
    assert weights.stat().st_size > 1_000_000
    card = yaml.safe_load(card_path.read_text())
    assert card["channels"] == 6 and card["classes"] == ["new_building", "construction"]
    assert card["band_order"][:3] == ["flight_red", "flight_green", "flight_blue"]
    assert card["working_gsd_m"] == 0.2 and card["imgsz"] == 128
    assert "synthetic" in card["metrics"]["validation"]
    assert card["reproduce"].startswith("buildwatch train --config models/configs/tiny.yaml")
    assert len(card["sha256"]) == 64


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_detector_predicts_on_six_channel_tiles(trained, backend, tmp_path):
    det = ChangeDetector.load(trained / "tiny-cd.pt", device="cpu", backend=backend, batch=2,
                              cache_dir=tmp_path)  # fmt: skip
    assert det.card.imgsz == 128 and det.card.overlap == 64
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 255, (128, 128, 6), dtype=np.uint8) for _ in range(3)]
    tiles.append(rng.integers(0, 255, (70, 90, 6), dtype=np.uint8))  # an edge tile
    out = det.predict(tiles, conf=0.0001)
    assert len(out) == 4 and all(isinstance(c, Candidates) for c in out)
    assert sum(len(c) for c in out) > 0  # an untrained net still emits low-score boxes
    assert out[3].xyxy[:, 2].max(initial=0) <= 90 and out[3].xyxy[:, 3].max(initial=0) <= 70
    with pytest.raises(ModelError, match=r"expected an \(h, w, 6\) uint8"):
        det.predict([np.zeros((128, 128, 3), np.uint8)])


def test_detector_load_errors(tmp_path):
    with pytest.raises(ModelError, match="weights not found"):
        ChangeDetector.load(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load YOLO weights"):
        ChangeDetector.load(bad, device="cpu", backend="torch")


def test_preprocess_pads_small_and_shrinks_large_tiles():
    small = np.full((10, 20, 6), 255, np.uint8)
    large = np.full((256, 256, 6), 255, np.uint8)
    x, scales = preprocess([small, large], 128)
    assert x.shape == (2, 6, 128, 128)
    assert scales.tolist() == [1.0, 0.5]
    assert x[0, :, :10, :20].min() == 1.0 and x[0, :, 20:, 20:].max() < 0.5


def test_config_errors_name_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 0\n")
    with pytest.raises(ConfigError, match="epochs"):
        load_config(cfg)
    cfg.write_text("model: yolo11n.pt\n")
    with pytest.raises(ConfigError, match="would be downloaded"):
        load_config(cfg)
    cfg.write_text("nonsense_key: 1\n")
    with pytest.raises(ConfigError, match="nonsense_key"):
        load_config(cfg)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("models/configs/tiny.yaml", ["epochs"])
    cfg.write_text("train_args: {amp: bf16}\n")
    with pytest.raises(ConfigError, match="precision"):
        load_config(cfg)
    cfg.write_text("precision: fp16\n")
    with pytest.raises(ConfigError, match="precision"):
        load_config(cfg)
    assert (
        load_config("models/configs/tiny.yaml", ["data.synthetic.n_train=3"]).data.synthetic.n_train
        == 3
    )


def test_shipped_configs_validate():
    for name in ("tiny", "gpu"):
        cfg = load_config(f"models/configs/{name}.yaml")
        assert cfg.model == "yolo11n.yaml"
    assert load_config("models/configs/gpu.yaml").data.fairdrone.enabled


def test_every_training_config_validates_and_names_existing_weights():
    from pathlib import Path

    paths = sorted(Path("models/configs").glob("*.yaml"))
    assert len(paths) >= 10
    configs = {path: load_config(path) for path in paths}
    # a continuation may start from what another config in the repository trains
    made_here = {Path(cfg.out) for cfg in configs.values()}
    for path, cfg in configs.items():
        for start in (cfg.model, cfg.train_args.get("pretrained")):
            if start and str(start).endswith(".pt"):
                made = Path(start).parent in made_here and Path(start).parent != Path(cfg.out)
                assert Path(start).is_file() or made, (
                    f"{path}: {start} is neither in the repository nor made by another config"
                )


@pytest.mark.parametrize(
    "name,left_out",
    [
        ("ablate_no_synthetic", ["synthetic.enabled"]),
        ("ablate_no_fairdrone", ["fairdrone.enabled"]),
        ("ablate_removed_only", ["fairdrone.estate_fraction", "fairdrone.paste_fraction"]),
        ("ablate_no_paste", ["fairdrone.paste_fraction"]),
    ],
)
def test_an_ablation_is_stage_1_with_one_source_left_out(name, left_out):
    stage1 = load_config("models/configs/cpu_seg.yaml").model_dump()
    ablation = load_config(f"models/configs/{name}.yaml").model_dump()
    for key in left_out:
        section, field = key.split(".")
        assert stage1["data"][section][field] and not ablation["data"][section][field], key
        ablation["data"][section][field] = stage1["data"][section][field]
    assert ablation.pop("out") != stage1.pop("out")  # its own run folder
    assert ablation == stage1  # nothing else differs: the table compares like with like


def test_the_removed_building_ablation_gives_its_share_to_the_other_two_kinds():
    """Removal is what is left after the estates and the pastes: this ablation leaves nothing
    to it, and keeps the estates and pastes in stage 1's ratio."""
    stage1 = load_config("models/configs/cpu_seg.yaml").model_dump()
    ablation = load_config("models/configs/ablate_no_removed.yaml").model_dump()
    fd1, fd = stage1["data"]["fairdrone"], ablation["data"]["fairdrone"]
    assert fd1["estate_fraction"] + fd1["paste_fraction"] < 1  # stage 1 removes buildings
    assert fd["estate_fraction"] + fd["paste_fraction"] == pytest.approx(1.0)  # this one never
    assert fd["estate_fraction"] / fd["paste_fraction"] == pytest.approx(
        fd1["estate_fraction"] / fd1["paste_fraction"]
    )
    for key in ("estate_fraction", "paste_fraction"):
        fd[key] = fd1[key]
    assert ablation.pop("out") != stage1.pop("out")
    assert ablation == stage1


def test_evaluate_cli_on_image_pairs_and_flight(trained, tmp_path):
    import cv2
    import geopandas as gpd
    from shapely.geometry import box

    from tests._geo_fixtures import GK, write_pair

    rng = np.random.default_rng(0)
    for sub in ("A", "B", "label"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
    before = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    after = before.copy()
    after[20:40, 20:50] = 250
    label = np.zeros((96, 96), np.uint8)
    label[20:40, 20:50] = 255
    for sub, img in (("A", before), ("B", after), ("label", label)):
        cv2.imwrite(str(tmp_path / "pairs" / sub / "p1.png"), img)
    weights = str(trained / "tiny-cd.pt")
    report = tmp_path / "pairs.json"
    with pytest.raises(SystemExit) as ex:
        main(["evaluate", "--pairs", str(tmp_path / "pairs"), "--gsd", "0.2", "--weights",
              weights, "--device", "cpu", "--backend", "torch", "--out", str(report)])  # fmt: skip
    assert ex.value.code == 0
    data = json.loads(report.read_text())
    (pair,) = data["pairs"]  # georeferenced and run through the detect path
    assert pair["pair"] == "p1.png" and pair["n_truth"] == 1
    assert pair["coreg"] in ("verified", "unverified", "failed")
    assert data["overall"]["tp"] + data["overall"]["fn"] == 1
    if pair["coreg"] != "failed":
        assert 0 < data["overall"]["compared_km2"] <= round(96 * 96 * 0.04 / 1e6, 4) + 1e-4

    f, b, _, wt = write_pair(tmp_path, size=300)
    x0, y0 = wt @ (100, 100)
    truth = tmp_path / "truth.gpkg"
    gpd.GeoDataFrame({"class": ["new_building", ""]}, crs=GK,
                     geometry=[box(x0 + 10, y0 - 20, x0 + 20, y0 - 10), box(x0, y0 - 5, x0 + 5, y0)],
                     ).to_file(truth, layer="changes")  # fmt: skip
    out = tmp_path / "flight.json"
    with pytest.raises(SystemExit) as ex:
        main(["evaluate", "--flight", str(f), "--baseline", str(b), "--truth", str(truth),
              "--weights", weights, "--device", "cpu", "--backend", "torch", "--out", str(out)])  # fmt: skip
    assert ex.value.code == 0
    data = json.loads(out.read_text())
    assert data["n_truth"] == 1  # the nuisance row (class "") is not a truth object
    assert data["inputs"]["backend"] == "torch" and data["inputs"]["n_tiles"] >= 1
    with pytest.raises(SystemExit) as ex:
        main(["evaluate", "--out", str(out)])
    assert ex.value.code == 2


@pytest.fixture(
    scope="module",
    params=[
        "yolo11n-seg.yaml",
        "models/arch/buildwatch-efflite0-seg.yaml",
        "models/arch/buildwatch-efflite0-siamese-seg.yaml",
    ],
)
def trained_seg(tmp_path_factory, request):
    """One tiny CPU training of the outlining (segment) detector: on YOLO11n's own backbone and
    on the ImageNet-pretrained EfficientNet-Lite0, early fusion and Siamese (models/backbone.py)."""
    out = tmp_path_factory.mktemp("tiny-seg")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", "models/configs/tiny_seg.yaml", "--out", str(out),
              "--set", f"model={request.param}"])  # fmt: skip
    assert exit_info.value.code == 0
    return out


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_segment_detector_returns_outlines_inside_boxes(trained_seg, backend, tmp_path):
    card = yaml.safe_load((trained_seg / "tiny-seg.yaml").read_text())
    assert "mask_map50" in card["metrics"]["validation"]["synthetic"]
    det = ChangeDetector.load(trained_seg / "tiny-seg.pt", device="cpu", backend=backend,
                              batch=2, cache_dir=tmp_path)  # fmt: skip
    rng = np.random.default_rng(1)
    tiles = [rng.integers(0, 255, (128, 128, 6), dtype=np.uint8) for _ in range(2)]
    out = det.predict(tiles, conf=0.0001)
    outlined = [(c.xyxy[i], c.outline[i]) for c in out for i in range(len(c))
                if c.outline[i] is not None]  # fmt: skip
    assert outlined, "an untrained segment net still emits low-score masks"
    for box, pts in outlined:
        assert pts.shape[1] == 2 and len(pts) >= 3
        assert (pts[:, 0] >= box[0] - 1.5).all() and (pts[:, 0] <= box[2] + 1.5).all()
        assert (pts[:, 1] >= box[1] - 1.5).all() and (pts[:, 1] <= box[3] + 1.5).all()


def test_resume_needs_a_checkpoint(tmp_path):
    from models.train import train

    cfg = load_config("models/configs/tiny.yaml", [])
    with pytest.raises(ConfigError, match="no checkpoint to resume"):
        train(cfg, tmp_path, resume=True)


def test_training_killed_after_an_epoch_resumes_to_the_end(tmp_path):
    """A CPU training stopped mid-run (SIGKILL) goes on from its last epoch with --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    epochs = 20
    out = tmp_path / "run"
    args = ["--config", "models/configs/tiny.yaml", "--out", str(out), "--set", f"epochs={epochs}",
            "--set", "data.synthetic.n_train=8", "--set", "data.synthetic.n_val=2"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "train", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    results = out / "train" / "results.csv"
    last = out / "train" / "weights" / "last.pt"
    best = out / "train" / "weights" / "best.pt"
    deadline = time.monotonic() + 240
    killed = False
    try:
        while time.monotonic() < deadline and proc.poll() is None and not killed:
            written = [results, last, best]  # ultralytics writes last.pt, then best.pt
            if all(p.is_file() for p in written) and len(results.read_text().splitlines()) >= 2:
                os.killpg(
                    proc.pid, signal.SIGSTOP
                )  # freeze it, then kill only on whole checkpoints
                try:
                    for checkpoint in (last, best):
                        torch.load(checkpoint, map_location="cpu", weights_only=False)
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                except Exception:  # caught mid-write: let it finish writing
                    os.killpg(proc.pid, signal.SIGCONT)
                    time.sleep(0.05)
            time.sleep(0.05)
        assert killed, "training ended (or never checkpointed) before it could be stopped"
    finally:
        if not killed and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(results.read_text().splitlines()) - 1
    assert 1 <= done < epochs
    assert not (out / "tiny-cd.pt").exists()
    best.write_bytes(best.read_bytes()[:4096])  # the worst moment: killed while writing best.pt
    # --finish keeps the best epoch so far, without training further
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args, "--finish"])
    assert exit_info.value.code == 0
    card = yaml.safe_load((out / "tiny-cd.yaml").read_text())
    assert card["train_settings"]["epochs_run"] == done
    assert len(results.read_text().splitlines()) - 1 == done
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args, "--resume"])
    assert exit_info.value.code == 0
    assert len(results.read_text().splitlines()) - 1 == epochs  # every epoch once, none repeated
    assert (out / "tiny-cd.pt").is_file() and (out / "tiny-cd.yaml").is_file()
    torch.load(out / "tiny-cd.pt", map_location="cpu", weights_only=False)


def test_runs_sharing_a_chip_store_build_each_chip_set_once(tmp_path, monkeypatch):
    """``data.chips_dir``: runs that differ only in model or optimiser train on one copy of the
    same seeded chips, built once even when two runs start together; another seed is another set;
    a resumed run finds its chips through ``sources.json`` and says so when they are gone."""
    import shutil
    import threading

    import models.datasets.synthetic as synthetic
    from models.train import _built_datasets, _combined_yaml, build_datasets

    real_build, calls = synthetic.build_synthetic, []

    def counting_build(root, spec, *args, **kwargs):
        calls.append(spec.seed)
        return real_build(root, spec, *args, **kwargs)

    monkeypatch.setattr(synthetic, "build_synthetic", counting_build)
    store = tmp_path / "store"
    sets = [f"data.chips_dir={store}", "data.synthetic.n_train=3", "data.synthetic.n_val=1"]
    run_a = load_config("models/configs/tiny.yaml", sets)
    run_b = load_config("models/configs/tiny.yaml", [*sets, "model=yolo11n-seg.yaml",
                                                     "train_args={optimizer: AdamW}"])  # fmt: skip
    found: dict[str, dict] = {}
    threads = [threading.Thread(target=lambda n, c: found.update({n: build_datasets(c, tmp_path / n / "data")}),
                                args=(n, c)) for n, c in (("a", run_a), ("b", run_b))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [0]  # one build for both runs
    (folder,) = [p for p in store.iterdir() if p.is_dir()]
    assert folder.name.startswith("synthetic-")
    assert found["a"]["synthetic"] == found["b"]["synthetic"] == folder / "data.yaml"
    assert len(list((folder / "images" / "train").glob("*.tif"))) == 3
    assert not (tmp_path / "a" / "data" / "synthetic").exists()  # nothing copied into the run

    other_seed = load_config("models/configs/tiny.yaml", [*sets, "seed=5"])
    build_datasets(other_seed, tmp_path / "c" / "data")
    assert calls == [0, 5] and len([p for p in store.iterdir() if p.is_dir()]) == 2

    _combined_yaml(found["a"], tmp_path / "a" / "data")
    assert _built_datasets(tmp_path / "a" / "data") == {"synthetic": folder / "data.yaml"}
    shutil.rmtree(folder)
    with pytest.raises(ConfigError, match=r"sources\.json: the run's chips are gone"):
        _built_datasets(tmp_path / "a" / "data")


def test_the_continuation_is_stage_1_from_the_shipped_weights_and_nothing_else():
    """cpu_seg_more.yaml asks one question (does stage 1 gain with more epochs?): it starts from
    the shipped weights on stage 1's chips; only the schedule differs."""
    stage1 = load_config("models/configs/cpu_seg.yaml").model_dump()
    more = load_config("models/configs/cpu_seg_more.yaml").model_dump()
    assert more["train_args"].pop("pretrained") == "models/weights/buildwatch-cd-yolo11n-seg.pt"
    stage1["train_args"].pop("pretrained")
    schedule = ("lr0", "warmup_epochs", "close_mosaic")
    assert more["train_args"]["lr0"] < stage1["train_args"]["lr0"]
    for key in schedule:
        more["train_args"].pop(key), stage1["train_args"].pop(key)
    for key in ("epochs", "out"):
        more.pop(key), stage1.pop(key)
    assert more == stage1  # same data (and seed, so the same chips), same model and optimiser


def test_the_nuisance_run_is_the_continuation_with_nuisance_and_nothing_else():
    """cpu_seg_nuisance.yaml is cpu_seg_more.yaml (its control) with painted nuisance change."""
    more = load_config("models/configs/cpu_seg_more.yaml").model_dump()
    nuisance = load_config("models/configs/cpu_seg_nuisance.yaml").model_dump()
    assert more["data"]["fairdrone"]["nuisance"] == 0.0
    assert nuisance["data"]["fairdrone"].pop("nuisance") > 0
    more["data"]["fairdrone"].pop("nuisance")
    assert nuisance.pop("out") != more.pop("out")
    assert nuisance == more


def test_stage_1_with_nuisance_is_stage_1_with_nuisance_and_relief_and_nothing_else():
    """cpu_seg_nuisance1.yaml is stage 1 (the shipped recipe) with painted nuisance change and
    leaning roofs in the baselines."""
    stage1 = load_config("models/configs/cpu_seg.yaml").model_dump()
    nuisance = load_config("models/configs/cpu_seg_nuisance1.yaml").model_dump()
    for key in ("nuisance", "relief"):
        assert nuisance["data"]["fairdrone"].pop(key) > 0
        assert stage1["data"]["fairdrone"].pop(key) == 0
    assert nuisance.pop("out") != stage1.pop("out")
    assert nuisance == stage1


def test_the_no_relief_run_is_the_nuisance_run_without_leaning_roofs():
    with_relief = load_config("models/configs/cpu_seg_nuisance1.yaml").model_dump()
    without = load_config("models/configs/cpu_seg_nuisance1_norelief.yaml").model_dump()
    assert with_relief["data"]["fairdrone"].pop("relief") > 0
    assert without["data"]["fairdrone"].pop("relief") == 0
    assert with_relief.pop("out") != without.pop("out")
    assert with_relief == without


def test_the_half_relief_run_differs_from_the_nuisance_run_only_in_the_relief_share():
    full = load_config("models/configs/cpu_seg_nuisance1.yaml").model_dump()
    half = load_config("models/configs/cpu_seg_nuisance1_relief15.yaml").model_dump()
    assert 0 < half["data"]["fairdrone"].pop("relief") < full["data"]["fairdrone"].pop("relief")
    assert full.pop("out") != half.pop("out")
    assert full == half


def test_the_larger_than_life_run_is_the_half_relief_run_with_magnified_chips():
    half = load_config("models/configs/cpu_seg_nuisance1_relief15.yaml").model_dump()
    larger = load_config("models/configs/cpu_seg_nuisance1_relief15_larger.yaml").model_dump()
    assert half["data"]["fairdrone"].pop("magnify") == 0
    assert 0 < larger["data"]["fairdrone"].pop("magnify") < 1
    assert half.pop("out") != larger.pop("out")
    assert half == larger


@pytest.mark.parametrize(
    ("original", "replicate"),
    [
        ("models/configs/cpu_seg.yaml", "models/configs/cpu_seg_seed4.yaml"),
        ("models/configs/cpu_seg.yaml", "models/configs/cpu_seg_seed5.yaml"),
        ("models/configs/cpu_seg_nuisance1.yaml", "models/configs/cpu_seg_nuisance1_seed4.yaml"),
        (
            "models/configs/cpu_seg_nuisance1_norelief.yaml",
            "models/configs/cpu_seg_nuisance1_norelief_seed4.yaml",
        ),
    ],
)
def test_a_seed_replicate_trains_its_recipe_on_the_same_chips_with_another_seed(
    original: str, replicate: str
) -> None:
    first, again = load_config(original), load_config(replicate)
    assert again.seed != first.seed
    # the chip seeds are pinned to the original's, so the chips are the same set
    assert again.data.synthetic.seed == again.data.fairdrone.seed == first.seed
    assert first.data.synthetic.seed is None and first.data.fairdrone.seed is None
    a, b = first.model_dump(), again.model_dump()
    for cfg in (a, b):
        cfg.pop("seed"), cfg.pop("out")
        cfg["data"]["synthetic"].pop("seed"), cfg["data"]["fairdrone"].pop("seed")
    assert a == b


def test_the_pretrained_backbone_runs_are_stage_1_on_another_network():
    """Items 18–19 compare backbones, so their data and augmentation must be stage 1's; only the
    network, its start (no box detector to start from), the run's name, folder and time differ."""
    stage1 = load_config("models/configs/cpu_seg.yaml").model_dump()
    stage1["train_args"].pop("pretrained")
    network_keys = ("model", "name", "out", "epochs", "time_hours", "description")
    runs = {}
    for name in ("cpu_seg_efflite0", "cpu_seg_efflite0_siamese"):
        cfg = load_config(f"models/configs/{name}.yaml").model_dump()
        assert "pretrained" not in cfg["train_args"]
        runs[name] = {key: cfg.pop(key) for key in network_keys}
        for key in network_keys:
            cfg[key] = stage1[key]
        assert cfg == stage1, name
    assert runs["cpu_seg_efflite0"]["model"].endswith("buildwatch-efflite0-seg.yaml")
    assert runs["cpu_seg_efflite0_siamese"]["model"].endswith("-siamese-seg.yaml")
    assert len({r["out"] for r in runs.values()} | {stage1["out"]}) == 3


def test_cpu_bf16_lets_ultralytics_autocast_in_bfloat16_only_inside_the_block():
    """ultralytics refuses bfloat16 autocast off CUDA; models.train.cpu_bf16 allows it on the CPU
    for the training it wraps, and leaves ultralytics as it was after."""
    import torch
    import ultralytics.engine.trainer as trainer

    from models.train import cpu_bf16

    conv = torch.nn.Conv2d(6, 4, 3)
    x = torch.rand(1, 6, 16, 16)
    with pytest.raises(RuntimeError, match="bfloat16"):
        trainer.autocast(torch.bfloat16, device="cpu")
    with cpu_bf16("cpu", "bf16"):
        with trainer.autocast(torch.bfloat16, device="cpu"):
            assert conv(x).dtype == torch.bfloat16
        with trainer.autocast(False, device="cpu"):  # amp off still means fp32
            assert conv(x).dtype == torch.float32
    with cpu_bf16("cpu", "fp32"), pytest.raises(RuntimeError, match="bfloat16"):
        trainer.autocast(torch.bfloat16, device="cpu")
    with pytest.raises(RuntimeError, match="bfloat16"):
        trainer.autocast(torch.bfloat16, device="cpu")


def test_bf16_training_runs_its_steps_in_bfloat16_and_says_so_on_the_card(tmp_path):
    """``precision: bf16`` trains on the CPU with the network's forward in bfloat16 (weights fp32)."""
    import torch

    seen: set[torch.dtype] = set()

    def spy(module, args, output):
        if isinstance(module, torch.nn.Conv2d) and module.training and torch.is_tensor(output):
            seen.add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(spy)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--config", "models/configs/tiny.yaml", "--out", str(tmp_path),
                  "--set", "precision=bf16", "--set", "data.synthetic.n_train=8",
                  "--set", "data.synthetic.n_val=2"])  # fmt: skip
    finally:
        hook.remove()
    assert exit_info.value.code == 0
    assert torch.bfloat16 in seen  # the training steps ran under bfloat16 autocast
    card = yaml.safe_load((tmp_path / "tiny-cd.yaml").read_text())
    assert card["train_settings"]["precision"] == "bf16"
    state = torch.load(tmp_path / "tiny-cd.pt", map_location="cpu", weights_only=False)
    model = state["model"]
    assert all(p.dtype in (torch.float32, torch.float16) for p in model.parameters())
