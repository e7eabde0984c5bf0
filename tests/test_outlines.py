"""Outlines, not boxes: mask decoding, georeferencing, seam merging and checkpointing of outlines."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from affine import Affine

from models.candidates import Candidates
from models.detector import mask_outline, square_outline
from pipelines.leads.georef import georeference
from pipelines.leads.merge import merge_candidates


def _proto_for(mask: np.ndarray, cells: int) -> np.ndarray:
    """Two prototypes on a ``cells`` grid whose first one is +/- where ``mask`` is set."""
    signed = cv2.resize(
        mask.astype(np.float32) * 2 - 1, (cells, cells), interpolation=cv2.INTER_AREA
    )
    return np.stack([signed * 8, np.zeros_like(signed)])


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_mask_outline_traces_a_rectangle_at_its_true_area(scale):
    imgsz = 128
    mask = np.zeros((imgsz, imgsz), np.uint8)
    mask[20:60, 24:84] = 1  # 60 x 40 input pixels
    out = mask_outline(np.float32([1, 0]), _proto_for(mask, 32), np.float32([22, 18, 86, 62]),
                       imgsz, scale, (int(imgsz / scale), int(imgsz / scale)))  # fmt: skip
    assert out is not None and len(out) == 4  # squared: a rectangle is four corners
    area = shapely.Polygon(out).area * scale**2  # back to input pixels
    assert area == pytest.approx(60 * 40, rel=0.08)
    x0, y0 = out.min(axis=0) * scale
    assert (x0, y0) == (pytest.approx(24, abs=1.5), pytest.approx(20, abs=1.5))


def test_mask_outline_keeps_an_l_shape_and_stays_in_its_box():
    imgsz = 128
    mask = np.zeros((imgsz, imgsz), np.uint8)
    mask[16:96, 16:48] = 1
    mask[64:96, 16:96] = 1  # an L: 80x32 + 32x48
    truth = 80 * 32 + 32 * 48
    out = mask_outline(np.float32([1, 0]), _proto_for(mask, 32), np.float32([14, 14, 98, 98]),
                       imgsz, 1.0, (imgsz, imgsz))  # fmt: skip
    assert out is not None and len(out) >= 6  # not squared into its rectangle
    assert shapely.Polygon(out).area == pytest.approx(truth, rel=0.1)
    # a box that cuts the mask also cuts the outline
    cut = mask_outline(np.float32([1, 0]), _proto_for(mask, 32), np.float32([14, 14, 60, 98]),
                       imgsz, 1.0, (imgsz, imgsz))  # fmt: skip
    assert cut is not None and cut[:, 0].max() <= 61


def test_mask_outline_empty_mask_is_none():
    proto = np.full((2, 32, 32), -5, np.float32)
    assert mask_outline(np.float32([1, 0]), proto, np.float32([10, 10, 50, 50]), 128, 1.0,
                        (128, 128)) is None  # fmt: skip


def test_square_outline_only_squares_rectangles():
    rect = np.float32([[0, 0], [10, 0], [10.4, 5], [10, 10], [0, 10]])
    assert len(square_outline(rect)) == 4
    ell = np.float32([[0, 0], [10, 0], [10, 4], [4, 4], [4, 10], [0, 10]])
    np.testing.assert_array_equal(square_outline(ell), ell)


def _cands(outlines, xyxy, scores=None, tile=0):
    n = len(xyxy)
    arr = np.empty(n, object)
    for i, o in enumerate(outlines):
        arr[i] = None if o is None else np.asarray(o, np.float32)
    return Candidates(np.asarray(xyxy, np.float32), np.asarray(scores or [0.9] * n, np.float32),
                      np.zeros(n, np.int64), np.full(n, tile), arr)  # fmt: skip


def test_georeference_uses_the_outline_and_its_area():
    ell = [[10, 10], [60, 10], [60, 30], [30, 30], [30, 60], [10, 60]]
    c = _cands([ell, None], [[10, 10, 60, 60], [70, 70, 80, 80]])
    t = Affine(0.2, 0, 500_000, 0, -0.2, 4_000_000)
    mc = georeference(c, t, (128, 128))
    assert mc.is_outline.tolist() == [True, False]
    assert mc.geometry[0].area == pytest.approx((50 * 20 + 20 * 30) * 0.04)  # not 50x50 box
    assert mc.geometry[1].area == pytest.approx(100 * 0.04)


def test_seam_merge_joins_two_partial_outlines_into_one_footprint():
    """A 40 x 10 m building across the seam of two tiles (0.2 m/px): each tile outlines its part."""
    gsd = 0.2
    t_left = Affine(gsd, 0, 0, 0, -gsd, 100)
    t_right = Affine(gsd, 0, 80, 0, -gsd, 100)  # the right tile starts 80 m east: overlap 22.4 m
    # building from x = 70 m to 110 m, y = 60..70 m (rows 150..200); the left tile ends at 102.4 m
    left = _cands([[[350, 150], [512, 150], [512, 200], [350, 200]]], [[350, 150, 512, 200]])
    right = _cands([[[0, 150], [150, 150], [150, 200], [0, 200]]], [[0, 150, 150, 200]], tile=1)
    mc = type(georeference(left, t_left, (512, 512))).concat(
        [georeference(left, t_left, (512, 512)), georeference(right, t_right, (512, 512))]
    )
    merged, absorbed = merge_candidates(mc, iosa=0.3)
    assert absorbed == 1 and len(merged) == 1 and merged.is_outline[0]
    assert merged.geometry[0].area == pytest.approx(40 * 10, rel=0.02)


def test_seam_merge_prefers_the_whole_view():
    gsd = 0.2
    t = Affine(gsd, 0, 0, 0, -gsd, 100)
    ell = [[100, 100], [200, 100], [200, 140], [140, 140], [140, 200], [100, 200]]
    whole = _cands([ell], [[100, 100, 200, 200]], [0.8])
    partial = _cands([[[100, 100], [200, 100], [200, 200], [100, 200]]], [[100, 100, 200, 200]],
                     [0.9], tile=1)  # fmt: skip
    a = georeference(whole, t, (512, 512))
    b = georeference(partial, t, (512, 512))
    b.clipped[:] = [True, False, False, False]  # that tile's edge cut it
    merged, _ = merge_candidates(type(a).concat([a, b]), iosa=0.3)
    assert len(merged) == 1
    assert merged.geometry[0].area == pytest.approx(a.geometry[0].area)


def test_tile_checkpoint_keeps_outlines(tmp_path):
    from pipelines.nightly.state import TileCheckpoint

    c = _cands([[[0, 0], [5, 0], [5, 5]], None], [[0, 0, 5, 5], [1, 1, 2, 2]])
    with TileCheckpoint(tmp_path / "t.sqlite", {"flight": "F"}) as ck:
        ck.save({3: c, 4: None, 5: Candidates.empty()})
    with TileCheckpoint(tmp_path / "t.sqlite", {"flight": "F"}) as ck:
        back = ck.load()
    assert back[4] is None and len(back[5]) == 0
    np.testing.assert_array_equal(back[3].outline[0], c.outline[0])
    assert back[3].outline[1] is None


def test_touching_parts_become_one_structure_separate_buildings_stay_apart():
    from pipelines.leads.merge import dissolve_touching

    t = Affine(0.2, 0, 0, 0, -0.2, 100)
    # two roof planes of one building (sharing an edge), and a house 3 m away
    c = _cands([[[0, 0], [50, 0], [50, 40], [0, 40]], [[50, 0], [100, 0], [100, 40], [50, 40]],
                [[115, 0], [160, 0], [160, 40], [115, 40]]],
               [[0, 0, 50, 40], [50, 0, 100, 40], [115, 0, 160, 40]], [0.6, 0.8, 0.7])  # fmt: skip
    mc = georeference(c, t, (512, 512))
    out, absorbed = dissolve_touching(mc, gap_m=0.3)
    assert absorbed == 1 and len(out) == 2
    areas = sorted(g.area for g in out.geometry)
    assert areas == pytest.approx([45 * 40 * 0.04, 100 * 40 * 0.04])
    assert out.score.max() == pytest.approx(0.8)
    # boxes (no outline) are never dissolved; gap 0 switches it off
    boxes = georeference(_cands([None, None], [[0, 0, 50, 40], [50, 0, 100, 40]]), t, (512, 512))
    assert dissolve_touching(boxes, 0.3)[1] == 0
    assert dissolve_touching(mc, 0.0)[1] == 0
