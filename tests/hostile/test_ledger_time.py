"""The ledger keeps time straight: a flight delivered late (older than the latest already
ingested) moves first_seen back where it saw a case earlier, never marks as not observed a
structure first seen after it, and says in one line that it was out of order."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipelines.cases.ingest import ingest_leads
from pipelines.cases.store import LedgerStore, read_cases
from tests._cases_fixtures import coverage_of, make_leads


def test_a_late_older_flight_keeps_time_straight(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LedgerStore(str(tmp_path / "ledger.gpkg"))
    try:
        # night 2 (May 3) sees site 0 (built by May 1) and site 1 (built on May 2)
        late = ingest_leads(
            store, make_leads([0, 1], flight_id="N2", flight_date="2024-05-03"),
            coverage=coverage_of([0, 1]),
        )  # fmt: skip
        assert late.n_new == 2 and not late.out_of_order_after
        # night 1 (May 1) arrives late: it sees site 0 only; site 1 did not exist yet
        with caplog.at_level(logging.WARNING):
            early = ingest_leads(
                store, make_leads([0], flight_id="N1", flight_date="2024-05-01"),
                coverage=coverage_of([0, 1]),
            )  # fmt: skip
    finally:
        store.dispose()
    assert early.out_of_order_after == "2024-05-03" and early.n_not_observed == 0
    lines = [r.getMessage() for r in caplog.records if "out of order" in r.getMessage()]
    assert len(lines) == 1 and "N1 (2024-05-01)" in lines[0] and "2024-05-03" in lines[0]
    cases = read_cases(str(tmp_path / "ledger.gpkg")).sort_values("first_seen")
    by_site = dict(zip(cases["first_flight_id"], cases["first_seen"], strict=True))
    assert by_site == {"N1": "2024-05-01", "N2": "2024-05-03"}
    assert not cases["not_observed"].astype(bool).any()
    assert set(cases["last_seen"]) == {"2024-05-03"}  # the latest evidence stays


def test_in_order_flights_still_mark_a_missed_structure(tmp_path: Path) -> None:
    store = LedgerStore(str(tmp_path / "ledger.gpkg"))
    try:
        ingest_leads(store, make_leads([0, 1], flight_id="N1", flight_date="2024-05-01"))
        again = ingest_leads(
            store, make_leads([0], flight_id="N2", flight_date="2024-05-02"),
            coverage=coverage_of([0, 1]),
        )  # fmt: skip
    finally:
        store.dispose()
    assert again.n_not_observed == 1 and not again.out_of_order_after
