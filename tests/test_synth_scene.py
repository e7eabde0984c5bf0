"""The synthetic scene core: determinism, truth that matches the pixels, purity, speed."""

from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from geo.errors import ConfigError
from geo.synthetic import CHANGE_KINDS, render_pair, render_sequence

SEED = 5  # at 1000 px / 0.2 m this seed places every one of the ten change kinds


@pytest.fixture(scope="module")
def pair():
    return render_pair(SEED, 1000, 0.2)


def _inside(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    return m.astype(bool)


def test_same_seed_same_scene_and_truth(pair):
    again = render_pair(SEED, 1000, 0.2)
    assert np.array_equal(pair.after, again.after) and np.array_equal(pair.before, again.before)
    assert np.array_equal(pair.valid_after, again.valid_after)
    assert [(c.kind, c.change_id) for c in pair.changes] == [
        (c.kind, c.change_id) for c in again.changes
    ]
    for a, b in zip(pair.changes, again.changes, strict=True):
        assert np.array_equal(a.polygon, b.polygon)


def test_different_seed_different_scene(pair):
    other = render_pair(SEED + 1, 1000, 0.2)
    assert np.abs(pair.after.astype(int) - other.after.astype(int)).mean() > 10


def test_arrays_and_every_change_kind(pair):
    assert pair.after.shape == pair.before.shape == (1000, 1000, 3)
    assert pair.after.dtype == np.uint8 and pair.valid_after.dtype == bool
    assert 0.6 < pair.valid_after.mean() < 1 and 0.6 < pair.valid_before.mean() < 1
    assert not pair.after[~pair.valid_after].any()
    assert {c.kind for c in pair.changes} == set(CHANGE_KINDS)
    for c in pair.changes:
        assert c.polygon.ndim == 2 and c.polygon.shape[1] == 2
        assert c.expected == {"permitted_building": "permitted"}.get(
            c.kind, "lead" if c.cls and c.kind != "permitted_building" else "none"
        )
        both = _inside(c.polygon, (1000, 1000)) & pair.valid_after & pair.valid_before
        assert both.sum() > 0.9 * _inside(c.polygon, (1000, 1000)).sum(), c.kind


def test_real_changes_differ_between_epochs(pair):
    both = pair.valid_after & pair.valid_before

    def z(img: np.ndarray) -> np.ndarray:  # remove the global colour/illumination difference
        a = img.astype(np.float32)
        return (a - a[both].mean(0)) / a[both].std(0)

    diff = np.abs(z(pair.after) - z(pair.before)).sum(2)
    any_change = np.zeros(diff.shape, bool)
    for c in pair.changes:
        any_change |= _inside(c.polygon, diff.shape)
    background = float(np.median(diff[both & ~any_change]))
    for c in pair.changes:
        inside = float(np.mean(diff[_inside(c.polygon, diff.shape) & both]))
        assert inside > 2.0 * background, (c.kind, inside, background)


def test_sizes_in_metres(pair):
    for c in pair.changes:
        side = np.sqrt(cv2.contourArea(c.polygon.astype(np.float32))) * pair.gsd
        if c.kind in ("extension", "rooftop_addition"):
            assert 1.5 < side < 7, (c.kind, side)
        if c.kind == "construction":
            assert 10 < side < 40, side


def test_style_override_and_bad_key():
    p = render_pair(1, 256, 0.25, style={"footprint": False, "baseline_clip": False})
    assert p.valid_after.all() and p.valid_before.all()
    with pytest.raises(ConfigError, match=r"style: unknown key\(s\) \['colour'\]"):
        render_pair(1, 256, 0.25, style={"colour": 1})
    with pytest.raises(ConfigError, match="size_px=10 is out of range"):
        render_pair(1, 10, 0.25)


def test_sequence_keeps_ids_and_completes_sites():
    seq = render_sequence(7, 800, 0.2, 3)
    assert len(seq.nights) == 3 and seq.nights[0].shape == seq.before.shape
    ids = [{c.change_id: c.kind for c in night if c.kind != "moved_car"} for night in seq.changes]
    kept = set(ids[0]) & set(ids[2])
    assert kept, "real structures persist from night 1 to night 3"
    completed = [
        i
        for i in set(ids[0]) & set(ids[1])
        if ids[0][i] == "construction" and ids[1][i] == "new_building"
    ]
    grown = sum(1 for i in ids[1] if i not in ids[0])
    assert completed or grown
    assert not np.array_equal(seq.nights[0], seq.nights[1])
    with pytest.raises(ConfigError, match="nights=0"):
        render_sequence(7, 256, 0.2, 0)


def test_core_imports_no_gdal_or_torch():
    code = (
        "import sys; import geo.synthetic as s; s.render_pair(1, 128, 0.2); "
        "bad = [m for m in ('rasterio', 'shapely', 'geopandas', 'pyproj', 'torch', 'pyogrio') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_training_size_is_fast():
    render_pair(0, 640, 0.2)
    best = min(_timed(s) for s in range(3))
    assert best < 0.6, best  # 0.1-0.2 s on an idle core; generous for a shared machine


def _timed(seed: int) -> float:
    t = time.perf_counter()
    render_pair(seed, 640, 0.2)
    return time.perf_counter() - t


def test_no_change_pair_differs_only_by_nuisance():
    seed, n = 5, 1200
    normal = render_pair(seed, n, 0.2)
    quiet = render_pair(seed, n, 0.2, style={"changes": False})
    kinds = {c.kind for c in quiet.changes}
    assert kinds and kinds <= {"moved_car", "vegetation", "shadow"}
    assert all(c.expected == "none" and c.cls == "" for c in quiet.changes)
    assert np.array_equal(quiet.before, normal.before)  # the same baseline as with changes
    assert not np.array_equal(quiet.after, normal.after)
    # the flight of the same scene with *no* change at all, same date, sun and noise
    from geo.synthetic.scene_setup import _Scene

    sc = _Scene(seed, n, 0.2, {"changes": False})
    bare, _, _ = sc.epoch([], sc.date_after, sc.st["hours"][0], 2, False)
    bare[~quiet.valid_after] = 0
    differs = np.abs(bare.astype(int) - quiet.after.astype(int)).sum(2) > 0
    nuisance = np.zeros(differs.shape, np.uint8)
    for c in quiet.changes:
        cv2.fillPoly(nuisance, [np.round(c.polygon).astype(np.int32)], 1)
    near = cv2.dilate(nuisance, np.ones((11, 11), np.uint8)).astype(bool)  # +-1 m: car shadows
    assert differs.sum() > 100  # the nuisance changes are drawn
    assert (differs & ~near).sum() <= 0.001 * differs.sum()
    # the epochs still differ in illumination and season, like a real pair
    assert quiet.info_after.sun_azimuth != quiet.info_before.sun_azimuth
    with pytest.raises(ConfigError, match="style changes='no': use true or false"):
        render_pair(1, 128, 0.2, style={"changes": "no"})
