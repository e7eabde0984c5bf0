"""Unchanged-structure test (models/unchanged.py): a roof the baseline still shows nearby is dropped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from models.candidates import Candidates
from models.unchanged import LeanConsensus, UnchangedFilter, best_match
from pipelines.config import BuildwatchConfig

GSD = 0.2  # the card's working GSD; 3 m = 15 px


def _ground(seed: int = 0, size: int = 128) -> np.ndarray:
    """Textured ground (blotches a few pixels across), three bands."""
    rng = np.random.default_rng(seed)
    grey = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 2.0)
    grey = 90 + 25 * grey / grey.std()
    return np.clip(np.repeat(grey[..., None], 3, axis=2), 0, 255).astype(np.uint8)


def _roof(img: np.ndarray, y: int, x: int) -> np.ndarray:
    """A 24 x 30 px (4.8 x 6 m) gabled roof: two planes of different brightness and a ridge."""
    out = img.copy()
    out[y : y + 12, x : x + 30] = (200, 120, 90)
    out[y + 12 : y + 24, x : x + 30] = (150, 90, 70)
    out[y + 11 : y + 13, x : x + 30] = (230, 230, 230)
    return out


def _box(y: int, x: int) -> np.ndarray:
    return np.array([x - 3, y - 3, x + 33, y + 27], np.float32)


def _square(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


class Fixed:
    """Finds one roof at a fixed box (and outline, if given) on every tile, score 0.9."""

    card = type("Card", (), {"name": "fixed-cd", "sha256": "ef" * 32, "working_gsd_m": GSD})()

    def __init__(self, box: np.ndarray, outline: np.ndarray | None = None) -> None:
        self.box = box
        self.outline = outline

    def predict(self, images, conf=0.25):
        shape = np.empty(0 if self.outline is None else 1, object)
        if self.outline is not None:
            shape[0] = self.outline
        one = Candidates(self.box[None], np.array([0.9], np.float32), np.array([0]), outline=shape)
        return [one for _ in images]


def test_a_roof_leaning_two_metres_in_the_baseline_is_found_there_and_dropped():
    ground = _ground()
    flight = _roof(ground, 50, 50)
    baseline = _roof(_ground(1), 57, 46)  # the same roof 7 px down, 4 px left; other ground
    tile = np.concatenate([flight, baseline], axis=2)
    assert best_match(tile, _box(50, 50), 15) > 0.8
    (out,) = UnchangedFilter(Fixed(_box(50, 50))).predict([tile])
    assert len(out) == 0


def test_a_new_roof_has_no_counterpart_and_stays():
    flight = _roof(_ground(), 50, 50)
    tile = np.concatenate([flight, _ground(1)], axis=2)  # the baseline shows other ground
    assert best_match(tile, _box(50, 50), 15) < 0.5
    (out,) = UnchangedFilter(Fixed(_box(50, 50))).predict([tile])
    assert out.xyxy.tolist() == [_box(50, 50).tolist()]


def test_a_look_alike_farther_than_the_radius_does_not_count():
    flight = _roof(_ground(), 50, 50)
    baseline = _roof(_ground(1), 50, 80)  # a similar roof 30 px (6 m) away: a neighbour
    tile = np.concatenate([flight, baseline], axis=2)
    assert best_match(tile, _box(50, 50), 15) < 0.5
    assert best_match(tile, _box(50, 50), 35) > 0.8  # it is there, beyond 3 m
    (out,) = UnchangedFilter(Fixed(_box(50, 50))).predict([tile])
    assert len(out) == 1


def test_the_radius_is_a_circle_not_a_square():
    """A look-alike 14 px right and 14 px down is 19.8 px (4 m) away: inside the 15 px square
    around the box, outside the 3 m the test allows."""
    flight = _roof(_ground(), 50, 50)
    tile = np.concatenate([flight, _roof(_ground(1), 64, 64)], axis=2)
    for outline in (None, _square(50, 50, 80, 74)):
        assert best_match(tile, _box(50, 50), 15, outline) < 0.7
        assert best_match(tile, _box(50, 50), 20, outline) > 0.8  # it is there, 4 m away


def test_an_extension_is_judged_by_its_outline_not_its_box():
    """An annex built onto a standing house: its box is mostly the house (in the baseline, so
    the box matches), its outline is the annex alone (not in the baseline: kept)."""
    house = _roof(_ground(), 40, 40)  # standing on both dates
    flight = house.copy()
    flight[44:60, 70:80] = (120, 110, 100)  # the annex, 2 x 3.2 m, on the house's right side
    for y in (46, 53):
        for x in (72, 76):
            flight[y : y + 3, x : x + 2] = (40, 40, 40)  # vents on its roof
    tile = np.concatenate([flight, house], axis=2)
    box, annex = np.array([50, 40, 80, 64], np.float32), _square(70, 44, 80, 60)
    assert best_match(tile, box, 15) > 0.85  # the box finds the house
    assert best_match(tile, box, 15, annex) < 0.7  # the outline finds nothing like the annex
    (kept,) = UnchangedFilter(Fixed(box, annex)).predict([tile])
    (dropped,) = UnchangedFilter(Fixed(box, annex), outlines=False).predict([tile])
    assert (len(kept), len(dropped)) == (1, 0)


def test_a_leaning_roof_is_dropped_by_its_outline_too():
    flight = _roof(_ground(), 50, 50)
    tile = np.concatenate([flight, _roof(_ground(1), 57, 46)], axis=2)  # leaning 7 px, 4 px
    roof = _square(50, 50, 80, 74)
    assert best_match(tile, _box(50, 50), 15, roof) > 0.9
    (out,) = UnchangedFilter(Fixed(_box(50, 50), roof)).predict([tile])
    assert len(out) == 0


def test_one_edge_matched_along_another_is_not_a_match():
    """A new roof whose only texture is a shadow line across it matches a long straight edge of
    the baseline equally well all along that edge: a ridge, not a peak, so it proves nothing."""
    flight = np.full((128, 128, 3), 110, np.uint8)
    flight[50:70, 50:60] = 60  # a new roof, 4 x 4 m, half of it in shadow
    flight[50:70, 60:70] = 200
    baseline = np.full((128, 128, 3), 110, np.uint8)
    baseline[20:110, 52:62] = 70  # a long wall and its shadow nearby: one straight edge
    baseline[20:110, 62:75] = 190
    tile = np.concatenate([flight, baseline], axis=2)
    roof, box = _square(50, 50, 70, 70), np.array([50, 50, 70, 70], np.float32)
    assert best_match(tile, box, 15, roof, min_peak=0.0) > 0.95  # as a ridge it matches
    assert best_match(tile, box, 15, roof) == 0.0
    (out,) = UnchangedFilter(Fixed(box, roof)).predict([tile])
    assert len(out) == 1


def test_a_blank_or_featureless_baseline_is_never_a_match():
    flight = _roof(_ground(), 50, 50)
    for baseline in (np.zeros_like(flight), np.full_like(flight, 120)):
        tile = np.concatenate([flight, baseline], axis=2)
        assert best_match(tile, _box(50, 50), 15) == 0.0
        (out,) = UnchangedFilter(Fixed(_box(50, 50))).predict([tile])
        assert len(out) == 1  # nothing to compare with is not "unchanged"


def test_a_roof_with_no_brightness_texture_is_never_dropped():
    """Brightness only: a red roof as bright as green ground leaves nothing to match, so the
    test cannot tell and keeps it, even against a baseline that shows the same roof."""
    ground = np.full((128, 128, 3), (90, 120, 80), np.uint8)  # brightness 96.7
    flight = ground.copy()
    flight[50:74, 50:80] = (220, 40, 40)  # brightness 100
    tile = np.concatenate([flight, flight], axis=2)
    assert best_match(tile, _box(50, 50), 15) == 0.0
    (out,) = UnchangedFilter(Fixed(_box(50, 50))).predict([tile])
    assert len(out) == 1


def test_the_threshold_decides_and_settings_are_checked():
    ground = _ground()
    flight = _roof(ground, 50, 50)
    baseline = cv2.GaussianBlur(_roof(ground, 53, 50), (0, 0), 2.5)  # blurred, leaning 3 px
    tile = np.concatenate([flight, baseline], axis=2)
    score = best_match(tile, _box(50, 50), 15)
    assert 0.5 < score < 1.0
    keep = UnchangedFilter(Fixed(_box(50, 50)), min_ncc=min(1.0, score + 0.01)).predict([tile])
    drop = UnchangedFilter(Fixed(_box(50, 50)), min_ncc=score - 0.01).predict([tile])
    assert (len(keep[0]), len(drop[0])) == (1, 0)
    with pytest.raises(ValueError, match="min_ncc"):
        UnchangedFilter(Fixed(_box(0, 0)), min_ncc=0.0)
    with pytest.raises(ValidationError, match="radius_m"):
        BuildwatchConfig.model_validate({"detector": {"unchanged": {"radius_m": -1}}})
    with pytest.raises(ValueError, match="min_peak"):
        UnchangedFilter(Fixed(_box(0, 0)), min_peak=-0.1)
    with pytest.raises(ValidationError, match="min_peak"):
        BuildwatchConfig.model_validate({"detector": {"unchanged": {"min_peak": 1.5}}})


def test_the_pipeline_wraps_the_detector_and_says_so_in_provenance():
    from pipelines.detect import _model_of, load_detector

    no_dir = {"direction": {"enabled": False}}  # the direction test wraps it by default
    det = load_detector(BuildwatchConfig.model_validate({"detector": no_dir}))  # on by default
    assert isinstance(load_detector(BuildwatchConfig()).detector, UnchangedFilter)
    plain = load_detector(
        BuildwatchConfig.model_validate({"detector": {**no_dir, "unchanged": {"enabled": False}}})
    )
    assert isinstance(det, UnchangedFilter) and not isinstance(plain, UnchangedFilter)
    assert det.radius_px == 15  # 3 m at the card's 0.2 m
    ridges = load_detector(
        BuildwatchConfig.model_validate({"detector": {**no_dir, "unchanged": {"min_peak": 0.0}}})
    )
    assert (det.min_peak, ridges.min_peak) == (0.02, 0.0)  # the config's value reaches the test
    _, info = _model_of(det, 0.1)
    assert info.name == (  # whatever runs inside it (the shipped ensemble), then the test
        f"{_model_of(plain, 0.1)[1].name}+unchanged(radius_m=3,min_ncc=0.8,min_peak=0.02)"
    )
    both = load_detector(
        BuildwatchConfig.model_validate(
            {"detector": {**no_dir, "consensus": {"enabled": True}, "unchanged": {"enabled": True}}}
        )
    )
    name = _model_of(both, 0.1)[1].name
    assert "+consensus(" in name and name.endswith(
        "+unchanged(radius_m=3,min_ncc=0.8,min_peak=0.02)"
    )


def test_calibrate_writes_only_the_thresholds_of_the_default_detection_path(tmp_path):
    from click.testing import CliRunner

    from pipelines.cli import cli

    args = ["calibrate", "--no-unchanged", "--write", "--chips", str(tmp_path)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and "--no-unchanged with --write" in res.output


def test_every_measuring_command_runs_what_detect_runs(monkeypatch, tmp_path):
    """``evaluate`` and ``calibrate`` wrap the detector as ``load_detector`` does."""
    from click.testing import CliRunner

    import models.calibrate
    import pipelines.evaluate_pairs
    from pipelines.cli import cli

    seen = []

    def fake_calibrate(predict, dirs, **kw):
        seen.append(predict)
        raise SystemExit(0)

    def fake_pairs(root, gsd, predict, **kw):
        seen.append(predict)
        raise SystemExit(0)

    monkeypatch.setattr(models.calibrate, "calibrate", fake_calibrate)
    monkeypatch.setattr(pipelines.evaluate_pairs, "evaluate_pair_set", fake_pairs)
    CliRunner().invoke(cli, ["calibrate", "--chips", str(tmp_path)])
    CliRunner().invoke(
        cli, ["evaluate", "--pairs", str(tmp_path), "--out", str(tmp_path / "r.json")]
    )
    CliRunner().invoke(cli, ["calibrate", "--no-unchanged", "--chips", str(tmp_path)])
    # the direction test (on by default) wraps the unchanged test; --no-unchanged leaves it out
    inner = [getattr(p, "detector", None) for p in seen]
    assert [isinstance(p, UnchangedFilter) for p in inner] == [True, True, False]


def test_calibrate_joins_touching_outlines_as_the_leads_stage_does(monkeypatch, tmp_path):
    """The CLI hands calibrate the product's dissolve gap in chip pixels at the working GSD."""
    from click.testing import CliRunner

    import models.calibrate
    from models.detector import ChangeDetector
    from pipelines.cli import cli
    from pipelines.config import BuildwatchConfig

    seen = []

    def fake_calibrate(predict, dirs, **kw):
        seen.append(kw)
        raise SystemExit(0)

    monkeypatch.setattr(models.calibrate, "calibrate", fake_calibrate)
    CliRunner().invoke(cli, ["calibrate", "--no-unchanged", "--chips", str(tmp_path)])
    gsd = float(ChangeDetector.load(None, device="cpu").card.working_gsd_m)
    gap = BuildwatchConfig().filters.dissolve_gap_m
    assert seen and seen[0]["join_gap_px"] == pytest.approx(gap / gsd) and gap > 0


class Several:
    """Finds the given boxes on every tile, score 0.9 each, no outlines."""

    card = Fixed.card

    def __init__(self, boxes: list[np.ndarray]) -> None:
        self.boxes = np.stack(boxes).astype(np.float32)

    def predict(self, images, conf=0.25):
        n = len(self.boxes)
        one = Candidates(self.boxes, np.full(n, 0.9, np.float32), np.zeros(n, np.int64))
        return [one for _ in images]


NOISE = 30.0  # grey levels of blotchy repaint on each baseline roof


def _leaning_scene(directions: list[tuple[int, int]], seed: int = 3):
    """Five standing roofs on one 256 px tile; in the baseline each is moved by its direction
    (px) and repainted in blotches, so no single match reaches 0.8."""
    rng = np.random.default_rng(seed)
    flight = _ground(seed, 256)
    baseline = flight.copy()
    spots = [(20, 20), (20, 140), (110, 80), (190, 20), (190, 170)]
    boxes = []
    for (y, x), (dy, dx) in zip(spots, directions, strict=True):
        flight = _roof(flight, y, x)
        baseline = _roof(baseline, y + dy, x + dx)
        patch = baseline[y + dy : y + dy + 24, x + dx : x + dx + 30]
        noise = cv2.GaussianBlur(rng.normal(0, 1, (24, 30)).astype(np.float32), (0, 0), 1.5)
        patch[:] = np.clip(patch + (NOISE * noise / noise.std())[..., None], 0, 255)
        boxes.append(np.array([x, y, x + 30, y + 24], np.float32))  # the roof itself
    return np.concatenate([flight, baseline], axis=2), boxes


def test_roofs_that_all_lean_one_way_are_dropped_together_and_alone_are_kept():
    """The lean consensus: standing roofs of an off-nadir baseline lean the same way; each alone
    matches under 0.8, so only their agreement drops them. Roofs moved every which way (a true
    change's best matches are scattered) are kept."""
    tile, boxes = _leaning_scene([(4, 6), (5, 8), (3, 5), (4, 7), (5, 7)])
    matches = [best_match(tile, b, 15) for b in boxes]
    assert all(m < 0.8 for m in matches)  # the test alone keeps every one
    (alone,) = UnchangedFilter(Several(boxes)).predict([tile])
    assert len(alone) == 5
    (together,) = LeanConsensus(UnchangedFilter(Several(boxes)), agree=3).predict([tile])
    assert len(together) == 0
    scattered, boxes2 = _leaning_scene([(0, 7), (7, 0), (0, -7), (-7, 0), (5, 5)])
    (kept,) = LeanConsensus(Several(boxes2), agree=3).predict([scattered])
    assert len(kept) == 5


def test_lean_consensus_counts_only_candidates_that_could_be_leads():
    """Candidates under ``lean_from`` (below every lead threshold) do not vote."""
    tile, boxes = _leaning_scene([(4, 6), (5, 8), (3, 5), (4, 7), (5, 7)])

    class Faint(Several):
        def predict(self, images, conf=0.25):
            (c,) = super().predict(images[:1], conf)
            c = Candidates(c.xyxy, np.array([0.9, 0.2, 0.2, 0.2, 0.9], np.float32), c.class_id)
            return [c for _ in images]

    (out,) = LeanConsensus(Faint(boxes), agree=3, from_score=0.3).predict([tile])
    assert len(out) == 5  # only one other voter at >= 0.3 for each: no consensus
    (out,) = LeanConsensus(Faint(boxes), agree=3, from_score=0.1).predict([tile])
    assert len(out) == 0


def test_lean_consensus_is_opt_in_runs_last_and_says_so_in_provenance():
    from pipelines.detect import _model_of, load_detector

    assert BuildwatchConfig().detector.unchanged.lean_agree == 0  # off by default
    assert not isinstance(load_detector(BuildwatchConfig()), LeanConsensus)
    on = load_detector(
        BuildwatchConfig.model_validate({"detector": {"unchanged": {"lean_agree": 3}}})
    )
    assert isinstance(on, LeanConsensus) and (on.agree, on.min_ncc, on.radius_px) == (3, 0.6, 15)
    assert on.from_score == min(BuildwatchConfig().filters.min_score.values())
    assert _model_of(on, 0.1)[1].name.endswith("+lean(agree=3,min_ncc=0.6)")
    with pytest.raises(ValidationError):
        BuildwatchConfig.model_validate({"detector": {"unchanged": {"lean_agree": -1}}})
