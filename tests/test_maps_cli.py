"""``buildwatch priorities`` and ``buildwatch map`` end to end on a seeded district."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.maps.folium_map import remote_assets
from tests._maps_fixtures import cases, units, write_units_gpkg  # noqa: F401


@pytest.fixture()
def inputs(tmp_path, units, cases):  # noqa: F811
    ledger = tmp_path / "cases.gpkg"
    cases.to_file(ledger, layer="cases", driver="GPKG")
    return ledger, write_units_gpkg(units, tmp_path / "units.gpkg")


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_priorities_command(tmp_path, inputs, capsys):
    ledger, units_gpkg = inputs
    code, out, err = _run(
        [
            "priorities",
            "--ledger",
            str(ledger),
            "--units",
            str(units_gpkg),
            "--out",
            str(tmp_path / "p"),
            "--zh",
        ],
        capsys,
    )
    assert code == 0, err
    assert " 1. 500104001001" in out or " 1. 500104002005" in out
    table = pd.read_csv(
        tmp_path / "p" / "priorities_district_500104.csv", encoding="utf-8-sig", dtype=str
    )
    assert table.loc[0, "区县排名"] == "1"
    assert (tmp_path / "p" / "priorities_district_500104.xlsx").is_file()


def test_map_command_offline(tmp_path, inputs, capsys):
    ledger, units_gpkg = inputs
    code, out, err = _run(
        [
            "map",
            "--ledger",
            str(ledger),
            "--units",
            str(units_gpkg),
            "--out",
            str(tmp_path / "m"),
            "--offline",
            "--township",
            "500104001",
        ],
        capsys,
    )
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("district map: ") and last.endswith("map_district_500104.html")
    page = (tmp_path / "m" / "map_district_500104.html").read_text(encoding="utf-8")
    assert remote_assets(page) == []
    assert not (tmp_path / "m" / "map_township_500104002.html").exists()


def test_map_command_errors_are_one_line(tmp_path, inputs, capsys):
    ledger, units_gpkg = inputs
    code, _, err = _run(
        [
            "map",
            "--ledger",
            str(ledger),
            "--units",
            str(units_gpkg),
            "--out",
            str(tmp_path / "m"),
            "--township",
            "123",
        ],
        capsys,
    )
    assert code == 2 and "--township '123': not a township" in err
    code, _, err = _run(
        [
            "priorities",
            "--ledger",
            str(tmp_path / "none.gpkg"),
            "--units",
            str(units_gpkg),
            "--out",
            str(tmp_path / "p"),
        ],
        capsys,
    )
    assert code == 3 and "ledger not found" in err
    code, _, err = _run(
        [
            "priorities",
            "--ledger",
            str(units_gpkg),
            "--units",
            str(units_gpkg),
            "--out",
            str(tmp_path / "p"),
        ],
        capsys,
    )
    assert code == 3 and "layer 'cases'" in err


def test_priorities_from_a_case_ledger(tmp_path, units, cases, capsys):  # noqa: F811
    """A ledger made by the cases area (LedgerStore + ingest_leads) is read through the store."""
    from pipelines.cases.ingest import ingest_leads
    from pipelines.cases.store import LedgerStore

    leads = cases.drop(columns=["case_id", "ledger", "state", "reject_reason"]).assign(
        lead_id=[f"F1-{i:05d}" for i in range(len(cases))],
        status="lead",
        flight_id="F1",
        flight_date="2024-06-30",
    )
    store = LedgerStore(tmp_path / "ledger.gpkg")
    ingest_leads(store, leads)
    store.dispose()
    units_gpkg = write_units_gpkg(units, tmp_path / "units.gpkg")
    code, out, err = _run(
        [
            "priorities",
            "--ledger",
            str(tmp_path / "ledger.gpkg"),
            "--units",
            str(units_gpkg),
            "--out",
            str(tmp_path / "p"),
        ],
        capsys,
    )
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p" / "priorities_district_500104.csv", dtype=str)
    assert table.loc[0, "unit_code"] == "500104001001"  # the most planted unit (14 cases)
    assert int(table["cases_total"].astype(int).sum()) == len(cases)


def test_map_command_shows_what_a_run_could_not_compare(tmp_path, inputs, units, capsys):  # noqa: F811
    import geopandas as gpd
    import shapely

    ledger, units_gpkg = inputs
    district = units["districts"].geometry.iloc[0]
    minx, miny, maxx, maxy = district.bounds
    nc = shapely.box(minx, miny, (minx + maxx) / 2, maxy).intersection(district)
    run = tmp_path / "leads.gpkg"
    for kind, geom in (("coverage", district.difference(nc)), ("not_comparable", nc),
                       ("unknown", shapely.MultiPolygon())):  # fmt: skip
        gpd.GeoDataFrame(
            {"flight_id": ["F9"], "baseline_id": ["B"], "coreg_status": ["verified"],
             "area_m2": [geom.area]}, geometry=[geom], crs=units["districts"].crs,
        ).to_file(run, layer=kind, driver="GPKG")  # fmt: skip
    argv = ["map", "--ledger", str(ledger), "--units", str(units_gpkg), "--out",
            str(tmp_path / "m"), "--run", str(run)]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    page = (tmp_path / "m" / "map_district_500104.html").read_text(encoding="utf-8")
    label = "未比对区域"
    assert label in page or json_escaped(label) in page
    assert f"{nc.area / 1e6:.3f}" in page  # the legend's km² not compared
    from pipelines.cases.ingest import ingest_leads
    from pipelines.cases.store import LedgerStore
    from tests._cases_fixtures import make_leads

    real = tmp_path / "ledger.gpkg"
    store = LedgerStore(str(real))
    ingest_leads(store, make_leads([0]))
    store.dispose()
    code, out, err = _run(["report", "daily", "--ledger", str(real), "--out",
                           str(tmp_path / "d.csv"), "--run", str(run)], capsys)  # fmt: skip
    assert code == 0, err
    assert "航拍 F9" in out and "部分区域未比对" in out


def json_escaped(text: str) -> str:
    import json

    return json.dumps(text)[1:-1]
