"""The ledger store and ingest rules, on both backends (GeoPackage file and PostGIS)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
from shapely.geometry import box

from geo.errors import ConfigError, CRSError, LedgerError, VectorError
from pipelines.cases.ingest import ingest_leads, read_leads
from pipelines.cases.store import LedgerStore, read_cases, resolve_url
from tests._cases_fixtures import (  # noqa: F401 - ledger_url_fixture is a fixture
    X0,
    Y0,
    coverage_of,
    ledger_url_fixture,
    make_leads,
    snapshot,
)

C, N = "construction", "new_building"


def _first_flight(url: str) -> LedgerStore:
    store = LedgerStore(url)
    r = ingest_leads(
        store, make_leads([0, 1, 2, 3], classes=[C, C, N, C]), coverage=coverage_of(range(6))
    )
    assert r.n_new == 4 and not r.skipped
    return store


def test_new_leads_become_cases_in_the_ledger_of_their_class(ledger_url: str) -> None:
    store = _first_flight(ledger_url)
    cases = store.cases()
    assert list(cases["case_id"]) == [f"BW-500104-{i:06d}" for i in range(1, 5)]
    assert list(cases["ledger"]) == ["in_progress", "in_progress", "existing", "in_progress"]
    assert list(cases["state"]) == ["discovered", "discovered", "evidence", "discovered"]
    assert cases.crs.to_epsg() == 4544
    assert cases.geometry.iloc[0].equals(box(X0 + 1, Y0 + 1, X0 + 11, Y0 + 11))
    assert (cases["times_seen"] == 1).all() and not cases["not_observed"].any()
    hist = store.history()
    assert list(hist["to_state"]) == ["discovered", "discovered", "evidence", "discovered"]
    assert (hist["from_state"] == "").all() and (hist["at"] == "2024-05-01").all()
    assert hist["note"].iloc[0] == "discovered on flight F1 (lead F1-00000)"


def test_second_flight_same_case_new_case_and_not_observed(ledger_url: str) -> None:
    store = _first_flight(ledger_url)
    before = len(store.history())
    leads = make_leads(
        [0, 2, 5], flight_id="F2", flight_date="2024-05-02", classes=[C, N, C], shift=3
    )
    r = ingest_leads(store, leads, coverage=coverage_of(range(6)))
    assert (r.n_new, r.n_seen_again, r.n_not_observed, r.n_reopened) == (1, 2, 2, 0)
    cases = store.cases().set_index("case_id")
    seen = cases.loc["BW-500104-000001"]
    assert (seen["times_seen"], seen["last_seen"], seen["last_flight_id"]) == (
        2,
        "2024-05-02",
        "F2",
    )
    assert seen["first_seen"] == "2024-05-01" and seen["evidence_after"].startswith("evidence/F2-")
    assert seen.geometry.bounds[0] == X0 + 3  # latest footprint
    assert cases.loc["BW-500104-000005", "first_flight_id"] == "F2"
    assert list(cases.index[cases["not_observed"]]) == ["BW-500104-000002", "BW-500104-000004"]
    assert (cases.loc[cases["not_observed"], "state"] == "discovered").all()  # never auto-closed
    new_hist = store.history().iloc[before:]
    # a plain re-sighting writes no history; a new case and two not-observed do
    assert sorted(new_hist["case_id"]) == [
        "BW-500104-000002",
        "BW-500104-000004",
        "BW-500104-000005",
    ]
    assert new_hist["note"].str.contains("covered the site without detecting it").sum() == 2


def test_same_flight_twice_changes_nothing(ledger_url: str) -> None:
    store = _first_flight(ledger_url)
    before = snapshot(ledger_url)
    again = ingest_leads(store, make_leads([0, 1, 7]), coverage=coverage_of(range(9)))
    assert again.skipped and again.n_new == 0
    by_run = ingest_leads(store, make_leads([8], flight_id="F1b"), run_id="", flight_id="F1")
    assert by_run.skipped
    after = snapshot(ledger_url)
    for a, b in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(a, b)
    ingest_leads(store, make_leads([9], flight_id="F3"), run_id="R3")
    assert ingest_leads(store, make_leads([9], flight_id="F3-rerun"), run_id="R3").skipped
    assert list(store.ingests()["flight_id"]) == ["F1", "F3"]


def test_removed_case_detected_again_is_reopened_with_history(ledger_url: str) -> None:
    from pipelines.cases.imports import Update, apply_updates

    store = _first_flight(ledger_url)
    apply_updates(
        store,
        [
            Update("BW-500104-000001", "stopped", "张三", "2024-05-01"),
            Update("BW-500104-000001", "removed", "张三", "2024-05-02", note="已拆除"),
        ],
    )
    r = ingest_leads(store, make_leads([0], flight_id="F2", flight_date="2024-05-03"))
    assert (r.n_reopened, r.n_new) == (1, 0)
    case = store.cases(case_ids=["BW-500104-000001"]).iloc[0]
    assert case["state"] == "discovered" and case["times_seen"] == 2
    hist = store.history("BW-500104-000001")
    assert list(zip(hist["from_state"], hist["to_state"], strict=True)) == [
        ("", "discovered"),
        ("discovered", "stopped"),
        ("stopped", "removed"),
        ("removed", "discovered"),
    ]
    assert hist["note"].iloc[-1] == "detected again on flight F2: reopened"


def test_rejected_case_seen_again_opens_no_new_case(ledger_url: str) -> None:
    from pipelines.cases.imports import Update, apply_updates

    store = _first_flight(ledger_url)
    apply_updates(
        store,
        [Update("BW-500104-000002", "rejected", "李四", "2024-05-01", reason="false_detection")],
    )
    r = ingest_leads(store, make_leads([1], flight_id="F2", flight_date="2024-05-02"))
    assert (r.n_new, r.n_seen_again, r.n_reopened) == (0, 1, 0)
    case = store.cases(case_ids=["BW-500104-000002"]).iloc[0]
    assert (case["state"], case["times_seen"]) == ("rejected", 2)


def test_construction_completed_stays_its_case_noted_in_history(ledger_url: str) -> None:
    store = _first_flight(ledger_url)
    ingest_leads(store, make_leads([0], flight_id="F2", flight_date="2024-05-02", classes=[N]))
    case = store.cases(case_ids=["BW-500104-000001"]).iloc[0]
    assert (case["ledger"], case["class"], case["last_class"]) == ("in_progress", C, N)
    assert len(store.cases()) == 4
    note = store.history("BW-500104-000001")["note"].iloc[-1]
    assert "seen as new_building on flight F2 (was construction)" in note


def test_not_observed_case_seen_again_is_cleared_with_history(ledger_url: str) -> None:
    store = _first_flight(ledger_url)
    empty = make_leads([], flight_id="F2")
    ingest_leads(store, empty, flight_id="F2", coverage=coverage_of([1]), flight_date="2024-05-02")
    assert store.cases(case_ids=["BW-500104-000002"])["not_observed"].iloc[0]
    ingest_leads(store, make_leads([1], flight_id="F3", flight_date="2024-05-03"))
    assert not store.cases(case_ids=["BW-500104-000002"])["not_observed"].iloc[0]
    assert "after not being observed" in store.history("BW-500104-000002")["note"].iloc[-1]


def test_permitted_leads_are_not_cases(ledger_url: str) -> None:
    store = LedgerStore(ledger_url)
    r = ingest_leads(store, make_leads([0, 1, 2], statuses=["lead", "permitted", "permitted"]))
    assert (r.n_new, r.n_permitted) == (1, 2)
    assert len(store.cases()) == 1


def test_leads_in_another_crs_are_reprojected_and_older_flight_keeps_latest(
    ledger_url: str,
) -> None:
    store = _first_flight(ledger_url)
    late = make_leads([0], flight_id="F0", flight_date="2024-04-20", shift=2).to_crs(4490)
    r = ingest_leads(store, late)
    assert (r.n_seen_again, r.n_new) == (1, 0)
    case = store.cases(case_ids=["BW-500104-000001"]).iloc[0]
    assert (case["times_seen"], case["last_seen"], case["last_flight_id"]) == (
        2,
        "2024-05-01",
        "F1",
    )


def test_bad_leads_are_refused_clearly(ledger_url: str, tmp_path: Path) -> None:
    store = LedgerStore(ledger_url)
    with pytest.raises(VectorError, match=r"missing column\(s\) \['class'\]"):
        ingest_leads(store, make_leads([0]).drop(columns="class"))
    with pytest.raises(VectorError, match=r"column 'class' of lead 'F1-00000' is 'shadow'"):
        ingest_leads(store, make_leads([0], classes=["shadow"]))
    with pytest.raises(VectorError, match=r"several .* in column 'flight_id'; pass --flight-id"):
        ingest_leads(store, pd.concat([make_leads([0]), make_leads([1], flight_id="F2")]))
    with pytest.raises(CRSError, match=r"leads have no CRS"):
        ingest_leads(store, make_leads([0]).set_crs(None, allow_override=True))
    with pytest.raises(VectorError, match=r"flight date '05/01/2024' is not an ISO date"):
        ingest_leads(store, make_leads([0], flight_date="05/01/2024"))
    assert not store.exists() or store.cases().empty  # nothing half-written
    make_leads([0]).to_file(tmp_path / "x.gpkg", layer="other")
    with pytest.raises(VectorError, match=r"no layer 'leads' \(layers: \['other'\]\)"):
        read_leads(tmp_path / "x.gpkg")


def test_read_cases_and_missing_ledger(ledger_url: str) -> None:
    store = LedgerStore(ledger_url)
    with pytest.raises(LedgerError, match=r"no ledger at .*create it by ingesting leads"):
        store.cases()
    _first_flight(ledger_url)
    cases = read_cases(ledger_url)
    assert len(cases) == 4 and {"case_id", "state", "supervised", "geometry"} <= set(cases.columns)
    assert len(store.cases(ledger="existing")) == 1
    assert len(store.cases(open_only=True, township_code="500104002")) == 2


def test_geopackage_is_a_real_gpkg_qgis_opens(tmp_path: Path) -> None:
    path = tmp_path / "ledger.gpkg"
    _first_flight(str(path))
    layers = {str(n): t for n, t in pyogrio.list_layers(path)}
    assert layers == {
        "cases": "Polygon",
        "case_history": None,
        "ingests": None,
        "ledger_meta": None,
        "layer_styles": None,  # its QGIS style (pipelines/qgis.py)
    }
    info = pyogrio.read_info(path, layer="cases")
    assert info["crs"] == "EPSG:4544" and info["features"] == 4
    gdf = pyogrio.read_dataframe(path, layer="cases")
    assert gdf.geometry.iloc[0].equals(box(X0 + 1, Y0 + 1, X0 + 11, Y0 + 11))
    assert len(pyogrio.read_dataframe(path, layer="case_history")) == 4
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
    kinds = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
    assert kinds == {
        "cases": "features",
        "case_history": "attributes",
        "ingests": "attributes",
        "ledger_meta": "attributes",
        "layer_styles": "attributes",
    }
    assert con.execute(
        "SELECT geometry_type_name, srs_id FROM gpkg_geometry_columns"
    ).fetchone() == (
        "POLYGON",
        4544,
    )
    blob = con.execute("SELECT geom FROM cases LIMIT 1").fetchone()[0]
    assert blob[:2] == b"GP"
    con.close()
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.gpkg"]  # one file, no journal left


def test_urls_and_paths() -> None:
    assert resolve_url("ledger.gpkg").startswith("sqlite:////")
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    with pytest.raises(ConfigError, match=r"unsupported URL 'mysql://x'"):
        resolve_url("mysql://x")
    with pytest.raises(ConfigError, match=r"folder .*nowhere does not exist"):
        LedgerStore("/nowhere/ledger.gpkg")
