"""Model ensemble (models/ensemble.py): members' candidates on the same thing, one mean score."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from geo.errors import ModelError
from models.candidates import Candidates
from models.direction import DirectionTest
from models.ensemble import ModelEnsemble
from models.unchanged import UnchangedFilter
from pipelines.config import BuildwatchConfig


class Fixed:
    """Returns the same boxes (with square outlines) on every tile, filtered by ``conf``."""

    def __init__(self, boxes, scores, classes=None, gsd=0.2, outline=True):
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(scores, np.float32)
        self.classes = np.zeros(len(self.scores), np.int64) if classes is None else classes
        self.outline = outline
        self.card = type("Card", (), {"name": "fixed", "working_gsd_m": gsd, "imgsz": 64})()
        self.confs: list[float] = []

    def predict(self, images, conf=0.25):
        self.confs.append(conf)
        keep = self.scores >= conf
        b = self.boxes[keep]
        outl = np.empty(len(b), object)
        for i, (x0, y0, x1, y1) in enumerate(b):
            outl[i] = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        cands = Candidates(b, self.scores[keep], np.asarray(self.classes)[keep],
                           outline=outl if self.outline else ())  # fmt: skip
        return [cands for _ in images]


TILE = np.zeros((64, 64, 6), np.uint8)


def test_agreeing_members_average_and_a_lone_one_counts_half():
    a = Fixed([[0, 0, 20, 20], [40, 40, 60, 60]], [0.8, 0.9])
    b = Fixed([[1, 1, 21, 21]], [0.4])  # the same roof, shifted a pixel; nothing at the second
    (out,) = ModelEnsemble([a, b]).predict([TILE], conf=0.1)
    got = sorted(
        zip(np.round(out.score.astype(float), 3).tolist(), out.xyxy[:, 0].tolist(), strict=True)
    )
    assert got == [(0.45, 40.0), (0.6, 0.0)]  # (0.8+0.4)/2 with a's box; 0.9/2 alone
    assert a.confs == [pytest.approx(0.05)] and b.confs == [pytest.approx(0.05)]


def test_the_threshold_applies_to_the_fused_score():
    a = Fixed([[0, 0, 20, 20]], [0.9])
    b = Fixed(np.empty((0, 4)), [])
    assert len(ModelEnsemble([a, b]).predict([TILE], conf=0.5)[0]) == 0  # 0.45 < 0.5
    assert len(ModelEnsemble([a, b], weights=[3, 1]).predict([TILE], conf=0.5)[0]) == 1  # 0.675


def test_the_first_members_outline_and_class_stand_for_the_group():
    a = Fixed([[0, 0, 20, 20]], [0.3], classes=np.array([1]))
    b = Fixed([[0, 0, 22, 22]], [0.9])  # scores higher, but a is the main detector
    (out,) = ModelEnsemble([a, b]).predict([TILE], conf=0.1)
    assert out.xyxy.tolist() == [[0, 0, 20, 20]] and out.class_id.tolist() == [1]
    assert out.outline[0].max() == 20
    (out,) = ModelEnsemble([Fixed(np.empty((0, 4)), []), b]).predict([TILE], conf=0.1)
    assert out.xyxy.tolist() == [[0, 0, 22, 22]]  # where a saw nothing, b's own candidate


def test_candidates_that_do_not_overlap_enough_stay_apart():
    a = Fixed([[0, 0, 20, 20]], [0.8])
    b = Fixed([[12, 12, 32, 32]], [0.8])  # IoU 64 / 736 = 0.09
    (out,) = ModelEnsemble([a, b]).predict([TILE], conf=0.1)
    assert sorted(out.score.tolist()) == [pytest.approx(0.4)] * 2
    (out,) = ModelEnsemble([a, b], min_iou=0.05).predict([TILE], conf=0.1)
    assert out.score.tolist() == [pytest.approx(0.8)]


def test_one_member_never_counts_twice_in_a_group():
    a = Fixed([[0, 0, 20, 20], [0, 0, 19, 19]], [0.8, 0.7])  # two of a's on one roof
    b = Fixed([[0, 0, 20, 20]], [0.6])
    (out,) = ModelEnsemble([a, b]).predict([TILE], conf=0.1)
    assert sorted(np.round(out.score.astype(float), 3).tolist()) == [
        0.35,
        0.7,
    ]  # (0.8+0.6)/2 and 0.7/2


def test_boxes_without_outlines_are_fused_by_their_boxes():
    a = Fixed([[0, 0, 20, 20]], [0.8], outline=False)
    b = Fixed([[0, 0, 20, 20]], [0.6], outline=False)
    outs = ModelEnsemble([a, b]).predict([TILE, TILE], conf=0.1)
    assert [o.score.tolist() for o in outs] == [[pytest.approx(0.7)]] * 2  # each tile its own


def test_settings_are_checked():
    a = Fixed([[0, 0, 20, 20]], [0.8])
    with pytest.raises(ValueError, match="at least 2"):
        ModelEnsemble([a])
    with pytest.raises(ValueError, match="2 weights for 3"):
        ModelEnsemble([a, a, a], weights=[1, 1])
    with pytest.raises(ValueError, match="tile alike"):
        ModelEnsemble([a, Fixed([[0, 0, 1, 1]], [0.5], gsd=0.3)])
    with pytest.raises(ValidationError, match="needs detector.ensemble.weights"):
        BuildwatchConfig.model_validate(
            {"detector": {"ensemble": {"enabled": True, "weights": []}}}
        )
    with pytest.raises(ValidationError, match="gate must be in"):
        BuildwatchConfig.model_validate({"detector": {"ensemble": {"gate": 1.5}}})
    with pytest.raises(ValidationError, match="one per detector"):
        BuildwatchConfig.model_validate(
            {"detector": {"ensemble": {"weights": ["x.pt"], "member_weights": [1.0]}}}
        )


def test_a_missing_member_is_named_with_the_fix():
    from pipelines.detect import load_detector

    cfg = {"detector": {"ensemble": {"enabled": True, "weights": ["no-such-member.pt"]}}}
    with pytest.raises(ModelError, match=r"no-such-member\.pt: ensemble member weights not found"):
        load_detector(BuildwatchConfig.model_validate(cfg))


def test_the_shipped_detector_with_itself_is_the_shipped_detector_and_says_so():
    """An ensemble of the shipped weights with themselves scores every tile exactly as they do;
    provenance names the ensemble."""
    from models.datasets import procedural
    from models.datasets.synthetic import chip_from_pair
    from pipelines.detect import _model_of, load_detector

    off = {"unchanged": {"enabled": False}, "direction": {"enabled": False}}
    plain = load_detector(
        BuildwatchConfig.model_validate({"detector": {**off, "ensemble": {"enabled": False}}})
    )
    assert not isinstance(plain, ModelEnsemble)
    ens = {**off, "ensemble": {"enabled": True, "weights": ["buildwatch-cd-yolo11n-seg.pt"],
                               "member_weights": [1, 1], "gate": None}}  # fmt: skip
    det = load_detector(BuildwatchConfig.model_validate({"detector": ens}))
    assert isinstance(det, ModelEnsemble)
    tiles = []
    for seed in (77, 78):
        pair = procedural.render_pair(seed, 512, 0.2)
        flight, baseline, _ = chip_from_pair(pair, 512, 0.2, np.random.default_rng(seed))
        tiles.append(np.concatenate([flight, baseline], axis=2))
    want, got = plain.predict(tiles, conf=0.1), det.predict(tiles, conf=0.1)
    assert sum(len(w) for w in want) > 0
    for w, g in zip(want, got, strict=True):
        order_w, order_g = np.argsort(-w.score), np.argsort(-g.score)
        np.testing.assert_allclose(g.score[order_g], w.score[order_w], atol=1e-6)
        np.testing.assert_allclose(g.xyxy[order_g], w.xyxy[order_w], atol=1e-4)
    _, info = _model_of(det, 0.1)
    assert info.name == (
        f"{plain.card.name}+ensemble(w0=0.5,w1=0.5,min_iou=0.3,member_conf=0.05)"
        f"[{plain.card.name}:{plain.card.sha256[:16]}]"
    )
    assert info.sha256 == plain.card.sha256[:16]


def test_a_gate_spares_the_other_members_quiet_tiles_and_loses_nothing_above_its_bound():
    quiet = np.zeros((64, 64, 6), np.uint8)
    busy = quiet.copy()
    busy[0, 0, 0] = 1  # a different tile

    class PerTile(Fixed):
        def predict(self, images, conf=0.25):
            self.confs.append(conf)
            self.seen = getattr(self, "seen", 0) + len(images)
            out = []
            for img in images:
                keep = (self.scores >= conf) & (img.any() or not self.only_busy)
                out.append(
                    Candidates(
                        self.boxes[keep], self.scores[keep], np.zeros(int(keep.sum()), np.int64)
                    )
                )
            return out

    a = PerTile([[0, 0, 20, 20], [30, 30, 50, 50]], [0.9, 0.12])
    a.only_busy = True  # the main detector sees things on the busy tile only
    b = PerTile([[0, 0, 20, 20], [30, 30, 50, 50]], [0.95, 0.97])
    b.only_busy = False  # the other is sure of both everywhere
    ungated = ModelEnsemble([a, b], weights=[3, 1]).predict([quiet, busy], conf=0.1)
    assert b.seen == 2
    b.seen = 0
    ens = ModelEnsemble([a, b], weights=[3, 1], gate=0.5)
    gated = ens.predict([quiet, busy], conf=0.1)
    assert b.seen == 1 and ens.looked == (1, 2)  # the quiet tile never reached b
    # lossless where the threshold allows it: nothing at >= 0.35 differs with a gate of 0.1
    assert ens.lossless_gate(0.35) == pytest.approx(0.1333, abs=1e-4)
    lossless = ModelEnsemble([a, b], weights=[3, 1], gate=0.1).predict([quiet, busy], conf=0.35)
    want = [sorted(c.score[c.score >= 0.35].tolist()) for c in ungated]
    assert [sorted(c.score.tolist()) for c in lossless] == want
    assert want == [[], [pytest.approx(0.9125)]]  # quiet: b alone at 0.97 gives 0.24 < 0.35
    # the gate works per tile: the busy tile is fused as without it, the quiet one has only
    # what b alone would have given (0.25 x its scores), which the gate drops
    assert sorted(gated[1].score.tolist()) == sorted(ungated[1].score.tolist())
    assert sorted(ungated[0].score.tolist()) == [pytest.approx(0.2375), pytest.approx(0.2425)]
    assert len(gated[0]) == 0


def test_with_two_detectors_in_front_either_opens_the_gate_and_none_is_lost():
    """front=2: both leading detectors look at every tile; the third only where one of them
    saw something at >= gate, and the auto gate loses no lead at the threshold."""
    only_a, only_b, quiet = (np.zeros((64, 64, 6), np.uint8) for _ in range(3))
    only_a[0, 0, 0], only_b[0, 0, 1] = 1, 1

    class Marked(Fixed):
        """Finds its boxes only on tiles whose pixel ``mark`` is set (None: everywhere)."""

        def predict(self, images, conf=0.25):
            self.seen = getattr(self, "seen", 0) + len(images)
            out = []
            for img, c in zip(images, super().predict(images, conf), strict=True):
                on = self.mark is None or bool(img[0, 0, self.mark])
                out.append(c if on else Candidates.empty())
            return out

    a, b, c = (Marked([[0, 0, 20, 20]], [s]) for s in (0.5, 0.08, 0.95))
    a.mark, b.mark, c.mark = 0, 1, None
    ens = ModelEnsemble([a, b, c], weights=[3, 3, 2], front=2, gate=0.07)
    out = ens.predict([only_a, only_b, quiet], conf=0.05)
    assert a.seen == 3 and b.seen == 3 and c.seen == 2  # the quiet tile never reached c
    assert ens.looked == (2, 3)
    assert [round(float(x.score.max()), 4) if len(x) else None for x in out] == [
        round(0.375 * 0.5 + 0.25 * 0.95, 4),
        round(0.375 * 0.08 + 0.25 * 0.95, 4),
        None,
    ]
    assert ens.lossless_gate(0.30) == pytest.approx(0.05 / 0.75)
    assert ens.ensemble["front"] == 2
    with pytest.raises(ValueError, match="front must be 1 to 2"):
        ModelEnsemble([a, b, c], front=3)


def test_a_need_spares_members_where_no_score_can_reach_it_and_changes_nothing_above_it():
    """predict(need=...): a member looks at an image only where the members before it leave
    need[i] within reach; every candidate scoring need[i] or more is as without it."""

    class Counting(Fixed):
        def predict(self, images, conf=0.25):
            self.seen = getattr(self, "seen", 0) + len(images)
            return super().predict(images, conf)

    def members():
        return (Counting([[0, 0, 20, 20]], [0.4]), Counting([[0, 0, 20, 20]], [0.9]),
                Counting([[0, 0, 20, 20]], [0.9]))  # fmt: skip

    a, b, c = members()
    ens = ModelEnsemble([a, b, c], weights=[3, 3, 2])
    tiles = [TILE, TILE]
    # after a (0.4): at most 0.375 * 0.4 + 0.625 = 0.775; need 0.8 on the first image
    out = ens.predict(tiles, conf=0.05, need=[0.8, 0.5])
    assert (a.seen, b.seen, c.seen) == (2, 1, 1)
    full = ModelEnsemble(list(members()), weights=[3, 3, 2]).predict(tiles, conf=0.05)
    assert float(full[1].score[0]) == pytest.approx(0.375 * 0.4 + 0.375 * 0.9 + 0.25 * 0.9)
    assert out[1].score.tolist() == full[1].score.tolist()  # within reach: the same
    assert float(full[0].score[0]) < 0.8 and all(s < 0.8 for s in out[0].score)
    with pytest.raises(ValueError, match="need: 1 scores for 2 images"):
        ens.predict(tiles, need=[0.5])


def test_a_gate_above_what_the_thresholds_allow_is_refused():
    from geo.errors import ConfigError
    from pipelines.detect import wrap_detector

    a = Fixed([[0, 0, 20, 20]], [0.8])
    a.card.imgsz = 512  # tiles like the shipped weights
    cfg = BuildwatchConfig.model_validate({
        "filters": {"min_score": {"new_building": 0.35, "construction": 0.75}},
        "detector": {"ensemble": {"enabled": True, "weights": ["buildwatch-cd-yolo11n-seg.pt"],
                                  "member_weights": [3, 1], "gate": 0.2}},
    })  # fmt: skip
    with pytest.raises(ConfigError, match=r"gate 0.2 would drop leads .* at most 0.133"):
        wrap_detector(a, cfg)


def test_members_that_tile_differently_are_refused_with_the_setting_named():
    from geo.errors import ConfigError
    from pipelines.detect import wrap_detector

    a = Fixed([[0, 0, 20, 20]], [0.8])  # a 64 px card; the shipped weights tile at 512
    cfg = {"detector": {"ensemble": {"enabled": True, "weights": ["buildwatch-cd-yolo11n-seg.pt"]}}}
    with pytest.raises(ConfigError, match=r"detector.ensemble: .* imgsz 512 but the first has 64"):
        wrap_detector(a, BuildwatchConfig.model_validate(cfg))


def test_the_shipped_weights_get_the_shipped_ensemble_and_other_weights_do_not(tmp_path):
    """``enabled: null`` (the default): the shipped detector is the ensemble the card measured,
    gated as tightly as the lead thresholds allow; any other weights run alone."""
    import shutil

    from models.detector import DEFAULT_WEIGHTS
    from pipelines.detect import load_detector

    det = load_detector(BuildwatchConfig())
    # the direction test around the unchanged-structure test around the ensemble
    assert isinstance(det, DirectionTest) and isinstance(det.detector, UnchangedFilter)
    ens = det.detector.detector
    assert isinstance(ens, ModelEnsemble) and det.looks is ens
    assert [m.weights.name for m in ens.members] == [
        DEFAULT_WEIGHTS.name,
        "buildwatch-cd-yolo11n-seg-seed4.pt",
        "buildwatch-cd-efflite0-siamese-seg.pt",
    ]
    assert ens.member_weights == [0.375, 0.375, 0.25] and ens.front == 2
    lowest = min(BuildwatchConfig().filters.min_score.values())
    assert ens.gate == pytest.approx(ens.lossless_gate(lowest), abs=1e-4) and ens.gate > 0
    # the two YOLOs in front weigh 3/4: below 0.25 every tile must be looked at
    low = BuildwatchConfig.model_validate({"filters": {"min_score": {"new_building": 0.2}}})
    assert load_detector(low).detector.detector.gate is None
    copy = tmp_path / "mine.pt"
    shutil.copyfile(DEFAULT_WEIGHTS, copy)
    shutil.copyfile(DEFAULT_WEIGHTS.with_suffix(".yaml"), copy.with_suffix(".yaml"))
    mine = BuildwatchConfig.model_validate({"detector": {"weights": str(copy)}})
    assert not isinstance(load_detector(mine).detector, ModelEnsemble)


def test_an_ensemble_given_to_wrap_detector_is_not_ensembled_again():
    """A benchmark's own ensemble led by the shipped detector must stay what it was built as:
    the default config must not add the shipped members on top of it (a nested ensemble scores
    every candidate differently and is not what was asked for)."""
    from models.detector import ChangeDetector
    from pipelines.detect import wrap_detector

    shipped = ChangeDetector.load(None, device="cpu")
    other = Fixed([[0, 0, 20, 20]], [0.8], gsd=float(shipped.card.working_gsd_m))
    other.card.imgsz = shipped.card.imgsz
    mine = ModelEnsemble([shipped, other], weights=[1, 1])
    wrapped = wrap_detector(mine, BuildwatchConfig())
    assert wrapped.looks is mine  # inside the unchanged and direction tests, not nested
    assert mine.members == [shipped, other]
    # the shipped detector alone still gets the shipped ensemble
    assert isinstance(wrap_detector(shipped, BuildwatchConfig()).looks, ModelEnsemble)


def test_a_run_below_the_threshold_the_gate_was_built_for_is_refused():
    """An ensemble gated for 0.35 must not serve a run that keeps leads from 0.2: the tiles it
    skipped could have held them."""
    from geo.errors import ConfigError
    from pipelines.detect import _check_gate

    a, b = Fixed([[0, 0, 20, 20]], [0.8]), Fixed([[0, 0, 20, 20]], [0.8])
    ens = ModelEnsemble([a, b], weights=[3, 1], gate=0.1333)
    assert ens.lossless_from == pytest.approx(0.35, abs=1e-3)
    at = {"filters": {"min_score": {"new_building": 0.35, "construction": 0.75}}}
    _check_gate(ens, BuildwatchConfig.model_validate(at))  # as built: fine
    low = {"filters": {"min_score": {"new_building": 0.2, "construction": 0.75}}}
    with pytest.raises(ConfigError, match=r"filters.min_score 0.2 is below 0.350"):
        _check_gate(ens, BuildwatchConfig.model_validate(low))
    ens.gate = None  # no gate: any threshold
    _check_gate(ens, BuildwatchConfig.model_validate(low))


class Outlined:
    """Returns fixed polygons (tile pixels) with their boxes, filtered by ``conf``."""

    def __init__(self, polys, scores, classes=None):
        self.polys = [np.asarray(p, np.float32) for p in polys]
        self.scores = np.asarray(scores, np.float32)
        self.classes = np.zeros(len(self.scores), np.int64) if classes is None else classes
        self.card = type("Card", (), {"name": "outlined", "working_gsd_m": 0.2, "imgsz": 64})()

    def predict(self, images, conf=0.25):
        keep = np.flatnonzero(self.scores >= conf)
        boxes = np.array([[*self.polys[i].min(0), *self.polys[i].max(0)] for i in keep],
                         np.float32).reshape(-1, 4)  # fmt: skip
        outl = np.empty(len(keep), object)
        for n, i in enumerate(keep):
            outl[n] = self.polys[i]
        c = Candidates(boxes, self.scores[keep], np.asarray(self.classes)[keep], outline=outl)
        return [c for _ in images]


def _rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_a_members_whole_house_replaces_the_main_detectors_roof_planes():
    """Two roof planes the main detector outlines apart (each under IoU 0.3 with the house) and
    the house another member outlines whole: one candidate, the whole's outline, the planes'
    best fused score (never higher), the best plane's class; without ``wholes``, the planes."""
    from models.ensemble import Wholes

    main = Outlined([_rect(0, 0, 9, 20), _rect(11, 0, 20, 20)], [0.8, 0.6], classes=[1, 0])
    other = Outlined([_rect(0, 0, 22, 30)], [0.7])  # IoU with each plane 0.27
    (plain,) = ModelEnsemble([main, other], weights=[3, 1]).predict([TILE], conf=0.1)
    assert len(plain) == 3  # two planes (0.6, 0.45) and the whole alone (0.175)
    (out,) = ModelEnsemble([main, other], weights=[3, 1], wholes=Wholes()).predict([TILE], conf=0.1)
    assert len(out) == 1
    assert out.xyxy.tolist() == [[0.0, 0.0, 22.0, 30.0]]
    assert float(out.score[0]) == pytest.approx(0.75 * 0.8)  # the best plane's fused score
    assert int(out.class_id[0]) == 1
    # the whole grouped with the large plane (IoU 0.7) still takes in the small one
    main2 = Outlined([_rect(0, 0, 14, 20), _rect(16, 0, 20, 20)], [0.8, 0.6])
    house = Outlined([_rect(0, 0, 20, 20)], [0.7])
    (two,) = ModelEnsemble([main2, house], weights=[3, 1]).predict([TILE], conf=0.1)
    assert len(two) == 2
    (one,) = ModelEnsemble([main2, house], weights=[3, 1], wholes=Wholes()).predict(
        [TILE], conf=0.1
    )
    assert one.xyxy.tolist() == [[0.0, 0.0, 20.0, 20.0]]
    assert float(one.score[0]) == pytest.approx(0.75 * 0.8 + 0.25 * 0.7)  # its own group's
    # the threshold still applies to that score: nothing the planes could not reach appears
    (none,) = ModelEnsemble([main, other], weights=[3, 1], wholes=Wholes()).predict(
        [TILE], conf=0.61
    )
    assert len(none) == 0


def test_a_whole_needs_its_parts_inside_and_enough_of_them_and_its_own_score():
    from models.ensemble import Wholes

    planes = Outlined([_rect(0, 0, 9, 20), _rect(11, 0, 20, 20)], [0.8, 0.6])

    def fused(other, **kw):
        (c,) = ModelEnsemble([planes, other], weights=[3, 1], wholes=Wholes(**kw)).predict(
            [TILE], conf=0.04
        )
        return len(c)  # (a lone whole at 0.2 fuses to 0.05: it still shows)

    assert fused(Outlined([_rect(0, 0, 22, 30)], [0.7])) == 1
    assert fused(Outlined([_rect(0, 0, 22, 30)], [0.2])) == 3  # the whole scores < min_score
    assert fused(Outlined([_rect(0, 0, 10, 64)], [0.7])) == 3  # one plane inside: not 2 parts
    assert fused(Outlined([_rect(0, 0, 10, 64)], [0.7]), min_parts=1) == 2  # 1 part asked
    # planes mostly outside the whole are not its parts
    assert fused(Outlined([_rect(5, 0, 15, 64)], [0.7])) == 3
    # parts covering under min_cover of a big whole (a block, not a house) stay apart
    assert fused(Outlined([_rect(0, 0, 64, 64)], [0.7]), min_cover=0.2) == 3
    assert fused(Outlined([_rect(0, 0, 64, 64)], [0.7]), min_cover=0.05) == 1
    with pytest.raises(ValueError, match="inside must be in"):
        Wholes(inside=1.5)


def test_wholes_are_off_by_default_and_the_config_switches_them_on():
    from pipelines.detect import load_detector

    ens = load_detector(BuildwatchConfig()).detector.detector
    assert isinstance(ens, ModelEnsemble) and ens.wholes is None
    on = BuildwatchConfig.model_validate({"detector": {"ensemble": {"wholes": {"enabled": True}}}})
    ens = load_detector(on).detector.detector
    assert ens.wholes is not None and ens.wholes.min_parts == 2
    assert "whole_parts" in ens.ensemble  # provenance names it
    with pytest.raises(ValidationError, match="min_parts"):
        BuildwatchConfig.model_validate({"detector": {"ensemble": {"wholes": {"min_parts": 0}}}})
