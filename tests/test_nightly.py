"""Nightly/batch operation: inbox, catalogue, state, lock, health, runner, batch, CLI."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from shapely import box

from geo.errors import ConfigError, CoverageError, InputFileError, LockError
from models.candidates import Candidates
from pipelines.config import load_config
from pipelines.nightly.batch import read_manifest, run_batch
from pipelines.nightly.catalogue import (
    CatalogueEntry,
    build_catalogue,
    load_catalogue,
    pick_baseline,
)
from pipelines.nightly.inbox import describe_flight, scan_inbox
from pipelines.nightly.runner import run_nightly
from pipelines.nightly.state import RunLock, StateDB, TileCheckpoint, read_health
from pipelines.nightly.testing import FakeBackend
from tests._nightly_fixtures import _write, drop, make_site


def _cases(out: Path) -> list[tuple]:
    con = sqlite3.connect(out / "fake-ledger.sqlite")
    rows = sorted(con.execute("SELECT key, first, last FROM cases").fetchall())
    con.close()
    return rows


def _sightings(out: Path) -> list[tuple]:
    con = sqlite3.connect(out / "fake-ledger.sqlite")
    rows = sorted(con.execute("SELECT flight_id, key FROM sightings").fetchall())
    con.close()
    return rows


# --- inbox ---------------------------------------------------------------------------------


def test_scan_inbox_reads_sidecars_odm_and_orders_by_date(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=2)
    drop(site, 2)
    drop(site, 1)
    arr = np.full((3, 32, 32), 50, np.uint8)
    _write(
        site["inbox"] / "proj_a" / "odm_orthophoto" / "odm_orthophoto.tif",
        arr,
        tag_date="2024-04-30",
    )
    _write(site["inbox"] / "late.tif", arr)
    (site["inbox"] / "late.yaml").write_text(
        "date: 2024-06-01\nflight_id: late-1\n", encoding="utf-8"
    )
    flights = scan_inbox(site["inbox"])
    assert [f.flight_id for f in flights] == ["proj_a", "night_01", "night_02", "late-1"]
    odm = flights[0]
    assert odm.kind == "odm" and odm.date == dt.date(2024, 4, 30) and odm.date_source == "tiff_tag"
    assert flights[1].district == "500106" and flights[1].date_source == "sidecar"
    assert len(flights[1].content_hash) == 64


def test_scan_inbox_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is not a folder"):
        scan_inbox(tmp_path / "missing")
    arr = np.full((3, 16, 16), 50, np.uint8)
    _write(tmp_path / "a.tif", arr, tag_date="2024-01-01")
    (tmp_path / "a.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"a\.json: sidecar metadata must be a mapping"):
        scan_inbox(tmp_path)
    (tmp_path / "a.json").write_text('{"date": "yesterday"}', encoding="utf-8")
    with pytest.raises(InputFileError, match="date 'yesterday' is not a date"):
        scan_inbox(tmp_path)
    with pytest.raises(InputFileError, match="not an OpenDroneMap project"):
        describe_flight(tmp_path)


# --- catalogue -----------------------------------------------------------------------------


def _entry(image_id: str, date: str, bounds: tuple[float, float, float, float]) -> CatalogueEntry:
    return CatalogueEntry(
        image_id,
        Path(f"/x/{image_id}.tif"),
        dt.date.fromisoformat(date),
        "EPSG:3857",
        0.3,
        box(*bounds),
        "0" * 64,
        1,
        1,
    )


def test_pick_baseline_most_recent_earlier_covering_then_largest_coverage() -> None:
    flight = box(106.0, 29.0, 106.01, 29.01)
    entries = [
        _entry("old_full", "2023-01-01", (105.9, 28.9, 106.1, 29.1)),
        _entry("new_half", "2024-03-01", (106.0, 29.0, 106.006, 29.01)),  # 60 % cover
        _entry("new_full", "2024-03-01", (105.9, 28.9, 106.1, 29.1)),
        _entry("after", "2024-06-01", (105.9, 28.9, 106.1, 29.1)),  # later than the flight
        _entry("newest_sliver", "2024-04-01", (106.0, 29.0, 106.001, 29.01)),  # 10 % cover
    ]
    kw = {"flight_id": "f", "flight_footprint": flight, "flight_crs": "EPSG:4544"}
    best, cov = pick_baseline(entries, flight_date=dt.date(2024, 5, 1), **kw)
    assert best.image_id == "new_full" and cov == pytest.approx(1.0)
    best, _ = pick_baseline(entries[:2] + entries[3:], flight_date=dt.date(2024, 5, 1), **kw)
    assert best.image_id == "new_half"
    best, _ = pick_baseline(entries, flight_date=dt.date(2024, 5, 1), min_coverage=0.05, **kw)
    assert best.image_id == "newest_sliver"
    with pytest.raises(CoverageError, match=r"flight f \(2022-01-01\): no baseline"):
        pick_baseline(entries, flight_date=dt.date(2022, 1, 1), **kw)


def test_build_catalogue_roundtrip_reuse_and_missing_date(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=1)
    out = tmp_path / "cat.geojson"
    entries = build_catalogue(site["root"] / "baselines", out)
    assert [(e.image_id, e.date, e.crs, e.gsd_m) for e in entries] == [
        ("base_2023", dt.date(2023, 11, 2), "EPSG:4544", 0.2)
    ]
    assert json.loads(out.read_text())["type"] == "FeatureCollection"
    assert load_catalogue(out) == entries
    assert 104.9 < entries[0].footprint.centroid.x < 105.1  # EPSG:4544 is CM 105°E
    _write(site["root"] / "baselines" / "nodate.tif", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(InputFileError, match=r"nodate\.tif: no acquisition date"):
        build_catalogue(site["root"] / "baselines", out)


# --- state ---------------------------------------------------------------------------------


def test_tile_checkpoint_roundtrip_and_key_change(tmp_path: Path) -> None:
    c = Candidates(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5], np.float32), np.array([1]))
    with TileCheckpoint(tmp_path / "t.sqlite", {"model": "a"}) as ck:
        ck.save({3: c.with_tile_id(3), 5: Candidates.empty(), 7: None})
    with TileCheckpoint(tmp_path / "t.sqlite", {"model": "a"}) as ck:
        assert ck.done() == {3, 5, 7}
        got = ck.load()
        np.testing.assert_array_equal(got[3].xyxy, c.xyxy)
        assert got[3].tile_id.tolist() == [3] and len(got[5]) == 0 and got[7] is None
    with TileCheckpoint(tmp_path / "t.sqlite", {"model": "b"}) as ck:
        assert ck.done() == set()  # different model: old tiles are not reused


def test_state_db_stages(tmp_path: Path) -> None:
    with StateDB(tmp_path / "s.sqlite") as db:
        assert db.stage("h") is None
        db.record("h", stage="running", flight_id="f", path="/p")
        db.record("h", stage="done", n_leads=3)
        assert db.stage("h") == "done" and db.rows()[0]["n_leads"] == 3
        with pytest.raises(ValueError, match="stage 'bogus'"):
            db.record("h", stage="bogus")


def test_lock_refuses_second_holder_with_pid(tmp_path: Path) -> None:
    import os

    with (
        RunLock(tmp_path / "x.lock"),
        pytest.raises(
            LockError, match=rf"holds the lock .*x\.lock \(pid {os.getpid()} on .*, started "
        ),
        RunLock(tmp_path / "x.lock"),
    ):
        pass
    with RunLock(tmp_path / "x.lock"):  # released
        pass
    assert LockError("x").exit_code == 75


# --- runner ----------------------------------------------------------------------------------


def test_nightly_processes_new_flights_once_and_writes_summary_and_health(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=3)
    drop(site, 1)
    cfg = load_config(site["config"])
    s1 = run_nightly(cfg, FakeBackend())
    assert s1.status == "ok" and [f.status for f in s1.flights] == ["processed"]
    assert s1.flights[0].baseline_id == "base_2023" and s1.flights[0].tiles_total == 16
    drop(site, 2)
    drop(site, 3)
    s2 = run_nightly(cfg, FakeBackend())
    assert [f.status for f in s2.flights] == ["skipped", "processed", "processed"]
    assert s2.counts()["new_cases"] > 0 and s2.counts()["updated_cases"] > 0
    # ledger equals one clean pass over all three nights
    clean = make_site(tmp_path / "clean", nights=3)
    for k in (1, 2, 3):
        drop(clean, k)
    run_nightly(load_config(clean["config"]), FakeBackend())
    assert _cases(site["out"]) == _cases(clean["out"])
    assert _sightings(site["out"]) == _sightings(clean["out"])
    runs = sorted((site["out"] / "runs").glob("*.json"))
    assert len(runs) == 2 and json.loads(runs[-1].read_text())["counts"]["flights_skipped"] == 1
    assert "night_02 2024-05-02: baseline base_2023" in runs[-1].with_suffix(".txt").read_text()
    health = read_health(site["out"] / "health.json")
    assert health["last_run"]["status"] == "ok" and health["last_success"]
    assert (site["out"] / "maps" / "index.html").is_file()


def test_nightly_flight_without_baseline_fails_alone(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=2)
    drop(site, 1)
    arr = np.full((3, 64, 64), 70, np.uint8)
    _write(site["inbox"] / "early.tif", arr, tag_date="2020-01-01")
    summary = run_nightly(load_config(site["config"]), FakeBackend())
    by_id = {f.flight_id: f for f in summary.flights}
    assert by_id["early"].status == "failed" and "no baseline" in (by_id["early"].error or "")
    assert by_id["night_01"].status == "processed"
    assert summary.status == "partial" and summary.exit_code == 3
    assert read_health(site["out"] / "health.json")["last_run"]["exit_code"] == 3


# --- batch and CLI ---------------------------------------------------------------------------


def test_batch_manifest_csv_yaml_text(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=2)
    (tmp_path / "m.csv").write_text(
        "flight,baseline,date\nincoming/night_01/flight.tif,baselines/base_2023.tif,2024-05-01\n"
        "incoming/night_02/flight.tif,,\n",
        encoding="utf-8",
    )
    rows = read_manifest(tmp_path / "m.csv")
    assert rows[0].baseline == tmp_path / "baselines" / "base_2023.tif" and rows[1].baseline is None
    (tmp_path / "m.yaml").write_text(
        "flights:\n  - flight: incoming/night_01/flight.tif\n", encoding="utf-8"
    )
    assert read_manifest(tmp_path / "m.yaml")[0].flight == tmp_path / "incoming/night_01/flight.tif"
    (tmp_path / "m.txt").write_text("# history\nincoming/night_02/flight.tif\n", encoding="utf-8")
    assert len(read_manifest(tmp_path / "m.txt")) == 1
    (tmp_path / "bad.csv").write_text("flight,camera\na.tif,x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.csv line 2: unknown column\(s\) \['camera'\]"):
        read_manifest(tmp_path / "bad.csv")
    summary = run_batch(load_config(site["config"]), FakeBackend(), tmp_path / "m.csv")
    assert [(f.flight_id, f.baseline_id, f.status) for f in summary.flights] == [
        ("night_01", "base_2023", "processed"),
        ("night_02", "base_2023", "processed"),
    ]
    assert summary.kind == "batch"


def test_cli_nightly_once_and_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.cli import cli

    monkeypatch.setenv("BUILDWATCH_NIGHTLY_BACKEND", "pipelines.nightly.testing:FakeBackend")
    site = make_site(tmp_path, nights=2)
    drop(site, 1)
    runner = CliRunner()
    res = runner.invoke(cli, ["nightly", "--config", str(site["config"]), "--once"])
    assert res.exit_code == 0, res.output
    assert "buildwatch nightly run" in res.output and "1 processed" in res.output
    (tmp_path / "m.txt").write_text("incoming/night_02/flight.tif\n", encoding="utf-8")
    res = runner.invoke(cli, ["batch", str(tmp_path / "m.txt"), "--config", str(site["config"])])
    assert res.exit_code == 0, res.output
    assert "buildwatch batch run" in res.output and "night_02" in res.output
    res = runner.invoke(
        cli, ["nightly", "--config", str(site["config"]), "--once", "--scheduler", "nope"]
    )
    assert isinstance(res.exception, ConfigError) and "tcp://HOST:8786" in str(res.exception)
