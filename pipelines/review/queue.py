"""The review queue and one case's detail, as plain JSON-ready data (pure over the ledger's frames).

>>> import geopandas as gpd, shapely
>>> cases = gpd.GeoDataFrame({"case_id": ["A", "B"], "ledger": ["in_progress"] * 2,
...     "state": ["discovered", "stopped"], "class": ["construction"] * 2, "score": [0.5, 0.9],
...     "area_m2": [10.0, 20.0], "township_code": ["t1", "t2"], "township_name": ["镇1", "镇2"],
...     "unit_code": ["u1", "u2"], "unit_name": ["村1", "村2"], "last_seen": ["2024-05-01"] * 2,
...     "first_seen": ["2024-05-01"] * 2, "supervised": [False, False], "deadline": ["", ""]},
...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)], crs="EPSG:4544")
>>> [i["case_id"] for i in build_queue(cases, QueueFilter())]
['A']
>>> [i["case_id"] for i in build_queue(cases, QueueFilter(status="open", order="score"))]
['B', 'A']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.errors import ConfigError
from pipelines.cases.states import (
    CLOSED_STATES,
    FIRST_STATE,
    LEDGER_LABELS_ZH,
    REJECT_REASON_LABELS_ZH,
    REJECT_REASONS,
    STATE_LABELS_ZH,
    allowed_transitions,
)

__all__ = [
    "ORDERS",
    "STATUSES",
    "QueueFilter",
    "filter_options",
    "build_queue",
    "case_detail",
    "reasons",
]

#: queue orders: priority = overdue supervised, supervised, the unit's clearance priority, score
ORDERS = ("priority", "score", "area", "newest")
#: status filters besides a single state name: to verify (first state), any open, everything
STATUSES = ("verify", "open", "all")

_QUEUE_FIELDS = (
    "case_id",
    "ledger",
    "state",
    "class",
    "score",
    "area_m2",
    "unit_name",
    "unit_code",
    "township_name",
    "township_code",
    "first_seen",
    "last_seen",
    "supervised",
    "deadline",
)


@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer asked to see (empty = any)."""

    township: str = ""
    unit: str = ""
    cls: str = ""
    night: str = ""
    status: str = "verify"
    order: str = "priority"

    def check(self) -> QueueFilter:
        """Self, or :class:`ConfigError` naming the bad value."""
        states = {s for st in FIRST_STATE for s in _states_of(st)}
        if self.status not in STATUSES and self.status not in states:
            raise ConfigError(
                f"status {self.status!r}: use one of {', '.join(STATUSES)} or a state name"
            )
        if self.order not in ORDERS:
            raise ConfigError(f"order {self.order!r}: use one of {', '.join(ORDERS)}")
        return self


def _states_of(ledger: str) -> tuple[str, ...]:
    from pipelines.cases.states import STATES

    return STATES[ledger]


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def filter_options(cases: pd.DataFrame) -> dict[str, list[Any]]:
    """The values each filter can take in this ledger (for the page's menus)."""

    def pairs(code: str, name: str) -> list[list[str]]:
        sub = cases[[code, name]].astype(str).drop_duplicates().sort_values(code)
        return [[c, n] for c, n in zip(sub[code], sub[name], strict=True) if c]

    nights = sorted({_text(v)[:10] for v in cases.get("last_seen", []) if _text(v)}, reverse=True)
    states = [s for ledger in FIRST_STATE for s in _states_of(ledger)]
    return {
        "townships": pairs("township_code", "township_name") if len(cases) else [],
        "units": pairs("unit_code", "unit_name") if len(cases) else [],
        "classes": sorted({_text(v) for v in cases.get("class", []) if _text(v)}),
        "nights": nights,
        "statuses": [*STATUSES, *dict.fromkeys(states)],
        "orders": list(ORDERS),
    }


def _status_mask(cases: pd.DataFrame, status: str) -> pd.Series:
    state = cases["state"].astype(str)
    if status == "verify":
        return state == cases["ledger"].map(FIRST_STATE)
    if status == "open":
        return ~state.isin(CLOSED_STATES)
    if status == "all":
        return pd.Series(True, index=cases.index)
    return state == status


def build_queue(
    cases: gpd.GeoDataFrame,
    f: QueueFilter,
    *,
    versions: dict[str, str] | None = None,
    unit_priority: dict[str, float] | None = None,
    today: date | None = None,
) -> list[dict[str, Any]]:
    """The cases to review under *f*, in order, as JSON-ready rows."""
    f.check()
    keep = _status_mask(cases, f.status)
    if f.township:
        keep &= cases["township_code"].astype(str) == f.township
    if f.unit:
        keep &= cases["unit_code"].astype(str) == f.unit
    if f.cls:
        keep &= cases["class"].astype(str) == f.cls
    if f.night:
        keep &= cases["last_seen"].astype(str).str[:10] == f.night
    sub = pd.DataFrame(cases.loc[keep, [c for c in _QUEUE_FIELDS if c in cases]]).copy()
    today_iso = (today or date.today()).isoformat()
    sub["supervised"] = sub["supervised"].fillna(False).astype(bool)
    deadline = sub["deadline"].fillna("").astype(str)
    sub["overdue"] = sub["supervised"] & (deadline != "") & (deadline < today_iso)
    prio = unit_priority or {}
    sub["unit_priority"] = [float(prio.get(str(u), 0.0)) for u in sub["unit_code"]]
    sub["score"] = pd.to_numeric(sub["score"], errors="coerce").fillna(0.0)
    sub["area_m2"] = pd.to_numeric(sub["area_m2"], errors="coerce").fillna(0.0)
    keys = {
        "priority": (["overdue", "supervised", "unit_priority", "score"], [False] * 4),
        "score": (["score"], [False]),
        "area": (["area_m2"], [False]),
        "newest": (["last_seen", "score"], [False, False]),
    }[f.order]
    sub = sub.sort_values([*keys[0], "case_id"], ascending=[*keys[1], True], kind="stable")
    rows = []
    for rec in sub.to_dict("records"):
        row = {k: (_text(v) if isinstance(v, str) or v is None else v) for k, v in rec.items()}
        row["state_zh"] = STATE_LABELS_ZH.get(str(rec["state"]), str(rec["state"]))
        row["score"] = round(float(rec["score"]), 3)
        row["area_m2"] = round(float(rec["area_m2"]), 1)
        row["supervised"] = bool(rec["supervised"])
        row["overdue"] = bool(rec["overdue"])
        row["version"] = (versions or {}).get(str(rec["case_id"]), "")
        rows.append(row)
    return rows


def reasons() -> list[dict[str, str]]:
    """The notice's reject reasons, in key order (1, 2, 3 on the page)."""
    return [{"key": r, "zh": REJECT_REASON_LABELS_ZH[r]} for r in REJECT_REASONS]


def _feature(geom: shapely.Geometry, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(geom)}


def case_detail(
    cases: gpd.GeoDataFrame,
    case_id: str,
    history: pd.DataFrame,
    *,
    version: str,
    units: gpd.GeoDataFrame | None = None,
    radius_m: float = 300.0,
) -> dict[str, Any] | None:
    """Everything the page shows for one case, or None when there is no such case.

    ``cases`` and ``units`` are in projected CRSs (metres); the map features come out in
    EPSG:4326: the case, the open and closed cases within *radius_m*, the units around it.
    """
    hit = cases[cases["case_id"].astype(str) == case_id]
    if hit.empty:
        return None
    c = hit.iloc[0]
    geom = hit.geometry.iloc[0]
    ledger, state = str(c["ledger"]), str(c["state"])
    fields: dict[str, Any] = {k: _text(c.get(k)) for k in cases.columns if k != "geometry"}
    for k in ("score", "area_m2", "lon", "lat", "times_seen"):
        if k in c and pd.notna(c[k]):
            fields[k] = float(c[k]) if k != "times_seen" else int(c[k])
    fields["supervised"] = bool(c.get("supervised", False))
    fields["not_observed"] = bool(c.get("not_observed", False))
    fields["state_zh"] = STATE_LABELS_ZH.get(state, state)
    fields["ledger_zh"] = LEDGER_LABELS_ZH.get(ledger, ledger)
    fields["reject_reason_zh"] = REJECT_REASON_LABELS_ZH.get(str(c.get("reject_reason")), "")
    allowed = allowed_transitions(ledger, state) if ledger in FIRST_STATE else ()
    area = geom.buffer(radius_m)
    near = cases[cases.intersects(area) & (cases["case_id"].astype(str) != case_id)]
    to_wgs = gpd.GeoSeries([geom, *near.geometry], crs=cases.crs).to_crs("EPSG:4326")
    features = [_feature(to_wgs.iloc[0], {"kind": "case", "case_id": case_id, "state": state})]
    for (_, n), g in zip(near.iterrows(), to_wgs.iloc[1:], strict=True):
        features.append(
            _feature(
                g,
                {
                    "kind": "neighbour",
                    "case_id": str(n["case_id"]),
                    "state": str(n["state"]),
                    "state_zh": STATE_LABELS_ZH.get(str(n["state"]), str(n["state"])),
                },
            )
        )
    if units is not None and len(units):
        around = units[units.intersects(gpd.GeoSeries([area], crs=cases.crs).to_crs(units.crs)[0])]
        for (_, u), g in zip(around.iterrows(), around.geometry.to_crs("EPSG:4326"), strict=True):
            features.append(
                _feature(
                    g,
                    {
                        "kind": "unit",
                        "unit_code": _text(u.get("unit_code")),
                        "unit_name": _text(u.get("unit_name")),
                        "unit_type": _text(u.get("unit_type")),
                    },
                )
            )
    hist = [
        {k: _text(v) for k, v in row.items()}
        | {
            "from_zh": STATE_LABELS_ZH.get(str(row["from_state"]), str(row["from_state"])),
            "to_zh": STATE_LABELS_ZH.get(str(row["to_state"]), str(row["to_state"])),
        }
        for row in history.to_dict("records")
    ]
    return {
        "case": fields,
        "version": version,
        "can_confirm": state == FIRST_STATE.get(ledger) and bool(allowed),
        "confirm_to": allowed[0] if allowed and state == FIRST_STATE.get(ledger) else "",
        "confirm_to_zh": STATE_LABELS_ZH.get(allowed[0], "") if allowed else "",
        "can_reject": "rejected" in allowed,
        "history": hist,
        "map": {"type": "FeatureCollection", "features": features},
        "chips": {
            "before": bool(_text(c.get("evidence_before"))),
            "after": bool(_text(c.get("evidence_after"))),
        },
    }
