"""The city's roll-up of district ledgers: GeoPackage files and PostGIS, and bad ledgers refused."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from geo.errors import LedgerError
from pipelines.cases.imports import supervise
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore
from pipelines.city.rollup import city_reports, open_district_ledgers, write_city_reports
from tests._cases_fixtures import coverage_of, ledger_url_fixture, make_leads  # noqa: F401

DAY = date(2024, 5, 1)


def _district(url: str, code: str, sites: list[int], classes: list[str]) -> None:
    store = LedgerStore(url)
    leads = make_leads(sites, classes=classes, district_code=code, flight_id=f"F{code}")
    ingest_leads(store, leads, coverage=coverage_of(sites), source=f"test-{code}")
    store.dispose()


def test_city_rolls_up_two_district_files(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a.gpkg"), str(tmp_path / "b.gpkg")
    _district(a, "500104", [0, 1, 2], ["construction", "construction", "new_building"])
    _district(b, "500105", [3, 4], ["construction", "new_building"])
    store = LedgerStore(b)
    late = store.cases(ledger="in_progress")["case_id"].iloc[0]
    supervise(store, late, deadline="2024-05-03", who="市指挥办")
    store.dispose()
    before = {p: p.read_bytes() for p in (tmp_path / "a.gpkg", tmp_path / "b.gpkg")}

    city = city_reports(open_district_ledgers([a, b]), day=DAY, today=date(2024, 5, 10))
    daily = city.daily.table
    dist = daily[daily["level"] == "district"].set_index("district_code")
    assert dist.loc["500104", "total"] == 2 and dist.loc["500105", "total"] == 1
    row = daily[daily["level"] == "city"].iloc[0]
    assert (row["total"], row["new_in_period"], row["overdue"]) == (3, 3, 1)
    monthly = city.monthly.table
    assert int(monthly[monthly["level"] == "city"]["total"].iloc[0]) == 2
    assert list(city.overdue["case_id"]) == [late] and city.overdue["days_overdue"].iloc[0] == 7
    lines = city.daily.summary.splitlines()
    assert lines[0] == "在建违法建筑台账日报（2024-05-01）"
    assert lines[1] == ("全市：2个区县，共3宗（按发现渠道：无人机航拍3），未办结3宗；本日新增3宗，"
                        "本日办结0宗；督办中1宗，逾期1宗。")  # fmt: skip
    assert lines[2].startswith(f"  逾期 {late}")  # overdue first

    out = tmp_path / "city"
    out.mkdir()
    paths = write_city_reports(city, out)
    assert {p.name for p in paths} >= {"city_daily_2024-05-01.xlsx", "city_reports.gpkg"}
    sheet = pd.read_excel(out / "city_daily_2024-05-01.xlsx", sheet_name="台账")
    assert "本期新增" in sheet.columns and "全市" in set(sheet["区县"].astype(str))
    con = sqlite3.connect(out / "city_reports.gpkg")
    kinds = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
    con.close()
    assert kinds == dict.fromkeys(["daily", "monthly", "overdue", "supervised"], "attributes")
    supervised = pd.read_excel(out / "city_supervised.xlsx", dtype=str)
    assert supervised["案件编号"].iloc[0] == late  # the overdue case heads the supervised list
    # read-only: the district ledgers are byte for byte as they were
    assert all(p.read_bytes() == data for p, data in before.items())


def test_city_rolls_up_districts_in_one_postgis_ledger(ledger_url: str) -> None:
    _district(ledger_url, "500104", [0, 1], ["construction", "construction"])
    _district(ledger_url, "500106", [5], ["construction"])
    city = city_reports(open_district_ledgers([ledger_url]), day=DAY, today=DAY)
    dist = city.daily.table[city.daily.table["level"] == "district"]
    assert sorted(dist["district_code"]) == ["500104", "500106"]
    assert int(city.daily.table[city.daily.table["level"] == "city"]["total"].iloc[0]) == 3


def test_bad_district_ledgers_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    good = str(tmp_path / "a.gpkg")
    _district(good, "500104", [0], ["construction"])
    with pytest.raises(LedgerError, match=r"missing\.gpkg: not found"):
        open_district_ledgers([good, str(tmp_path / "missing.gpkg")])
    other = tmp_path / "old.gpkg"
    other.write_bytes(Path(good).read_bytes())
    con = sqlite3.connect(other)
    with con:
        con.execute("UPDATE ledger_meta SET value = '0' WHERE key = 'schema_version'")
        con.execute("UPDATE cases SET district_code = '500199'")
    con.close()
    with pytest.raises(LedgerError, match=r"old\.gpkg: schema version '0'"):
        open_district_ledgers([good, str(other)])
    copy = tmp_path / "copy.gpkg"
    copy.write_bytes(Path(good).read_bytes())
    with pytest.raises(LedgerError, match="district 500104 is in two ledgers"):
        open_district_ledgers([good, str(copy)])
    plain = tmp_path / "leads.gpkg"
    make_leads([1]).to_file(plain, layer="leads", driver="GPKG")
    with pytest.raises(LedgerError, match="not a buildwatch case ledger"):
        open_district_ledgers([str(plain)])


def test_targets_rank_the_districts_and_bad_rows_are_refused(tmp_path: Path) -> None:
    from pipelines.cases.imports import Update, apply_updates
    from pipelines.city.targets import TargetsError, progress_ytd, rank_districts, read_targets

    a, b = str(tmp_path / "a.gpkg"), str(tmp_path / "b.gpkg")
    _district(a, "500104", [0, 1], ["construction", "construction"])
    _district(b, "500105", [3], ["construction"])
    store = LedgerStore(a)  # district A stops and removes one case in 2024
    cid = store.cases()["case_id"].iloc[0]
    apply_updates(store, [Update(cid, "stopped", "镇", "2024-05-02"),
                          Update(cid, "removed", "镇", "2024-05-03")], today=date(2024, 6, 1))  # fmt: skip
    store.dispose()
    targets = tmp_path / "targets.csv"
    targets.write_text(
        "区县编码,年度,办结案件目标,拆除面积目标(平方米)\n500104,2024,2,100\n500105,2024,1,100\n",
        encoding="utf-8",
    )
    ledgers = open_district_ledgers([a, b])
    t = read_targets(targets, {"500104", "500105"})
    ranked = rank_districts(t, progress_ytd(ledgers, 2024, date(2024, 6, 1)))
    assert list(ranked["district_code"]) == ["500104", "500105"]
    top = ranked.iloc[0]
    assert (top["closed_ytd"], top["area_removed_ytd_m2"]) == (1, 100.0)
    assert top["progress"] == 0.75 and ranked.iloc[1]["progress"] == 0.0

    out = tmp_path / "city"
    out.mkdir()
    city = city_reports(ledgers, day=DAY, today=date(2024, 6, 1))
    names = {p.name for p in write_city_reports(city, out, ranking=ranked)}
    assert "city_ranking.xlsx" in names
    sheet = pd.read_excel(out / "city_ranking.xlsx")
    assert list(sheet["排名"]) == [1, 2] and "目标完成率" in sheet.columns

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "district_code,year,cases_to_close,area_to_remove_m2\n500199,2024,1,1\n500104,24,-3,x\n",
        encoding="utf-8",
    )
    with pytest.raises(TargetsError) as err:
        read_targets(bad, {"500104", "500105"})
    text = str(err.value)
    assert "row 2, column 'district_code', value '500199'" in text
    assert "row 3, column 'year', value '24'" in text
    assert "row 3, column 'cases_to_close', value '-3': a target cannot be negative" in text
    assert "row 3, column 'area_to_remove_m2', value 'x': not a number" in text


def test_city_supervision_is_written_to_the_district_and_reported_first(tmp_path: Path) -> None:
    import subprocess
    import sys

    a = str(tmp_path / "a.gpkg")
    _district(a, "500104", [0, 1], ["construction", "construction"])
    cid = LedgerStore(a).cases()["case_id"].iloc[1]
    bw = [sys.executable, "-m", "pipelines.cli", "city"]
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([*bw, "supervise", cid, "--ledger", a, "--deadline", "2024-05-02"],
                          capture_output=True, text=True, cwd=repo)  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = LedgerStore(a)
    case = store.cases(case_ids=[cid]).iloc[0]
    assert bool(case["supervised"]) and case["deadline"] == "2024-05-02"
    assert store.history(cid)["who"].iloc[-1] == "市指挥办"
    store.dispose()
    out = tmp_path / "city"
    done = subprocess.run([*bw, "report", "--ledger", a, "--day", "2024-05-01", "--out", str(out)],
                          capture_output=True, text=True, cwd=repo)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith(f"  逾期 {cid}")


def test_a_locked_district_ledger_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    from pipelines.city.report import run_city_report

    a, b = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    _district(str(a), "500104", [0], ["construction"])
    _district(str(b), "500105", [1], ["construction"])
    con = sqlite3.connect(b, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")  # a district's writer holds its ledger
    out = tmp_path / "city"
    try:
        with pytest.raises(LedgerError, match=r"district ledger .*b\.gpkg: locked"):
            run_city_report([a, b], out, day=DAY, today=DAY)
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert not out.exists()
