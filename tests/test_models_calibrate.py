"""Threshold calibration: counts per threshold from predictions against labelled outlines."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibrate import calibrate, pick_threshold
from models.candidates import Candidates
from models.datasets.writer import write_chip


class _Fixed:
    """A detector stand-in that returns, for each chip, the candidates listed for it."""

    def __init__(self, per_chip):
        self.per_chip = per_chip
        self.i = 0

    def predict(self, chips, conf):
        out = []
        for _ in chips:
            c = self.per_chip[self.i]
            self.i += 1
            out.append(c[c.score >= conf])
        return out


def test_calibration_counts_and_picks_best_f1(tmp_path):
    img = np.zeros((64, 64, 3), np.uint8)
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], float)
    write_chip(tmp_path, "val", "a", img, img, [(0, square)])
    write_chip(tmp_path, "val", "b", img, img, [])
    hit = Candidates(np.float32([[10, 10, 30, 30]]), np.float32([0.7]), np.int64([0]))
    false = Candidates(np.float32([[40, 40, 60, 60]]), np.float32([0.4]), np.int64([0]))
    cal = calibrate(_Fixed([hit, false]), [tmp_path / "images" / "val"], thresholds=[0.3, 0.5, 0.8])
    assert cal.counts["new_building"][0.3] == (1, 1, 0)
    assert cal.counts["new_building"][0.5] == (1, 0, 0)
    assert cal.counts["new_building"][0.8] == (0, 0, 1)
    assert cal.min_score["new_building"] == 0.5
    rows = cal.curve()["new_building"]
    assert [r["f1"] for r in rows] == pytest.approx([2 / 3, 1.0, 0.0], abs=1e-4)


def test_outline_not_box_decides_the_match(tmp_path):
    """An L-shaped truth: a prediction whose outline is the L matches; its box alone would not."""
    img = np.zeros((64, 64, 3), np.uint8)
    ell = np.array([[0, 0], [60, 0], [60, 6], [6, 6], [6, 60], [0, 60]], float)
    write_chip(tmp_path, "val", "a", img, img, [(0, ell)])
    outline = np.empty(1, object)
    outline[0] = ell.astype(np.float32)
    with_outline = Candidates(np.float32([[0, 0, 60, 60]]), np.float32([0.9]), np.int64([0]),
                              outline=outline)  # fmt: skip
    box_only = Candidates(np.float32([[0, 0, 60, 60]]), np.float32([0.9]), np.int64([0]))
    d = [tmp_path / "images" / "val"]
    assert (
        calibrate(_Fixed([with_outline]), d, thresholds=[0.5]).counts["new_building"][0.5][0] == 1
    )
    assert calibrate(_Fixed([box_only]), d, thresholds=[0.5]).counts["new_building"][0.5][0] == 0


def test_pick_threshold_prefers_fewer_false_leads_on_ties():
    assert pick_threshold({0.3: (5, 5, 0), 0.6: (5, 5, 0)}) == 0.6
    assert pick_threshold({0.3: (0, 0, 0)}) == 0.5


def test_threshold_keeps_no_change_chips_under_the_false_lead_cap(tmp_path):
    """Best F1 is at 0.3, but there it fires on a no-change chip: the cap moves it to 0.6."""
    img = np.zeros((100, 100, 3), np.uint8)
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], float)
    write_chip(tmp_path, "val", "a", img, img, [(0, square)])
    write_chip(tmp_path, "val", "b", img, img, [(0, square)])
    write_chip(tmp_path, "val", "c", img, img, [])  # nothing changed here
    hit = Candidates(np.float32([[10, 10, 30, 30]]), np.float32([0.7]), np.int64([0]))
    weak = Candidates(np.float32([[10, 10, 30, 30]]), np.float32([0.4]), np.int64([0]))
    false = Candidates(np.float32([[40, 40, 60, 60]]), np.float32([0.5]), np.int64([0]))
    d = [tmp_path / "images" / "val"]
    cal = calibrate(_Fixed([hit, weak, false]), d, thresholds=[0.3, 0.6], gsd=10.0)
    assert cal.nochange_km2 == pytest.approx(1.0)  # 100 x 100 px at 10 m
    assert cal.false_per_km2("new_building", 0.3) == 1.0
    assert cal.false_per_km2("new_building", 0.6) == 0.0
    assert pick_threshold(cal.counts["new_building"]) == 0.3  # by F1 alone
    cal.max_false_per_km2 = 0.5
    assert cal.min_score["new_building"] == 0.6


def test_pipeline_thresholds_are_the_shipped_cards_calibration():
    """The default lead thresholds are the ones calibrated for the shipped weights, not guesses."""
    from models.card import read_card
    from models.detector import DEFAULT_WEIGHTS
    from pipelines.config import DEFAULT_MIN_SCORE, BuildwatchConfig

    card = read_card(DEFAULT_WEIGHTS.with_suffix(".yaml"))
    calibration = card.extra["calibration"]
    assert calibration["min_score"] == DEFAULT_MIN_SCORE
    assert BuildwatchConfig().filters.min_score == DEFAULT_MIN_SCORE
    curve = calibration["curve"]["new_building"]
    assert len(curve) >= 10 and all({"precision", "recall", "f1"} <= set(r) for r in curve)
