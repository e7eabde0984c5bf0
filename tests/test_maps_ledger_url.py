"""The maps read the case ledger from a PostgreSQL/PostGIS URL exactly as from a GeoPackage.

The PostGIS half skips (with the reason) where no server answers: run scripts/start_postgis.sh.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from geo.errors import InputFileError, LedgerError
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore
from pipelines.cli import main
from pipelines.maps.inputs import check_cases, load_cases
from pipelines.maps.sample import make_sample_cases, make_sample_units
from tests._cases_fixtures import ledger_url_fixture  # noqa: F401
from tests._maps_fixtures import write_units_gpkg

_COMPARE = ["case_id", "ledger", "state", "class", "unit_code", "township_code", "first_seen"]


def _fill(url: str) -> gpd.GeoDataFrame:
    """Ingest the maps' sample cases as leads, one flight per first-seen day; returns the leads."""
    leads = make_sample_cases(make_sample_units(), seed=3).drop(columns=["case_id", "state"])
    leads["status"] = "lead"
    store = LedgerStore(url)
    try:
        for day, part in leads.groupby("first_seen", sort=True):
            part = part.assign(lead_id=[f"L{day}-{i}" for i in range(len(part))])
            ingest_leads(store, part, flight_id=f"F{day}", flight_date=str(day))
    finally:
        store.dispose()
    return leads


def _priorities(ledger: str, units: Path, out: Path, capsys) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["priorities", "--ledger", ledger, "--units", str(units), "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 0, err
    return pd.read_csv(out / "priorities_district_500104.csv", encoding="utf-8-sig", dtype=str)


@pytest.mark.parametrize("ledger_url", ["postgis"], indirect=True)
def test_maps_read_a_postgis_ledger_like_a_geopackage(tmp_path, ledger_url, capsys):
    with pytest.raises(InputFileError, match="no ledger tables; ingest leads first"):
        load_cases(ledger_url)  # a reachable database without a ledger yet
    gpkg = str(tmp_path / "ledger.gpkg")
    leads = _fill(gpkg)
    _fill(ledger_url)
    from_pg, from_gpkg = load_cases(ledger_url), load_cases(gpkg)
    assert len(from_pg) == len(leads) == len(from_gpkg)
    assert from_pg.crs == from_gpkg.crs
    pd.testing.assert_frame_equal(from_pg[_COMPARE], from_gpkg[_COMPARE])
    assert from_pg.geometry.geom_equals_exact(from_gpkg.geometry, tolerance=1e-6).all()
    check_cases(from_pg, source=ledger_url)  # the maps' contract holds

    units = write_units_gpkg(make_sample_units(), tmp_path / "units.gpkg")
    pg_table = _priorities(ledger_url, units, tmp_path / "pg", capsys)
    gpkg_table = _priorities(gpkg, units, tmp_path / "gpkg", capsys)
    assert len(pg_table) > 0
    pd.testing.assert_frame_equal(pg_table, gpkg_table)


def test_an_unreachable_ledger_url_is_a_clear_error():
    with pytest.raises(LedgerError, match=r"ledger .*127\.0\.0\.1:9/nowhere.*cannot connect"):
        load_cases("postgresql://bw@127.0.0.1:9/nowhere")
