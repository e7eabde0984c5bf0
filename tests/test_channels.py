"""Every discovery channel: patrol and hotline reports open cases, meet each other and the drone.

One structure, one case: a report near an open case attaches to it, a drone lead near (or, for
an address-only report, inside the unit of) an open reported case takes it over with its outline;
reports count by source; a bad row stops the whole file. Also the schema upgrade (v1 → v2) and
the per-household registration and export. Both backends where the ledger is written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry import box

from geo.errors import LedgerError
from geo.units import read_units
from pipelines import cli
from pipelines.cases.channels import import_reports
from pipelines.cases.imports import ImportValidationError
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.reports import build_table
from pipelines.cases.store import LedgerStore
from pipelines.cases.tables import ADDED_IN
from tests._cases_fixtures import ledger_url_fixture, snapshot  # noqa: F401 - fixture
from tests._leads_fixtures import ORIGIN, UTM, write_units

OX, OY = ORIGIN
P1 = (OX + 50, OY - 10)  # in the village 西村
P2 = (OX + 300, OY - 150)  # in the community 东社区, outside the compound


def lonlat(x: float, y: float) -> tuple[float, float]:
    p = gpd.GeoSeries([shapely.Point(x, y)], crs=UTM).to_crs("EPSG:4490").iloc[0]
    return round(p.x, 8), round(p.y, 8)


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False, encoding="utf-8")
    return path


def leads(
    specs: list[tuple[str, float, float, float, str]], flight: str = "F1"
) -> gpd.GeoDataFrame:
    """Drone leads: (lead id, x, y, score, unit_code) -> 8 m squares at (x, y)."""
    return gpd.GeoDataFrame(
        {
            "lead_id": [s[0] for s in specs],
            "score": [s[3] for s in specs],
            "class": ["construction"] * len(specs),
            "unit_code": [s[4] for s in specs],
            "district_code": ["500101"] * len(specs),
            "district_name": ["测试区"] * len(specs),
            "flight_id": [flight] * len(specs),
            "flight_date": ["2024-05-10"] * len(specs),
        },
        geometry=[box(s[1], s[2], s[1] + 8, s[2] + 8) for s in specs],
        crs=UTM,
    )


@pytest.fixture(name="units")
def units_fixture(tmp_path: Path):
    return read_units(write_units(tmp_path / "units.gpkg", extent_m=400), UTM, optional=False)


def test_reports_and_drone_leads_meet_one_structure_one_case(
    ledger_url: str, units, tmp_path: Path
) -> None:
    store = LedgerStore(ledger_url)
    rows = [
        {"渠道": "巡查", "编号": "XC-1", "日期": "2024-05-01", "经度": lonlat(*P1)[0],
         "纬度": lonlat(*P1)[1], "描述": "新建砖房", "上报人": "西村村委会"},
        {"渠道": "12345", "编号": "RX-7", "日期": "2024/05/03",
         "经度": lonlat(P1[0] + 6, P1[1] + 3)[0], "纬度": lonlat(P1[0] + 6, P1[1] + 3)[1],
         "描述": "邻居举报在建房屋"},
        {"渠道": "热线", "编号": "RX-8", "日期": "2024-05-04", "地址": "东苑小区3栋楼顶",
         "描述": "楼顶加建"},
        {"渠道": "巡查", "编号": "XC-2", "日期": "2024-05-05", "经度": lonlat(*P2)[0],
         "纬度": lonlat(*P2)[1]},
    ]  # fmt: skip
    csv = write_csv(tmp_path / "reports.csv", rows)
    r = import_reports(store, csv, units, who="李四")
    assert (r.n_new, r.n_attached) == (3, 1)
    assert [o[2] for o in r.outcome] == ["new", "attached", "new", "new"]
    cases = store.cases()
    a = cases[cases["report_ref"] == "XC-1; RX-7"].iloc[0]
    assert a["source"] == "patrol" and a["location"] == "point" and a["times_seen"] == 0
    assert a["unit_code"] == "500101001201" and a["township_code"] == "500101001"
    c = cases[cases["report_ref"] == "RX-8"].iloc[0]
    assert (c["location"], c["unit_code"], c["unit_type"]) == ("unit", "C001", "compound")
    assert sorted(cases["source"]) == ["hotline", "patrol", "patrol"]

    flight = leads(
        [
            ("L1", P1[0] + 10, P1[1] - 4, 0.9, "500101001201"),  # 10 m east of report XC-1
            ("L2", OX + 250, OY - 20, 0.8, "C001"),  # inside the reported compound
            ("L3", OX + 300, OY - 20, 0.6, "C001"),  # a second structure there: its own case
            ("L4", OX + 150, OY - 55, 0.7, ""),  # nowhere near a report: a new drone case
        ]
    )
    cover = gpd.GeoSeries([box(OX - 10, OY - 200, OX + 410, OY + 10)], crs=UTM)
    res = ingest_leads(store, flight, coverage=cover, attach_m=30.0)
    assert (res.n_new, res.n_seen_again) == (2, 2)
    cases = store.cases()
    assert len(cases) == 5
    a = cases[cases["case_id"] == a["case_id"]].iloc[0]
    assert a["location"] == "outline" and a["times_seen"] == 1 and a["source"] == "patrol"
    assert a["area_m2"] == pytest.approx(64.0) and a["first_flight_id"] == "F1"
    assert a["first_seen"] == "2024-05-01"  # the patrol found it first
    assert a.geometry.equals(flight.geometry.iloc[0])
    c = cases[cases["case_id"] == c["case_id"]].iloc[0]
    assert c["location"] == "outline" and c.geometry.area == pytest.approx(64.0)
    d = cases[cases["report_ref"] == "XC-2"].iloc[0]
    assert d["not_observed"]  # the flight covered the reported site and saw nothing
    hist = store.history(a["case_id"])
    assert hist["note"].str.contains("drone lead L1 on flight F1 attached").any()

    # a patrol report at the drone's own case attaches to it
    drone = cases[(cases["source"] == "drone") & (cases["unit_code"] == "")].iloc[0]
    x, y = drone.geometry.centroid.x, drone.geometry.centroid.y
    more = write_csv(
        tmp_path / "more.csv",
        [{"source": "patrol", "ref": "XC-9", "date": "2024-05-11", "lon": lonlat(x, y)[0],
          "lat": lonlat(x, y)[1]}],
    )  # fmt: skip
    r2 = import_reports(store, more, units, who="王五")
    assert (r2.n_new, r2.n_attached) == (0, 1) and r2.outcome[0][1] == drone["case_id"]
    cases = store.cases()
    assert len(cases) == 5
    assert cases.set_index("case_id").loc[drone["case_id"], "report_ref"] == "XC-9"

    table = build_table(
        pd.DataFrame(cases.drop(columns="geometry")),
        store.history(),
        "in_progress",
        pd.Timestamp("2024-05-01").date(),
        pd.Timestamp("2024-05-31").date(),
        pd.Timestamp("2024-06-01").date(),
    )
    dist = table[table["level"] == "district"].iloc[0]
    assert (dist["source_drone"], dist["source_patrol"], dist["source_hotline"]) == (2, 2, 1)
    assert dist["new_patrol"] == 2
    store.dispose()


def test_a_bad_report_row_stops_the_whole_file(ledger_url: str, units, tmp_path: Path) -> None:
    store = LedgerStore(ledger_url)
    good = {"source": "patrol", "ref": "OK-1", "date": "2024-05-01",
            "lon": lonlat(*P1)[0], "lat": lonlat(*P1)[1]}  # fmt: skip
    import_reports(store, write_csv(tmp_path / "first.csv", [good]), units, who="a")
    before = snapshot(ledger_url)
    lon, lat = lonlat(*P2)
    bad = write_csv(
        tmp_path / "bad.csv",
        [
            {**good, "ref": "OK-2"},
            {"source": "hotline", "ref": "H-1", "date": "2024-05-02", "lon": "", "lat": "",
             "address": "某某路 88 号"},
            {"source": "hotline", "ref": "H-2", "date": "2024-05-02", "lon": "", "lat": ""},
            {"source": "patrol", "ref": "X-3", "date": "2024-05-02", "lon": lat, "lat": lon},
            {"source": "radio", "ref": "X-4", "date": "2099-01-01", "lon": lon, "lat": lat},
        ],
    )  # fmt: skip
    with pytest.raises(ImportValidationError) as exc:
        import_reports(store, bad, units, who="a")
    text = str(exc.value)
    assert "row 3, column 'address', value '某某路 88 号'" in text
    assert "row 4, column 'lon/lat/address'" in text and "no usable location" in text
    assert "row 5, column 'lon/lat'" in text and "swapped" in text
    assert "row 6, column 'source', value 'radio'" in text and "row 6, column 'date'" in text
    assert len(exc.value.problems) == 5
    after = snapshot(ledger_url)
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])
    store.dispose()


def _downgrade(url: str) -> None:
    """Turn a current ledger into what buildwatch schema 1 wrote (drop the v2 columns)."""
    store = LedgerStore(url)
    with store.write() as conn:
        for name in ADDED_IN["2"]:
            conn.exec_driver_sql(f"ALTER TABLE cases DROP COLUMN {name}")
        conn.exec_driver_sql("UPDATE ledger_meta SET value = '1' WHERE key = 'schema_version'")
    store.dispose()


def test_an_older_ledger_is_refused_for_reading_and_upgraded_in_place(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LedgerStore(ledger_url)
    ingest_leads(store, leads([("L1", OX, OY - 10, 0.9, "V")]))
    _downgrade(ledger_url)
    old = LedgerStore(ledger_url)
    with pytest.raises(LedgerError, match="schema version 1.*buildwatch cases upgrade"):
        old.cases()
    from pipelines.city.rollup import open_district_ledgers

    with pytest.raises(LedgerError, match="schema version '1'.*cases upgrade"):
        open_district_ledgers([ledger_url])
    with pytest.raises(SystemExit) as done:
        cli.main(["cases", "upgrade", "--ledger", ledger_url])
    assert done.value.code in (0, None)
    assert "upgraded from schema version 1 to 2" in capsys.readouterr().out
    cases = LedgerStore(ledger_url).cases()
    assert cases["source"].tolist() == ["drone"] and cases["location"].tolist() == ["outline"]
    # an ingest (the nightly job) upgrades an older ledger by itself
    _downgrade(ledger_url)
    ingest_leads(LedgerStore(ledger_url), leads([("L9", OX + 100, OY - 10, 0.9, "V")], "F2"))
    assert len(LedgerStore(ledger_url).cases()) == 2
    if "://" not in ledger_url:  # a version from the future is never "upgraded"
        with sqlite3.connect(ledger_url) as con:
            con.execute("UPDATE ledger_meta SET value = '9' WHERE key = 'schema_version'")
        with pytest.raises(LedgerError, match="version '9'.*does not know"):
            LedgerStore(ledger_url).cases()
    store.dispose()


def test_households_are_registered_and_exported_per_compound(
    tmp_path: Path, units, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = str(tmp_path / "ledger.gpkg")
    store = LedgerStore(ledger)
    rows = [
        {"source": "patrol", "ref": f"E{i}", "date": "2024-05-01", "ledger": "存量",
         "lon": lonlat(x, y)[0], "lat": lonlat(x, y)[1]}
        for i, (x, y) in enumerate([(OX + 20, OY - 10), (OX + 120, OY - 10), (OX + 250, OY - 15)])
    ]  # fmt: skip
    import_reports(store, write_csv(tmp_path / "e.csv", rows), units, who="a")
    ids = store.cases()["case_id"].tolist()
    reg = write_csv(
        tmp_path / "reg.csv",
        [
            {"案件编号": ids[0], "户号": "西村1组5号", "户主": '=HYPERLINK("x")'},
            {"案件编号": ids[1], "户号": "西村1组6号", "户主": "赵六"},
        ],
    )
    code = None
    try:
        cli.main(["cases", "register", str(reg), "--who", "村委会", "--ledger", ledger])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None), capsys.readouterr().err
    bad = write_csv(tmp_path / "bad.csv", [{"案件编号": "BW-NOPE", "户号": ""}])
    with pytest.raises(SystemExit) as exc:
        cli.main(["cases", "register", str(bad), "--who", "x", "--ledger", ledger])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and "row 2, column 'case_id', value 'BW-NOPE'" in err
    out = tmp_path / "households.xlsx"
    with pytest.raises(SystemExit):
        cli.main(["cases", "households", "--out", str(out), "--ledger", ledger])
    sheets = pd.read_excel(out, sheet_name=None, dtype=str)
    summary = sheets["汇总"]
    village = summary[summary["小区/村编码"] == "500101001201"].iloc[0]
    assert (village["案件数"], village["登记户数"]) == ("2", "2")
    west = sheets["西村"]
    assert west["户号"].tolist() == ["西村1组5号", "西村1组6号"]
    assert west["户主"].iloc[0].startswith("'=")  # a formula from the input is neutralised
    assert "东苑小区" in sheets  # the third case, unregistered, on its compound's sheet
    assert sheets["东苑小区"]["户号"].isna().all()
