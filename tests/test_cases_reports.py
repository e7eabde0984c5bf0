"""Daily/monthly reports per township and district, and the training-label export."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from geo.errors import ConfigError
from pipelines.cases.feedback import LABEL_COLUMNS, export_labels
from pipelines.cases.imports import Update, apply_updates
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.reports import daily_report, monthly_report, write_report
from pipelines.cases.store import LedgerStore
from tests._cases_fixtures import ledger_url_fixture, make_leads  # noqa: F401

C, N = "construction", "new_building"


def _ledger(url: str) -> LedgerStore:
    store = LedgerStore(url)
    # sites 0..5: townships alternate 500104001 (even) / 500104002 (odd)
    ingest_leads(store, make_leads([0, 1, 2, 3, 4, 5], classes=[C, C, C, N, N, C]))
    ingest_leads(
        store, make_leads([6, 7], flight_id="F2", flight_date="2024-05-02", classes=[C, N])
    )
    apply_updates(
        store,
        [
            Update("BW-500104-000001", "stopped", "张三", "2024-05-01"),
            Update("BW-500104-000001", "removed", "张三", "2024-05-02"),
            Update("BW-500104-000002", "rejected", "李四", "2024-05-02", reason="false_detection"),
            Update("BW-500104-000004", "notice", "王五", "2024-05-02"),
            Update("BW-500104-000005", "rejected", "王五", "2024-05-02", reason="permitted"),
            Update("BW-500104-000003", "rejected", "王五", "2024-05-02", reason="duplicate"),
        ],
        today=date(2024, 5, 2),
    )
    return store


def test_daily_report_counts_per_township_and_district(ledger_url: str, tmp_path: Path) -> None:
    store = _ledger(ledger_url)
    report = daily_report(store, date(2024, 5, 2), today=date(2024, 5, 2))
    t = report.table.set_index(["level", "township_code"])
    d = t.loc[("district", "")]
    # in-progress cases: 1 (removed), 2 (rejected), 3 (rejected), 6 (discovered), 7 (discovered)
    assert (d["total"], d["open"], d["removed"], d["rejected"], d["discovered"]) == (5, 2, 1, 2, 2)
    assert (d["new_in_period"], d["closed_in_period"]) == (1, 3)
    town1 = t.loc[("township", "500104001")]  # sites 0, 2, 6
    assert (town1["total"], town1["removed"], town1["discovered"]) == (3, 1, 1)
    assert report.summary.startswith("在建违法建筑台账日报（2024-05-02）\n渝中区：共5宗")
    assert "本日新增1宗，本日办结3宗" in report.summary
    files = write_report(report, tmp_path / "daily.xlsx")
    assert [f.name for f in files] == ["daily.xlsx", "daily.txt"]
    sheet = pd.read_excel(files[0], sheet_name="台账", dtype={"乡镇(街道)编码": str})
    assert list(sheet.columns[:5]) == ["级别", "区县编码", "区县", "乡镇(街道)编码", "乡镇(街道)"]
    assert "消除" in sheet.columns and set(sheet["级别"]) == {"区县", "乡镇(街道)"}
    assert (tmp_path / "daily.txt").read_text(encoding="utf-8") == report.summary


def test_monthly_report_of_existing_ledger(ledger_url: str, tmp_path: Path) -> None:
    store = _ledger(ledger_url)
    report = monthly_report(store, "2024-05", today=date(2024, 5, 31))
    d = report.table[report.table["level"] == "district"].iloc[0]
    # existing cases: 4 (notice), 5 (rejected: permitted), 8 (evidence)
    assert (d["total"], d["notice"], d["rejected"], d["evidence"]) == (3, 1, 1, 1)
    assert (d["new_in_period"], d["closed_in_period"]) == (3, 1)
    assert report.summary.startswith("存量违法建筑台账月报（2024-05-01至2024-05-31）")
    write_report(report, tmp_path / "m.csv")
    csv = pd.read_csv(tmp_path / "m.csv", encoding="utf-8-sig")
    assert "公告" in csv.columns and csv["合计"].max() == 3
    assert monthly_report(store, "2024-04").table["new_in_period"].sum() == 0
    with pytest.raises(ConfigError, match=r"month '2024/5' is not YYYY-MM"):
        monthly_report(store, "2024/5")
    with pytest.raises(ConfigError, match=r"use a .csv or .xlsx file name"):
        write_report(report, tmp_path / "m.pdf")


def test_labels_confirmed_and_hard_negatives(ledger_url: str, tmp_path: Path) -> None:
    store = _ledger(ledger_url)
    counts = export_labels(store, tmp_path / "labels.gpkg")
    assert counts.to_dict() == {"confirmed": 3, "rejected": 1}
    labels = gpd.read_file(tmp_path / "labels.gpkg", layer="labels").set_index("case_id")
    assert list(labels.columns) == [c for c in LABEL_COLUMNS if c != "case_id"] + ["geometry"]
    assert labels.loc["BW-500104-000002", "label"] == "rejected"  # false detection
    assert labels.loc["BW-500104-000005", "label"] == "confirmed"  # real, with a permit
    assert "BW-500104-000003" not in labels.index  # duplicate: its original is there
    assert "BW-500104-000006" not in labels.index  # unverified
    assert labels.loc["BW-500104-000004", "class"] == N
    assert labels.loc["BW-500104-000001", "flight_id"] == "F1"
    assert labels.crs.to_epsg() == 4544
