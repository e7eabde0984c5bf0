"""A run's valid two-epoch coverage (layer ``coverage`` of leads.gpkg) reaches the ledger: open
cases whose site a later flight covered without detecting them become ``not_observed``; cases
outside that flight's coverage are untouched. Through ``buildwatch cases ingest`` and through the
nightly runner (real per-flight job, oracle predict callback, real geo.tiles)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest

from pipelines import cli
from pipelines.cases.store import LedgerStore
from pipelines.config import BuildwatchConfig, load_config
from pipelines.nightly.adapters import BuildwatchBackend
from pipelines.nightly.runner import run_nightly
from pipelines.run import run_flight
from tests._leads_fixtures import (
    ORIGIN,
    UTM,
    Structure,
    oracle_predict,
    write_pair,
    write_units,
)

SEEN = Structure(5, 5, 10, 10)  # west: night 2 covers it and sees nothing there
OUTSIDE = Structure(38, 30, 44, 36)  # east: outside night 2's flight (west 25.6 m only)
NEW = Structure(5, 32, 10, 38)  # west: new on night 2
HALF_COLS = 128  # night 2's flight is valid in its first 128 columns (x < 25.6 m)

_TILING = "tiling: {gsd: 0.2, size: 128, overlap: 32, prefetch: 0}\ncoreg: {mode: 'off'}\n"


def _nights(root: Path) -> tuple[Path, Path, Path]:
    """night1.tif (SEEN + OUTSIDE, full), night2.tif (NEW, west half valid), baseline.tif."""
    f1, baseline = write_pair(root / "n1", [SEEN, OUTSIDE])
    f2, _ = write_pair(root / "n2", [NEW], flight_alpha_cols=HALF_COLS)
    return (
        shutil.copy(f1, root / "night1.tif"),
        shutil.copy(f2, root / "night2.tif"),
        shutil.copy(baseline, root / "baseline.tif"),
    )


def _by_site(cases: gpd.GeoDataFrame) -> dict[str, dict]:
    ox, oy = ORIGIN
    names = {"SEEN": SEEN, "OUTSIDE": OUTSIDE, "NEW": NEW}
    out = {}
    for name, s in names.items():
        hit = cases[cases.intersects(s.box((ox, oy)))]
        assert len(hit) <= 1, name
        out[name] = hit.iloc[0].to_dict() if len(hit) else None
    return out


def test_run_writes_coverage_and_cases_ingest_uses_it(tmp_path, capsys):
    night1, night2, baseline = _nights(tmp_path)
    units = write_units(tmp_path / "units.gpkg")
    cfg = BuildwatchConfig.model_validate(
        {
            "tiling": {"gsd": 0.2, "size": 128, "overlap": 32, "prefetch": 0},
            "coreg": {"mode": "off"},
            "units": {"path": str(units)},
        }
    )
    runs = [
        run_flight(
            n, config=cfg, baseline=baseline, out_dir=tmp_path / n.stem, predict=oracle_predict
        )
        for n in (night1, night2)
    ]
    cov2 = gpd.read_file(runs[1].gpkg, layer="coverage")
    assert cov2.crs == UTM and cov2["flight_id"].tolist() == ["night2"]
    # the valid coverage is the west strip the flight's alpha leaves: 25.6 m x 51.2 m
    assert cov2.geometry.iloc[0].area == pytest.approx(25.6 * 51.2, rel=0.01)
    assert cov2["area_m2"].iloc[0] == pytest.approx(25.6 * 51.2, rel=0.01)

    ledger = str(tmp_path / "ledger.gpkg")
    for run in runs:
        with pytest.raises(SystemExit) as exc:
            cli.main(["cases", "ingest", str(run.gpkg), "--ledger", ledger])
        assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "1 new cases, 0 seen again, 0 reopened, 1 not observed" in out

    store = LedgerStore(ledger)
    cases = _by_site(store.cases())
    assert cases["SEEN"]["not_observed"] is True and cases["SEEN"]["state"] == "evidence"
    assert cases["OUTSIDE"]["not_observed"] is False  # night 2 never saw that site
    assert cases["NEW"]["not_observed"] is False and cases["NEW"]["first_flight_id"] == "night2"
    notes = store.history(cases["SEEN"]["case_id"])["note"].tolist()
    assert any("night2 covered the site without detecting it" in n for n in notes)
    assert len(store.history(cases["OUTSIDE"]["case_id"])) == 1  # only its discovery
    store.dispose()


def test_nightly_marks_covered_unseen_cases_not_observed(tmp_path):
    night1, night2, baseline = _nights(tmp_path / "src")
    site = tmp_path / "site"
    (site / "baselines").mkdir(parents=True)
    shutil.copy(baseline, site / "baselines" / "base.tif")
    (site / "baselines" / "base.json").write_text('{"date": "2024-01-01"}', encoding="utf-8")
    units = write_units(site / "units.gpkg")
    (site / "cfg.yaml").write_text(
        f"{_TILING}units: {{path: {units}}}\n"
        "nightly:\n  inbox: inbox\n  catalogue_dir: baselines\n  output_root: out\n"
        "  settle_seconds: 0\n"
        "  tile_batch: 3\n  refresh_maps: false\n",
        encoding="utf-8",
    )
    cfg = load_config(site / "cfg.yaml")
    backend = BuildwatchBackend(cfg, predict="tests._leads_fixtures:oracle_predict")
    for k, night in enumerate((night1, night2), start=1):
        folder = site / "inbox" / f"night_0{k}"
        folder.mkdir(parents=True)
        shutil.copy(night, folder / f"night_0{k}.tif")
        meta = {"flight_id": f"night_0{k}", "date": f"2024-05-0{k}"}
        (folder / f"night_0{k}.json").write_text(json.dumps(meta), encoding="utf-8")
        summary = run_nightly(cfg, backend, scheduler=None)
        assert summary.status == "ok", summary.to_text()
    store = LedgerStore(site / "out" / "ledger.gpkg")
    cases = _by_site(store.cases())
    ingests = store.ingests()
    store.dispose()
    assert ingests["n_not_observed"].tolist() == [0, 1]
    assert cases["SEEN"]["not_observed"] is True
    assert cases["OUTSIDE"]["not_observed"] is False
    assert cases["NEW"] is not None and cases["NEW"]["not_observed"] is False
