"""Units marked cleared (整治完毕) stay under watch: new cases in them are flagged everywhere."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import pytest

from geo.errors import LedgerError
from pipelines.cases.cleared import mark_cleared, read_cleared
from pipelines.cases.ingest import ingest_leads
from pipelines.cases.reports import daily_report
from pipelines.cases.store import LedgerStore
from tests._cases_fixtures import coverage_of, ledger_url_fixture, make_leads  # noqa: F401


def test_a_case_in_a_cleared_unit_is_flagged(ledger_url: str) -> None:
    store = LedgerStore(ledger_url)
    first = make_leads([0, 1], flight_id="F1", flight_date="2024-05-01")
    ingest_leads(store, first, coverage=coverage_of([0, 1]), source="t1")
    mark_cleared(store, "V1", day="2024-05-02", who="镇政府", unit_name="村1")
    with pytest.raises(LedgerError, match="already marked cleared"):
        mark_cleared(store, "V1", day="2024-05-03", who="镇政府")
    assert list(read_cleared(store)["unit_code"]) == ["V1"]
    # the next flight finds a new structure in V1 (site 4: unit V1) and one in V0 (site 3)
    second = make_leads([0, 1, 3, 4], flight_id="F2", flight_date="2024-05-03")
    ingest_leads(store, second, coverage=coverage_of([0, 1, 3, 4]), source="t2")
    report = daily_report(store, date(2024, 5, 3), today=date(2024, 5, 3))
    head = report.summary.splitlines()
    assert head[0] == "整治完毕单元新增线索（需立即核查）：1宗"
    assert head[1].startswith("  村1（V1，2024-05-02整治完毕）：")
    # the site that was already there when the unit was cleared (site 1) is not a relapse
    mark_cleared(store, "V1", day="2024-05-04", who="镇政府", off=True)
    assert read_cleared(store).empty
    assert not daily_report(store, date(2024, 5, 3), today=date(2024, 5, 3)).summary.startswith(
        "整治完毕"
    )
    store.dispose()


def test_relapsed_units_rise_and_are_drawn_apart(tmp_path: Path) -> None:
    from pipelines.maps.folium_map import build_map
    from pipelines.maps.render import compute_priorities
    from pipelines.maps.sample import make_sample_cases, make_sample_units

    units = make_sample_units()
    cases = make_sample_cases(units, seed=3, chip_dir=tmp_path / "chips")
    calm = compute_priorities(cases, units).units
    with_cases = calm[(calm["cases_total"] > 0) & (calm["priority"] != "high")]
    assert len(with_cases), "the seeded sample has a unit with cases below high priority"
    target = with_cases.sort_values("priority_score").iloc[0]["unit_code"]
    in_it = cases[(cases["unit_code"] == target) & (cases["state"] != "rejected")]
    cleared = gpd.pd.DataFrame(
        {"unit_code": [target], "cleared_on": [str(in_it["first_seen"].min())[:10]]}
    )
    raised = compute_priorities(cases, units, cleared=cleared).units.set_index("unit_code")
    assert raised.loc[target, "relapsed"] >= 1 and raised.loc[target, "priority"] == "high"
    html = (
        build_map(compute_priorities(cases, units, cleared=cleared).units, cases)
        .get_root()
        .render()
    )
    escaped = "整治后新增线索".encode("unicode_escape").decode()  # folium writes JSON escaped
    assert escaped in html or "整治后新增线索" in html
    assert '"watch": "relapsed"' in html and "#d50000" in html
