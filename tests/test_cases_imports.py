"""Township update files (CSV/XLSX, Chinese headers), validation of every row, supervision."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from geo.errors import InputFileError, LedgerError
from pipelines.cases.imports import (
    ImportValidationError,
    import_updates,
    overdue,
    read_updates,
    supervise,
)
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore
from tests._cases_fixtures import ledger_url_fixture, make_leads, snapshot  # noqa: F401

TODAY = date(2024, 6, 1)


def _ledger(url: str) -> LedgerStore:
    store = LedgerStore(url)
    classes = ["construction", "construction", "new_building", "construction"]
    ingest_leads(store, make_leads([0, 1, 2, 3], classes=classes))
    return store


def test_chinese_csv_applies_in_file_order(ledger_url: str, tmp_path: Path) -> None:
    store = _ledger(ledger_url)
    path = tmp_path / "镇1-updates.csv"
    path.write_text(
        "案件编号,新状态,经办人,日期,备注,驳回原因\n"
        "BW-500104-000001,制止,张三,2024-05-01,已下达停工通知,\n"
        "BW-500104-000001,消除,张三,2024/05/03,,\n"
        "BW-500104-000002,驳回,李四,2024-05-02,,误报\n"
        "BW-500104-000003,公告,王五,2024-05-02,,\n",
        encoding="gb18030",  # as Excel on a Chinese Windows saves it
    )
    dry = import_updates(store, path, dry_run=True, today=TODAY)
    assert dry.dry_run and len(dry.changes) == 4
    assert store.cases()["state"].tolist() == ["discovered", "discovered", "evidence", "discovered"]
    result = import_updates(store, path, today=TODAY)
    assert result.changes == (
        ("BW-500104-000001", "discovered", "stopped"),
        ("BW-500104-000001", "stopped", "removed"),
        ("BW-500104-000002", "discovered", "rejected"),
        ("BW-500104-000003", "evidence", "notice"),
    )
    cases = store.cases().set_index("case_id")
    assert cases.loc["BW-500104-000002", "reject_reason"] == "false_detection"
    hist = store.history("BW-500104-000001")
    assert list(hist["at"]) == ["2024-05-01", "2024-05-01", "2024-05-03"]
    assert hist["who"].iloc[1] == "张三" and hist["note"].iloc[1] == "已下达停工通知"
    assert (hist["source"].iloc[1:] == "import:镇1-updates.csv").all()


def test_every_problem_reported_at_once_and_nothing_applied(
    ledger_url: str, tmp_path: Path
) -> None:
    store = _ledger(ledger_url)
    before = snapshot(ledger_url)
    path = tmp_path / "bad.xlsx"
    pd.DataFrame(
        {
            "case_id": ["BW-500104-000001", "BW-NOPE", "BW-500104-000002", "BW-500104-000003", ""],
            "to_state": ["removed", "stopped", "rejected", "notice", "stopped"],
            "who": ["张三", "", "李四", "王五", "x"],
            "date": ["2024-05-01", "2024-13-01", "2024-05-02", "2030-01-01", "2024-05-01"],
            "note": [""] * 5,
            "reason": ["", "", "looks odd", "", ""],
        }
    ).to_excel(path, index=False)
    with pytest.raises(
        ImportValidationError, match=r"bad.xlsx: 7 problem\(s\), nothing was applied"
    ) as info:
        import_updates(store, path, today=TODAY)
    got = [(p.row, p.column, p.value) for p in info.value.problems]
    assert got == [
        (2, "to_state", "removed"),
        (3, "who", ""),
        (3, "date", "2024-13-01"),
        (3, "case_id", "BW-NOPE"),
        (4, "reason", "looks odd"),
        (5, "date", "2030-01-01"),
        (6, "case_id", ""),
    ]
    text = str(info.value)
    assert (
        "row 2, column 'to_state', value 'removed': case BW-500104-000001 (in_progress ledger): "
        in text
    )
    assert "allowed from 'discovered': stopped, rejected" in text
    assert "row 5, column 'date', value '2030-01-01': is in the future" in text
    for a, b in zip(before, snapshot(ledger_url), strict=True):
        pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ImportValidationError, match=r"dry-run.csv: 7 problem"):
        path.with_name("dry-run.csv").write_text(
            pd.read_excel(path, dtype=str).fillna("").to_csv(index=False), encoding="utf-8"
        )
        import_updates(store, path.with_name("dry-run.csv"), dry_run=True, today=TODAY)


def test_bad_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"missing column\(s\) \['who', 'date'\]"):
        (tmp_path / "a.csv").write_text("case_id,to_state\nBW-1,stopped\n", encoding="utf-8")
        read_updates(tmp_path / "a.csv")
    with pytest.raises(InputFileError, match=r"unsupported file type '.txt'"):
        (tmp_path / "a.txt").write_text("x", encoding="utf-8")
        read_updates(tmp_path / "a.txt")
    with pytest.raises(InputFileError, match=r"update file not found"):
        read_updates(tmp_path / "none.csv")


def test_supervised_cases_and_overdue_list(ledger_url: str) -> None:
    store = _ledger(ledger_url)
    supervise(store, "BW-500104-000001", deadline="2024-05-20", who="市指挥办")
    supervise(store, "BW-500104-000003", deadline="2024-06-10", who="市指挥办", note="重点")
    late = overdue(store, today=TODAY)
    assert list(late["case_id"]) == ["BW-500104-000001"] and late["days_overdue"].iloc[0] == 12
    assert len(overdue(store, today=date(2024, 6, 30))) == 2
    note = store.history("BW-500104-000003")["note"].iloc[-1]
    assert note == "挂牌督办 (supervised), deadline 2024-06-10; 重点"
    supervise(store, "BW-500104-000001", deadline=None, who="市指挥办", off=True)
    assert overdue(store, today=TODAY).empty
    with pytest.raises(LedgerError, match=r"deadline 'soon' is not a date"):
        supervise(store, "BW-500104-000002", deadline="soon", who="x")
    with pytest.raises(LedgerError, match=r"case BW-NOPE: no such case"):
        supervise(store, "BW-NOPE", deadline="2024-06-01", who="x")
