"""Names from data never become paths: a flight id from the flag, the sidecar, the GeoTIFF tag or
the nightly inbox is reduced to a safe name (pipelines.safety.safe_name), and every file the run
writes stays under its output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

import pipelines.detect as detect_mod
from pipelines.config import BuildwatchConfig
from pipelines.leads.identity import resolve_identity
from pipelines.nightly.runner import run_nightly
from pipelines.nightly.testing import FakeBackend
from pipelines.run import run_flight
from pipelines.safety import inside, safe_name
from tests._leads_fixtures import Structure, oracle_predict, stand_in_open_pair, write_pair
from tests._nightly_fixtures import drop, make_site

HOSTILE = ["../../../X", "/tmp/abs/X", "..\\..\\X", "a/../../X", "./.hidden", "X\x00y"]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("raw", HOSTILE)
def test_safe_name_has_no_separator_or_parent(raw: str) -> None:
    name = safe_name(raw)
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not name.startswith(".") and name and "\x00" not in name


def test_a_name_with_nothing_usable_is_refused() -> None:
    with pytest.raises(ValueError, match=r"flight id '\.\./\.\.' has no usable character"):
        safe_name("../..", "flight id")


def test_inside_refuses_a_path_out_of_its_root(tmp_path: Path) -> None:
    from geo.errors import ConfigError

    assert inside(tmp_path, "a/b.png") == (tmp_path / "a" / "b.png").resolve()
    for bad in ("../x.png", "/etc/x.png", "a/../../x.png"):
        with pytest.raises(ConfigError, match="outside the output folder"):
            inside(tmp_path, bad)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> Path:
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    work = tmp_path / "a" / "b" / "c"
    flight, baseline = write_pair(work / "in", [Structure(5, 5, 10, 10)])
    flag = None
    raw = "../../../X"
    if source == "flag":
        flag = "../../../X"
    elif source == "sidecar":
        (flight.parent / f"{flight.stem}.json").write_text(json.dumps({"flight_id": "../../../X"}))
    elif source == "tag":
        with rasterio.open(flight, "r+") as ds:
            raw = "/tmp/../../X"
            ds.update_tags(FLIGHT_ID=raw)
    config = BuildwatchConfig.model_validate(
        {
            "tiling": {"gsd": 0.2, "size": 128, "overlap": 32, "prefetch": 0},
            "coreg": {"mode": "off"},
        }
    )
    before = _files(tmp_path)
    out = work / "out"
    result = run_flight(
        flight, config=config, baseline=baseline, out_dir=out, predict=oracle_predict,
        flight_id=flag,
    )  # fmt: skip
    written = _files(tmp_path) - before
    assert written and all(out.resolve() in p.resolve().parents for p in written), written
    fid = result.result.flight_id
    assert fid == safe_name(raw) and "/" not in fid and ".." not in fid
    assert all(str(i).startswith(f"{fid}-") for i in result.result.leads["lead_id"])
    return out


@pytest.mark.parametrize("source", ["flag", "sidecar", "tag"])
def test_a_hostile_flight_id_writes_only_under_the_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    out = _run(tmp_path, monkeypatch, source)
    assert (out / "evidence").is_dir() and any((out / "evidence").glob("*X-*_after.png"))


def test_identity_reduces_every_source(tmp_path: Path) -> None:
    ident = resolve_identity(tmp_path / "f.tif", tmp_path / "b.tif", flight_id="夜航/2024 05 01")
    assert ident.flight_id == "夜航_2024_05_01" and ident.source == "argument"


def test_a_nightly_sidecar_id_cannot_move_the_flight_folder(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", nights=1)
    night = drop(site, 1)
    meta = json.loads((night / "flight.json").read_text())
    meta["flight_id"] = "../../../X"
    (night / "flight.json").write_text(json.dumps(meta))
    from pipelines.config import load_config

    before = _files(tmp_path)
    summary = run_nightly(load_config(site["config"]), FakeBackend())
    assert summary.flights[0].flight_id == "X" and summary.flights[0].status == "processed"
    written = _files(tmp_path) - before
    out = site["out"].resolve()
    assert written and all(out in p.resolve().parents for p in written), written
    assert (site["out"] / "X").is_dir()


def test_unit_codes_from_the_data_cannot_move_map_files(tmp_path: Path) -> None:
    from pipelines.maps.render import render_all
    from pipelines.maps.sample import make_sample_cases, make_sample_units

    units = make_sample_units()
    cases = make_sample_cases(units, seed=3, chip_dir=tmp_path / "chips")

    def hostile(code: object) -> str:
        return f"../../{code}"

    for frame in [*units.values(), cases]:
        for col in ("district_code", "township_code"):
            if col in frame.columns:
                frame[col] = frame[col].map(hostile)
    before = _files(tmp_path)
    paths = render_all(tmp_path / "out" / "maps", cases, units, offline=True)
    written = _files(tmp_path) - before
    maps = (tmp_path / "out" / "maps").resolve()
    assert paths and written and all(maps in p.resolve().parents for p in written), written
    assert all(".." not in p.name for p in written)
