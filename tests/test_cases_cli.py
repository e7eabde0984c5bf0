"""End-to-end smoke of ``buildwatch cases ...`` and ``buildwatch report ...`` (GeoPackage ledger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import cli
from tests._cases_fixtures import coverage_of, make_leads


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_cases_and_report_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leads1, leads2 = tmp_path / "run1" / "leads.gpkg", tmp_path / "run2" / "leads.gpkg"
    leads1.parent.mkdir()
    leads2.parent.mkdir()
    make_leads([0, 1, 2], classes=["construction", "construction", "new_building"]).to_file(
        leads1, layer="leads"
    )
    import geopandas as gpd

    gpd.GeoDataFrame(geometry=[coverage_of(range(5))], crs="EPSG:4544").to_file(
        leads1, layer="coverage"
    )
    make_leads([0, 4], flight_id="F2", flight_date="2024-05-02").to_file(leads2, layer="leads")
    ledger = str(tmp_path / "ledger.gpkg")
    L = ["--ledger", ledger]

    code, out, _ = run(["cases", "ingest", str(leads1), *L], capsys)
    assert code == 0 and "3 new cases" in out
    code, out, _ = run(["cases", "ingest", str(leads1), *L], capsys)
    assert code == 0 and "already ingested" in out

    code, out, _ = run(["cases", "list", *L, "--open", "--out", str(tmp_path / "l.csv")], capsys)
    assert code == 0 and "3 case(s)" in out and (tmp_path / "l.csv").is_file()

    updates = tmp_path / "u.csv"
    updates.write_text(
        "case_id,to_state,who,date,note,reason\nBW-500104-000001,stopped,张三,2024-05-01,,\n",
        encoding="utf-8",
    )
    code, out, _ = run(["cases", "import", str(updates), "--dry-run", *L], capsys)
    assert code == 0 and "would apply 1 update(s)" in out
    code, out, _ = run(["cases", "import", str(updates), *L], capsys)
    assert code == 0 and "BW-500104-000001: discovered -> stopped" in out
    code, _, err = run(["cases", "import", str(updates), *L], capsys)
    assert code == 6 and "row 2, column 'to_state', value 'stopped'" in err

    code, out, _ = run(
        ["cases", "update", "BW-500104-000001", "--to", "消除", "--who", "张三", *L], capsys
    )
    assert code == 0 and "stopped -> removed" in out
    code, _, err = run(
        ["cases", "update", "BW-500104-000002", "--to", "removed", "--who", "x", *L], capsys
    )
    assert code == 6 and "cannot go from 'discovered' to 'removed'" in err

    code, out, _ = run(
        ["cases", "supervise", "BW-500104-000002", "--deadline", "2024-05-10", "--who", "市", *L],
        capsys,
    )
    assert code == 0
    code, out, _ = run(["cases", "overdue", *L, "--today", "2024-05-20"], capsys)
    assert code == 0 and "BW-500104-000002" in out and "10 day(s) overdue" in out

    code, out, _ = run(["cases", "ingest", str(leads2), *L], capsys)
    assert code == 0 and "1 reopened" in out and "1 new cases" in out
    code, out, _ = run(["cases", "show", "BW-500104-000001", *L], capsys)
    assert code == 0 and "removed -> discovered" in out and "discovered on flight F1" in out

    code, out, _ = run(
        ["report", "daily", *L, "--date", "2024-05-02", "--out", str(tmp_path / "d.csv")], capsys
    )
    assert (
        code == 0 and "在建违法建筑台账日报（2024-05-02）" in out and (tmp_path / "d.txt").is_file()
    )
    code, out, _ = run(
        ["report", "monthly", *L, "--month", "2024-05", "--out", str(tmp_path / "m.xlsx")], capsys
    )
    assert code == 0 and "存量违法建筑台账月报" in out

    code, out, _ = run(["cases", "export-labels", str(tmp_path / "labels.gpkg"), *L], capsys)
    assert code == 0 and "0 confirmed" in out  # case 1 was reopened: back to its first state

    code, _, err = run(["cases", "list"], capsys)
    assert code == 2 and "no ledger given" in err
    code, _, err = run(["cases", "list", "--ledger", str(tmp_path / "none.gpkg")], capsys)
    assert code == 6 and "no ledger at" in err
