"""Direction test (models/direction.py): a change the other way (a demolition) is not a new building."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from pydantic import ValidationError

import pipelines.detect as detect_mod
from models.candidates import Candidates
from models.direction import DirectionTest, reverse_scores, swap_dates
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads, wrap_detector
from tests._leads_fixtures import RED, Structure, oracle_predict, stand_in_open_pair, write_pair

CARD = SimpleNamespace(name="fake-cd", sha256="cd" * 32, working_gsd_m=0.2, imgsz=128,
                       overlap_px=32)  # fmt: skip


class Sided:
    """Boxes every place where the dates differ, as a new building; scores it ``new`` where the roof is in the
    flight (bands 0-2 brighter in red) and ``gone`` where it is in the baseline - a detector that
    half-knows which way a change went, as a trained one does. Counts the tiles it sees."""

    card = CARD

    def __init__(self, new: float = 0.9, gone: float = 0.6) -> None:
        self.new, self.gone = new, gone
        self.seen = 0

    def predict(self, images, conf=0.25):
        self.seen += len(images)
        out = []
        for img, found in zip(images, oracle_predict(images), strict=True):
            scores = []
            for x0, y0, x1, y1 in found.xyxy.astype(int):
                patch = img[y0:y1, x0:x1].astype(float)
                in_flight = patch[..., 0].mean() > patch[..., 3].mean()
                scores.append(self.new if in_flight else self.gone)
            c = Candidates(
                found.xyxy, np.asarray(scores, np.float32), np.zeros(len(scores), np.int64)
            )  # new_building
            out.append(c[c.score >= conf])
        return out


def _tile(roof_in: str, size: int = 64) -> np.ndarray:
    tile = np.full((size, size, 6), 90, np.uint8)
    band = slice(0, 3) if roof_in == "flight" else slice(3, 6)
    tile[20:40, 20:44, band] = RED
    return tile


def test_swapping_the_dates_exchanges_the_bands_and_checks_the_shape():
    tile = np.arange(2 * 2 * 6, dtype=np.uint8).reshape(2, 2, 6)
    swapped = swap_dates(tile)
    assert (swapped[..., :3] == tile[..., 3:]).all() and (swapped[..., 3:] == tile[..., :3]).all()
    assert (swap_dates(swapped) == tile).all()
    with pytest.raises(ValueError, match="6 bands"):
        swap_dates(np.zeros((4, 4, 3), np.uint8))


def test_a_new_roof_stays_and_a_demolished_one_is_dropped():
    det = Sided()
    out = DirectionTest(det).predict([_tile("flight"), _tile("baseline")], conf=0.1)
    assert [len(c) for c in out] == [1, 0]
    assert float(out[0].score[0]) == pytest.approx(0.9)
    # without the test the same detector reports the demolition as a lead-worthy 0.6
    assert [len(c) for c in Sided().predict([_tile("flight"), _tile("baseline")], conf=0.1)] == [
        1,
        1,
    ]


def test_a_detector_blind_to_direction_loses_nothing():
    blind = Sided(new=0.7, gone=0.7)
    out = DirectionTest(blind).predict([_tile("flight"), _tile("baseline")], conf=0.1)
    assert [len(c) for c in out] == [1, 1]


def test_the_margin_decides_and_settings_are_checked():
    tiles = [_tile("flight"), _tile("baseline")]
    # the demolition scores 0.6 and 0.9 swapped: a margin of 0.4 asks for more than that
    assert [len(c) for c in DirectionTest(Sided(), margin=0.4).predict(tiles, conf=0.1)] == [1, 1]
    assert [len(c) for c in DirectionTest(Sided(), margin=0.2).predict(tiles, conf=0.1)] == [1, 0]
    for bad in ({"margin": 1.0}, {"min_iou": 0.0}, {"from_score": 1.5}):
        with pytest.raises(ValueError):
            DirectionTest(Sided(), **bad)
    with pytest.raises(ValidationError):
        BuildwatchConfig.model_validate({"detector": {"direction": {"margin": 1.0}}})


def test_only_candidates_that_could_be_leads_are_tested_and_only_their_tiles_looked_at():
    det = Sided(new=0.9, gone=0.3)
    test = DirectionTest(det, from_score=0.35)
    quiet = np.full((64, 64, 6), 90, np.uint8)
    out = test.predict([_tile("baseline"), quiet, _tile("flight")], conf=0.1)
    # the demolition scores 0.3, below every lead threshold: untested, left for the filters
    assert [len(c) for c in out] == [1, 0, 1]
    assert test.looked_again == (1, 3)  # only the tile with a 0.9 candidate was looked at again
    assert det.seen == 4


def test_a_swapped_candidate_elsewhere_does_not_count():
    fwd = Candidates(np.array([[0, 0, 10, 10]], np.float32), np.array([0.5], np.float32),
                     np.zeros(1, np.int64))  # fmt: skip
    far = Candidates(np.array([[30, 30, 40, 40]], np.float32), np.array([0.9], np.float32),
                     np.zeros(1, np.int64))  # fmt: skip
    near = Candidates(np.array([[1, 1, 11, 11]], np.float32), np.array([0.8], np.float32),
                      np.zeros(1, np.int64))  # fmt: skip
    assert reverse_scores(fwd, far, 0.3).tolist() == [0.0]
    assert reverse_scores(fwd, near, 0.3).tolist() == pytest.approx([0.8])
    assert reverse_scores(fwd, Candidates.empty(), 0.3).tolist() == [0.0]


def test_a_demolition_is_not_a_lead_through_the_pipeline_and_provenance_says_so(
    tmp_path, monkeypatch
):
    """A flight with one new roof over a baseline that had another roof, since demolished: the
    pipeline with the direction test reports the new roof alone and names the test."""
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    flight, baseline = write_pair(tmp_path, [Structure(5, 5, 11, 10)])
    gone = Structure(30, 30, 36, 36)
    with rasterio.open(baseline, "r+") as dst:
        data = dst.read()
        c0, r0, c1, r1 = (int(round(v / 0.2)) for v in (gone.x0, gone.y0, gone.x1, gone.y1))
        for b, v in enumerate(RED):
            data[b, r0:r1, c0:c1] = v
        dst.write(data)
    config = BuildwatchConfig.model_validate({"coreg": {"mode": "off"}})
    plain = detect_leads(flight, baseline, predict=Sided(), config=config)
    assert len(plain.leads) == 2  # the demolition is reported as a new structure
    on = BuildwatchConfig.model_validate(
        {
            "coreg": {"mode": "off"},
            "detector": {"direction": {"enabled": True}, "unchanged": {"enabled": False}},
        }
    )
    det = wrap_detector(Sided(), on)
    assert isinstance(det, DirectionTest) and det.from_score == min(on.filters.min_score.values())
    res = detect_leads(flight, baseline, predict=det, config=on)
    assert len(res.leads) == 1
    kept = res.leads.geometry.iloc[0]
    assert kept.intersects(Structure(5, 5, 11, 10).box()) and not kept.intersects(gone.box())
    assert set(res.leads["model_name"]) == {"fake-cd+direction(margin=0,min_iou=0.3)"}
    # with the unchanged test on, the direction test comes last (fewer tiles looked at again)
    # and looks at the swapped dates without it
    from models.unchanged import UnchangedFilter

    both = wrap_detector(
        Sided(), BuildwatchConfig.model_validate({"detector": {"direction": {"enabled": True}}})
    )
    assert isinstance(both, DirectionTest) and isinstance(both.detector, UnchangedFilter)
    assert not isinstance(both.looks, UnchangedFilter) and both.looks is both.detector.detector
