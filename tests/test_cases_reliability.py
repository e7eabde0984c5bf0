"""Reliability: a writer killed mid-ingest (a real SIGKILL) leaves the ledger exactly as it was;
two writers at once are serialised or the second is refused with LockError; imports are
all-or-nothing. Run on both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from geo.errors import LockError
from pipelines.cases.imports import ImportValidationError, Update, apply_updates
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore
from tests._cases_fixtures import REPO, coverage_of, ledger_url_fixture, make_leads, snapshot  # noqa: F401

#: a child process that ingests a big batch (2,000 leads, new and seen-again) into the ledger
_CHILD = """
import sys
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore
from tests._cases_fixtures import coverage_of, make_leads
store = LedgerStore(sys.argv[1], lock_timeout_s=float(sys.argv[3]))
leads = make_leads(range(2000), flight_id=sys.argv[2], flight_date="2024-05-02", shift=2)
r = ingest_leads(store, leads, coverage=coverage_of(range(2000)))
print("done", r.n_new, r.n_seen_again, flush=True)
"""


def _child(
    url: str, flight: str, marker: Path, pause_s: float, lock_s: float = 30.0
) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), BUILDWATCH_LEDGER_PAUSE_S=str(pause_s))
    env["BUILDWATCH_LEDGER_PAUSE_MARKER"] = str(marker)
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, flight, str(lock_s)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("child never reached the pause inside its transaction")
        time.sleep(0.05)


def _seed(url: str) -> LedgerStore:
    store = LedgerStore(url, lock_timeout_s=0.5)
    ingest_leads(store, make_leads(range(0, 40, 2)), coverage=coverage_of(range(40)))
    apply_updates(store, [Update("BW-500104-000001", "stopped", "张三", "2024-05-01")])
    return store


def _assert_same(before: tuple[pd.DataFrame, ...], after: tuple[pd.DataFrame, ...]) -> None:
    for a, b in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_sigkill_mid_ingest_leaves_the_ledger_exactly_as_before(
    ledger_url: str, tmp_path: Path
) -> None:
    store = _seed(ledger_url)
    before = snapshot(ledger_url)
    marker = tmp_path / "inside"
    proc = _child(ledger_url, "F-killed", marker, pause_s=120)
    _wait_for(marker, proc)  # the child has written its 2,000 leads' rows, not yet committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)  # PostgreSQL notices the dropped connection and rolls back
    _assert_same(before, snapshot(ledger_url))
    # the ledger is usable afterwards, and the killed flight was never recorded
    r = ingest_leads(
        LedgerStore(ledger_url, lock_timeout_s=10), make_leads([1], flight_id="F-killed")
    )
    assert not r.skipped and r.n_new == 1
    assert store.cases(case_ids=["BW-500104-000001"])["state"].iloc[0] == "stopped"


def test_second_writer_is_refused_clearly_then_serialised(ledger_url: str, tmp_path: Path) -> None:
    store = _seed(ledger_url)
    before = snapshot(ledger_url)
    marker = tmp_path / "inside"
    proc = _child(ledger_url, "F-first", marker, pause_s=3)
    _wait_for(marker, proc)
    t0 = time.monotonic()
    with pytest.raises(
        LockError, match=r"ledger .* is being written by another process \(waited 0.5 s\)"
    ):
        ingest_leads(store, make_leads([1], flight_id="F-second"))
    assert time.monotonic() - t0 < 5
    with pytest.raises(LockError, match=r"being written by another process"):
        apply_updates(store, [Update("BW-500104-000001", "removed", "张三", "2024-05-02")])
    _assert_same(before, snapshot(ledger_url))  # readers see the committed state meanwhile
    # a patient second writer waits for the first and then goes through: serialised
    patient = LedgerStore(ledger_url, lock_timeout_s=60)
    r = ingest_leads(patient, make_leads([1], flight_id="F-second", flight_date="2024-05-03"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("done")
    assert not r.skipped
    assert list(patient.ingests()["flight_id"]) == ["F1", "F-first", "F-second"]


def test_import_is_all_or_nothing(ledger_url: str) -> None:
    store = _seed(ledger_url)
    before = snapshot(ledger_url)
    updates = [
        Update("BW-500104-000002", "stopped", "李四", "2024-05-01", row=2),
        Update("BW-500104-000003", "stopped", "李四", "2024-05-01", row=3),
        Update("BW-500104-000001", "discovered", "李四", "2024-05-01", row=4),  # backwards
    ]
    with pytest.raises(ImportValidationError, match=r"1 problem\(s\), nothing was applied") as info:
        apply_updates(store, updates, source="import:t.csv")
    assert [(p.row, p.column) for p in info.value.problems] == [(4, "to_state")]
    _assert_same(before, snapshot(ledger_url))
    result = apply_updates(store, updates[:2], source="import:t.csv")
    assert len(result.changes) == 2
    assert list(store.history()["source"].iloc[-2:]) == ["import:t.csv"] * 2
