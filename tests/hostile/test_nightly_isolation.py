"""One bad flight never blocks the night, and flights are known by content: a half-written
sidecar fails alone, a flight still being copied waits, and a corrected delivery under the same
flight id reaches the ledger as a correction."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pipelines.cases.ingest import content_run_id, ingest_leads
from pipelines.cases.store import LedgerStore, read_cases
from pipelines.config import load_config
from pipelines.nightly.runner import run_nightly
from pipelines.nightly.state import read_health
from pipelines.nightly.testing import FakeBackend
from tests._cases_fixtures import make_leads
from tests._nightly_fixtures import drop, make_site


def _age(folder: Path, seconds: float) -> None:
    past = time.time() - seconds
    for p in folder.rglob("*"):
        os.utime(p, (past, past))


def test_a_bad_and_a_half_copied_flight_do_not_block_the_good_one(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=3)
    good, bad, fresh = drop(site, 1), drop(site, 2), drop(site, 3)
    (bad / "flight.json").write_text('{"flight_id": "night_02", "date": "2024-05-0')  # cut
    _age(good, 3600)
    _age(bad, 3600)  # the third was just copied in
    cfg = site["config"]
    cfg.write_text(cfg.read_text().replace("settle_seconds: 0", "settle_seconds: 120"))
    summary = run_nightly(load_config(cfg), FakeBackend())
    by_status = {f.status: f for f in summary.flights}
    assert set(by_status) == {"processed", "failed", "waiting"}
    assert by_status["processed"].flight_id == "night_01"
    assert "flight.json" in (by_status["failed"].error or "")
    assert "still being copied" in (by_status["waiting"].error or "")
    assert summary.status == "partial" and summary.exit_code == 3
    health = read_health(site["out"] / "health.json")
    assert {v["status"] for v in health["flights"].values()} == {"processed", "failed", "waiting"}
    assert health["counts"]["flights_waiting"] == 1
    # next pass: the copy has finished, the sidecar was fixed
    (bad / "flight.json").write_text(json.dumps({"flight_id": "night_02", "date": "2024-05-02"}))
    _age(bad, 3600)
    _age(fresh, 3600)
    again = run_nightly(load_config(cfg), FakeBackend())
    assert sorted(f.status for f in again.flights) == ["processed", "processed", "skipped"]


def test_a_corrected_delivery_under_the_same_id_reaches_the_ledger(tmp_path: Path) -> None:
    store = LedgerStore(str(tmp_path / "ledger.gpkg"))
    try:
        first = ingest_leads(
            store, make_leads([0], flight_id="N1", flight_date="2024-05-01"),
            run_id=content_run_id("a" * 64),
        )  # fmt: skip
        same = ingest_leads(
            store, make_leads([0], flight_id="N1", flight_date="2024-05-01"),
            run_id=content_run_id("a" * 64),
        )  # fmt: skip
        corrected = ingest_leads(
            store, make_leads([0, 1], flight_id="N1", flight_date="2024-05-01"),
            run_id=content_run_id("b" * 64),
        )  # fmt: skip
    finally:
        store.dispose()
    assert first.n_new == 1 and same.skipped
    assert not corrected.skipped and corrected.n_new == 1 and corrected.n_seen_again == 1
    cases = read_cases(str(tmp_path / "ledger.gpkg"))
    assert len(cases) == 2 and set(cases["times_seen"].astype(int)) == {1}
