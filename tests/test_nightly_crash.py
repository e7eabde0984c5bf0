"""Real processes: SIGKILL mid-flight then restart resumes; a concurrent run exits 75."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._nightly_fixtures import drop, make_site

REPO = Path(__file__).resolve().parents[1]


def _start(config: Path, *, delay: float, log: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "BUILDWATCH_NIGHTLY_BACKEND": "pipelines.nightly.testing:FakeBackend",
        "BUILDWATCH_FAKE_TILE_DELAY": str(delay),
        "BUILDWATCH_FAKE_TILE_LOG": str(log),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "nightly", "--config", str(config), "--once"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _done_tiles(ck: Path) -> set[int]:
    if not ck.is_file():
        return set()
    try:
        con = sqlite3.connect(f"file:{ck}?mode=ro", uri=True, timeout=5)
        rows = con.execute("SELECT tile_index FROM tiles").fetchall()
        con.close()
    except sqlite3.Error:
        return set()
    return {int(r[0]) for r in rows}


def _wait(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the nightly subprocess")


def _predicted(log: Path) -> list[tuple[str, int]]:
    if not log.is_file():
        return []
    return [(a, int(b)) for a, b, _ in (ln.split() for ln in log.read_text().splitlines())]


def _ledger(out: Path) -> tuple[list, list]:
    con = sqlite3.connect(out / "fake-ledger.sqlite")
    result = (
        sorted(con.execute("SELECT * FROM cases").fetchall()),
        sorted(con.execute("SELECT * FROM sightings").fetchall()),
    )
    con.close()
    return result


@pytest.mark.timeout(120)
def test_kill_mid_flight_then_restart_resumes_without_redoing_tiles(tmp_path: Path) -> None:
    site = make_site(tmp_path / "crash", nights=3)
    for k in (1, 2, 3):
        drop(site, k)
    ck2 = site["out"] / "night_02" / "tiles.sqlite"
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    proc = _start(site["config"], delay=0.1, log=log1)
    try:
        _wait(lambda: len(_done_tiles(ck2)) >= 4 or proc.poll() is not None)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    done_before = _done_tiles(ck2)
    assert 4 <= len(done_before) < 16, done_before  # killed mid-flight, after some checkpoints
    proc = _start(site["config"], delay=0.0, log=log2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rerun = _predicted(log2)
    assert not [t for t in rerun if t[0] == "night_01"]  # finished flight not redone
    redone = {i for f, i in rerun if f == "night_02"}
    assert redone == set(range(16)) - done_before  # checkpointed tiles not redone
    assert f"({len(done_before)} resumed)" in out
    # the ledger equals one clean, uninterrupted pass (no duplicate cases or sightings)
    clean = make_site(tmp_path / "clean", nights=3)
    for k in (1, 2, 3):
        drop(clean, k)
    proc = _start(clean["config"], delay=0.0, log=tmp_path / "clean.log")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert _ledger(site["out"]) == _ledger(clean["out"])
    for k in (1, 2, 3):
        a = json.loads((site["out"] / f"night_0{k}" / "leads.json").read_text())
        assert a == json.loads((clean["out"] / f"night_0{k}" / "leads.json").read_text())


@pytest.mark.timeout(120)
def test_second_concurrent_run_exits_75_naming_the_holder(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=1)
    drop(site, 1)
    lock = site["out"] / "nightly.lock"
    first = _start(site["config"], delay=0.2, log=tmp_path / "a.log")
    try:
        _wait(lambda: lock.is_file() and lock.read_text().strip().startswith("{"))
        holder = json.loads(lock.read_text())
        second = _start(site["config"], delay=0.0, log=tmp_path / "b.log")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 75, err
        assert f"holds the lock {lock} (pid {first.pid} on" in err
        assert f"started {holder['started']}" in err
        assert not (tmp_path / "b.log").exists()  # refused before doing any work
    finally:
        _, err1 = first.communicate(timeout=60)
    assert first.returncode == 0, err1
