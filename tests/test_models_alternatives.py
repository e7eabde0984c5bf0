"""The classical difference detector: quiet on unchanged tiles, boxes on new roofs, pipeline-ready."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from geo.errors import ModelError
from models.alternatives import DifferenceDetector, DiffParams, change_signal, match_histograms
from models.evaluate_pairs import evaluate_image_pairs


def _scene(seed: int = 0, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ground = cv2.GaussianBlur(rng.integers(40, 160, (size, size, 3), dtype=np.uint8), (0, 0), 2)
    return np.asarray(ground, np.uint8)


def test_unchanged_tile_with_other_illumination_is_quiet():
    ground = _scene()
    darker = np.clip(ground.astype(int) * 0.7 + 10, 0, 255).astype(np.uint8)  # other light
    tile = np.concatenate([ground, darker], axis=2)
    assert len(DifferenceDetector()([tile])[0]) == 0
    matched = match_histograms(darker, ground, np.ones(ground.shape[:2], bool))
    assert np.abs(matched.astype(int) - ground).mean() < 3


def test_new_roof_becomes_one_new_building_box():
    ground = _scene(1)
    flight = ground.copy()
    flight[100:140, 60:120] = (235, 235, 230)  # a 12 x 8 m light roof at 0.2 m/px
    tile = np.concatenate([flight, ground], axis=2)
    (cands,) = DifferenceDetector().predict([tile], conf=0.5)
    assert len(cands) == 1 and int(cands.class_id[0]) == 0 and 0.5 < cands.score[0] <= 1
    assert cands.xyxy[0] == pytest.approx([60, 100, 120, 140], abs=3)
    signal, valid = change_signal(tile)
    assert signal[110:130, 70:110].mean() > 5 * signal[valid][:5000].mean()
    assert len(DifferenceDetector(DiffParams(min_area_px=5000)).predict([tile])[0]) == 0


def test_nodata_edges_and_bad_input():
    ground = _scene(2)
    base = ground.copy()
    base[:, :100] = 0  # the baseline does not cover the left part
    assert len(DifferenceDetector()([np.concatenate([ground, base], axis=2)])[0]) == 0
    with pytest.raises(ModelError, match=r"expected an \(h, w, 6\) uint8 tile"):
        DifferenceDetector()([ground])


def test_detector_interface_for_the_pair_evaluation(tmp_path):
    for sub in ("A", "B", "label"):
        (tmp_path / sub).mkdir()
    before = _scene(3, 300)
    after = before.copy()
    after[50:110, 150:230] = (230, 230, 225)
    label = np.zeros(before.shape[:2], np.uint8)
    label[50:110, 150:230] = 255
    cv2.imwrite(str(tmp_path / "A" / "p.png"), before[..., ::-1])
    cv2.imwrite(str(tmp_path / "B" / "p.png"), after[..., ::-1])
    cv2.imwrite(str(tmp_path / "label" / "p.png"), label)
    det = DifferenceDetector()
    assert det.card.working_gsd_m == 0.2 and det.card.imgsz == 512
    report = evaluate_image_pairs(det, tmp_path, native_gsd=0.2, conf=0.5)
    assert report["class_agnostic"]["tp"] == 1 and report["class_agnostic"]["fp"] == 0
