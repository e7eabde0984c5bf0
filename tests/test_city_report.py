"""``buildwatch city report`` end to end: targets with units to clear, five-year view, city map."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from pipelines.cases.cleared import mark_cleared
from pipelines.cases.imports import Update, apply_updates, supervise
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore
from pipelines.maps.folium_map import remote_assets
from tests._cases_fixtures import CRS, X0, Y0, coverage_of, make_leads
from tests._maps_fixtures import ARTIFACTS
from tests.test_maps_html import needs_chromium, probe_map

REPO = Path(__file__).resolve().parents[1]
HOSTILE = '<img src=x onerror="alert(1)">区'


def _bw(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipelines.cli", "city", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)


@pytest.fixture()
def city(tmp_path: Path) -> dict[str, Path]:
    """Two district ledgers (A acts on its cases and clears a village), boundaries, targets."""
    a, b = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    for path, code, sites in ((a, "500104", [0, 1, 2]), (b, "500105", [5, 6])):
        store = LedgerStore(path)
        leads = make_leads(sites, district_code=code, flight_id=f"F{code}")
        ingest_leads(store, leads, coverage=coverage_of(sites), source=f"test-{code}")
        store.dispose()
    store = LedgerStore(a)
    first, second = store.cases()["case_id"].iloc[:2]
    apply_updates(store, [Update(first, "stopped", "镇", "2024-05-02"),
                          Update(first, "removed", "镇", "2024-05-03")], today=date(2024, 6, 1))  # fmt: skip
    mark_cleared(store, "V0", day="2024-05-04", who="镇政府")
    supervise(store, second, deadline="2024-05-10", who="市指挥办")
    store.dispose()
    units = tmp_path / "city_units.gpkg"
    gpd.GeoDataFrame(
        {"district_code": ["500104", "500105"], "district_name": [HOSTILE, "乙区"]},
        geometry=[
            box(X0 - 50, Y0 - 50, X0 + 450, Y0 + 60),
            box(X0 + 450, Y0 - 50, X0 + 900, Y0 + 60),
        ],
        crs=CRS,
    ).to_file(units, layer="districts", driver="GPKG")
    targets = tmp_path / "targets.csv"
    targets.write_text(
        "区县编码,年度,办结案件目标,拆除面积目标(平方米),整治单元目标\n"
        "500104,2024,2,200,1\n500105,2024,2,200,2\n",
        encoding="utf-8",
    )
    return {"a": a, "b": b, "units": units, "targets": targets, "tmp": tmp_path}


def test_city_report_ranks_by_targets_and_draws_an_offline_map(city: dict[str, Path]) -> None:
    out = city["tmp"] / "out"
    a, b = (str(city["a"]), str(city["b"]))
    done = _bw("report", "--ledger", a, "--ledger", b, "--day", "2024-06-01", "--month",
               "2024-05", "--targets", str(city["targets"]), "--units", str(city["units"]),
               "--plan", "2024-2028", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # A: 1 of 2 cases closed, 100 of 200 m² removed, 1 of 1 unit cleared -> (0.5+0.5+1)/3
    first = next(s for s in lines if s.startswith("第1名"))
    assert first.startswith("第1名 渝中区：完成率 67%") and "整治完毕单元 1/1" in first
    assert next(s for s in lines if s.startswith("第2名")).startswith("第2名 渝中区：完成率 0%")
    assert "五年整治（2024–2028）：已整治完毕1个" in done.stdout
    assert "挂牌督办：1宗（逾期1宗）" in done.stdout

    ranking = pd.read_excel(out / "city_ranking.xlsx")
    assert list(ranking["排名"]) == [1, 2]
    plan = pd.read_excel(out / "city_five_year.xlsx", dtype=str)
    keys = zip(plan["区县编码"], plan["小区/村编码"], strict=True)
    status = dict(zip(keys, plan["五年整治进度"], strict=True))
    assert status[("500104", "V0")] == "已整治完毕" and status[("500105", "V0")] == "未启动"
    assert status[("500104", "V1")] == "未启动"
    assert (out / "city_map.png").stat().st_size > 10_000
    html = (out / "city_map.html").read_text(encoding="utf-8")
    # the district's name is escaped (inside the map's GeoJSON, "&" itself is written \u0026)
    assert HOSTILE not in html and "&lt;img src=x" in html.replace("\\u0026", "&")
    assert remote_assets(html) == []


@needs_chromium
def test_city_map_renders_offline_in_chromium(city: dict[str, Path], tmp_path: Path) -> None:
    from pipelines.city.report import run_city_report

    run = run_city_report([city["a"], city["b"]], tmp_path / "out", day=date(2024, 6, 1),
                          targets=city["targets"], units=city["units"], today=date(2024, 6, 1))  # fmt: skip
    assert run.map_html is not None
    result = probe_map(run.map_html, tmp_path, screenshot=ARTIFACTS / "city_map_offline.png")
    assert result["leaflet"] is True and result["errors"] == [] and result["remote"] == []
    assert result["paths"] == 2 + 1  # two districts, one supervised case
    assert result["title"].startswith("全市违法建筑整治 2024年目标完成情况")
    assert "完成" in result["legend"] and "督办" in result["legend"]


def test_city_report_refuses_bad_targets_and_plan_and_writes_nothing(city: dict[str, Path]) -> None:
    out = city["tmp"] / "refused"
    bad = city["tmp"] / "bad_targets.csv"
    bad.write_text(
        "district_code,year,cases_to_close,area_to_remove_m2,units_to_clear\n"
        "500104,2024,1,1,-2\n500177,2024,1,1,1\n",
        encoding="utf-8",
    )
    a = str(city["a"])
    done = _bw("report", "--ledger", a, "--day", "2024-06-01", "--targets", str(bad),
               "--out", str(out))  # fmt: skip
    assert done.returncode != 0
    assert "column 'units_to_clear', value '-2'" in done.stderr
    assert "value '500177'" in done.stderr
    assert not out.exists()
    for plan in ("2028-2024", "24-28"):
        done = _bw(
            "report", "--ledger", a, "--day", "2024-06-01", "--plan", plan, "--out", str(out)
        )
        assert done.returncode != 0 and f"--plan {plan!r}" in done.stderr
        assert not out.exists()
    wrong = city["tmp"] / "no_districts.gpkg"
    gpd.GeoDataFrame({"x": [1]}, geometry=[box(0, 0, 1, 1)], crs=CRS).to_file(
        wrong, layer="towns", driver="GPKG"
    )
    done = _bw("report", "--ledger", a, "--day", "2024-06-01", "--units", str(wrong),
               "--out", str(out))  # fmt: skip
    assert done.returncode != 0 and "layer 'districts' not found" in done.stderr
    assert not out.exists()
