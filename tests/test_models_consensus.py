"""Scale consensus (models/consensus.py): a candidate stands only where a coarser look agrees."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from models.candidates import Candidates
from models.consensus import ScaleConsensus, shrink_tile
from pipelines.config import BuildwatchConfig


class BlobDetector:
    """Finds every bright square of the flight's red band (its box, score 0.9), plus, when the
    tile is full size, a "flicker" at a fixed place that a coarser look never repeats."""

    card = type("Card", (), {"name": "blob-cd", "sha256": "ab" * 32, "working_gsd_m": 0.2})()

    def __init__(self, flicker: bool = True, score: float = 0.9) -> None:
        self.flicker, self.score, self.calls = flicker, score, []

    def predict(self, images, conf=0.25):
        out = []
        for img in images:
            self.calls.append(img.shape)
            ys, xs = np.nonzero(img[..., 0] > 128)
            boxes = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if len(xs) else []
            if self.flicker and img.shape[0] == 96:
                boxes.append([2, 2, 10, 10])
            xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
            scores = np.full(len(xyxy), self.score, np.float32)
            keep = scores >= conf
            out.append(Candidates(xyxy[keep], scores[keep], np.zeros(int(keep.sum()), np.int64)))
        return out


def _tile(x0: int = 60, x1: int = 84) -> np.ndarray:
    tile = np.zeros((96, 96, 6), np.uint8)
    tile[40:70, x0:x1, 0] = 255  # a new roof in the flight only
    return tile


def test_a_candidate_seen_coarser_stands_and_a_flicker_does_not():
    det = BlobDetector()
    (out,) = ScaleConsensus(det).predict([_tile()], conf=0.25)
    # the roof far from the origin is kept only if the coarse box is scaled back (x 40-56 -> 60-84)
    assert out.xyxy.tolist() == [[60.0, 40.0, 84.0, 70.0]]
    assert out.score.tolist() == [pytest.approx(0.9)]  # the full-scale candidate, untouched
    assert det.calls == [(96, 96, 6), (64, 64, 6)]


def test_a_weak_coarse_candidate_confirms_nothing():
    det = BlobDetector(flicker=False, score=0.05)
    (out,) = ScaleConsensus(det, min_score=0.1).predict([_tile()], conf=0.01)
    assert len(out) == 0
    (out,) = ScaleConsensus(det, min_score=0.05).predict([_tile()], conf=0.01)
    assert len(out) == 1


def test_a_quiet_tile_costs_no_second_look():
    det = BlobDetector(flicker=False)
    outs = ScaleConsensus(det).predict([np.zeros((96, 96, 6), np.uint8), _tile()])
    assert [len(c) for c in outs] == [0, 1]
    assert det.calls[2:] == [(64, 64, 6)]  # only the tile with a candidate is looked at again


def test_shrinking_keeps_the_dates_apart():
    tile = np.zeros((96, 96, 6), np.uint8)
    tile[..., :3] = 200
    small = shrink_tile(tile, 2 / 3)
    assert small.shape == (64, 64, 6)
    assert (small[..., :3] == 200).all() and (small[..., 3:] == 0).all()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="scale must be between 0 and 1"):
        ScaleConsensus(BlobDetector(), scale=1.0)
    with pytest.raises(ValidationError, match="scale"):
        BuildwatchConfig.model_validate({"detector": {"consensus": {"scale": 1.5}}})


def test_the_pipeline_wraps_the_detector_and_says_so_in_provenance():
    from pipelines.detect import _model_of, load_detector

    # the consensus alone (models/unchanged.py and models/ensemble.py aside)
    off = {"unchanged": {"enabled": False}, "ensemble": {"enabled": False},
           "direction": {"enabled": False}}  # fmt: skip
    plain = load_detector(BuildwatchConfig.model_validate({"detector": off}))
    assert not isinstance(plain, ScaleConsensus)
    det = load_detector(
        BuildwatchConfig.model_validate({"detector": {**off, "consensus": {"enabled": True}}})
    )
    assert isinstance(det, ScaleConsensus)
    assert det.card.name == plain.card.name
    _, info = _model_of(det, 0.1)
    assert info.name == f"{plain.card.name}+consensus(scale=0.6667,min_score=0.1,min_overlap=0.3)"
    assert info.sha256 == plain.card.sha256[:16]
    assert _model_of(plain, 0.1)[1].name == plain.card.name


def test_calibrate_will_not_write_consensus_thresholds_into_the_card(tmp_path):
    from click.testing import CliRunner

    from pipelines.cli import cli

    res = CliRunner().invoke(cli, ["calibrate", "--consensus", "--write", "--chips", str(tmp_path)])
    assert res.exit_code != 0 and "--consensus with --write" in res.output
