"""``buildwatch run`` ends with the ledger and the maps: one flight gives leads, cases and maps."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest

from geo.synthetic.district import generate_district
from pipelines import cli
from pipelines.cases.store import read_cases


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("publish") / "d"
    generate_district(root, seed=5, size_m=200, gsd=0.1)
    (root / "run.yaml").write_text("units: {path: units.gpkg}\n", encoding="utf-8")
    return root


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    return out


@pytest.mark.slow
def test_run_ingests_its_leads_and_draws_the_maps(
    district: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "run"
    args = ["run", "--config", str(district / "run.yaml"), "--flight", str(district / "flight.tif"),
            "--baseline", str(district / "baseline.tif"), "--out", str(out_dir)]  # fmt: skip
    printed = run(args, capsys)
    leads = gpd.read_file(out_dir / "leads.gpkg", layer="leads")
    n_leads = int((leads["status"] == "lead").sum())
    assert n_leads > 0
    cases = read_cases(out_dir / "ledger.gpkg")
    assert len(cases) == n_leads  # every lead (not the permitted ones) became a case
    assert set(cases["ledger"]) <= {"in_progress", "existing"}
    district_map = out_dir / "maps" / f"map_district_{leads['district_code'].iloc[0]}.html"
    assert district_map.is_file()
    assert f"district map: {district_map}" in printed
    # the same flight again: the ledger does not change
    printed = run(args, capsys)
    assert "already ingested" in printed
    assert len(read_cases(out_dir / "ledger.gpkg")) == n_leads


def test_leads_only_stops_before_the_ledger(
    district: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "leads-only"
    run(["run", "--config", str(district / "run.yaml"), "--flight", str(district / "flight.tif"),
         "--baseline", str(district / "baseline.tif"), "--out", str(out_dir), "--leads-only"],
        capsys)  # fmt: skip
    assert (out_dir / "leads.gpkg").is_file()
    assert not (out_dir / "ledger.gpkg").exists()
    assert not (out_dir / "maps").exists()
