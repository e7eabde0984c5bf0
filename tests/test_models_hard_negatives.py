"""Hard-negative mining: the no-change chips the weights fire on are kept, the rest dropped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from geo.errors import ConfigError
from models.candidates import Candidates
from models.config import load_config
from models.datasets.hard_negatives import HardNegativeSpec, mine_hard_negatives
from models.datasets.realism import dihedral
from models.datasets.writer import read_chip


class _Scripted:
    """A stand-in model: scores chip ``i`` (in pool order) with ``scores[i]``; remembers chips."""

    def __init__(self, scores):
        self.scores = list(scores)
        self.seen: list[np.ndarray] = []

    def __call__(self, chips):
        out = []
        for chip in chips:
            s = self.scores[len(self.seen)]
            self.seen.append(chip)
            xyxy = np.array([[1.0, 1.0, 9.0, 9.0]]) if s > 0 else np.zeros((0, 4))
            out.append(Candidates(xyxy, np.array([s] if s > 0 else []), np.zeros(len(xyxy), int)))
        return out


def _spec(**kw):
    base = dict(pool=6, conf=0.3, repeat=2, val_fraction=0.0, size_px=64, renderer="procedural")
    return HardNegativeSpec(**(base | kw))


def test_kept_chips_are_the_ones_scoring_at_least_conf(tmp_path):
    model = _Scripted([0.9, 0.1, 0.5, 0.0, 0.3, 0.29])
    data_yaml = mine_hard_negatives(tmp_path, _spec(), model)
    report = json.loads((tmp_path / "mining.json").read_text())
    assert report["pool"] == 6 and report["kept"] == 3
    assert sorted(report["kept_scores"].values()) == [0.3, 0.5, 0.9]
    train = sorted((tmp_path / "images" / "train").glob("*.tif"))
    assert len(train) == 6  # 3 kept x repeat 2
    labels = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    assert len(labels) == 6 and all(p.read_text() == "" for p in labels)  # backgrounds only
    kept = {0, 2, 4}
    for i in kept:  # each copy is a dihedral transform of the scored chip
        chip = model.seen[i]
        copies = [read_chip(p) for p in train if p.stem.endswith(f"{i:06d}_0")]
        assert len(copies) == 1
        np.testing.assert_array_equal(copies[0], chip)
        (rot,) = [read_chip(p) for p in train if p.stem.endswith(f"{i:06d}_1")]
        f, b, _ = dihedral(chip[..., :3], chip[..., 3:], [], 1, False)
        np.testing.assert_array_equal(rot, np.concatenate([f, b], axis=2))
    assert not (tmp_path / "_pool").exists()  # the scored pool is not left behind
    assert yaml.safe_load(data_yaml.read_text())["channels"] == 6


def test_val_fraction_holds_out_kept_chips_once(tmp_path):
    model = _Scripted([0.9] * 6)
    mine_hard_negatives(tmp_path, _spec(val_fraction=0.5, repeat=3), model)
    report = json.loads((tmp_path / "mining.json").read_text())
    assert report["written"] == {"train": 9, "val": 3}
    val = {p.stem.rsplit("_", 1)[0] for p in (tmp_path / "images" / "val").glob("*.tif")}
    train = {p.stem.rsplit("_", 1)[0] for p in (tmp_path / "images" / "train").glob("*.tif")}
    assert len(val) == 3 and not val & train  # no scene in both splits


def test_pool_is_seeded_apart_from_training_chips(tmp_path):
    from models.datasets.synthetic import SyntheticSpec, build_synthetic

    a, b = _Scripted([1.0] * 2), _Scripted([1.0] * 2)
    mine_hard_negatives(tmp_path / "a", _spec(pool=2, seed=5), a)
    mine_hard_negatives(tmp_path / "b", _spec(pool=2, seed=5), b)
    np.testing.assert_array_equal(a.seen[0], b.seen[0])  # deterministic
    build_synthetic(tmp_path / "t", SyntheticSpec(n_train=1, n_val=0, size_px=64, seed=5,
                                                  renderer="procedural", no_change_fraction=1.0))  # fmt: skip
    (train,) = (tmp_path / "t" / "images" / "train").glob("*.tif")
    assert not np.array_equal(read_chip(train), a.seen[0])


def test_mining_needs_weights_not_an_architecture(tmp_path):
    from models.train import build_datasets

    cfg = load_config("models/configs/tiny.yaml", ["data.synthetic.enabled=false",
                                                   "data.hard_negatives.enabled=true"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"data.hard_negatives.weights: 'yolo11n.yaml'"):
        build_datasets(cfg, tmp_path)


def test_cpu_finetune_config_mines_with_the_shipped_weights():
    cfg = load_config("models/configs/cpu_finetune.yaml")
    hn = cfg.data.hard_negatives
    assert hn.enabled and hn.weights is None
    assert cfg.model == "models/weights/stage1/buildwatch-cd-yolo11n.pt"
    with pytest.raises(ConfigError, match="conf"):
        load_config("models/configs/cpu_finetune.yaml", ["data.hard_negatives.conf=1.5"])


def test_fine_tune_card_keeps_the_parent_lineage(tmp_path):
    from models.card import ModelCard, write_card
    from models.train import parent_lineage

    assert parent_lineage("yolo11n.yaml") is None
    weights = tmp_path / "stage1.pt"
    weights.write_bytes(b"not really weights")
    grand = {"name": "stage0", "sha256": "ab" * 32}
    write_card(ModelCard(name="stage1", weights="stage1.pt", architecture="yolo11n.yaml, 6-ch",
                         training_data={"synthetic": {"chips": {"train": 4000}}},
                         sha256="cd" * 32, extra={"parent": grand}),
               weights.with_suffix(".yaml"))  # fmt: skip
    lineage = parent_lineage(str(weights))
    assert lineage is not None
    assert lineage["name"] == "stage1" and lineage["sha256"] == "cd" * 32
    assert lineage["training_data"]["synthetic"]["chips"]["train"] == 4000
    assert lineage["parent"] == grand
    weights.with_suffix(".yaml").unlink()
    assert parent_lineage(str(weights)) is None  # weights without a card: nothing to inherit


def test_background_metrics_count_chips_that_still_fire(tmp_path, monkeypatch):
    from models import detector as detector_module
    from models.datasets.writer import write_chip
    from models.train import background_metrics

    rng = np.random.default_rng(3)
    for i in range(5):
        img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        write_chip(tmp_path, "val", f"c{i}", img, img, [])
    model = _Scripted([0.9, 0.0, 0.45, 0.2, 0.31])

    class _Loaded:
        def predict(self, chips, conf):
            return [c if (c.score >= conf).all() else Candidates(np.zeros((0, 4)), np.zeros(0),
                                                                   np.zeros(0, int))
                    for c in model(chips)]  # fmt: skip

    monkeypatch.setattr(detector_module.ChangeDetector, "load", lambda *a, **k: _Loaded())
    got = background_metrics("w.pt", tmp_path / "images" / "val", conf=0.3)
    assert got == {"chips": 5, "chips_firing": 3, "conf": 0.3, "fire_rate": 0.6}


def test_shipped_card_names_its_stage1_parent_by_hash():
    from models.card import read_card, sha256

    shipped = read_card("models/weights/buildwatch-cd-yolo11n.yaml")
    parent = shipped.extra["parent"]
    assert parent["sha256"] == sha256("models/weights/stage1/buildwatch-cd-yolo11n.pt")
    assert shipped.sha256 == sha256("models/weights/buildwatch-cd-yolo11n.pt") != parent["sha256"]
    assert (
        shipped.baseline_radiometry
        == read_card("models/weights/stage1/buildwatch-cd-yolo11n.yaml").baseline_radiometry
    )
    assert shipped.metrics["validation"]["hard_negatives"]["fire_rate"] < 0.5


def test_train_command_reports_a_background_only_set(tmp_path, monkeypatch, capsys):
    """The hard-negative set has no objects: train prints how many of its chips still fire."""
    from types import SimpleNamespace

    import models.train
    from pipelines.cli import main

    metrics = {
        "synthetic": {"precision": 0.9, "recall": 0.8, "map50": 0.85},
        "hard_negatives": {"chips": 23, "chips_firing": 4, "conf": 0.3, "fire_rate": 0.17},
    }
    done = SimpleNamespace(weights=tmp_path / "w.pt", card=tmp_path / "w.yaml", metrics=metrics)
    monkeypatch.setattr(models.train, "train", lambda *a, **k: done)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", "models/configs/tiny.yaml", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert exc.value.code in (0, None)
    assert "synthetic  P 0.900  R 0.800  mAP50 0.850" in out
    assert "hard_negatives 4/23 chips fire at >= 0.3" in out


def test_real_no_change_chips_are_mined_from_training_mosaics_only(tmp_path):
    """real_pool: drone-mosaic windows against a degraded copy of themselves, scored together with
    the synthetic pool; the kept ones are counted and named by source."""
    from tests.test_models_datasets import _prepared

    prep, _, _ = _prepared(tmp_path)
    scores = [0.9, 0.0, 0.0] + [0.5, 0.0, 0.4, 0.0]  # 3 synthetic chips, then 4 real ones
    model = _Scripted(scores)
    mine_hard_negatives(tmp_path / "hn", _spec(pool=3, real_pool=4, prepared=str(prep)), model)
    report = json.loads((tmp_path / "hn" / "mining.json").read_text())
    assert report["pool"] == 7 and report["kept"] == 3
    assert report["kept_by_source"] == {"synthetic": 1, "real": 2}
    train = sorted(p.stem for p in (tmp_path / "hn" / "images" / "train").glob("*.tif"))
    assert sum(s.startswith("hn_real_") for s in train) == 4  # 2 kept x repeat 2
    for chip in model.seen[3:]:  # real no-change: the same scene on both dates, degraded before
        flight, before = chip[..., :3].astype(float), chip[..., 3:].astype(float)
        assert np.corrcoef(flight.ravel(), before.ravel())[0, 1] > 0.5
        assert not np.array_equal(flight, before)
    with pytest.raises(ConfigError, match="real_pool needs data.fairdrone.prepared"):
        mine_hard_negatives(tmp_path / "x", _spec(pool=0, real_pool=2), _Scripted([0, 0]))
    with pytest.raises(ConfigError, match="both 0"):
        mine_hard_negatives(tmp_path / "y", _spec(pool=0), _Scripted([]))
