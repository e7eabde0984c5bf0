"""``buildwatch city demo``: a synthetic city of three districts, on GeoPackage files and on PostGIS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests._cases_fixtures import _pg_reachable, pg_url

REPO = Path(__file__).resolve().parents[1]
CODES = ("500197", "500198", "500199")  # the district codes of seeds 7, 8, 9


@pytest.fixture(params=["gpkg", "postgis"])
def db(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (GeoPackage ledgers) or the test PostGIS URL; the demo's schemas dropped afterwards."""
    if request.param == "gpkg":
        yield None
        return
    url = pg_url()
    if url is None:
        pytest.skip("no PostGIS: set BUILDWATCH_TEST_PG_URL or run scripts/start_postgis.sh")
    why = _pg_reachable(url)
    if why:
        pytest.skip(f"PostGIS at {url} not reachable ({why})")
    _drop_demo_schemas(url)
    yield url
    _drop_demo_schemas(url)


def _drop_demo_schemas(url: str) -> None:
    from sqlalchemy import create_engine, text

    from pipelines.cases.store import resolve_url

    engine = create_engine(resolve_url(url))
    with engine.begin() as conn:
        for code in CODES:
            conn.execute(text(f"DROP SCHEMA IF EXISTS bw_{code} CASCADE"))
    engine.dispose()


def test_city_demo_meets_reports_without_duplicates_and_reports_the_city(
    db: str | None, tmp_path: Path
) -> None:
    out = tmp_path / "city demo"
    cmd = [sys.executable, "-m", "pipelines.cli", "city", "demo", str(out), "--size-m", "240"]
    done = subprocess.run([*cmd, *(["--db", db] if db else [])], capture_output=True,
                          text=True, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == str(out / "city" / "city_map.html")  # the last line is the map
    summary = json.loads((out / "city_demo_summary.json").read_text(encoding="utf-8"))
    assert summary["duplicates"] == 0  # one structure, one case
    for d in summary["districts"]:
        assert d["district_code"] in CODES
        assert d["reports"] >= 3 and d["reports_attached_on_import"] == 1  # two patrols, one case
        assert d["reported_cases_confirmed_by_drone"] >= 1  # drone leads met reported cases
        assert d["relapses"] >= 1  # new structures in the cleared village
        assert d["true_structures_with_two_cases"] == 0
        assert ("postgresql" in d["ledger"]) == (db is not None)
    assert (out / "ledgers").exists() == (db is None)

    daily = lines[lines.index(next(s for s in lines if s.startswith("在建违法建筑台账日报"))) :]
    assert daily[1].startswith("全市：3个区县") and "巡查" in daily[1] and "热线举报" in daily[1]
    assert "整治完毕单元新增线索（需立即核查）" in done.stdout
    assert sum(s.startswith("第") and "名 " in s for s in lines) == 3  # the ranking
    assert "挂牌督办：3宗（逾期2宗）" in done.stdout
    city = out / "city"
    for name in ("city_ranking.xlsx", "city_supervised.xlsx", "city_five_year.xlsx",
                 "city_reports.gpkg", "city_map.html", "city_map.png"):  # fmt: skip
        assert (city / name).stat().st_size > 0, name
    assert len(list(city.glob("city_daily_*.xlsx"))) == 1
    assert len(list(city.glob("city_monthly_*.xlsx"))) == 1
    sup = pd.read_excel(city / "city_supervised.xlsx", dtype=str)
    assert len(sup) == 3 and int(sup["逾期天数"].iloc[0]) > 0  # overdue first
    if db is not None:  # the demo's schemas are not replaced without --overwrite
        again = subprocess.run([*cmd[:-3], str(tmp_path / "again"), *cmd[-2:], "--db", db],
                               capture_output=True, text=True, cwd=REPO)  # fmt: skip
        assert again.returncode != 0
        assert "schema bw_500197 already holds a ledger; pass --overwrite" in again.stderr
        assert not (tmp_path / "again").exists()
