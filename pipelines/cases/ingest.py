"""Ingest one flight's leads into the case ledger, in one transaction.

>>> result = ingest_leads(store, leads, coverage=footprint)  # doctest: +SKIP
>>> result.n_new, result.n_seen_again, result.n_not_observed  # doctest: +SKIP
(3, 12, 1)

Leads are the ``leads`` layer of a run's ``leads.gpkg`` (columns: :mod:`pipelines.schema`); leads
with ``status == "permitted"`` are not cases. The rules are in :mod:`pipelines.cases.matching`.
Ingesting a flight already in the ``ingests`` table (same flight id, or same run id) changes
nothing. The whole ingest is one transaction under the writer lock: a process killed half-way
leaves the ledger as it was.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, and_, bindparam, or_, select

from geo.errors import CRSError, InputFileError, VectorError
from pipelines.cases.matching import LEAD_FIELDS, PLACE_FIELDS, IngestPlan, plan_ingest
from pipelines.cases.states import LEDGER_OF_CLASS
from pipelines.cases.store import LedgerStore, now_iso
from pipelines.cases.tables import Tables

__all__ = [
    "IngestResult",
    "read_leads",
    "check_leads",
    "prepare_leads",
    "ingest_leads",
    "pause_hook",
]

log = logging.getLogger(__name__)

#: columns the ledger needs from the cases when planning an ingest
_PLAN_COLUMNS = (
    "case_id",
    "ledger",
    "state",
    "class",
    "last_class",
    "last_seen",
    "last_flight_id",
    "first_seen",
    "first_flight_id",
    "times_seen",
    "not_observed",
    "district_code",
    "unit_code",
    "location",
    "source",
    "report_ref",
)


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did (``skipped``: the flight was already in the ledger)."""

    flight_id: str
    run_id: str
    skipped: bool
    n_leads: int
    n_permitted: int
    n_new: int = 0
    n_seen_again: int = 0
    n_reopened: int = 0
    n_not_observed: int = 0
    new_case_ids: tuple[str, ...] = ()
    #: the latest flight date already in the ledger when this flight is older ("" = in order)
    out_of_order_after: str = ""


def pause_hook(where: str) -> None:
    """Test hook: sleep inside the open transaction when ``BUILDWATCH_LEDGER_PAUSE_S`` is set.

    Writes ``BUILDWATCH_LEDGER_PAUSE_MARKER`` (when set) first, so a test knows the writer is
    inside its transaction and can kill it or start a second writer.
    """
    seconds = os.environ.get("BUILDWATCH_LEDGER_PAUSE_S")
    if not seconds:
        return
    marker = os.environ.get("BUILDWATCH_LEDGER_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(where, encoding="utf-8")
    log.warning(
        "pausing %s s inside the %s transaction (BUILDWATCH_LEDGER_PAUSE_S)", seconds, where
    )
    time.sleep(float(seconds))


def read_leads(path: str | Path, layer: str = "leads") -> gpd.GeoDataFrame:
    """The ``leads`` layer of a run's leads.gpkg."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: leads file not found; pass the leads.gpkg a run wrote")
    layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    if layer not in layers:
        raise VectorError(f"{path}: no layer {layer!r} (layers: {layers}); pass a run's leads.gpkg")
    return gpd.read_file(path, layer=layer)


def _as_polygon(geom: BaseGeometry | None) -> BaseGeometry | None:
    if geom is None or geom.geom_type == "Polygon":
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]
    if geom.geom_type == "MultiPolygon" and polys:
        return max(polys, key=lambda g: g.area)  # the ledger layer is POLYGON
    return None


def check_leads(leads: gpd.GeoDataFrame, source: str = "leads") -> None:
    """Raise unless *leads* have the required columns, a CRS and known classes."""
    missing = [c for c in ("lead_id", "score", "class") if c not in leads.columns]
    if missing:
        raise VectorError(
            f"{source}: missing column(s) {missing}; leads need the columns of pipelines/schema.py"
        )
    if leads.crs is None:
        raise CRSError(f"{source}: leads have no CRS; write them in the flight's projected CRS")
    bad = leads[~leads["class"].isin(list(LEDGER_OF_CLASS))]
    if "status" in leads:
        bad = bad[bad["status"].astype(str) != "permitted"]
    if len(bad):
        raise VectorError(
            f"{source}: column 'class' of lead {bad['lead_id'].iloc[0]!r} is "
            f"{bad['class'].iloc[0]!r}; expected one of {sorted(LEDGER_OF_CLASS)}"
        )


def prepare_leads(
    leads: gpd.GeoDataFrame, srid: int, *, evidence_root: Path | None = None, source: str = "leads"
) -> tuple[gpd.GeoDataFrame, int]:
    """Validate leads and bring them into the ledger CRS; returns (case-worthy leads, n permitted)."""
    check_leads(leads, source)
    frame = leads.copy()
    status = frame["status"].astype(str) if "status" in frame else pd.Series("lead", frame.index)
    n_permitted = int((status == "permitted").sum())
    frame = frame[status != "permitted"]
    frame = frame.to_crs(epsg=srid)
    frame = frame.set_geometry([_as_polygon(g) for g in frame.geometry], crs=frame.crs)
    empty = frame.geometry.isna() | frame.geometry.is_empty
    if empty.any():
        raise VectorError(
            f"{source}: lead {frame.loc[empty, 'lead_id'].iloc[0]!r} has no polygon geometry; "
            "leads must be polygons"
        )
    for name in (*LEAD_FIELDS, *PLACE_FIELDS, "flight_id", "flight_date"):
        if name not in frame:
            frame[name] = np.nan if name in ("score", "area_m2", "lon", "lat") else ""
    text_cols = [c for c in (*PLACE_FIELDS, "evidence_before", "evidence_after") if c in frame]
    frame[text_cols] = frame[text_cols].fillna("").astype(str)
    frame["area_m2"] = frame["area_m2"].fillna(pd.Series(frame.area, index=frame.index))
    if evidence_root is not None:
        for name in ("evidence_before", "evidence_after"):
            frame[name] = [
                str(evidence_root / p) if p and not Path(p).is_absolute() else p
                for p in frame[name]
            ]
    frame = frame.sort_values("lead_id", kind="stable").reset_index(drop=True)
    return frame, n_permitted


def _single(leads: gpd.GeoDataFrame, column: str, given: str | None, source: str) -> str:
    if given:
        return given
    values = sorted({str(v) for v in leads.get(column, pd.Series(dtype=str)).dropna() if str(v)})
    if len(values) == 1:
        return values[0]
    if column == "flight_date":
        return ""
    what = f"several ({values[:3]}...)" if values else "none"
    raise VectorError(f"{source}: leads name {what} in column {column!r}; pass --flight-id")


def _coverage_geom(coverage: Any, srid: int, default_crs: Any) -> BaseGeometry | None:
    if coverage is None:
        return None
    if isinstance(coverage, gpd.GeoDataFrame | gpd.GeoSeries):
        series = coverage.geometry if isinstance(coverage, gpd.GeoDataFrame) else coverage
        if series.crs is None:
            raise CRSError("coverage polygon has no CRS; give it the flight's CRS")
        return shapely.union_all(np.asarray(series.to_crs(epsg=srid).values))
    return gpd.GeoSeries([coverage], crs=default_crs).to_crs(epsg=srid).iloc[0]


def ingest_leads(
    store: LedgerStore,
    leads: gpd.GeoDataFrame,
    *,
    flight_id: str | None = None,
    run_id: str = "",
    flight_date: str | None = None,
    coverage: Any = None,
    who: str = "buildwatch",
    source: str = "",
    evidence_root: Path | None = None,
    min_overlap: float = 0.1,
    attach_m: float = 30.0,
) -> IngestResult:
    """Put one flight's leads into the ledger (creating it in the leads' CRS if absent).

    *coverage* (a shapely polygon in the leads' CRS, or a GeoSeries/GeoDataFrame with a CRS) is
    the area the flight saw: open cases inside it that no lead sighted become ``not_observed``.
    """
    label = source or "leads"
    check_leads(leads, label)
    flight = _single(leads, "flight_id", flight_id, label)
    day = _single(leads, "flight_date", flight_date, label) or date.today().isoformat()
    try:
        date.fromisoformat(day[:10])
    except ValueError:
        raise VectorError(f"{label}: flight date {day!r} is not an ISO date (YYYY-MM-DD)") from None
    day = day[:10]
    with store.write() as conn:
        epsg = leads.crs.to_epsg() if leads.crs is not None else None
        tables = store.ensure(conn, epsg)
        done = _already_ingested(conn, tables, flight, run_id)
        corrects = "" if done else _earlier_content(conn, tables, flight, run_id)
        if corrects:
            log.warning(
                "flight %s was delivered again with other content (%s, before %s): ingested as "
                "a correction; cases it sees are updated, new ones added, with history",
                flight,
                run_id,
                corrects,
            )
        prepared, n_permitted = prepare_leads(
            leads, tables.srid, evidence_root=evidence_root, source=label
        )
        if done:
            log.info("flight %s already ingested (%s); nothing changes", flight, done)
            return IngestResult(flight, run_id, True, len(prepared), n_permitted)
        cases = store.cases(conn, columns=_PLAN_COLUMNS)
        now = now_iso()
        plan = plan_ingest(
            cases,
            prepared,
            flight_id=flight,
            flight_date=day,
            coverage=_coverage_geom(coverage, tables.srid, leads.crs),
            now=now,
            who=who,
            source=f"ingest:{source or flight}",
            min_overlap=min_overlap,
            correction=bool(corrects),
            attach_m=attach_m,
        )
        _write_plan(conn, tables, plan)
        pause_hook("ingest")
        record = (  # one row per flight: a corrected delivery replaces the record of the first
            tables.ingests.update().where(tables.ingests.c.flight_id == flight)
            if corrects
            else tables.ingests.insert()
        )
        conn.execute(
            record,
            {
                "flight_id": flight,
                "run_id": run_id,
                "at": now,
                "who": who,
                "source": source,
                "flight_date": day,
                "n_leads": len(prepared),
                "n_permitted": n_permitted,
                "n_new": plan.n_new,
                "n_seen_again": plan.n_seen_again,
                "n_reopened": plan.n_reopened,
                "n_not_observed": plan.n_not_observed,
            },
        )
    result = IngestResult(
        flight,
        run_id,
        False,
        len(prepared),
        n_permitted,
        plan.n_new,
        plan.n_seen_again,
        plan.n_reopened,
        plan.n_not_observed,
        tuple(r["case_id"] for r in plan.inserts),
        plan.out_of_order_after,
    )
    if plan.out_of_order_after:
        log.warning(
            "flight %s (%s) is older than the latest flight already in the ledger (%s): "
            "ingested out of order; first_seen moved back where it saw a case earlier, and no "
            "case first seen after %s was marked not observed",
            flight,
            day,
            plan.out_of_order_after,
            day,
        )
    log.info("ingested flight %s into %s: %s", flight, store.label, result)
    return result


def content_run_id(content_hash: str) -> str:
    """The run id that names a flight by its file's content (``sha256:<16 hex>``; "" if none).

    >>> content_run_id("ab" * 32)
    'sha256:abababababababab'
    """
    return f"{CONTENT_PREFIX}{content_hash[:16]}" if content_hash else ""


#: run ids with this prefix name the flight's content: the same id with other content is a
#: corrected delivery, ingested again (never dropped)
CONTENT_PREFIX = "sha256:"


def _already_ingested(conn: Connection, t: Tables, flight: str, run_id: str) -> str:
    i = t.ingests.c
    if run_id.startswith(CONTENT_PREFIX):
        cond = and_(i.flight_id == flight, i.run_id == run_id)
    elif run_id:
        cond = or_(i.flight_id == flight, i.run_id == run_id)
    else:
        cond = i.flight_id == flight
    row = conn.execute(select(i.flight_id, i.run_id, i.at).where(cond)).first()
    return "" if row is None else f"flight {row[0]}, run {row[1] or '-'}, at {row[2]}"


def _earlier_content(conn: Connection, t: Tables, flight: str, run_id: str) -> str:
    """The content run id of an earlier delivery of ``flight`` that differs from ``run_id``."""
    if not run_id.startswith(CONTENT_PREFIX):
        return ""
    i = t.ingests.c
    row = conn.execute(
        select(i.run_id).where(and_(i.flight_id == flight, i.run_id != run_id))
    ).first()
    return "" if row is None else str(row[0] or "-")


def _native(value: Any) -> Any:
    """Plain Python values for the DB drivers (psycopg2 does not adapt numpy scalars; NaN -> NULL)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _native(v) for k, v in r.items()} for r in rows]


def _write_plan(conn: Connection, t: Tables, plan: IngestPlan) -> None:
    c = t.cases.c
    if plan.inserts:
        conn.execute(t.cases.insert(), _rows(plan.inserts))
    flagged = [r["b_case_id"] for r in plan.updates_not_observed]
    for i in range(0, len(flagged), 5000):  # one statement per chunk: the same change for all
        conn.execute(
            t.cases.update()
            .where(c.case_id.in_(flagged[i : i + 5000]))
            .values(not_observed=True, updated_at=plan.updates_not_observed[0]["updated_at"])
        )
    for rows in (plan.updates_latest, plan.updates_older):
        if rows:
            names = [k for k in rows[0] if k != "b_case_id"]
            stmt = (
                t.cases.update()
                .where(c.case_id == bindparam("b_case_id"))
                .values({n: bindparam(f"v_{n}", type_=c[n].type) for n in names})
            )
            params = [{k if k == "b_case_id" else f"v_{k}": v for k, v in r.items()} for r in rows]
            conn.execute(stmt, _rows(params))
    if plan.history:
        conn.execute(t.history.insert(), _rows(plan.history))


def ingest_run(
    store: LedgerStore,
    leads_gpkg: str | Path,
    *,
    flight_id: str | None = None,
    flight_date: str | None = None,
    run_id: str = "",
    coverage: Any = None,
    who: str = "buildwatch",
    min_overlap: float = 0.1,
    attach_m: float = 30.0,
) -> IngestResult:
    """Ingest the leads.gpkg a run wrote: its ``leads`` layer, with its ``coverage`` layer as
    the area the flight saw (unless ``coverage`` is given), evidence paths relative to its folder.

    The one way a run reaches the ledger: ``buildwatch run``, ``buildwatch cases ingest``, the
    nightly job and the demo all call this.
    """
    from pipelines.run import read_coverage

    leads_gpkg = Path(leads_gpkg)
    leads = read_leads(leads_gpkg)
    return ingest_leads(
        store,
        leads,
        flight_id=flight_id,
        run_id=run_id,
        flight_date=flight_date,
        coverage=coverage if coverage is not None else read_coverage(leads_gpkg),
        who=who,
        source=str(leads_gpkg),
        evidence_root=leads_gpkg.resolve().parent,
        min_overlap=min_overlap,
        attach_m=attach_m,
    )
