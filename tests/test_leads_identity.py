"""Flight ids from metadata: argument > sidecar > FLIGHT_ID tag > file stem (lead ids never collide
across nights whose rasters are all called flight.tif)."""

from __future__ import annotations

import datetime as dt
import doctest
import json
from pathlib import Path

import pandas as pd
import pytest
import rasterio

import pipelines.detect as detect_mod
import pipelines.leads.identity
from geo.errors import InputFileError, RasterError
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads
from pipelines.leads.identity import resolve_identity
from pipelines.run import run_flight
from tests._leads_fixtures import Structure, oracle_predict, stand_in_open_pair, write_pair

STRUCTURES = [Structure(5, 5, 10, 10), Structure(35, 10, 40, 15)]


def _config() -> BuildwatchConfig:
    cfg = BuildwatchConfig.model_validate(
        {
            "tiling": {"gsd": 0.2, "size": 128, "overlap": 32, "prefetch": 0},
            "coreg": {"mode": "off"},
        }
    )
    cfg.output.evidence = False
    return cfg


def _tag(path: Path, **tags: str) -> None:
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(**tags)


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)


def test_doctests() -> None:
    result = doctest.testmod(pipelines.leads.identity)
    assert result.failed == 0 and result.attempted > 0


def test_each_night_gets_its_sidecar_id(tmp_path, stand_in):
    """Two nights, both night_XX/flight.tif: the sidecar ids reach lead_id and flight_id."""
    tables = {}
    for k in (1, 2):
        flight, baseline = write_pair(tmp_path / f"night_{k:02d}", STRUCTURES)
        meta = {"flight_id": f"SYN-7-0{k}", "date": f"2024-05-0{k}", "district": "500104"}
        flight.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
        out = run_flight(
            flight,
            config=_config(),
            baseline=baseline,
            out_dir=tmp_path / f"out_{k}",
            predict=oracle_predict,
        )
        assert out.result.flight_id == f"SYN-7-0{k}" and out.result.baseline_id == "baseline"
        tables[k] = pd.read_csv(out.csv, encoding="utf-8-sig", dtype=str)
    for k, table in tables.items():
        assert len(table) == 2
        assert table["lead_id"].tolist() == [f"SYN-7-0{k}-00001", f"SYN-7-0{k}-00002"]
        assert set(table["flight_id"]) == {f"SYN-7-0{k}"}
        assert set(table["flight_date"]) == {f"2024-05-0{k}"}  # the sidecar's date
    assert not set(tables[1]["lead_id"]) & set(tables[2]["lead_id"])


def test_explicit_id_and_date_beat_the_sidecar(tmp_path, stand_in):
    flight, baseline = write_pair(tmp_path, STRUCTURES)
    flight.with_suffix(".yaml").write_text("flight_id: from-sidecar\ndate: 2024-05-01\n")
    _tag(flight, FLIGHT_ID="from-tag")
    res = detect_leads(
        flight,
        baseline,
        predict=oracle_predict,
        config=_config(),
        flight_id="N-42",
        flight_date=dt.date(2024, 6, 3),
    )
    assert set(res.leads["lead_id"].str.rsplit("-", n=1).str[0]) == {"N-42"}
    assert set(res.leads["flight_id"]) == {"N-42"} and res.flight_id == "N-42"
    assert set(res.leads["flight_date"]) == {"2024-06-03"}
    ids = resolve_identity(flight, baseline)
    assert (ids.flight_id, ids.source, ids.flight_date) == (
        "from-sidecar",
        "sidecar",
        dt.date(2024, 5, 1),
    )


def test_tag_fallback_for_flight_and_baseline(tmp_path, stand_in):
    flight, baseline = write_pair(tmp_path, STRUCTURES)
    _tag(flight, FLIGHT_ID="SYN-9-01")
    _tag(baseline, FLIGHT_ID="BASE-2023")
    res = detect_leads(flight, baseline, predict=oracle_predict, config=_config())
    assert res.flight_id == "SYN-9-01" and res.baseline_id == "BASE-2023"
    assert res.leads["lead_id"].tolist() == ["SYN-9-01-00001", "SYN-9-01-00002"]
    assert set(res.leads["baseline_id"]) == {"BASE-2023"}
    flight.with_suffix(".json").write_text('{"district": "500104"}')  # a sidecar without an id
    assert resolve_identity(flight, baseline).source == "tag"


def test_stem_fallback(tmp_path, stand_in):
    flight, baseline = write_pair(tmp_path, STRUCTURES)
    renamed = flight.rename(tmp_path / "2024-05-01_north.tif")
    res = detect_leads(renamed, baseline, predict=oracle_predict, config=_config())
    assert res.flight_id == "2024-05-01_north" and res.baseline_id == "baseline"
    assert res.leads["lead_id"].iloc[0] == "2024-05-01_north-00001"
    ids = resolve_identity(tmp_path / "missing.tif", baseline)
    assert (ids.flight_id, ids.source, ids.flight_date) == ("missing", "stem", None)


def test_bad_sidecars_are_named(tmp_path):
    flight, baseline = write_pair(tmp_path, [])
    sidecar = flight.with_suffix(".json")
    sidecar.write_text("[1, 2]")
    with pytest.raises(InputFileError, match=r"flight\.json: sidecar metadata must be a mapping"):
        resolve_identity(flight, baseline)
    sidecar.write_text('{"flight_id": "F1", "date": "May first"}')
    with pytest.raises(RasterError, match=r"flight\.json key 'date'.*write it as YYYY-MM-DD"):
        resolve_identity(flight, baseline)
    assert resolve_identity(flight, baseline, flight_date=dt.date(2024, 5, 1)).flight_id == "F1"
