"""Object-level evaluation on hand-made geometries with known TP/FP/FN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from models.evaluate import average_precision, evaluate_objects, iou_matrix, write_report


def test_iou_matrix_boxes_and_polygons():
    a = np.array([[0, 0, 10, 10]], float)
    b = [box(5, 0, 15, 10), box(100, 100, 101, 101)]
    iou = iou_matrix(a, b)
    assert iou.shape == (1, 2)
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == 0
    assert iou_matrix([], b).shape == (0, 2)


def test_known_tp_fp_fn_per_class():
    truth = [box(0, 0, 10, 10), box(20, 0, 30, 10), Polygon([(50, 50), (60, 50), (55, 60)])]
    truth_cls = ["new_building", "new_building", "construction"]
    pred = [
        box(1, 1, 10, 10),  # TP new_building
        box(40, 40, 45, 45),  # FP new_building
        Polygon([(50, 50), (60, 50), (55, 59)]),  # TP construction
        box(20, 0, 30, 10),
    ]  # right place, wrong class: FP construction, FN new_building
    pred_cls = [0, 0, 1, 1]
    r = evaluate_objects(pred, pred_cls, [0.9, 0.8, 0.7, 0.6], truth, truth_cls, area_km2=0.5)
    nb, cons = r["per_class"]["new_building"], r["per_class"]["construction"]
    assert (nb["tp"], nb["fp"], nb["fn"]) == (1, 1, 1)
    assert (cons["tp"], cons["fp"], cons["fn"]) == (1, 1, 0)
    assert nb["f1"] == pytest.approx(0.5)
    assert r["overall"]["tp"] == 2 and r["overall"]["fp"] == 2 and r["overall"]["fn"] == 1
    assert r["class_agnostic"]["tp"] == 3 and r["class_agnostic"]["fp"] == 1
    assert r["false_detections_per_km2"] == pytest.approx(2.0)


def test_iou_threshold_is_025():
    truth = [box(0, 0, 10, 10)]
    half = [box(0, 0, 10, 3)]  # IoU 0.3 -> match at 0.25
    tiny = [box(0, 0, 10, 2)]  # IoU 0.2 -> no match
    assert evaluate_objects(half, [0], [1.0], truth, [0])["overall"]["tp"] == 1
    assert evaluate_objects(tiny, [0], [1.0], truth, [0])["overall"]["tp"] == 0


def test_each_truth_matches_once_and_conf_filters():
    truth = [box(0, 0, 10, 10)]
    pred = [box(0, 0, 10, 10), box(0, 0, 10, 9)]
    r = evaluate_objects(pred, [0, 0], [0.9, 0.95], truth, [0])
    assert (r["overall"]["tp"], r["overall"]["fp"]) == (1, 1)
    r = evaluate_objects(pred, [0, 0], [0.9, 0.2], truth, [0], conf=0.5)
    assert (r["overall"]["tp"], r["overall"]["fp"], r["n_pred"]) == (1, 0, 1)


def test_map50_perfect_and_ranked():
    truth = [box(0, 0, 10, 10), box(20, 0, 30, 10)]
    perfect = evaluate_objects(truth, [0, 0], [0.9, 0.8], truth, [0, 0])
    assert perfect["map50"] == pytest.approx(1.0)
    assert perfect["per_class"]["construction"]["ap50"] is None  # no truth of that class
    # a high-scoring false positive ranked first: precision envelope 2/3 at every recall
    assert average_precision(np.array([0.0, 1.0, 1.0]), 2) == pytest.approx(2 / 3)
    assert average_precision(np.array([1.0, 0.0]), 2) == pytest.approx(0.5)
    assert average_precision(np.array([]), 3) == 0.0


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="lengths differ"):
        evaluate_objects([box(0, 0, 1, 1)], [0, 0], [0.5], [], [])
    with pytest.raises(ValueError, match="class 'tree'"):
        evaluate_objects([box(0, 0, 1, 1)], ["tree"], [0.5], [], [])
    path = write_report({"a": 1}, tmp_path / "r" / "report.json")
    assert json.loads(path.read_text()) == {"a": 1}


def test_tile_origins_cover_and_label_boxes():
    from models.evaluate_pairs import label_boxes, tile_origins

    assert tile_origins(100, 512, 64) == [0]
    starts = tile_origins(1300, 512, 64)
    assert starts[0] == 0 and starts[-1] + 512 == 1300
    assert all(b - a <= 448 for a, b in zip(starts, starts[1:], strict=False))
    mask = np.zeros((50, 50), np.uint8)
    mask[5:15, 10:30] = 255
    mask[40:42, 40:42] = 255  # 4 px: below min area
    np.testing.assert_array_equal(label_boxes(mask, min_area_px=16), [[10, 5, 30, 15]])
