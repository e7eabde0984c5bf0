"""Never silent, link by link: a pair that could not be verified, a pair compared only in part and
a pair where nothing could be compared — from detect up to the run summary, the leads.gpkg
layers, the nightly summary and health file, the daily report and the map legend.

Generated, seeded textured rasters (tests/_geo_fixtures.py) through the real ``geo.tiles``."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.crs import CRS

from geo.errors import CoregistrationError
from models.candidates import Candidates
from pipelines.cases.reports import Report
from pipelines.config import BuildwatchConfig, load_config
from pipelines.detect import detect_leads
from pipelines.maps.folium_map import build_map
from pipelines.nightly.job import FlightOutputs
from pipelines.nightly.runner import run_nightly
from pipelines.nightly.state import read_health
from pipelines.nightly.testing import FakeBackend
from pipelines.run import area_table, read_area_layers, run_flight
from tests._geo_fixtures import make_world, write_epoch, write_pair
from tests._nightly_fixtures import drop, make_site


def box_per_tile(images: list[np.ndarray]) -> list[Candidates]:
    """A stand-in model: one 40 px 'new building' in the middle of every tile."""
    out = []
    for img in images:
        h, w = img.shape[:2]
        xyxy = np.array([[w / 2 - 20, h / 2 - 20, w / 2 + 20, h / 2 + 20]], np.float32)
        out.append(Candidates(xyxy, np.array([0.9], np.float32), np.array([0], np.int64)))
    return out


def _config(**coreg: object) -> BuildwatchConfig:
    return BuildwatchConfig.model_validate(
        {"tiling": {"gsd": 0.2, "size": 256, "overlap": 32, "prefetch": 0}, "coreg": coreg}
    )


def _east_misregistered(tmp_path: Path) -> tuple[Path, Path]:
    f, b, _, _ = write_pair(tmp_path, size=1000)
    with rasterio.open(b, "r+") as ds:  # the east third moved by 6 px: a local ortho error
        data = ds.read()
        w = ds.width
        data[:, :, 2 * w // 3 + 6 :] = data[:, :, 2 * w // 3 : -6]
        ds.write(data)
    return f, b


def test_an_unverified_pair_is_compared_and_every_lead_says_so(tmp_path: Path) -> None:
    f, _, _, _ = write_pair(tmp_path, size=600)
    world, wt = make_world(800, seed=99)  # everything changed: nothing to correlate
    other = write_epoch(tmp_path / "other.tif", world, wt, crs=CRS.from_epsg(3857), gsd=0.3)
    result = detect_leads(f, other, predict=box_per_tile, config=_config())
    assert result.registration["status"] == "unverified"
    assert len(result.leads) > 0 and set(result.leads["coreg_status"]) == {"unverified"}
    cov = result.coverage_m2
    assert cov["compared"] == pytest.approx(cov["common"]) and cov["not_comparable"] == 0


def test_a_partly_misregistered_pair_reports_the_area_not_compared(tmp_path: Path) -> None:
    f, b = _east_misregistered(tmp_path)
    out = run_flight(
        f, config=_config(local=False), baseline=b, out_dir=tmp_path / "out", predict=box_per_tile
    )
    res = out.result
    assert res.registration["status"] == "verified" and res.registration["decision"] == "partial"
    assert set(res.leads["coreg_status"]) == {"verified"}
    layers = [n for n, _ in pyogrio.list_layers(out.gpkg)]
    assert {"coverage", "not_comparable", "unknown"} <= set(layers)
    nc = gpd.read_file(out.gpkg, layer="not_comparable")
    assert nc.geometry.iloc[0].area > 1000 and nc["coreg_status"].iloc[0] == "verified"
    assert nc["area_m2"].iloc[0] == pytest.approx(res.coverage_m2["not_comparable"], rel=1e-6)
    cov = gpd.read_file(out.gpkg, layer="coverage").geometry.iloc[0]
    assert cov.intersection(nc.geometry.iloc[0]).area < 1.0  # compared and not comparable apart
    # no lead inside the area that was not compared
    assert not any(nc.geometry.iloc[0].contains(g.centroid) for g in res.leads.geometry)
    summary = json.loads(out.summary_json.read_text(encoding="utf-8"))
    assert summary["coverage_m2"]["compared"] < summary["coverage_m2"]["common"]
    assert summary["registration"]["not_comparable_m2"] > 0
    assert summary["registration"]["gate"]["max_residual_px"] == 1.0
    text = out.summary_txt.read_text(encoding="utf-8")
    assert "not comparable 无法比对" in text and "verified (partial)" in text
    # the district map and the daily report say so too
    areas = read_area_layers([out.gpkg])
    table = area_table(areas)
    assert table["not_comparable_km2"].iloc[0] == pytest.approx(
        res.coverage_m2["not_comparable"] / 1e6, abs=1e-6
    )
    assert "部分区域未比对" in _report().with_coverage(table).summary


def test_nothing_compared_is_exit_4_with_one_line_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.detect as detect_mod
    from pipelines.cli import main

    f, b, _, _ = write_pair(tmp_path, shift=(1.0, 0.5), size=600)
    with pytest.raises(CoregistrationError, match=r"flight\.tif vs .*baseline\.tif: nothing"):
        detect_leads(
            f,
            b,
            predict=box_per_tile,
            config=_config(max_residual_px=0.001, max_window_residual_px=0.001),
        )
    monkeypatch.setattr(detect_mod, "load_detector", lambda config: box_per_tile)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("coreg: {max_residual_px: 0.001, max_window_residual_px: 0.001}\n")
    out = tmp_path / "o" / "leads.gpkg"
    argv = ["detect", "--baseline", str(b), "--flight", str(f), "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--config", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 4
    assert len(err) == 1 and "nothing compared" in err[0] and "residual" in err[0]
    assert "flight.tif" in err[0] and "baseline.tif" in err[0]
    assert not out.exists()


def _in_page(text: str, page: str) -> bool:
    """``text`` in an HTML page as written, or as JSON-escaped inside its scripts."""
    return text in page or json.dumps(text)[1:-1] in page


def _report() -> Report:
    day = date(2024, 5, 1)
    table = pd.DataFrame({"level": ["district"], "name": ["松口区"], "n_cases": [0]})
    return Report("daily", "in_progress", day, day, table, "日报\n")


def test_daily_report_and_map_say_when_nothing_was_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poly = shapely.box(500_000, 3_270_000, 500_100, 3_270_100)
    areas = gpd.GeoDataFrame(
        {
            "flight_id": ["F1", "F1", "F1"],
            "baseline_id": ["B"] * 3,
            "coreg_status": ["failed"] * 3,
            "kind": ["coverage", "not_comparable", "unknown"],
            "area_m2": [0.0, poly.area, 0.0],
        },
        geometry=[shapely.MultiPolygon(), poly, shapely.MultiPolygon()],
        crs="EPSG:4544",
    ).to_crs("EPSG:4326")
    report = _report().with_coverage(area_table(areas))
    assert "NOTHING COMPARED" in report.summary and "航拍 F1" in report.summary
    from pipelines.cases.reports import write_report

    written = write_report(report, tmp_path / "daily.xlsx")
    sheets = pd.read_excel(written[0], sheet_name=None)
    assert "比对范围" in sheets and sheets["比对范围"]["已比对(平方公里)"].iloc[0] == 0
    units = gpd.GeoDataFrame(
        {
            "unit_code": ["U1"],
            "unit_name": ["东村"],
            "township_code": ["T1"],
            "township_name": ["东镇"],
            "priority": ["low"],
            "rank_district": [1],
        },
        geometry=[poly.buffer(50)],
        crs="EPSG:4544",
    )
    cases = gpd.GeoDataFrame({"case_id": [], "state": []}, geometry=[], crs="EPSG:4544")
    import pipelines.maps.folium_map as fm

    monkeypatch.setattr(fm, "_unit_popup", lambda u: "popup")  # needs every ranked column
    page = build_map(units, cases, areas=areas).get_root().render()
    assert "nothing compared" in page
    assert _in_page("未比对区域", page) and _in_page("无法比对（配准不合格）：F1", page)
    # an unverified flight is compared, and the map says it was used as georeferenced
    compared = (
        areas.assign(
            coreg_status="unverified",
            area_m2=[poly.area, 0.0, 0.0],
            geometry=[poly, shapely.MultiPolygon(), shapely.MultiPolygon()],
        )
        .set_crs("EPSG:4544", allow_override=True)
        .to_crs("EPSG:4326")
    )
    page = build_map(units, cases, areas=compared).get_root().render()
    assert "nothing compared" not in page and "unverified" in page
    assert _in_page("配准未验证（按原始地理参考比对）：F1", page)


class _PartialBackend(FakeBackend):
    """The fake backend, but every flight had part of its common area not comparable."""

    def finish_flight(self, pair, candidates, out_dir):  # type: ignore[no-untyped-def]
        outputs = super().finish_flight(pair, candidates, out_dir)
        return dataclasses.replace(
            outputs, compared_m2=9000.0, not_comparable_m2=1000.0, coreg_status="verified"
        )


class _NothingComparedBackend(FakeBackend):
    def finish_flight(self, pair, candidates, out_dir):  # type: ignore[no-untyped-def]
        raise CoregistrationError(f"{pair.flight} vs {pair.baseline}: nothing compared — x")


def test_nightly_marks_partial_and_failed_flights_in_summary_and_health(tmp_path: Path) -> None:
    site = make_site(tmp_path / "a", nights=1)
    drop(site, 1)
    summary = run_nightly(load_config(site["config"]), _PartialBackend())
    flight = summary.flights[0]
    assert flight.status == "partial" and summary.status == "partial"
    assert flight.not_comparable_km2 == pytest.approx(0.001)
    assert summary.counts()["flights_partial"] == 1
    assert "PARTIAL: compared 0.0090 km², not comparable 0.0010 km²" in summary.to_text()
    health = read_health(site["out"] / "health.json")
    assert health["last_run"]["status"] == "partial"
    assert health["flights"][flight.flight_id]["status"] == "partial"
    site = make_site(tmp_path / "b", nights=1)
    drop(site, 1)
    summary = run_nightly(load_config(site["config"]), _NothingComparedBackend())
    assert summary.flights[0].status == "failed" and summary.exit_code == 4
    health = read_health(site["out"] / "health.json")
    assert health["last_run"]["exit_code"] == 4 and health["last_run"]["status"] == "failed"
    assert "nothing compared" in health["flights"][summary.flights[0].flight_id]["error"]


def test_flight_outputs_default_to_fully_compared() -> None:
    out = FlightOutputs(out_dir=Path("."), leads_path=Path("l.json"), n_leads=0)
    assert out.not_comparable_m2 == 0.0 and out.coreg_status == "verified"
