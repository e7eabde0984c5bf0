"""Dataset builders: 6-page TIFFs + YOLO labels that match the rendered changes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
import yaml

from models.datasets import fairdrone, synthetic
from models.datasets.fairdrone import FairDroneSpec, build_fairdrone, remove_buildings
from models.datasets.realism import between_dates, dihedral
from models.datasets.synthetic import SyntheticSpec, build_synthetic
from models.datasets.writer import read_chip, read_labels, stack_pair, write_chip, yolo_lines


def test_write_chip_pages_and_labels_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    flight = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    baseline = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    path = write_chip(
        tmp_path, "train", "a", flight, baseline, [(1, 10, 5, 30, 25), (0, 0, 0, 1, 1)]
    )
    ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
    assert ok and len(pages) == 6
    np.testing.assert_array_equal(read_chip(path), np.concatenate([flight, baseline], axis=2))
    boxes = read_labels(tmp_path / "labels" / "train" / "a.txt", 80, 64)
    assert len(boxes) == 1  # the 1-px sliver is dropped
    assert boxes[0][0] == 1
    np.testing.assert_allclose(boxes[0][1:], (10, 5, 30, 25), atol=1e-3)


def test_yolo_lines_clip_to_chip():
    (line,) = yolo_lines([(0, -10, -10, 50, 50)], 100, 100)
    cls, *vals = line.split()
    corners = np.asarray(vals, float).reshape(-1, 2)
    assert cls == "0" and len(corners) == 4  # a box is written as its four corners
    np.testing.assert_allclose(corners.min(axis=0), (0, 0))
    np.testing.assert_allclose(corners.max(axis=0), (0.5, 0.5))


def test_outline_labels_roundtrip_and_clip(tmp_path):
    from models.datasets.writer import read_polygons

    img = np.zeros((100, 100, 3), np.uint8)
    l_shape = np.array([[10, 10], [60, 10], [60, 30], [30, 30], [30, 60], [10, 60]], float)
    beyond = np.array([[80, 80], [130, 80], [130, 130], [80, 130]], float)  # cut by the chip edge
    write_chip(tmp_path, "train", "o", img, img, [(0, l_shape), (1, beyond)])
    (c0, p0), (c1, p1) = read_polygons(tmp_path / "labels" / "train" / "o.txt", 100, 100)
    from shapely import Polygon

    assert (c0, c1) == (0, 1)
    assert Polygon(p0).area == pytest.approx(Polygon(l_shape).area, rel=1e-3)  # not its box
    assert Polygon(p1).area == pytest.approx(20 * 20, rel=1e-3)
    boxes = read_labels(tmp_path / "labels" / "train" / "o.txt", 100, 100)
    np.testing.assert_allclose(boxes[0][1:], (10, 10, 60, 60), atol=1e-3)


def test_stack_pair_rejects_mismatched_grids():
    with pytest.raises(ValueError, match="must both be"):
        stack_pair(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="split 'test'"):
        write_chip("/nonexistent", "test", "x", np.zeros((4, 4, 3), np.uint8),
                   np.zeros((4, 4, 3), np.uint8), [])  # fmt: skip


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_dihedral_moves_boxes_with_pixels(k, flip):
    img = np.zeros((40, 60, 3), np.uint8)
    img[5:15, 30:50] = 255
    f, b, boxes = dihedral(img, img.copy(), [(0, 30, 5, 50, 15)], k, flip)
    ys, xs = np.nonzero(f[..., 0])
    assert boxes[0][1:] == pytest.approx((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    np.testing.assert_array_equal(f, b)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_dihedral_moves_outlines_with_pixels(k, flip):
    img = np.zeros((40, 60, 3), np.uint8)
    img[5:25, 30:50] = 255
    img[15:25, 40:50] = 0  # an L-shaped roof; its outline in pixel-corner coordinates:
    ell = np.array([[30, 5], [50, 5], [50, 15], [40, 15], [40, 25], [30, 25]], float)
    f, _, (label,) = dihedral(img, img.copy(), [(0, ell)], k, flip)
    pts = label[1]
    inside = np.zeros(f.shape[:2], bool)
    ys, xs = np.mgrid[: f.shape[0], : f.shape[1]]
    path = __import__("matplotlib.path", fromlist=["Path"]).Path(pts)
    inside = path.contains_points(np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5]))
    np.testing.assert_array_equal(inside.reshape(f.shape[:2]), f[..., 0] > 0)


def test_between_dates_keeps_shape_and_changes_baseline():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    f, b = between_dates(img, img.copy(), rng, 0.2)
    assert f.shape == b.shape == img.shape and f.dtype == np.uint8
    assert np.abs(b.astype(int) - img).mean() > 1


@dataclass(frozen=True)
class _Change:
    kind: str
    cls: str
    expected: str
    polygon: np.ndarray


@dataclass(frozen=True)
class _Pair:
    after: np.ndarray
    before: np.ndarray
    valid_after: np.ndarray
    valid_before: np.ndarray
    changes: list = field(default_factory=list)


def _stand_in_render(seed: int, size_px: int, gsd: float, style=None) -> _Pair:
    """A stand-in for geo.synthetic.scene.render_pair: one lead, one permitted, one nuisance."""
    before = np.full((size_px, size_px, 3), 90, np.uint8)
    after = before.copy()
    s = size_px
    lead = np.array([[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]]) * s
    permit = np.array([[0.6, 0.6], [0.8, 0.6], [0.8, 0.9], [0.6, 0.9]]) * s
    car = np.array([[0.5, 0.1], [0.55, 0.1], [0.55, 0.12], [0.5, 0.12]]) * s
    for poly in (lead, permit):
        cv2.fillPoly(after, [poly.astype(np.int32)], (220, 60, 60))
    valid = np.ones((s, s), bool)
    changes = [_Change("new_building", "new_building", "lead", lead),
               _Change("permitted_building", "new_building", "permitted", permit),
               _Change("moved_car", "", "none", car)]  # fmt: skip
    return _Pair(after, before, valid, valid.copy(), changes)


def test_synthetic_labels_match_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "_geo_render", lambda: _stand_in_render)
    spec = SyntheticSpec(n_train=3, n_val=1, size_px=96, renderer="geo", no_change_fraction=0.0)
    data_yaml = build_synthetic(tmp_path, spec)
    data = yaml.safe_load(data_yaml.read_text())
    assert data["channels"] == 6 and data["names"] == {0: "new_building", 1: "construction"}
    for lbl in sorted((tmp_path / "labels" / "train").glob("*.txt")):
        boxes = read_labels(lbl, 96, 96)
        assert sorted(b[0] for b in boxes) == [0, 0]  # lead + permitted; nuisance has no box
        areas = sorted((b[3] - b[1]) * (b[4] - b[2]) for b in boxes)
        assert areas == pytest.approx([(0.2 * 96) ** 2, 0.2 * 0.3 * 96**2], rel=0.05)
        chip = read_chip(tmp_path / "images" / "train" / (lbl.stem + ".tif"))
        _, x0, y0, x1, y1 = boxes[0]
        inside = chip[int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2]
        assert inside[..., 0].mean() > inside[..., 3].mean() + 40  # red roof in flight only


def test_synthetic_no_change_chips_have_no_boxes(tmp_path):
    spec = SyntheticSpec(
        n_train=2, n_val=0, size_px=64, renderer="procedural", no_change_fraction=1.0
    )
    build_synthetic(tmp_path, spec)
    labels = list((tmp_path / "labels" / "train").glob("*.txt"))
    assert len(labels) == 2 and all(p.read_text() == "" for p in labels)


def test_geo_no_change_chips_are_rendered_scenes_without_boxes(tmp_path, monkeypatch):
    from geo.synthetic import render_pair

    styles = []

    def spy(**kw):
        styles.append(kw.get("style"))
        return render_pair(**kw)

    monkeypatch.setattr(synthetic, "_geo_render", lambda: spy)
    spec = SyntheticSpec(n_train=3, n_val=0, size_px=96, renderer="geo", no_change_fraction=1.0)
    build_synthetic(tmp_path, spec)
    # another date of the same scene (season, sun, shadows, cars), not a copy of the baseline
    assert styles == [{"changes": False}] * 3
    labels = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    assert len(labels) == 3 and all(lbl.read_text() == "" for lbl in labels)


def test_synthetic_falls_back_when_geo_renderer_breaks(tmp_path, monkeypatch, caplog):
    def broken(**_):
        raise RuntimeError("boom")

    monkeypatch.setattr(synthetic, "_geo_render", lambda: broken)
    with caplog.at_level("WARNING", logger="models.datasets.synthetic"):
        build_synthetic(tmp_path, SyntheticSpec(n_train=3, n_val=0, size_px=64, renderer="mixed"))
    assert len(list((tmp_path / "images" / "train").glob("*.tif"))) == 3
    assert caplog.text.count("geo renderer failed") == 2  # chips 1 and 2 use geo, chip 0 not
    with pytest.raises(RuntimeError, match="boom"):
        build_synthetic(tmp_path, SyntheticSpec(n_train=1, n_val=0, size_px=64, renderer="geo"))


def _prepared(tmp_path):
    """A prepared fair-drone folder: textured ground with four bright square buildings."""
    rng = np.random.default_rng(3)
    img = rng.integers(60, 110, (300, 300, 3), dtype=np.uint8)
    ids = np.zeros((300, 300), np.uint16)
    for i, (y, x) in enumerate([(40, 40), (40, 200), (200, 40), (200, 200)], start=1):
        img[y : y + 50, x : x + 50] = (230, 230, 235)
        ids[y : y + 50, x : x + 50] = i
    prep = tmp_path / "prep"
    prep.mkdir()
    for name in ("area9_cluster01_z21", "area2_cluster01_z21"):
        cv2.imwrite(str(prep / f"{name}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(prep / f"{name}_ids.png"), ids)
        (prep / f"{name}.json").write_text(json.dumps({"gsd_m": 0.1}))
    return prep, img, ids


def test_remove_buildings_only_touches_the_removed_footprint(tmp_path):
    _, img, ids = _prepared(tmp_path)
    out = remove_buildings(img, ids, [1], np.random.default_rng(0), dilate_px=3)
    changed = np.abs(out.astype(int) - img).max(axis=2) > 0
    assert changed[45:85, 45:85].all()
    assert not changed[ids > 1].any()
    assert out[45:85, 45:85].mean() < 150  # the bright roof is gone


def test_fairdrone_boxes_are_removed_buildings(tmp_path):
    prep, _, _ = _prepared(tmp_path)
    spec = FairDroneSpec(n_train=4, n_val=1, size_px=64, no_change_fraction=0.0,
                         gsd_range=(0.1, 0.1), estate_fraction=0.0, paste_fraction=0.0)  # fmt: skip
    build_fairdrone(prep, tmp_path / "ds", spec)
    n = 0
    for lbl in (tmp_path / "ds" / "labels" / "train").glob("*.txt"):
        chip = read_chip(tmp_path / "ds" / "images" / "train" / (lbl.stem + ".tif"))
        for _, x0, y0, x1, y1 in read_labels(lbl, 64, 64):
            patch = chip[int(y0) + 1 : int(y1) - 1, int(x0) + 1 : int(x1) - 1]
            assert patch[..., :3].mean() > patch[..., 3:].mean() + 30  # roof in flight, gone before
            n += 1
    assert n >= 1
    assert fairdrone.VAL_MOSAICS[0] == "area2_cluster01_z21"


@pytest.mark.parametrize("mode", ["estate", "paste"])
def test_fairdrone_new_buildings_are_outlined_and_absent_before(tmp_path, mode):
    """Estates (a block of bare land before) and pasted buildings: each label is a roof's outline,
    bright in the flight and gone from the baseline."""
    from shapely import Polygon

    from models.datasets.writer import read_polygons

    prep, _, _ = _prepared(tmp_path)
    fractions = {"estate_fraction": 1.0, "paste_fraction": 0.0}
    if mode == "paste":
        fractions = {"estate_fraction": 0.0, "paste_fraction": 1.0}
    spec = FairDroneSpec(n_train=6, n_val=0, size_px=96, no_change_fraction=0.0,
                         gsd_range=(0.1, 0.1), seed=4, **fractions)  # fmt: skip
    build_fairdrone(prep, tmp_path / "ds", spec)
    n = 0
    for lbl in (tmp_path / "ds" / "labels" / "train").glob("*.txt"):
        chip = read_chip(tmp_path / "ds" / "images" / "train" / (lbl.stem + ".tif"))
        for _, pts in read_polygons(lbl, 96, 96):
            mask = np.zeros((96, 96), np.uint8)
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
            inner = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
            if inner.sum() < 20:
                continue
            assert chip[..., :3][inner].mean() > chip[..., 3:][inner].mean() + 30
            # the outline is the roof, not a box around shadow and ground
            assert chip[..., :3][inner].mean() > 150
            assert Polygon(pts).area > 0
            n += 1
    assert n >= 2


def test_bare_land_is_plain_ground():
    land = fairdrone.bare_land((200, 300), np.random.default_rng(1), 0.1)
    assert land.shape == (200, 300, 3) and land.dtype == np.uint8
    grey = land.mean(axis=2)
    assert 40 < grey.mean() < 220 and grey.std() < 40  # texture, not a scene with roofs


def test_fairdrone_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="no prepared mosaics"):
        build_fairdrone(tmp_path, tmp_path / "ds", FairDroneSpec())


def test_fairdrone_prepare_rasterises_outlines(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from models.datasets.fairdrone_prepare import prepare_fairdrone

    area = tmp_path / "src" / "area7"
    area.mkdir(parents=True)
    x0, y0 = 3627854.0, 38830.0  # EPSG:3857 metres near the equator
    with rasterio.open(area / "a_z21.tif", "w", driver="GTiff", width=200, height=200, count=3,
                       dtype="uint8", crs="EPSG:3857",
                       transform=from_origin(x0, y0, 0.05, 0.05)) as dst:  # fmt: skip
        dst.write(np.full((3, 200, 200), 120, np.uint8))
    from pyproj import Transformer

    to_ll = Transformer.from_crs(3857, 4326, always_xy=True).transform
    feats = []
    for dx in (1.0, 6.0):
        ring = [
            to_ll(x0 + dx + a, y0 - 1.0 - b) for a, b in ((0, 0), (3, 0), (3, 3), (0, 3), (0, 0))
        ]
        feats.append({"type": "Feature", "properties": {},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})  # fmt: skip
    (area / "buildings.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": feats})
    )
    (meta,) = prepare_fairdrone(tmp_path / "src", tmp_path / "out", gsd=0.1)
    ids = cv2.imread(str(tmp_path / "out" / "a_z21_ids.png"), cv2.IMREAD_UNCHANGED)
    assert meta["buildings"] == 2 and ids.shape == (100, 100)
    assert (ids == 1).sum() == pytest.approx(30 * 30, rel=0.15)
    with pytest.raises(OSError, match="no area"):
        prepare_fairdrone(tmp_path / "out", tmp_path / "x")


def test_labelled_pair_boxes_land_on_the_polygon(tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    from models.datasets.labelled import build_labelled
    from tests._geo_fixtures import GK, write_pair

    flight, baseline, _, wt = write_pair(tmp_path, size=600)
    x0, y0 = wt @ (100, 100)  # the flight's top-left corner (0.2 m grid)
    poly = box(x0 + 20, y0 - 30, x0 + 30, y0 - 22)  # pixels 100..150 x 110..150 of the flight
    labels = tmp_path / "labels.gpkg"
    gpd.GeoDataFrame({"class": ["construction"]}, geometry=[poly], crs=GK).to_file(labels)
    build_labelled(flight, baseline, labels, tmp_path / "ds", size=256, overlap=0,
                   negative_fraction=0.0)  # fmt: skip
    label_files = sorted((tmp_path / "ds" / "labels" / "train").glob("*.txt"))
    assert len(label_files) == 1  # only the tile holding the polygon; no negatives kept
    (b,) = read_labels(label_files[0], 256, 256)
    assert b[0] == 1
    assert b[1:] == pytest.approx((100, 110, 150, 150), abs=2)
    chip = read_chip(tmp_path / "ds" / "images" / "train" / (label_files[0].stem + ".tif"))
    assert chip.shape == (256, 256, 6)
    gpd.GeoDataFrame({"class": ["tree"]}, geometry=[poly], crs=GK).to_file(labels)
    with pytest.raises(ValueError, match="'tree'"):
        build_labelled(flight, baseline, labels, tmp_path / "ds2", size=256)


def _ledger_labels(path, wt, crs):
    """A ledger export (layer `labels`): one confirmed, one rejected, one of another flight."""
    import geopandas as gpd
    from shapely.geometry import box

    x0, y0 = wt @ (100, 100)  # the flight's top-left corner (0.2 m grid)
    geoms = [
        box(x0 + 20, y0 - 30, x0 + 30, y0 - 22),  # confirmed: pixels 100..150 x 110..150
        box(x0 + 80, y0 - 90, x0 + 88, y0 - 82),  # rejected: pixels 400..440 x 410..450
        box(x0 + 80, y0 - 30, x0 + 88, y0 - 22),  # confirmed, but seen on another flight
    ]
    gpd.GeoDataFrame(
        {"case_id": ["BW-1", "BW-2", "BW-3"], "label": ["confirmed", "rejected", "confirmed"],
         "class": ["new_building", "construction", "new_building"],
         "flight_id": ["F1", "F1", "F2"]},
        geometry=geoms, crs=crs,
    ).to_file(path, layer="labels", driver="GPKG")  # fmt: skip
    return path


def test_ledger_labels_confirmed_boxes_rejected_hard_negatives(tmp_path):
    pytest.importorskip("geopandas")
    from models.datasets.labelled import build_labelled
    from tests._geo_fixtures import GK, write_pair

    flight, baseline, _, wt = write_pair(tmp_path, size=600)
    labels = _ledger_labels(tmp_path / "labels.gpkg", wt, GK)
    build_labelled(flight, baseline, labels, tmp_path / "ds", layer="labels", flight_id="F1",
                   size=256, overlap=0, negative_fraction=0.0)  # fmt: skip
    found = {}
    for f in sorted((tmp_path / "ds" / "labels" / "train").glob("*.txt")):
        found[int(f.stem.rsplit("_", 1)[1])] = read_labels(f, 256, 256)
    # 256-px tiles without overlap: tile 0 holds the confirmed box, tile 4 (row 1, col 1) the
    # rejected area; the other flight's confirmed case (tile 1) is not used
    assert sorted(found) == [0, 4]
    (b,) = found[0]
    assert b[0] == 0 and b[1:] == pytest.approx((100, 110, 150, 150), abs=2)
    assert found[4] == []  # a hard negative: the chip is kept, with no box
    build_labelled(flight, baseline, labels, tmp_path / "all", layer="labels", size=256,
                   overlap=0, negative_fraction=0.0)  # fmt: skip
    assert len(list((tmp_path / "all" / "labels" / "train").glob("*.txt"))) == 3


def test_ledger_labels_bad_values_are_clear_errors(tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    from models.datasets.labelled import build_labelled, split_labels

    bad = gpd.GeoDataFrame({"label": ["maybe"]}, geometry=[box(0, 0, 1, 1)], crs=4544)
    with pytest.raises(ValueError, match=r"column 'label' has values \['maybe'\]; use confirmed"):
        split_labels(bad, "x.gpkg")
    with pytest.raises(ValueError, match="flight_id 'F1' given but the layer has no 'flight_id'"):
        split_labels(bad, "x.gpkg", flight_id="F1")
    bad.to_file(tmp_path / "l.gpkg", layer="labels")
    with pytest.raises(ValueError, match=r"l.gpkg layer 'nope': cannot read the labels"):
        build_labelled(tmp_path / "f.tif", tmp_path / "b.tif", tmp_path / "l.gpkg", tmp_path,
                       layer="nope")  # fmt: skip


def test_other_sun_darkens_beside_buildings_never_on_them():
    img = np.full((100, 100, 3), 180, np.uint8)
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    out = fairdrone.other_sun(img, mask, np.random.default_rng(2), 0.1)
    darker = out.mean(axis=2) < 150
    assert darker.sum() > 50  # a shadow was cast
    assert not darker[mask].any()  # the roof itself is untouched
    ys, xs = np.nonzero(darker)
    assert np.hypot(ys.mean() - 50, xs.mean() - 50) > 3  # beside the building, on one side
