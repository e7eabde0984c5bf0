"""Names from unit layers that a spreadsheet would run as formulas are written as text in every
CSV and XLSX the product writes (pipelines.safety.neutralize)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest

import pipelines.detect as detect_mod
from pipelines.cases.reports import Report, write_report
from pipelines.config import BuildwatchConfig, load_config
from pipelines.maps.tables import write_tables
from pipelines.run import run_flight
from pipelines.safety import neutralize_frame, sheet_title
from tests._leads_fixtures import (
    Structure,
    oracle_predict,
    stand_in_open_pair,
    write_pair,
    write_units,
)

FORMULAS = ['=HYPERLINK("http://evil","x")', "=1+1", "@SUM(1,1)", "+1", "-1", "\t=1", "\r=1"]


def test_neutralize_frame_prefixes_formulas_and_keeps_numbers() -> None:
    frame = pd.DataFrame({"name": FORMULAS + ["东村"], "n": list(range(len(FORMULAS) + 1))})
    out = neutralize_frame(frame)
    assert all(v.startswith("'") for v in out["name"][:-1]) and out["name"].iloc[-1] == "东村"
    assert out["n"].tolist() == frame["n"].tolist() and out["n"].dtype == frame["n"].dtype


def test_sheet_titles_from_data_are_valid() -> None:
    assert sheet_title("a*b?c[d]e:f/g\\h") == "abcdefgh"
    assert len(sheet_title("镇" * 40)) == 31 and sheet_title("***") == "sheet"


def _hostile_units(path: Path) -> Path:
    units = write_units(path)
    for layer in ("villages", "compounds", "townships"):
        frame = gpd.read_file(units, layer=layer)
        name_col = next(c for c in frame.columns if c.endswith("name"))
        frame[name_col] = [FORMULAS[i % len(FORMULAS)] for i in range(len(frame))]
        frame.to_file(units, layer=layer, driver="GPKG")
    return units


def test_leads_csv_and_xlsx_write_hostile_names_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    flight, baseline = write_pair(
        tmp_path / "in", [Structure(5, 5, 10, 10), Structure(35, 10, 40, 15)]
    )
    units = _hostile_units(tmp_path / "in" / "units.gpkg")
    cfg = BuildwatchConfig.model_validate(
        {
            "tiling": {"gsd": 0.2, "size": 128, "overlap": 32, "prefetch": 0},
            "coreg": {"mode": "off"},
        }
    )
    cfg = cfg.model_copy(update={"units": load_config(None, {"units": {"path": str(units)}}).units})
    out = run_flight(
        flight, config=cfg, baseline=baseline, out_dir=tmp_path / "o", predict=oracle_predict
    )
    csv = pd.read_csv(out.csv, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    names = [v for col in ("unit_name", "township_name") for v in csv[col] if v]
    assert names and all(not v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in names)
    assert any(v.startswith("'") for v in names)
    book = openpyxl.load_workbook(out.xlsx)
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(("=", "+", "@")), cell.value


def test_report_and_priority_tables_neutralize(tmp_path: Path) -> None:
    day = date(2024, 5, 1)
    table = pd.DataFrame({"level": ["township"], "name": ["=1+1"], "n_cases": [3]})
    written = write_report(
        Report("daily", "in_progress", day, day, table, "=cmd|' /C calc'!A0\n"), tmp_path / "d.xlsx"
    )
    book = openpyxl.load_workbook(written[0])
    values = [c.value for ws in book.worksheets for r in ws.iter_rows() for c in r]
    assert "'=1+1" in values and all(not (isinstance(v, str) and v.startswith("=")) for v in values)
    csv = write_report(Report("daily", "in_progress", day, day, table, "x\n"), tmp_path / "d.csv")[
        0
    ]
    assert "'=1+1" in csv.read_text(encoding="utf-8-sig")
    ranked = pd.DataFrame(
        {
            "district_code": ["D1", "D1"], "township_code": ["T*1", "T:2"],
            "township_name": ["=东镇*", "=东镇?"], "unit_name": ["@SUM(1)", "+西村"],
            "rank_district": [1, 2], "rank_township": [1, 1],
        }
    )  # fmt: skip
    import pipelines.maps.tables as tables

    paths = write_tables_safe(tables, ranked, tmp_path / "p")
    for path in paths.values():
        if path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path)
            assert len(book.sheetnames) == 3 and all(
                "*" not in t and "?" not in t for t in book.sheetnames
            )
        else:
            text = path.read_text(encoding="utf-8-sig")
            assert "'@SUM(1)" in text or "'+西村" in text


def write_tables_safe(tables, ranked: pd.DataFrame, out: Path):  # type: ignore[no-untyped-def]
    """write_tables with ranked_table reduced to the columns this fixture has."""
    orig = tables.ranked_table
    tables.ranked_table = lambda frame, zh: frame[["township_name", "unit_name", "rank_district"]]
    try:
        return write_tables(ranked, out, zh=True)
    finally:
        tables.ranked_table = orig


def test_case_list_csv_neutralizes(tmp_path: Path) -> None:
    from pipelines.commands.cases import _write_list
    from tests._cases_fixtures import make_leads

    cases = make_leads([0, 1])
    cases["unit_name"] = ['=HYPERLINK("http://evil")', "-2+3"]
    out = tmp_path / "cases.csv"
    _write_list(cases, out)
    frame = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    assert frame["unit_name"].tolist() == ['\'=HYPERLINK("http://evil")', "'-2+3"]
