"""The five-year view per compound and village (五年整治计划): cleared, in progress, not started.

The notice makes the residential compound and the village/community area the units of the
five-year and annual clearance plans. For every unit that has cases in a district ledger, or was
marked cleared there, :func:`unit_progress` says where it stands over the plan's years:

* ``cleared`` (已整治完毕) — marked cleared in the ledger's ``cleared_units`` (and not lifted);
  a case found in it since then is counted in ``relapses``;
* ``in_progress`` (整治中) — officers have acted on its cases in the plan's years: a case closed
  (removed/enforced) or moved past its first state;
* ``not_started`` (未启动) — open cases, none acted on.

>>> cases = pd.DataFrame({"case_id": ["A", "B", "C"], "ledger": ["in_progress"] * 3,
...     "state": ["discovered", "stopped", "discovered"], "unit_code": ["V1", "V2", "V3"],
...     "unit_name": ["一村", "二村", "三村"], "unit_type": ["village"] * 3,
...     "district_code": ["1"] * 3, "district_name": ["区"] * 3, "township_name": ["镇"] * 3,
...     "area_m2": [10.0, 20.0, 30.0], "first_seen": ["2024-05-01"] * 3})
>>> history = pd.DataFrame({"case_id": ["B"], "from_state": ["discovered"], "to_state": ["stopped"],
...     "at": ["2024-05-02"]})
>>> cleared = pd.DataFrame({"unit_code": ["V3"], "cleared_on": ["2024-06-01"]})
>>> unit_progress(cases, history, cleared, 2024, 2028)["status"].tolist()
['not_started', 'in_progress', 'cleared']
"""

from __future__ import annotations

import pandas as pd

from pipelines.cases.states import CLOSED_STATES, FIRST_STATE

__all__ = ["PLAN_STATUS_ZH", "PLAN_LABELS_ZH", "unit_progress", "plan_of"]

PLAN_STATUS_ZH = {"cleared": "已整治完毕", "in_progress": "整治中", "not_started": "未启动"}
PLAN_LABELS_ZH = {
    "district_code": "区县编码",
    "district_name": "区县",
    "township_name": "乡镇(街道)",
    "unit_type": "类型",
    "unit_code": "小区/村编码",
    "unit_name": "小区/村",
    "status": "五年整治进度",
    "n_cases": "案件数",
    "n_open": "未办结",
    "n_closed_in_plan": "计划期内办结",
    "open_area_m2": "未办结面积(㎡)",
    "cleared_on": "整治完毕日期",
    "relapses": "整治后新增",
}


def unit_progress(
    cases: pd.DataFrame,
    history: pd.DataFrame,
    cleared: pd.DataFrame,
    first_year: int,
    last_year: int,
) -> pd.DataFrame:
    """One row per compound/village: its plan status and figures (see the module docstring)."""
    lo, hi = f"{first_year}-01-01", f"{last_year}-12-31"
    c = cases[cases["state"] != "rejected"].copy()
    c = c[c["unit_code"].fillna("").astype(str) != ""]
    h = history[history["at"].astype(str).str[:10].between(lo, hi)]
    moved = h[(h["from_state"] != h["to_state"]) & (h["from_state"].fillna("") != "")]
    acted = set(moved["case_id"])
    closing = moved[moved["to_state"].isin(["removed", "enforced"])]
    c["open"] = ~c["state"].isin(list(CLOSED_STATES))
    c["closed_in_plan"] = c["case_id"].isin(closing["case_id"])
    first = c["ledger"].map(FIRST_STATE)
    c["acted"] = c["case_id"].isin(acted) | (c["open"] & (c["state"] != first))
    c["open_area"] = c["area_m2"].fillna(0.0).where(c["open"], 0.0)
    keys = ["district_code", "district_name", "township_name", "unit_type", "unit_code"]
    for k in (*keys, "unit_name"):
        c[k] = c[k].fillna("").astype(str)
    grouped = (
        c.groupby(keys, dropna=False)
        .agg(
            unit_name=("unit_name", "first"),
            n_cases=("case_id", "size"),
            n_open=("open", "sum"),
            n_closed_in_plan=("closed_in_plan", "sum"),
            open_area_m2=("open_area", "sum"),
            acted=("acted", "any"),
        )
        .reset_index()
    )
    marks = cleared[["unit_code", "cleared_on"]].copy() if len(cleared) else None
    if marks is not None:
        marks["unit_code"] = marks["unit_code"].astype(str)
        grouped = grouped.merge(marks, on="unit_code", how="outer")
        for k in (*keys, "unit_name"):
            grouped[k] = grouped[k].fillna("")
        grouped = grouped.fillna({"n_cases": 0, "n_open": 0, "n_closed_in_plan": 0,
                                  "open_area_m2": 0.0, "acted": False})  # fmt: skip
    else:
        grouped["cleared_on"] = ""
    grouped["cleared_on"] = grouped["cleared_on"].fillna("").astype(str)
    since = dict(zip(grouped["unit_code"], grouped["cleared_on"], strict=True))
    after = c[[bool(since.get(u)) and str(f)[:10] >= since[u]
               for u, f in zip(c["unit_code"], c["first_seen"], strict=True)]]  # fmt: skip
    grouped["relapses"] = grouped["unit_code"].map(after.groupby("unit_code").size()).fillna(0)
    grouped["status"] = [
        "cleared" if on else "in_progress" if acted else "not_started"
        for on, acted in zip(grouped["cleared_on"], grouped["acted"].astype(bool), strict=True)
    ]
    for k in ("n_cases", "n_open", "n_closed_in_plan", "relapses"):
        grouped[k] = grouped[k].astype(int)
    grouped["open_area_m2"] = grouped["open_area_m2"].astype(float).round(1)
    order = grouped["status"].map({"not_started": 0, "in_progress": 1, "cleared": 2})
    grouped = grouped.assign(_o=order).sort_values(
        ["district_code", "_o", "open_area_m2", "unit_code"], ascending=[True, True, False, True]
    )
    return grouped[list(PLAN_LABELS_ZH)].reset_index(drop=True)


def plan_of(ledgers: list, first_year: int, last_year: int) -> pd.DataFrame:
    """:func:`unit_progress` over every district ledger (``DistrictLedger`` values)."""
    frames = [unit_progress(d.cases, d.history, d.cleared, first_year, last_year) for d in ledgers]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(PLAN_LABELS_ZH))
    return pd.concat(frames, ignore_index=True)
