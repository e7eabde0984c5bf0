"""Leads end to end on the synthetic district (geo.synthetic) with the real pair reader.

A *truth oracle* (boxes from truth.gpkg, projected into each tile it is handed) exercises the
whole leads stage — tiling, seams, filters, permits, joins, evidence — on realistic layers;
the shipped detector's own F1 is checked when its weights exist.
"""

from __future__ import annotations

from collections import deque

import geopandas as gpd
import numpy as np
import pytest
import shapely

import pipelines.detect as detect_mod
from models.candidates import Candidates
from models.classes import CLASS_IDS
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads

pytest.importorskip("geo.tiles", reason="geo.tiles not available yet")
district_mod = pytest.importorskip(
    "geo.synthetic.district", reason="synthetic district not available yet"
)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    return district_mod.generate_district(
        tmp_path_factory.mktemp("district"), seed=3, size_m=300, gsd=0.1
    )


class _RecordingPair:
    """Wraps a real pair; remembers each yielded tile's transform for the oracle."""

    def __init__(self, pair, seen: deque):
        self._pair, self._seen = pair, seen

    def __getattr__(self, name):
        return getattr(self._pair, name)

    def __enter__(self):
        self._pair.__enter__()
        return self

    def __exit__(self, *exc):
        return self._pair.__exit__(*exc)

    def tiles(self, **kwargs):
        for tp in self._pair.tiles(**kwargs):
            self._seen.append((tp.transform, tp.flight.shape[:2]))
            yield tp


def _truth_oracle(truth: gpd.GeoDataFrame, seen: deque):
    real = truth[truth["class"] != ""]
    geoms, classes = real.geometry.to_numpy(), real["class"].map(CLASS_IDS).to_numpy()

    def predict(images: list[np.ndarray]) -> list[Candidates]:
        out = []
        for _ in images:
            transform, (h, w) = seen.popleft()
            inv = ~transform
            boxes, cls = [], []
            for g, c in zip(geoms, classes, strict=True):
                xs, ys = np.asarray(
                    g.exterior.coords if g.geom_type == "Polygon" else g.envelope.exterior.coords
                ).T
                cols, rows = inv @ (xs, ys)
                x0, x1 = np.clip([cols.min(), cols.max()], 0, w)
                y0, y1 = np.clip([rows.min(), rows.max()], 0, h)
                if x1 - x0 > 1 and y1 - y0 > 1:
                    boxes.append([x0, y0, x1, y1])
                    cls.append(c)
            out.append(
                Candidates(
                    np.array(boxes, np.float32).reshape(-1, 4),
                    np.full(len(boxes), 0.9, np.float32),
                    np.array(cls, np.int64),
                )
            )
        return out

    return predict


def test_truth_oracle_leads_match_truth_units_and_permits(district, tmp_path, monkeypatch):
    from geo.tiles import open_pair

    seen: deque = deque()
    monkeypatch.setattr(
        detect_mod, "_open_pair", lambda f, b, **kw: _RecordingPair(open_pair(f, b, **kw), seen)
    )
    truth = gpd.read_file(district.truth, layer="changes")
    cfg = BuildwatchConfig.model_validate({"tiling": {"gsd": 0.2, "size": 256, "overlap": 32}})
    res = detect_leads(
        district.flight,
        district.baseline,
        predict=_truth_oracle(truth, seen),
        config=cfg,
        units=district.units,
        evidence_dir=tmp_path / "evidence",
    )
    leads = res.leads
    assert res.crs == truth.crs
    expected = truth[truth["expected"] != "none"]
    assert len(leads) == len(expected)
    for _, t in expected.iterrows():
        hit = leads[leads.intersects(t.geometry.representative_point())]
        assert len(hit) == 1, f"truth change {t.change_id} ({t.kind}) -> {len(hit)} leads"
        lead = hit.iloc[0]
        assert lead["status"] == ("permitted" if t.expected == "permitted" else "lead")
        assert lead["class"] == t["class"]
        assert lead["unit_code"] == (t.unit_code or "")
        assert lead["township_code"] and lead["district_code"] and lead["responsible_party"]
        envelope = t.geometry.envelope
        iou = lead.geometry.intersection(envelope).area / lead.geometry.union(envelope).area
        assert iou > 0.8
        assert (tmp_path / lead["evidence_after"]).is_file()
    assert res.n_tiles >= 4


def _shipped_detector():
    try:
        from models.detector import ChangeDetector
    except ImportError:
        return None
    try:
        return ChangeDetector.load(weights=None, device="cpu")
    except Exception:
        return None


@pytest.mark.slow
def test_shipped_detector_finds_the_district_changes(district):
    det = _shipped_detector()
    if det is None:
        pytest.skip("no shipped weights yet")
    truth = gpd.read_file(district.truth, layer="changes")
    res = detect_leads(district.flight, district.baseline, predict=det, config=BuildwatchConfig())
    leads = res.leads[res.leads["status"] == "lead"]
    want = truth[truth["expected"] == "lead"].geometry.to_numpy()
    got = leads.geometry.to_numpy()
    matched_truth = sum(any(_iou(t, g) >= 0.25 for g in got) for t in want)
    matched_leads = sum(any(_iou(t, g) >= 0.25 for t in want) for g in got)
    recall = matched_truth / max(1, len(want))
    precision = matched_leads / max(1, len(got))
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    # the outlining detector finds every change here but reports a few parts and nuisances too:
    # pooled over the held-out test districts it measures F1 0.94 (card), below the 0.95 target
    assert recall >= 0.9, f"object recall {recall:.2f} (P {precision:.2f})"
    assert f1 >= 0.8, f"object F1 {f1:.2f} (P {precision:.2f}, R {recall:.2f})"


def _iou(a: shapely.Geometry, b: shapely.Geometry) -> float:
    return a.intersection(b).area / max(1e-9, a.union(b).area)


def test_district_units_read_in_a_foreign_crs(district, tmp_path):
    """The district's units reprojected to EPSG:4490 still join the same."""
    from geo.joins import join_units
    from geo.units import read_units

    path = tmp_path / "units4490.gpkg"
    import pyogrio

    for name, _ in pyogrio.list_layers(district.units):
        gpd.read_file(district.units, layer=name).to_crs("EPSG:4490").to_file(
            path, layer=name, driver="GPKG"
        )
    truth = gpd.read_file(district.truth, layer="changes")
    units = read_units(path, truth.crs)
    joined = join_units(truth.geometry.to_numpy(), units)
    with_unit = truth["unit_code"].fillna("") != ""
    assert (
        joined.loc[with_unit.to_numpy(), "unit_code"].to_numpy()
        == truth.loc[with_unit, "unit_code"].to_numpy()
    ).all()
