"""Every discovery channel: cases from patrol logs and hotline reports, meeting the drone's.

The notice has three ways a new structure is found: the drone flights, the patrols of property
companies and village committees (巡查), and the public hotline (12345 / 群众举报). A report file
(CSV or XLSX, one row per report) has the columns

``source, ref, date, address, lon, lat, unit_code, description, reported_by, ledger, household,
owner, area_m2`` (Chinese headers accepted: 渠道, 编号, 日期, 地址, 经度, 纬度, 小区村编码, 描述,
上报人, 台账, 户号, 户主, 面积)

of which ``date`` and a location are required. The location is, in order of preference, ``lon``
and ``lat`` (degrees, CGCS2000/WGS84), a ``unit_code`` of the units layer, or an ``address`` that
names one compound or village of the units layer. A point becomes a small disc (``location =
point``); a unit its polygon (``location = unit``).

One structure, one case:

* a report within ``attach_m`` of an open case — from any channel, or earlier in the same file —
  attaches to it (its reference is appended and a history row written), it does not open a case;
  a unit-level report attaches to an open unit-level case of the same unit and address;
* a drone lead near an open point-located case, or inside an open unit-level case of its unit,
  attaches to it (:func:`pipelines.cases.matching.plan_ingest`): the case takes the lead's
  outline, area and evidence, keeps its channel and reference.

Every row is validated (row numbers as in the spreadsheet) before anything is written; one problem
and nothing of the file is written (:class:`~pipelines.cases.imports.ImportValidationError`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geo.errors import LedgerError
from geo.joins import JOIN_COLUMNS, join_units
from geo.units import Units
from pipelines.cases.imports import ImportValidationError, Problem, parse_date, read_sheet
from pipelines.cases.matching import case_id_for, next_sequence
from pipelines.cases.states import CLOSED_STATES, FIRST_STATE, LEDGER_OF_CLASS
from pipelines.cases.store import LedgerStore, now_iso
from pipelines.cases.tables import SOURCES

__all__ = [
    "REPORT_COLUMNS",
    "REPORT_ALIASES",
    "Report",
    "ReportPlan",
    "ReportResult",
    "read_reports",
    "locate_reports",
    "plan_reports",
    "import_reports",
]

log = logging.getLogger(__name__)

REPORT_COLUMNS = (
    "source",
    "ref",
    "date",
    "address",
    "lon",
    "lat",
    "unit_code",
    "description",
    "reported_by",
    "ledger",
    "household",
    "owner",
    "area_m2",
)
#: accepted header spellings (lower-cased, stripped) -> canonical column
REPORT_ALIASES: dict[str, str] = {
    **{c: c for c in REPORT_COLUMNS},
    "channel": "source",
    "渠道": "source",
    "来源": "source",
    "发现渠道": "source",
    "编号": "ref",
    "工单号": "ref",
    "记录号": "ref",
    "reference": "ref",
    "日期": "date",
    "发现日期": "date",
    "上报日期": "date",
    "举报日期": "date",
    "地址": "address",
    "详细地址": "address",
    "经度": "lon",
    "lng": "lon",
    "longitude": "lon",
    "纬度": "lat",
    "latitude": "lat",
    "小区村编码": "unit_code",
    "单元编码": "unit_code",
    "描述": "description",
    "情况描述": "description",
    "问题描述": "description",
    "内容": "description",
    "上报人": "reported_by",
    "举报人": "reported_by",
    "巡查人": "reported_by",
    "reporter": "reported_by",
    "台账": "ledger",
    "户号": "household",
    "门牌号": "household",
    "户主": "owner",
    "业主": "owner",
    "面积": "area_m2",
    "面积(㎡)": "area_m2",
    "面积（㎡）": "area_m2",
}
_SOURCE_ALIASES = {
    "巡查": "patrol",
    "巡查发现": "patrol",
    "日常巡查": "patrol",
    "热线": "hotline",
    "12345": "hotline",
    "举报": "hotline",
    "群众举报": "hotline",
    "热线举报": "hotline",
    "督查": "inspection",
    "督查发现": "inspection",
}
_LEDGER_ALIASES = {"": "in_progress", "在建": "in_progress", "存量": "existing"}
#: the class a report's case gets in each ledger (so the ledgers' rules apply unchanged)
_CLASS_OF_LEDGER = {ledger: cls for cls, ledger in LEDGER_OF_CLASS.items()}
_LONLAT = "EPSG:4490"


@dataclass(frozen=True)
class Report:
    """One row of a report file, normalised (``row`` as in the spreadsheet)."""

    row: int
    source: str
    ref: str
    date: str
    address: str = ""
    lon: str = ""
    lat: str = ""
    unit_code: str = ""
    description: str = ""
    reported_by: str = ""
    ledger: str = "in_progress"
    household: str = ""
    owner: str = ""
    area_m2: str = ""


def read_reports(path: str | Path, default_source: str | None = None) -> list[Report]:
    """Rows of a patrol/hotline report file; ``default_source`` fills an absent source column."""
    path = Path(path)
    frame = read_sheet(path, "report file")
    rename = {c: REPORT_ALIASES.get(str(c).strip().lower(), str(c)) for c in frame.columns}
    frame = frame.rename(columns=rename).fillna("")
    blank = frame.apply(lambda r: all(not str(v).strip() for v in r), axis=1)
    frame = frame.loc[~blank] if len(frame) else frame
    if "date" not in frame.columns:
        raise ImportValidationError(
            str(path), [Problem(1, "date", "", "missing column: each report needs its date (日期)")]
        )
    if "source" not in frame.columns and not default_source:
        raise ImportValidationError(
            str(path),
            [Problem(1, "source", "", "no source column (渠道): add one or pass --source")],
        )
    if frame.empty:
        raise ImportValidationError(
            str(path), [Problem(2, "date", "", "no report rows under the header; nothing to do")]
        )
    out = []
    for i, rec in zip(frame.index, frame.to_dict("records"), strict=True):
        vals = {c: str(rec.get(c, "")).strip() for c in REPORT_COLUMNS}
        src = vals["source"] or (default_source or "")
        vals["source"] = _SOURCE_ALIASES.get(src, src.lower())
        vals["ledger"] = _LEDGER_ALIASES.get(vals["ledger"], vals["ledger"].lower())
        out.append(Report(row=int(i) + 2, **vals))
    return out


def _float(value: str) -> float | None:
    try:
        f = float(value)
    except ValueError:
        return None
    return f if np.isfinite(f) else None


def _unit_frame(units: Units) -> gpd.GeoDataFrame:
    """Compounds and villages/communities in one frame: unit_type, unit_code, unit_name."""
    cols = ["unit_type", "unit_code", "unit_name", "geometry"]
    comp = units.compounds.assign(unit_type="compound")
    frames = [f[cols] for f in (comp, units.villages) if len(f)]
    if not frames:
        return gpd.GeoDataFrame(columns=cols, geometry="geometry", crs=units.crs)
    both = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(both, geometry="geometry", crs=units.crs)


def _unit_by_address(address: str, names: Sequence[tuple[str, int]]) -> tuple[int, str]:
    """The unit whose name the address contains (the longest such name): (index, problem)."""
    hits = [(len(n), n, k) for n, k in names if n and n in address]
    if not hits:
        return -1, ""
    hits.sort(reverse=True)
    best = [h for h in hits if h[0] == hits[0][0] and h[1] == hits[0][1]]
    if len({h[2] for h in best}) > 1:
        return -1, f"names {hits[0][1]!r}, which is the name of {len(best)} units; add unit_code"
    return hits[0][2], ""


def locate_reports(
    reports: Sequence[Report],
    units: Units,
    srid: int,
    *,
    radius_m: float = 10.0,
    today: date | None = None,
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Validate each report and put it on the map (ledger CRS *srid*), joined to its unit.

    Returns one row per valid report (columns of :class:`Report`, ``location``, ``area``, the
    place columns of :func:`geo.joins.join_units`, ``lon_deg``/``lat_deg``) and every problem.
    """
    today = today or date.today()
    crs = CRS.from_epsg(srid)
    if not crs.is_projected:
        raise LedgerError(f"ledger CRS EPSG:{srid} is not projected; reports need metres")
    unit_frame = _unit_frame(units).to_crs(crs)
    names = [(str(n).strip(), k) for k, n in enumerate(unit_frame["unit_name"])]
    codes = {str(c): k for k, c in enumerate(unit_frame["unit_code"])}
    area_all = shapely.union_all(units.districts.to_crs(crs).geometry.to_numpy())
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    geoms: list[BaseGeometry] = []
    unit_of: list[int] = []  # the named unit of a unit-level report, else -1
    for r in reports:
        bad = len(problems)
        if r.source not in SOURCES or r.source == "drone":
            allowed = [s for s in SOURCES if s != "drone"]
            problems.append(Problem(r.row, "source", r.source, f"expected one of {allowed}"))
        day = parse_date(r.date)
        if day is None:
            problems.append(Problem(r.row, "date", r.date, "not a date; write YYYY-MM-DD"))
        elif day > today.isoformat():
            problems.append(Problem(r.row, "date", r.date, "is in the future"))
        if r.ledger not in FIRST_STATE:
            problems.append(
                Problem(r.row, "ledger", r.ledger, "expected in_progress (在建) or existing (存量)")
            )
        area = _float(r.area_m2) if r.area_m2 else np.nan
        if area is None or (area == area and area <= 0):
            problems.append(Problem(r.row, "area_m2", r.area_m2, "not a positive number of m²"))
        geom: BaseGeometry | None = None
        location = ""
        k = -1
        if r.lon or r.lat:
            lon, lat = _float(r.lon), _float(r.lat)
            if lon is None or lat is None:
                col = "lon" if lon is None else "lat"
                problems.append(
                    Problem(
                        r.row, col, getattr(r, col), "not a number; give lon and lat in degrees"
                    )
                )
            elif not (-180 <= lon <= 180 and -90 <= lat <= 90):
                hint = " (lon and lat swapped?)" if -90 <= lon <= 90 and -180 <= lat <= 180 else ""
                problems.append(
                    Problem(r.row, "lon/lat", f"{r.lon}, {r.lat}", f"not lon, lat degrees{hint}")
                )
            else:
                pt = gpd.GeoSeries([shapely.Point(lon, lat)], crs=_LONLAT).to_crs(crs).iloc[0]
                if not area_all.covers(pt):
                    problems.append(
                        Problem(
                            r.row,
                            "lon/lat",
                            f"{r.lon}, {r.lat}",
                            "outside the districts of the units layer (lon and lat swapped?)",
                        )
                    )
                else:
                    geom, location = pt.buffer(radius_m, quad_segs=4), "point"
        elif r.unit_code:
            k = codes.get(r.unit_code, -1)
            if k < 0:
                problems.append(
                    Problem(r.row, "unit_code", r.unit_code, "no such compound/village in units")
                )
            else:
                geom, location = unit_frame.geometry.iloc[k], "unit"
        elif r.address:
            k, why = _unit_by_address(r.address, names)
            if why:
                problems.append(Problem(r.row, "address", r.address, why))
            elif k < 0:
                problems.append(
                    Problem(
                        r.row,
                        "address",
                        r.address,
                        "names no compound or village of the units layer; add lon and lat",
                    )
                )
            else:
                geom, location = unit_frame.geometry.iloc[k], "unit"
        else:
            problems.append(
                Problem(
                    r.row,
                    "lon/lat/address",
                    "",
                    "no usable location: give lon and lat, a unit_code, or an address naming a "
                    "compound or village",
                )
            )
        if geom is None or len(problems) > bad:
            continue
        if geom.geom_type == "MultiPolygon":
            geom = max(geom.geoms, key=lambda g: g.area)
        rows.append({**r.__dict__, "date": day, "location": location, "area": area})
        geoms.append(geom)
        unit_of.append(k if location == "unit" else -1)
    frame = gpd.GeoDataFrame(rows, geometry=geoms, crs=crs)
    if len(frame):
        place = join_units(np.asarray(frame.geometry.values), _in_crs(units, crs))
        for i, k in enumerate(unit_of):  # the unit the report names, whatever else it overlaps
            if k >= 0:
                for name in ("unit_type", "unit_code", "unit_name"):
                    place.loc[i, name] = str(unit_frame[name].iloc[k])
        frame = pd.concat([frame.drop(columns=["unit_code"]), place], axis=1)
        frame = frame.loc[:, ~frame.columns.duplicated(keep="last")]
        centre = frame.geometry.centroid.to_crs(_LONLAT)
        frame["lon_deg"], frame["lat_deg"] = centre.x.round(7), centre.y.round(7)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=crs), problems


def _in_crs(units: Units, crs: CRS) -> Units:
    if units.crs is not None and CRS.from_user_input(units.crs).equals(crs):
        return units
    return Units(
        path=units.path,
        crs=crs,
        districts=units.districts.to_crs(crs),
        townships=units.townships.to_crs(crs),
        villages=units.villages.to_crs(crs),
        compounds=units.compounds.to_crs(crs),
    )


@dataclass
class ReportPlan:
    """What a report import will write: new cases, attachments to existing ones, history."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    #: (report row, case id, "new" | "attached")
    outcome: list[tuple[int, str, str]] = field(default_factory=list)


def _join_ref(old: str, new: str) -> str:
    parts = [p for p in str(old or "").split("; ") if p]
    return "; ".join([*parts, new] if new and new not in parts else parts)


def plan_reports(
    cases: gpd.GeoDataFrame,
    located: gpd.GeoDataFrame,
    *,
    attach_m: float,
    now: str,
    who: str,
    source: str,
) -> ReportPlan:
    """Decide, report by report in file order, which open case each one is or opens. Pure."""
    plan = ReportPlan()
    cases = cases.reset_index(drop=True)
    open_ = cases[~cases["state"].isin(list(CLOSED_STATES))]
    pool: list[dict[str, Any]] = [
        {**rec, "geom": g, "new": False}
        for rec, g in zip(
            open_.drop(columns=open_.geometry.name).to_dict("records"),
            open_.geometry.values,
            strict=True,
        )
    ]
    seq = next_sequence(cases["case_id"]) if len(cases) else {}
    pending: dict[str, dict[str, Any]] = {}  # case id -> update row (attachments to old cases)

    def hist(cid: str, state: str, day: str, note: str) -> None:
        plan.history.append(
            {
                "case_id": cid,
                "at": day,
                "who": who,
                "from_state": "" if note.startswith("opened") else state,
                "to_state": state,
                "reject_reason": "",
                "note": note,
                "flight_id": "",
                "source": source,
                "recorded_at": now,
            }
        )

    for rec, geom in zip(
        located.drop(columns=located.geometry.name).to_dict("records"),
        located.geometry.values,
        strict=True,
    ):
        who_what = f"{rec['source']} report {rec['ref'] or '(no ref)'} (row {rec['row']})"
        target: dict[str, Any] | None = None
        if rec["location"] == "point":
            centre = geom.centroid
            best = attach_m
            for c in pool:
                if str(c.get("location") or "outline") == "unit":
                    continue
                d = c["geom"].distance(centre)
                if d <= best:
                    best, target = d, c
            how = f"{best:.0f} m from the case"
        else:
            how = "same unit and address"
            for c in pool:
                if (
                    str(c.get("location") or "") == "unit"
                    and str(c.get("unit_code") or "") == str(rec["unit_code"])
                    and str(c.get("address") or "") == str(rec["address"])
                ):
                    target = c
                    break
        if target is not None:
            cid = str(target["case_id"])
            target["report_ref"] = _join_ref(target.get("report_ref", ""), rec["ref"])
            for name in ("address", "description", "household", "owner", "reported_by"):
                if not str(target.get(name) or "") and rec[name]:
                    target[name] = rec[name]
            if not target["new"]:
                pending[cid] = {
                    "b_case_id": cid,
                    **{
                        n: target.get(n) or ""
                        for n in (
                            "report_ref",
                            "address",
                            "description",
                            "household",
                            "owner",
                            "reported_by",
                        )
                    },
                    "updated_at": now,
                }
            hist(
                cid,
                str(target["state"]),
                rec["date"],
                f"{who_what} attached ({how}; opened by {target.get('source') or 'drone'}): "
                f"one structure, one case. {rec['description']}".strip(),
            )
            plan.outcome.append((int(rec["row"]), cid, "attached"))
            continue
        district = str(rec.get("district_code") or "")
        key = district or "000000"
        seq[key] = seq.get(key, 0) + 1
        cid = case_id_for(district, seq[key])
        ledger = str(rec["ledger"])
        state = FIRST_STATE[ledger]
        cls = _CLASS_OF_LEDGER[ledger]
        area = rec["area"]
        row = {
            "geom": geom,
            "case_id": cid,
            "ledger": ledger,
            "state": state,
            "reject_reason": "",
            "class": cls,
            "last_class": cls,
            "score": None,
            "area_m2": None if area != area else float(area),
            "lon": float(rec["lon_deg"]),
            "lat": float(rec["lat_deg"]),
            **{n: str(rec.get(n) or "") for n in JOIN_COLUMNS if n != "responsible_type"},
            "first_seen": rec["date"],
            "last_seen": "",
            "times_seen": 0,
            "first_flight_id": "",
            "last_flight_id": "",
            "not_observed": False,
            "supervised": False,
            "deadline": "",
            "evidence_before": "",
            "evidence_after": "",
            "updated_at": now,
            "source": rec["source"],
            "report_ref": rec["ref"],
            "address": rec["address"],
            "description": rec["description"],
            "reported_by": rec["reported_by"],
            "location": rec["location"],
            "household": rec["household"],
            "owner": rec["owner"],
        }
        plan.inserts.append(row)
        pool.append({**row, "new": True})
        hist(cid, state, rec["date"], f"opened from {who_what}. {rec['description']}".strip())
        plan.outcome.append((int(rec["row"]), cid, "new"))
    # attachments to cases opened earlier in this same file change the insert rows themselves
    by_id = {r["case_id"]: r for r in plan.inserts}
    for c in pool:
        if c["new"]:
            for n in ("report_ref", "address", "description", "household", "owner", "reported_by"):
                by_id[c["case_id"]][n] = c.get(n) or ""
    plan.updates = list(pending.values())
    return plan


def _no_cases(srid: int) -> gpd.GeoDataFrame:
    from pipelines.cases.tables import CASE_COLUMNS

    return gpd.GeoDataFrame(
        pd.DataFrame(columns=list(CASE_COLUMNS)), geometry=[], crs=f"EPSG:{srid}"
    )


@dataclass(frozen=True)
class ReportResult:
    """What a report import did (or, with ``dry_run``, would do)."""

    source: str
    dry_run: bool
    n_new: int
    n_attached: int
    outcome: tuple[tuple[int, str, str], ...]


def import_reports(
    store: LedgerStore,
    path: str | Path,
    units: Units,
    *,
    default_source: str | None = None,
    who: str = "buildwatch",
    attach_m: float = 30.0,
    radius_m: float = 10.0,
    dry_run: bool = False,
    today: date | None = None,
) -> ReportResult:
    """Read a patrol/hotline report file and put it into the ledger all-or-nothing.

    The ledger is created in the units layer's CRS when there is none yet.
    """
    from pipelines.cases.ingest import _rows, pause_hook

    path = Path(path)
    label = f"import:{path.name}"
    reports = read_reports(path, default_source)
    epsg = CRS.from_user_input(units.crs).to_epsg() if units.crs is not None else None

    def plan_in(conn: Any, srid: int) -> tuple[ReportPlan, ReportResult]:
        located, problems = locate_reports(reports, units, srid, radius_m=radius_m, today=today)
        if problems:
            raise ImportValidationError(str(path), problems)
        cases = store.cases(conn) if conn is not None else _no_cases(srid)
        plan = plan_reports(cases, located, attach_m=attach_m, now=now_iso(), who=who, source=label)
        n_attached = sum(1 for o in plan.outcome if o[2] == "attached")
        result = ReportResult(
            str(path), dry_run, len(plan.inserts), n_attached, tuple(plan.outcome)
        )
        return plan, result

    if dry_run:
        if not store.exists():
            if epsg is None:
                raise LedgerError(f"units {units.path}: no EPSG code to create the ledger in")
            return plan_in(None, epsg)[1]
        srid = store.require().srid
        with store.read() as conn:
            return plan_in(conn, srid)[1]
    with store.write() as conn:
        tables = store.ensure(conn, epsg)
        plan, result = plan_in(conn, tables.srid)
        c = tables.cases.c
        if plan.inserts:
            conn.execute(tables.cases.insert(), _rows(plan.inserts))
        for u in plan.updates:
            conn.execute(
                tables.cases.update()
                .where(c.case_id == u["b_case_id"])
                .values({k: v for k, v in u.items() if k != "b_case_id"})
            )
        if plan.history:
            conn.execute(tables.history.insert(), _rows(plan.history))
        pause_hook("import")
    log.info(
        "imported %s into %s: %d new case(s), %d attached", path, store.label, result.n_new,
        result.n_attached,
    )  # fmt: skip
    return result
