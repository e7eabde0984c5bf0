"""Pure planning of an ingest: which leads are sightings of which cases, and what changes.

:func:`plan_ingest` takes the ledger's cases (a GeoDataFrame with at least ``case_id``, ``ledger``,
``state``, ``last_class``, ``last_seen``, ``times_seen``, ``not_observed``, ``district_code``),
a flight's leads already in the ledger CRS, and the flight's coverage polygon, and returns the
rows to insert, the rows to update and the history rows to append. It touches no database, so
every rule is testable on tiny frames:

* a lead overlapping a case (intersection / smaller area >= ``min_overlap``) is a sighting of it;
  open cases win over removed ones, removed over other closed ones, then the larger overlap;
* a sighted ``removed`` case is reopened (back to ``discovered``), with a history row;
* a sighted rejected/enforced case only records the sighting (no new case, no state change);
* any other lead opens a new case in the ledger of its class;
* an open case inside the coverage that no lead sighted gets ``not_observed`` (never closed);
* a case a patrol or the hotline reported (``location`` point or unit, see
  :mod:`pipelines.cases.channels`) is not matched by overlap: a lead within ``attach_m`` of a
  point-located one, or inside a unit-level one of the lead's unit, attaches to it (one lead per
  case, nearest first, then the best score), and the case takes the lead's outline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.joins import PLACE_COLUMNS
from pipelines.cases.states import (
    CLOSED_STATES,
    FIRST_STATE,
    check_reopen,
    is_open,
    ledger_for_class,
)

__all__ = ["IngestPlan", "plan_ingest", "case_id_for", "next_sequence", "LEAD_FIELDS"]

#: lead columns copied onto a case (latest sighting wins)
LEAD_FIELDS = (
    "score",
    "area_m2",
    "lon",
    "lat",
    "evidence_before",
    "evidence_after",
)
#: lead columns copied onto a new case only (where it is does not change); the ledger keeps the
#: responsible party, not its type
PLACE_FIELDS = (*PLACE_COLUMNS, "responsible_party")


@dataclass
class IngestPlan:
    """What one ingest will write (rows as plain dicts keyed by column name)."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates_latest: list[dict[str, Any]] = field(default_factory=list)
    updates_older: list[dict[str, Any]] = field(default_factory=list)
    updates_not_observed: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    n_seen_again: int = 0
    n_reopened: int = 0
    #: the latest last_seen in the ledger, when this flight is older than it ("" otherwise)
    out_of_order_after: str = ""

    @property
    def n_new(self) -> int:
        return len(self.inserts)

    @property
    def n_not_observed(self) -> int:
        return len(self.updates_not_observed)


def case_id_for(district_code: str, seq: int) -> str:
    """``BW-<district>-<6-digit sequence>`` (``000000`` when the district is unknown).

    >>> case_id_for("500104", 123)
    'BW-500104-000123'
    """
    return f"BW-{district_code or '000000'}-{seq:06d}"


def next_sequence(case_ids: pd.Series) -> dict[str, int]:
    """Highest sequence used so far per district code, from existing case ids."""
    parts = case_ids.astype(str).str.extract(r"^BW-(?P<d>[^-]+)-(?P<n>\d+)$").dropna()
    if parts.empty:
        return {}
    parts["n"] = parts["n"].astype(int)
    return parts.groupby("d")["n"].max().to_dict()


def _match(leads: gpd.GeoSeries, cases: gpd.GeoDataFrame, min_overlap: float) -> pd.DataFrame:
    """One row per matched lead: lead position ``li`` -> case position ``ci``."""
    if len(leads) == 0 or len(cases) == 0:
        return pd.DataFrame({"li": [], "ci": []}, dtype=int)
    lgeom = np.asarray(leads.values)
    cgeom = np.asarray(cases.geometry.values)
    tree = shapely.STRtree(cgeom)
    li, ci = tree.query(lgeom, predicate="intersects")
    if len(li) == 0:
        return pd.DataFrame({"li": [], "ci": []}, dtype=int)
    inter = shapely.area(shapely.intersection(lgeom[li], cgeom[ci]))
    smaller = np.minimum(shapely.area(lgeom[li]), shapely.area(cgeom[ci]))
    ratio = np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)
    states = cases["state"].to_numpy()[ci]
    prio = np.where(~np.isin(states, list(CLOSED_STATES)), 0, np.where(states == "removed", 1, 2))
    pairs = pd.DataFrame({"li": li, "ci": ci, "prio": prio, "ratio": ratio})
    pairs = pairs[(pairs["ratio"] >= min_overlap) & (pairs["ratio"] > 0)]
    pairs = pairs.sort_values(["li", "prio", "ratio"], ascending=[True, True, False])
    return pairs.drop_duplicates("li")[["li", "ci"]].astype(int)


def _attach(
    leads: gpd.GeoDataFrame,
    cases: gpd.GeoDataFrame,
    reported: np.ndarray,
    taken: set[int],
    attach_m: float,
) -> pd.DataFrame:
    """Leads (not in *taken*) attaching to open reported cases (positions in *reported*)."""
    out: list[tuple[int, int, float]] = []
    if not len(reported) or not len(leads):
        return pd.DataFrame({"li": [], "ci": [], "dist": []})
    lgeom = np.asarray(leads.geometry.values)
    free = np.array([i for i in range(len(leads)) if i not in taken], dtype=int)
    loc = cases["location"].fillna("").astype(str).to_numpy()
    points = [c for c in reported if loc[c] == "point"]
    pairs: list[tuple[float, int, int]] = []
    for c in points:
        centre = cases.geometry.iloc[c].centroid
        d = shapely.distance(lgeom[free], centre) if len(free) else np.empty(0)
        pairs += [(float(x), int(li), c) for x, li in zip(d, free, strict=True) if x <= attach_m]
    used_l: set[int] = set()
    used_c: set[int] = set()
    for d, li, c in sorted(pairs):
        if li not in used_l and c not in used_c:
            used_l.add(li)
            used_c.add(c)
            out.append((li, c, d))
    scores = leads["score"].astype(float).to_numpy()
    lunit = leads["unit_code"].fillna("").astype(str).to_numpy()
    cunit = cases["unit_code"].fillna("").astype(str).to_numpy()
    for c in [c for c in reported if loc[c] == "unit"]:
        poly = cases.geometry.iloc[c]
        ok = [
            li
            for li in free
            if li not in used_l and lunit[li] == cunit[c] and poly.intersects(lgeom[li])
        ]
        if ok:
            li = max(ok, key=lambda i: scores[i])
            used_l.add(li)
            out.append((int(li), c, 0.0))
    return pd.DataFrame(out, columns=["li", "ci", "dist"])


def plan_ingest(
    cases: gpd.GeoDataFrame,
    leads: gpd.GeoDataFrame,
    *,
    flight_id: str,
    flight_date: str,
    coverage: BaseGeometry | None,
    now: str,
    who: str = "buildwatch",
    source: str = "",
    min_overlap: float = 0.1,
    correction: bool = False,
    attach_m: float = 30.0,
) -> IngestPlan:
    """Decide every change one flight's leads make to the ledger (see the module docstring)."""
    plan = IngestPlan()
    leads = leads.reset_index(drop=True)
    cases = cases.reset_index(drop=True)
    if "location" not in cases:
        cases["location"] = "outline"
    location = cases["location"].fillna("").astype(str).replace("", "outline")
    is_reported = (location != "outline").to_numpy() & ~cases["state"].isin(
        list(CLOSED_STATES)
    ).to_numpy()
    outlined = np.flatnonzero(~is_reported)
    matches = _match(leads.geometry, cases.iloc[outlined], min_overlap)
    matches["ci"] = outlined[matches["ci"].to_numpy()] if len(matches) else matches["ci"]
    attached = _attach(
        leads, cases, np.flatnonzero(is_reported), set(matches["li"].tolist()), attach_m
    )
    attach_note = {
        int(c): f"{d:.0f} m" if location.iloc[int(c)] == "point" else "inside the reported unit"
        for c, d in zip(attached["ci"], attached["dist"], strict=True)
    }
    matches = pd.concat([matches, attached[["li", "ci"]].astype(int)], ignore_index=True)
    latest = str(cases["last_seen"].dropna().astype(str).max()) if len(cases) else ""
    if latest and flight_date < latest:
        plan.out_of_order_after = latest

    def hist(case_id: str, frm: str, to: str, note: str) -> None:
        plan.history.append(
            {
                "case_id": case_id,
                "at": flight_date,  # when it happened; recorded_at: when it was written
                "who": who,
                "from_state": frm,
                "to_state": to,
                "reject_reason": "",
                "note": note,
                "flight_id": flight_id,
                "source": source,
                "recorded_at": now,
            }
        )

    # -- sightings of existing cases: the best-scoring lead per case carries the evidence
    scores = leads["score"].astype(float).to_numpy()
    matches = matches.assign(score=scores[matches["li"].to_numpy()] if len(matches) else [])
    best = matches.sort_values(["ci", "score"], ascending=[True, False]).drop_duplicates("ci")
    lead_rows = leads.drop(columns=leads.geometry.name).to_dict("records")
    lead_geoms = np.asarray(leads.geometry.values)
    case_cols = [c for c in cases.columns if c != cases.geometry.name]
    case_rows = cases[case_cols].to_dict("records") if len(best) else []
    for li, ci in zip(best["li"], best["ci"], strict=True):
        case = case_rows[ci]
        lead = lead_rows[li]
        cid = str(case["case_id"])
        state = str(case["state"])
        new_state = state
        plan.n_seen_again += 1
        if state == "removed":
            new_state = check_reopen(cid, str(case["ledger"]), state)
            plan.n_reopened += 1
            hist(cid, state, new_state, f"detected again on flight {flight_id}: reopened")
        elif bool(case["not_observed"]) and is_open(state):
            hist(
                cid, state, state, f"detected again on flight {flight_id} after not being observed"
            )
        lead_class = str(lead["class"])
        if lead_class != str(case["last_class"] or case.get("class", "")):
            hist(
                cid,
                new_state,
                new_state,
                f"seen as {lead_class} on flight {flight_id} (was {case['last_class']}); "
                "stays the same case",
            )
        if ci in attach_note:
            hist(
                cid,
                new_state,
                new_state,
                f"drone lead {lead['lead_id']} on flight {flight_id} attached to this "
                f"{case.get('source') or 'reported'} case ({attach_note[ci]}; "
                f"ref {case.get('report_ref') or '-'}): one structure, one case; the case "
                "takes the lead's outline",
            )
        again = correction and str(case.get("last_flight_id") or "") == flight_id
        if again:  # the corrected delivery of a flight that already counted this sighting
            hist(cid, new_state, new_state, f"seen again in the corrected delivery of {flight_id}")
        row = {
            "b_case_id": cid,
            "state": new_state,
            "times_seen": int(case["times_seen"] or 0) + (0 if again else 1),
            "not_observed": False,
            "last_class": lead_class,
            "updated_at": now,
        }
        if flight_date >= str(case["last_seen"] or ""):
            row.update({name: lead[name] for name in LEAD_FIELDS})
            row.update(geom=lead_geoms[li], last_seen=flight_date, last_flight_id=flight_id)
            first = str(case.get("first_seen") or "")
            row.update(  # every latest row carries the same keys (one UPDATE statement)
                location="outline",
                first_seen=flight_date if not first or flight_date < first else first,
                first_flight_id=str(case.get("first_flight_id") or "") or flight_id,
            )
            plan.updates_latest.append(row)
        else:  # an older flight ingested late: count it, keep the latest evidence
            first = str(case.get("first_seen") or "")
            if not first or flight_date < first:  # it saw the structure earlier than anyone
                row.update(first_seen=flight_date, first_flight_id=flight_id)
                hist(cid, new_state, new_state, f"first seen earlier, on flight {flight_id}")
            else:
                row.update(first_seen=first, first_flight_id=case.get("first_flight_id") or "")
            plan.updates_older.append(row)

    # -- new cases
    seq = next_sequence(cases["case_id"]) if len(cases) else {}
    matched = set(matches["li"].tolist())
    for li in range(len(leads)):
        if li in matched:
            continue
        lead = lead_rows[li]
        district = str(lead["district_code"] or "")
        key = district or "000000"
        seq[key] = seq.get(key, 0) + 1
        cid = case_id_for(district, seq[key])
        cls = str(lead["class"])
        ledger = ledger_for_class(cls)
        state = FIRST_STATE[ledger]
        row = {name: lead[name] for name in (*LEAD_FIELDS, *PLACE_FIELDS)}
        row.update(
            geom=lead_geoms[li],
            case_id=cid,
            ledger=ledger,
            state=state,
            reject_reason="",
            last_class=cls,
            first_seen=flight_date,
            last_seen=flight_date,
            times_seen=1,
            first_flight_id=flight_id,
            last_flight_id=flight_id,
            not_observed=False,
            supervised=False,
            deadline="",
            updated_at=now,
            source="drone",
            location="outline",
            **dict.fromkeys(
                ("report_ref", "address", "description", "reported_by", "household", "owner"), ""
            ),
        )
        row["class"] = cls
        plan.inserts.append(row)
        hist(cid, "", state, f"discovered on flight {flight_id} (lead {lead['lead_id']})")

    # -- open cases the flight covered without seeing them
    if coverage is not None and not coverage.is_empty and len(cases):
        sighted = np.zeros(len(cases), dtype=bool)
        sighted[matches["ci"].to_numpy()] = True
        open_ = ~cases["state"].isin(list(CLOSED_STATES)).to_numpy()
        flagged = cases["not_observed"].fillna(False).astype(bool).to_numpy()
        # a structure first seen after this flight (ingested late) was not built yet: not missed
        if "first_seen" in cases.columns:
            existed = (cases["first_seen"].fillna("").astype(str) <= flight_date).to_numpy()
        else:
            existed = np.ones(len(cases), dtype=bool)
        candidates = np.flatnonzero(open_ & ~sighted & ~flagged & existed)
        if len(candidates):
            geoms = np.asarray(cases.geometry.values)[candidates]
            shapely.prepare(coverage)
            covered = candidates[shapely.covers(coverage, geoms)]
            ids = cases["case_id"].to_numpy()[covered]
            states = cases["state"].to_numpy()[covered]
            for cid, state in zip(ids.tolist(), states.tolist(), strict=True):
                plan.updates_not_observed.append(
                    {"b_case_id": cid, "not_observed": True, "updated_at": now}
                )
                hist(
                    cid,
                    state,
                    state,
                    f"flight {flight_id} covered the site without detecting it; verify on site",
                )
    return plan
