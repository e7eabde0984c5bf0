"""Compounds and villages marked cleared (整治完毕) stay under watch (纳入日常监管).

A unit marked cleared gets a row in the ledger's ``cleared_units`` table (date, who, note; made on
first use in either backend, registered as an attributes table in a GeoPackage). Any case the
drone finds in it afterwards — first seen on or after the clearance, not rejected — is a
**relapse**: the daily report lists it, the unit's clearance priority is raised to high, and the
maps draw cleared units with their own outline and relapsed ones in alarm red.

>>> import pandas as pd
>>> cases = pd.DataFrame({"case_id": ["A", "B", "C"], "unit_code": ["V1", "V1", "V2"],
...     "unit_name": ["村1", "村1", "村2"], "first_seen": ["2024-04-01", "2024-05-02", "2024-05-02"],
...     "state": ["discovered", "discovered", "rejected"]})
>>> cleared = pd.DataFrame({"unit_code": ["V1", "V2"], "cleared_on": ["2024-05-01", "2024-05-01"]})
>>> relapses(cases, cleared)["case_id"].tolist()
['B']
"""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, inspect, select

from geo.errors import LedgerError
from pipelines.cases import gpkg
from pipelines.cases.store import LedgerStore, now_iso

__all__ = ["CLEARED_COLUMNS", "mark_cleared", "read_cleared", "relapses"]

CLEARED_COLUMNS = (
    "unit_code",
    "unit_name",
    "cleared_on",
    "who",
    "note",
    "lifted_on",
    "recorded_at",
)
_MD = MetaData()
_TABLE = Table(
    "cleared_units",
    _MD,
    Column("uid", Integer, primary_key=True, autoincrement=True),
    *[Column(c, Text, nullable=c != "unit_code") for c in CLEARED_COLUMNS],
    sqlite_autoincrement=True,
)


def _ensure(store: LedgerStore, conn: Connection) -> None:
    if inspect(conn).has_table("cleared_units"):
        return
    _MD.create_all(conn, tables=[_TABLE])
    if store.kind == "gpkg":
        gpkg.register(
            conn, [], [("cleared_units", "buildwatch units marked cleared (整治完毕), under watch")]
        )


def mark_cleared(
    store: LedgerStore,
    unit_code: str,
    *,
    day: str,
    who: str,
    unit_name: str = "",
    note: str = "",
    off: bool = False,
) -> None:
    """Mark *unit_code* cleared on *day* (one transaction), or lift the mark (``off``)."""
    unit_code = str(unit_code).strip()
    if not unit_code:
        raise LedgerError("cleared unit: give the compound/village code")
    if not who.strip():
        raise LedgerError(f"unit {unit_code}: say who marks it cleared (--who)")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day or ""):
        raise LedgerError(f"unit {unit_code}: date {day!r} is not YYYY-MM-DD")
    try:
        date.fromisoformat(day)
    except ValueError:
        raise LedgerError(f"unit {unit_code}: date {day!r} is not a date") from None
    store.require()
    with store.write() as conn:
        _ensure(store, conn)
        c = _TABLE.c
        active = (c.unit_code == unit_code) & (c.lifted_on == "")
        if off:
            done = conn.execute(_TABLE.update().where(active).values(lifted_on=day))
            if not done.rowcount:
                raise LedgerError(f"unit {unit_code} is not marked cleared; nothing to lift")
            return
        if conn.execute(select(c.uid).where(active)).first():
            raise LedgerError(f"unit {unit_code} is already marked cleared; lift it first (--off)")
        conn.execute(
            _TABLE.insert(),
            {
                "unit_code": unit_code,
                "unit_name": unit_name,
                "cleared_on": day,
                "who": who,
                "note": note,
                "lifted_on": "",
                "recorded_at": now_iso(),
            },  # fmt: skip
        )


def read_cleared(store: LedgerStore) -> pd.DataFrame:
    """The units under watch now (cleared, not lifted); empty when none was ever marked."""
    with store.read() as conn:
        if not inspect(conn).has_table("cleared_units"):
            return pd.DataFrame(columns=list(CLEARED_COLUMNS))
        rows = conn.execute(select(_TABLE).where(_TABLE.c.lifted_on == "")).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=["uid", *CLEARED_COLUMNS]).drop(
        columns="uid"
    )


def relapses(cases: pd.DataFrame, cleared: pd.DataFrame) -> pd.DataFrame:
    """Cases first seen in a cleared unit on or after its clearance (rejected ones excluded)."""
    cols = ["case_id", "unit_code", "unit_name", "first_seen", "cleared_on"]
    if cleared.empty or cases.empty:
        return pd.DataFrame(columns=cols)
    m = cases.merge(cleared[["unit_code", "cleared_on"]], on="unit_code", how="inner")
    m = m[(m["first_seen"].astype(str).str[:10] >= m["cleared_on"]) & (m["state"] != "rejected")]
    return m.sort_values(["unit_code", "first_seen", "case_id"])[cols].reset_index(drop=True)
