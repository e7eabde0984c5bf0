"""Clean up after a crash: a rerun removes the staging and swap folders a killed run left (but
not those of a run that is still alive), and --leads-only never leaves an earlier run's maps
passing for this run's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines.detect as detect_mod
from pipelines.config import BuildwatchConfig
from pipelines.run import clean_leftovers, run_flight
from tests._leads_fixtures import Structure, oracle_predict, stand_in_open_pair, write_pair


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # exited and reaped: no such process now


def test_a_rerun_removes_what_a_killed_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    out = tmp_path / "out"
    dead = out / f".staging-{_dead_pid()}-0badc0de"
    legacy = out / ".staging-1a2b3c4d"
    swap = out / ".old-evidence-12345678"
    alive = out / f".staging-{os.getppid()}-a11ce000"  # the test runner's parent: alive
    for d in (dead, legacy, swap, alive):
        (d / "evidence").mkdir(parents=True)
        (d / "evidence" / "x.png").write_bytes(b"half")
    (out / "maps").mkdir()
    orphan = out / "maps" / ".map_district_1.0123456789ab.html"
    orphan.write_text("half a page")
    keep = out / "maps" / ".keep-me"
    keep.write_text("a user's hidden file")
    flight, baseline = write_pair(tmp_path / "in", [Structure(5, 5, 10, 10)])
    config = BuildwatchConfig.model_validate(
        {
            "tiling": {"gsd": 0.2, "size": 128, "overlap": 32, "prefetch": 0},
            "coreg": {"mode": "off"},
        }
    )
    run_flight(flight, config=config, baseline=baseline, out_dir=out, predict=oracle_predict)
    assert not dead.exists() and not legacy.exists() and not swap.exists()
    assert alive.exists()  # another live run's staging is left alone
    assert orphan.exists()  # ... and while it runs, temp files may be its own
    alive.rename(out / f".staging-{_dead_pid()}-a11ce000")
    clean_leftovers(out)
    assert not orphan.exists() and keep.exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert clean_leftovers(out) == []


def test_leads_only_moves_an_earlier_runs_maps_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.cli import main

    monkeypatch.setattr(detect_mod, "_open_pair", stand_in_open_pair)
    monkeypatch.setattr(detect_mod, "load_detector", lambda config: oracle_predict)
    import pipelines.run as run_mod

    monkeypatch.setattr(run_mod, "load_detector", lambda config: oracle_predict)
    flight, baseline = write_pair(tmp_path / "in", [Structure(5, 5, 10, 10)])
    out = tmp_path / "out"
    (out / "maps").mkdir(parents=True)
    (out / "maps" / "map_district_1.html").write_text("earlier")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tiling: {gsd: 0.2, size: 128, overlap: 32}\ncoreg: {mode: 'off'}\n")
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", str(cfg), "--flight", str(flight), "--baseline", str(baseline),
              "--out", str(out), "--leads-only"])  # fmt: skip
    assert exc.value.code == 0
    assert not (out / "maps").exists()
    assert (out / "maps.earlier-run" / "map_district_1.html").read_text() == "earlier"
    assert "earlier run's maps moved to" in capsys.readouterr().out
