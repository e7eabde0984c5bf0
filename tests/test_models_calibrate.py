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


def test_a_floor_raises_a_pick_below_it_and_the_card_keeps_both(tmp_path):
    """A district-scale no-change measurement can need more than the chips pick: the floor."""
    img = np.zeros((64, 64, 3), np.uint8)
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], float)
    write_chip(tmp_path, "val", "a", img, img, [(0, square)])
    write_chip(tmp_path, "val", "b", img, img, [])
    hit = Candidates(np.float32([[10, 10, 30, 30]]), np.float32([0.7]), np.int64([0]))
    false = Candidates(np.float32([[40, 40, 60, 60]]), np.float32([0.4]), np.int64([0]))
    d = [tmp_path / "images" / "val"]
    cal = calibrate(_Fixed([hit, false]), d, thresholds=[0.3, 0.5, 0.8])
    assert cal.min_score["new_building"] == 0.5 and "floor" not in cal.as_card()
    cal.floor = {"new_building": 0.8}
    assert cal.picked["new_building"] == 0.5
    assert cal.min_score["new_building"] == 0.8
    card = cal.as_card()
    assert card["min_score"]["new_building"] == 0.8
    assert card["picked"]["new_building"] == 0.5 and card["floor"] == {"new_building": 0.8}
    cal.floor = {"new_building": 0.3}  # below the pick: the pick stands
    assert cal.min_score["new_building"] == 0.5


@pytest.mark.parametrize("bad", ["house=0.3", "new_building", "new_building=high",
                                 "new_building=1.5"])  # fmt: skip
def test_calibrate_refuses_a_floor_it_cannot_read(tmp_path, bad):
    from click.testing import CliRunner

    from pipelines.cli import cli

    res = CliRunner().invoke(cli, ["calibrate", "--floor", bad, "--chips", str(tmp_path)])
    assert res.exit_code == 2
    assert "--floor" in res.output and repr(bad) in res.output


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


def _outlined(boxes, scores):
    outline = np.empty(len(boxes), object)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        outline[i] = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return Candidates(np.float32(boxes), np.float32(scores), np.zeros(len(boxes), np.int64),
                      outline=outline)  # fmt: skip


def test_touching_outlines_are_counted_as_the_leads_stage_joins_them(tmp_path):
    """Chip a: one building found as two halves 1 px apart - joined, it is one hit.
    Chip b: two buildings 1 px apart, each found - joined, they are one false lead and two misses.
    (IoU 0.5 here, so that a half alone does not match the whole.)"""
    img = np.zeros((64, 64, 3), np.uint8)
    whole = np.array([[10, 10], [41, 10], [41, 30], [10, 30]], float)
    left = np.array([[10, 10], [25, 10], [25, 30], [10, 30]], float)
    right = np.array([[26, 10], [41, 10], [41, 30], [26, 30]], float)
    write_chip(tmp_path, "val", "a", img, img, [(0, whole)])
    write_chip(tmp_path, "val", "b", img, img, [(0, left), (0, right)])
    halves = _outlined([[10, 10, 25, 30], [26, 10, 41, 30]], [0.8, 0.6])
    d = [tmp_path / "images" / "val"]

    def counts(t, gap):
        cal = calibrate(_Fixed([halves, halves]), d, thresholds=[t], iou=0.5, join_gap_px=gap)
        return cal.counts["new_building"][t]

    assert counts(0.5, 0.0) == (2, 2, 1)  # b's two hits; a's halves are two false leads
    assert counts(0.5, 1.5) == (1, 1, 2)  # a's one hit; b joined: one false lead, two misses
    assert counts(0.5, 0.5) == (2, 2, 1)  # a gap narrower than the 1 px between them joins nothing
    assert counts(0.7, 1.5) == (1, 1, 2)  # above 0.7 one half is left in each chip: nothing to join
    cal = calibrate(_Fixed([halves, halves]), d, thresholds=[0.5], join_gap_px=1.5)
    assert cal.join_gap_px == 1.5 and cal.as_card()["join_gap_px"] == 1.5


def test_joined_outlines_count_once_on_no_change_chips(tmp_path):
    img = np.zeros((100, 100, 3), np.uint8)
    write_chip(tmp_path, "val", "quiet", img, img, [])
    parts = _outlined([[10, 10, 30, 30], [31, 10, 50, 30], [70, 70, 90, 90]], [0.9, 0.9, 0.9])
    d = [tmp_path / "images" / "val"]
    assert calibrate(_Fixed([parts]), d, thresholds=[0.5]).nochange_fp["new_building"][0.5] == 3
    joined = calibrate(_Fixed([parts]), d, thresholds=[0.5], join_gap_px=1.5)
    assert joined.nochange_fp["new_building"][0.5] == 2
