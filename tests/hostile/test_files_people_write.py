"""Files people write and mix up: an update file with only a header, a date with trailing
text, an already-applied file, rows on two sheets, trailing blank rows, a PNG renamed .tif and a
leads GeoPackage passed as the ledger — each one clear line, nothing changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.errors import InputFileError, LedgerError, RasterError
from geo.raster import open_raster
from pipelines.cases.imports import ImportValidationError, import_updates, read_updates
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore, read_cases
from tests._cases_fixtures import make_leads

HEADER = "案件编号,新状态,经办人,日期,备注,驳回原因\n"


@pytest.fixture
def ledger(tmp_path: Path) -> tuple[LedgerStore, str]:
    store = LedgerStore(str(tmp_path / "ledger.gpkg"))
    result = ingest_leads(store, make_leads([0, 1], flight_id="N1", flight_date="2024-05-01"))
    yield store, result.new_case_ids[0]
    store.dispose()


def _snapshot(tmp_path: Path) -> list:
    return read_cases(str(tmp_path / "ledger.gpkg"))[["case_id", "state"]].values.tolist()


def test_header_only_update_file_is_one_clear_line(tmp_path: Path, ledger) -> None:
    path = tmp_path / "u.csv"
    path.write_text(HEADER, encoding="utf-8")
    with pytest.raises(InputFileError, match=r"u\.csv: no update rows under the header"):
        read_updates(path)


def test_a_date_with_trailing_text_is_refused_not_cut(tmp_path: Path, ledger) -> None:
    store, cid = ledger
    path = tmp_path / "u.csv"
    path.write_text(HEADER + f"{cid},制止,张三,2024-05-02garbage,,\n", encoding="utf-8")
    before = _snapshot(tmp_path)
    with pytest.raises(ImportValidationError, match="2024-05-02garbage"):
        import_updates(store, path)
    assert _snapshot(tmp_path) == before


def test_reimporting_an_applied_file_says_already_applied(tmp_path: Path, ledger) -> None:
    store, cid = ledger
    path = tmp_path / "u.csv"
    path.write_text(HEADER + f"{cid},制止,张三,2024-05-02,,\n\n\n", encoding="utf-8")  # blank tail
    import_updates(store, path)
    with pytest.raises(ImportValidationError, match="already applied"):
        import_updates(store, path)


def test_rows_on_two_sheets_are_refused(tmp_path: Path, ledger) -> None:
    store, cid = ledger
    path = tmp_path / "u.xlsx"
    row = {"案件编号": cid, "新状态": "制止", "经办人": "张三", "日期": "2024-05-02"}
    with pd.ExcelWriter(path) as xl:
        pd.DataFrame([row]).to_excel(xl, sheet_name="一", index=False)
        pd.DataFrame([row]).to_excel(xl, sheet_name="二", index=False)
    before = _snapshot(tmp_path)
    with pytest.raises(InputFileError, match=r"rows on 2 sheets \(一, 二\)"):
        import_updates(store, path)
    assert _snapshot(tmp_path) == before


def test_a_png_renamed_tif_is_named_as_such(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "flight.tif"
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    path.write_bytes(png.tobytes())
    with pytest.raises(RasterError, match=r"flight\.tif: is a PNG image, not a GeoTIFF"):
        open_raster(path, "flight")


def test_a_leads_geopackage_is_not_turned_into_a_ledger(tmp_path: Path) -> None:
    leads_file = tmp_path / "leads.gpkg"
    make_leads([0]).to_file(leads_file, layer="leads", driver="GPKG")
    size = leads_file.stat().st_size
    store = LedgerStore(str(leads_file))
    try:
        with pytest.raises(LedgerError, match=r"leads\.gpkg is a GeoPackage with layer\(s\) leads"):
            ingest_leads(store, make_leads([1], flight_id="N2"))
    finally:
        store.dispose()
    assert leads_file.stat().st_size == size
