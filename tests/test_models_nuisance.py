"""Nuisance change painted on real imagery: it changes the scene and never a label's truth."""

from __future__ import annotations

import json

import cv2
import numpy as np

from models.datasets.fairdrone import FairDroneSpec, build_fairdrone
from models.datasets.nuisance import (
    add_nuisance,
    flood_ground,
    paint_vehicles,
    recolour_ground,
    reroof,
)
from models.datasets.writer import read_chip

GSD = 0.1


def _scene(seed: int = 0):
    """Textured ground 300 px (30 m) square with four 5 m roofs (ids 1-4)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 110, (300, 300, 3), dtype=np.uint8)
    ids = np.zeros((300, 300), np.uint16)
    for i, (y, x) in enumerate([(40, 40), (40, 200), (200, 40), (200, 200)], start=1):
        img[y : y + 50, x : x + 50] = (230, 230, 235)
        ids[y : y + 50, x : x + 50] = i
    return img, ids


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0


def test_vehicles_and_ground_cover_stay_off_the_buildings():
    img, ids = _scene()
    free = cv2.dilate((ids > 0).astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
    cars = paint_vehicles(img, free, np.random.default_rng(1), GSD, 5)
    plot = recolour_ground(img, free, np.random.default_rng(2), GSD)
    for out in (cars, plot):
        changed = _changed(out, img)
        assert changed.sum() > 500  # something the size of a car or a plot did change
        assert not changed[ids > 0].any()


def test_a_car_is_car_sized():
    img, ids = _scene()
    free = np.ones(ids.shape, bool)
    out = paint_vehicles(img, free, np.random.default_rng(3), GSD, 1)
    visible = np.abs(out.astype(int) - img.astype(int)).max(axis=2) > 10
    area_m2 = visible.sum() * GSD**2
    assert 4 < area_m2 < 45  # a car with its shadow (a lorry at most), not a building


def test_reroof_changes_only_the_named_roof():
    img, ids = _scene()
    out = reroof(img, ids, [2], np.random.default_rng(0))
    changed = _changed(out, img)
    assert changed[ids == 2].mean() > 0.8
    assert not changed[ids != 2].any()


def test_new_buildings_are_never_painted_over():
    img, ids = _scene()
    new_mask = ids == 1
    touched_before = 0
    for seed in range(30):
        after, before = add_nuisance(
            img.copy(), img.copy(), ids, new_mask, [2, 3, 4], np.random.default_rng(seed), GSD
        )
        assert not _changed(after, img)[new_mask].any()
        touched_before += int(_changed(before, img).any())
    assert touched_before >= 10  # the baseline is painted too (cars moved, another cover)


def test_nuisance_keeps_every_chip_and_label_and_adds_change(tmp_path):
    """The same spec with and without nuisance: identical labels, some chips differ."""
    img, ids = _scene()
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": GSD}))
    base = dict(n_train=8, n_val=0, size_px=96, gsd_range=(0.1, 0.1), no_change_fraction=0.3)
    build_fairdrone(prep, tmp_path / "plain", FairDroneSpec(**base))
    build_fairdrone(prep, tmp_path / "nuis", FairDroneSpec(**base, nuisance=1.0))
    labels = sorted((tmp_path / "plain" / "labels" / "train").glob("*.txt"))
    assert len(labels) == 8
    differ = 0
    for lbl in labels:
        other = tmp_path / "nuis" / "labels" / "train" / lbl.name
        assert other.read_text() == lbl.read_text()
        a = read_chip(tmp_path / "plain" / "images" / "train" / (lbl.stem + ".tif"))
        b = read_chip(tmp_path / "nuis" / "images" / "train" / (lbl.stem + ".tif"))
        differ += int(not np.array_equal(a, b))
    assert differ >= 4


def test_a_leaning_roof_moves_off_its_footprint_and_nothing_far_away_changes():
    from models.datasets.nuisance import lean_roofs

    img, ids = _scene()
    out = lean_roofs(img, ids, [1, 4], np.random.default_rng(5), GSD)
    bright = out.mean(axis=2) > 200
    moved = 0
    for bid in (1, 4):
        ys, xs = np.nonzero(ids == bid)
        near = np.zeros_like(bright)
        near[max(0, ys.min() - 40) : ys.max() + 40, max(0, xs.min() - 40) : xs.max() + 40] = True
        by, bx = np.nonzero(bright & near)
        shift_m = np.hypot(by.mean() - ys.mean(), bx.mean() - xs.mean()) * GSD
        assert 0.1 < shift_m <= 3.05  # 0.15-3 m of relief displacement
        assert abs(len(by) - len(ys)) < 0.05 * len(ys)  # the whole roof, moved, not smeared
        moved += int((bright & (ids != bid) & near).sum() > 0)
    assert moved == 2  # each roof now covers ground beside its footprint
    far = cv2.dilate((ids > 0).astype(np.uint8), np.ones((81, 81), np.uint8)) == 0
    assert not _changed(out, img)[far].any()
    assert not _changed(out, img)[ids == 2].any()  # buildings not named keep their roofs


def test_relief_changes_only_baselines_and_no_label(tmp_path):
    img, ids = _scene()
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": GSD}))
    base = dict(n_train=6, n_val=0, size_px=96, gsd_range=(0.1, 0.1), no_change_fraction=0.5,
                paste_fraction=0.0, estate_fraction=0.0)  # fmt: skip
    build_fairdrone(prep, tmp_path / "plain", FairDroneSpec(**base))
    build_fairdrone(prep, tmp_path / "lean", FairDroneSpec(**base, relief=1.0))
    differ = 0
    for lbl in sorted((tmp_path / "plain" / "labels" / "train").glob("*.txt")):
        assert (tmp_path / "lean" / "labels" / "train" / lbl.name).read_text() == lbl.read_text()
        a = read_chip(tmp_path / "plain" / "images" / "train" / (lbl.stem + ".tif"))
        b = read_chip(tmp_path / "lean" / "images" / "train" / (lbl.stem + ".tif"))
        differ += int(not np.array_equal(a[..., 3:], b[..., 3:]))
        np.testing.assert_array_equal(a[..., :3], b[..., :3])  # the drone flight has no lean
    assert differ >= 3


def _polygon_areas(labels_dir) -> list[float]:
    """Areas (share of the chip) of every labelled outline in a YOLO-seg label folder."""
    areas = []
    for lbl in sorted(labels_dir.glob("*.txt")):
        for line in lbl.read_text().splitlines():
            xy = np.array(line.split()[1:], float).reshape(-1, 2)
            x, y = xy[:, 0], xy[:, 1]
            areas.append(0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))))
    return areas


def test_magnified_chips_show_the_same_buildings_larger_and_leave_the_rest_alone(tmp_path):
    img, ids = _scene()
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": GSD}))
    base = dict(n_train=12, n_val=0, size_px=96, gsd_range=(0.1, 0.1), no_change_fraction=0.0,
                paste_fraction=0.0, estate_fraction=0.0)  # fmt: skip
    for name, magnify in (("plain", 0.0), ("larger", 1.0), ("half", 0.5)):
        build_fairdrone(prep, tmp_path / name, FairDroneSpec(**base, magnify=magnify))
    plain = _polygon_areas(tmp_path / "plain" / "labels" / "train")
    larger = _polygon_areas(tmp_path / "larger" / "labels" / "train")
    assert plain and larger
    # a 5 m roof covers 1.25-2x more of the chip in each direction: 1.6-4x the area
    assert 1.5 < np.median(larger) / np.median(plain) < 4.5
    same = differ = 0
    for chip in sorted((tmp_path / "plain" / "images" / "train").glob("*.tif")):
        a, b = read_chip(chip), read_chip(tmp_path / "half" / "images" / "train" / chip.name)
        if np.array_equal(a, b):
            same += 1
            assert (tmp_path / "half" / "labels" / "train" / (chip.stem + ".txt")).read_text() == (
                tmp_path / "plain" / "labels" / "train" / (chip.stem + ".txt")
            ).read_text()
        else:
            differ += 1
    assert same >= 2 and differ >= 2  # about half are enlarged; the others are the plain chips


def test_chips_built_before_the_later_fields_existed_are_still_reused(tmp_path):
    """``nuisance``, ``relief``, ``magnify``, ``water``, ``roof_planes``, ``match_flight`` and
    ``grow`` came
    after chip sets had been built: a set whose
    recorded spec lacks them (or has them at 0) is the same chips as a spec with them off, and is
    reused; with one of them set it is another set, and is built."""
    import dataclasses

    from models.train import _reuse_or_build

    root = tmp_path / "fairdrone"
    root.mkdir()
    (root / "data.yaml").write_text("path: .\n")
    old = dataclasses.asdict(FairDroneSpec())
    for name in ("nuisance", "relief", "magnify", "water", "roof_planes", "match_flight", "grow"):
        old.pop(name)
    (root / "spec.json").write_text(json.dumps(old, sort_keys=True))
    builds: list[int] = []

    def build():
        builds.append(1)
        return root / "data.yaml"

    assert _reuse_or_build(root, FairDroneSpec(), build) == root / "data.yaml"
    assert builds == []  # reused
    _reuse_or_build(root, FairDroneSpec(magnify=0.5), build)
    assert builds == [1]  # another set: built, and recorded with the field
    assert json.loads((root / "spec.json").read_text())["magnify"] == 0.5
    _reuse_or_build(root, FairDroneSpec(magnify=0.5), build)
    assert builds == [1]
    _reuse_or_build(root, FairDroneSpec(), build)
    assert builds == [1, 1]


def test_water_stays_off_the_buildings_and_is_smoother_than_the_ground_it_covers():
    img, ids = _scene()
    free = cv2.dilate((ids > 0).astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
    painted = 0
    for seed in range(24):  # ponds, paddies and puddles, all kinds drawn
        out = flood_ground(img, free, np.random.default_rng(seed), GSD)
        changed = _changed(out, img)
        assert not changed[~free].any()
        if changed.sum() * GSD**2 < 1.0:  # nothing fitted this time
            continue
        painted += 1
        # inside the shore (a wet ring about 0.5 m wide) open water has little fine texture
        core = cv2.erode(changed.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        if core.sum() >= 50:
            grain = [np.abs(x - cv2.GaussianBlur(x, (0, 0), 2))[core].mean()
                     for x in (out.mean(axis=2), img.mean(axis=2))]  # fmt: skip
            assert grain[0] < 0.5 * grain[1]
    assert painted >= 12


def test_water_changes_one_date_per_chip_and_no_label(tmp_path):
    img, ids = _scene()
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": GSD}))
    base = dict(n_train=10, n_val=0, size_px=96, gsd_range=(0.1, 0.1), no_change_fraction=0.3)
    build_fairdrone(prep, tmp_path / "plain", FairDroneSpec(**base))
    build_fairdrone(prep, tmp_path / "wet", FairDroneSpec(**base, water=1.0))
    flight = baseline = 0
    for lbl in sorted((tmp_path / "plain" / "labels" / "train").glob("*.txt")):
        assert (tmp_path / "wet" / "labels" / "train" / lbl.name).read_text() == lbl.read_text()
        a = read_chip(tmp_path / "plain" / "images" / "train" / (lbl.stem + ".tif"))
        b = read_chip(tmp_path / "wet" / "images" / "train" / (lbl.stem + ".tif"))
        f = not np.array_equal(a[..., :3], b[..., :3])
        g = not np.array_equal(a[..., 3:], b[..., 3:])
        assert not (f and g)  # the water is on one date, the other is dry
        flight, baseline = flight + f, baseline + g
    assert flight >= 1 and baseline >= 1 and flight + baseline >= 5


def test_roof_tones_split_each_new_roof_and_touch_nothing_else():
    from models.datasets.fairdrone import split_roof_tones

    img, ids = _scene()
    out = split_roof_tones(img, ids, [1, 2, 3, 4], np.random.default_rng(3))
    changed = _changed(img, out)
    assert not changed[ids == 0].any()  # the ground is untouched
    split = 0
    for i in (1, 2, 3, 4):
        inside = changed[ids == i]
        if inside.any():  # a roof that was split: part of it changed, part kept its tone
            assert 0.2 < inside.mean() < 0.8
            split += 1
    assert split >= 2
    assert np.array_equal(split_roof_tones(img, ids, [], np.random.default_rng(3)), img)


def test_roof_tones_change_only_the_flight_inside_new_buildings(tmp_path):
    img, ids = _scene()
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": GSD}))
    base = dict(n_train=10, n_val=0, size_px=96, gsd_range=(0.1, 0.1), no_change_fraction=0.3)
    build_fairdrone(prep, tmp_path / "plain", FairDroneSpec(**base))
    build_fairdrone(prep, tmp_path / "toned", FairDroneSpec(**base, roof_planes=1.0))
    toned = 0
    for lbl in sorted((tmp_path / "plain" / "labels" / "train").glob("*.txt")):
        assert (tmp_path / "toned" / "labels" / "train" / lbl.name).read_text() == lbl.read_text()
        a = read_chip(tmp_path / "plain" / "images" / "train" / (lbl.stem + ".tif"))
        b = read_chip(tmp_path / "toned" / "images" / "train" / (lbl.stem + ".tif"))
        assert np.array_equal(a[..., 3:], b[..., 3:])  # the baseline is the same
        if not lbl.read_text().strip():
            assert np.array_equal(a, b)  # nothing new: nothing to tone
        toned += not np.array_equal(a[..., :3], b[..., :3])
    assert toned >= 3


def _gradient(img: np.ndarray) -> float:
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean())


def test_matched_flights_are_softened_only_where_the_baseline_is_coarse(tmp_path):
    """``match_flight``: the flight is seen at the baseline's detail GSD where that is coarser
    than the setting, as the product shows it; baselines and labels stay the chips they were."""
    from geo.tiles import detail_gsd

    _, ids = _scene()
    rng = np.random.default_rng(0)  # ground with detail at several scales, as real ground has
    tex = sum(cv2.GaussianBlur(rng.standard_normal((300, 300)).astype(np.float32), (0, 0), s) * w
              for s, w in ((1, 1.0), (4, 4.0), (12, 10.0)))  # fmt: skip
    tex = np.clip(100 + 30 * tex / tex.std(), 0, 255).astype(np.uint8)
    img = np.repeat(tex[..., None], 3, axis=2)
    img[ids > 0] = 230
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": GSD}))
    base = dict(n_train=16, n_val=0, size_px=128, gsd_range=(0.1, 0.1), no_change_fraction=0.3)
    build_fairdrone(prep, tmp_path / "plain", FairDroneSpec(**base))
    build_fairdrone(prep, tmp_path / "matched", FairDroneSpec(**base, match_flight=0.4))
    softened = kept = 0
    for lbl in sorted((tmp_path / "plain" / "labels" / "train").glob("*.txt")):
        assert (tmp_path / "matched" / "labels" / "train" / lbl.name).read_text() == lbl.read_text()
        a = read_chip(tmp_path / "plain" / "images" / "train" / (lbl.stem + ".tif"))
        b = read_chip(tmp_path / "matched" / "images" / "train" / (lbl.stem + ".tif"))
        assert np.array_equal(a[..., 3:], b[..., 3:])  # the baseline is the same
        flight, baseline = np.ascontiguousarray(a[..., :3]), np.ascontiguousarray(a[..., 3:])
        valid = (flight.max(axis=2) > 0) & (baseline.max(axis=2) > 0)
        detail = detail_gsd(flight, baseline, valid, 0.2)
        if np.array_equal(a, b):
            kept += 1
            assert detail is None or detail <= 0.4 + 1e-6
        else:
            softened += 1
            assert detail is not None and detail > 0.4
            assert _gradient(b[..., :3]) < 0.9 * _gradient(a[..., :3])
    assert softened >= 2 and kept >= 2


def test_grown_buildings_are_larger_whole_and_clear_of_their_neighbours():
    from models.datasets.fairdrone import grow_buildings

    img, ids = _scene()
    img[ids == 0] = 90  # flat ground: what changed is the grown roofs and their margins
    grown = 0
    for seed in range(6):
        out, out_ids = grow_buildings(img, ids, [1, 4], np.random.default_rng(seed), GSD)
        for i in (2, 3):  # not asked to grow: untouched, pixels and ids
            assert np.array_equal(out_ids == i, ids == i)
            assert np.array_equal(out[ids == i], img[ids == i])
        for i in (1, 4):
            before, after = int((ids == i).sum()), int((out_ids == i).sum())
            assert after >= before  # never smaller
            if after > before:
                grown += 1
                assert 1.4 < after / before < 2.6**2 * 2.0 + 0.5  # 1.2-2.6x linear, stretched
                # one piece, a metre (10 px) clear of every other building
                n, _ = cv2.connectedComponents((out_ids == i).astype(np.uint8))
                assert n == 2
                near = cv2.dilate((out_ids == i).astype(np.uint8), np.ones((19, 19), np.uint8))
                assert not (near.astype(bool) & (out_ids > 0) & (out_ids != i)).any()
                # the grown footprint shows the roof (bright), not the ground around it
                assert out[out_ids == i].mean() > 200
    assert grown >= 6  # most of the 12 asked grew: 50 px roofs 110 px apart have room
    assert np.array_equal(grow_buildings(img, ids, [], np.random.default_rng(0), GSD)[1], ids)


def test_grown_chips_keep_their_baselines_and_only_grow_labels(tmp_path):
    """``grow``: the flight's new buildings are drawn larger and their outlines grow with them;
    a chip not drawn larger is the plain chip, byte for byte; the baselines never change."""
    img, ids = _scene()
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": GSD}))
    base = dict(n_train=12, n_val=0, size_px=128, gsd_range=(0.1, 0.1), no_change_fraction=0.2,
                paste_fraction=0.0, estate_fraction=0.0)  # fmt: skip
    for name, grow in (("plain", 0.0), ("grown", 1.0), ("half", 0.5)):
        build_fairdrone(prep, tmp_path / name, FairDroneSpec(**base, grow=grow))
    larger = same = differ = 0
    for lbl in sorted((tmp_path / "plain" / "labels" / "train").glob("*.txt")):
        a = read_chip(tmp_path / "plain" / "images" / "train" / (lbl.stem + ".tif"))
        b = read_chip(tmp_path / "grown" / "images" / "train" / (lbl.stem + ".tif"))
        assert np.array_equal(a[..., 3:], b[..., 3:])  # the baseline is the same
        pa = _polygon_areas_of(lbl)
        pb = _polygon_areas_of(tmp_path / "grown" / "labels" / "train" / lbl.name)
        assert len(pa) == len(pb)  # every new building keeps its one outline
        if not pa:
            assert np.array_equal(a, b)  # nothing new: nothing to grow
        elif sum(pb) > 1.3 * sum(pa):
            larger += 1
        h = read_chip(tmp_path / "half" / "images" / "train" / (lbl.stem + ".tif"))
        if np.array_equal(a, h):
            same += 1
        else:
            differ += 1
    assert larger >= 4
    assert same >= 2 and differ >= 2  # about half of the change chips grew; the rest are plain


def _polygon_areas_of(lbl) -> list[float]:
    areas = []
    for line in lbl.read_text().splitlines():
        xy = np.array(line.split()[1:], float).reshape(-1, 2)
        x, y = xy[:, 0], xy[:, 1]
        areas.append(0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))))
    return areas
