"""The demo's helpers: the officers' updates, ledger snapshots, evaluation and the preview.

:func:`plan_officer_updates` is pure: from the ledger after night 1 and that night's ground
truth it decides what a township would send back (the rows of an update file, in the Chinese
headers :mod:`pipelines.cases.imports` accepts) and which case is put under supervision.
:func:`ledger_snapshot` and :func:`evaluate_leads` are pure too; :func:`write_update_file`
and :func:`write_preview` are the IO edges.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.atomic import atomic_path
from pipelines.cases.states import LEDGERS, REJECT_REASON_LABELS_ZH, REJECTED
from pipelines.safety import neutralize_frame

__all__ = [
    "UPDATE_HEADERS_ZH",
    "OfficerPlan",
    "match_truth",
    "plan_officer_updates",
    "write_update_file",
    "ledger_snapshot",
    "evaluate_leads",
    "write_preview",
]

#: canonical import column -> the Chinese header a township's spreadsheet uses
UPDATE_HEADERS_ZH: dict[str, str] = {
    "case_id": "案件编号",
    "to_state": "新状态",
    "who": "经办人",
    "date": "日期",
    "note": "备注",
    "reason": "驳回原因",
}
#: English state / reason -> the word a township writes
_WORD_ZH = {
    "stopped": "制止",
    "removed": "消除",
    "notice": "公告",
    "penalty": "处罚",
    "enforced": "执行",
    "rejected": "驳回",
    **REJECT_REASON_LABELS_ZH,
}
_NOTES = {
    "stopped": "现场制止施工，已下达停工通知",
    "removed": "当事人已自行拆除，现场复核完毕",
    "notice": "已张贴公告，责令限期自行拆除",
    "penalty": "逾期未拆除，已作出行政处罚决定",
    "enforced": "已依法强制拆除",
    "rejected": "现场核查：无新增建筑，系影像误报",
    "rejected:permitted": "现场核查：已取得规划许可，许可信息尚未入库",
}


@dataclass(frozen=True)
class OfficerPlan:
    """What the townships send back after night 1 (``rows``: canonical import columns)."""

    rows: list[dict[str, str]]
    stopped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    noticed: list[str] = field(default_factory=list)
    enforced: list[str] = field(default_factory=list)
    rejected: str | None = None
    rejected_reason: str | None = None
    supervised: str | None = None
    deadline: str | None = None


def match_truth(
    cases: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, min_overlap: float = 0.3
) -> dict[str, int]:
    """case_id -> change_id of the true change it covers (intersection/smaller >= min_overlap)."""
    if cases.empty or truth.empty:
        return {}
    truth = truth.to_crs(cases.crs) if truth.crs != cases.crs else truth
    cg, tg = np.asarray(cases.geometry.values), np.asarray(truth.geometry.values)
    ci, ti = shapely.STRtree(tg).query(cg, predicate="intersects")
    inter = shapely.area(shapely.intersection(cg[ci], tg[ti]))
    ratio = inter / np.maximum(np.minimum(shapely.area(cg[ci]), shapely.area(tg[ti])), 1e-9)
    pairs = pd.DataFrame({"ci": ci, "ti": ti, "r": ratio})
    pairs = pairs[pairs["r"] >= min_overlap].sort_values(["ci", "r"], ascending=[True, False])
    ids, changes = cases["case_id"].to_numpy(), truth["change_id"].to_numpy()
    return {str(ids[c]): int(changes[t]) for c, t in zip(pairs["ci"], pairs["ti"], strict=True)}


def _who(case: pd.Series) -> str:
    return f"{case.get('township_name') or '乡镇(街道)'}综合行政执法大队"


def plan_officer_updates(
    cases: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    removed_change_ids: list[int],
    day: str,
    *,
    n_each: int = 3,
    deadline_days: int = 15,
) -> OfficerPlan:
    """The township updates between the nights, decided from what is really on the ground.

    * up to ``n_each`` true construction cases → stopped; one of them (the site whose structure
      is really gone by night 2, else the first) further → removed — two rows, one step each;
    * the highest-scoring case of either ledger matching no true change → rejected
      (false_detection); when there is none, the last true new_building case that is not needed
      below → rejected (permitted: the township found a permit the office did not have yet);
    * up to ``n_each`` true new_building cases → notice; one whose structure is gone by night 2
      is taken on to penalty → enforced;
    * the first stopped (not removed) case, else the first noticed one, is supervised
      (挂牌督办) with a deadline ``deadline_days`` after ``day``.
    """
    hits = match_truth(cases, truth[truth["expected"] == "lead"])
    gone = set(int(i) for i in removed_change_ids)
    rows: list[dict[str, str]] = []

    def row(case: pd.Series, to: str, reason: str = "") -> None:
        rows.append(
            {
                "case_id": str(case["case_id"]),
                "to_state": to,
                "who": _who(case),
                "date": day,
                "note": _NOTES.get(f"{to}:{reason}", _NOTES[to]),
                "reason": reason,
            }
        )

    first = {ledger: states[0] for ledger, states in LEDGERS.items()}
    fresh = cases[cases["state"] == cases["ledger"].map(first)]
    false = fresh[~fresh["case_id"].isin(list(hits))].sort_values(
        ["score", "case_id"], ascending=[False, True]
    )
    rejected = str(false["case_id"].iloc[0]) if len(false) else None
    building = cases[
        (cases["ledger"] == "in_progress")
        & (cases["state"] == first["in_progress"])
        & cases["case_id"].isin(list(hits))
    ]
    building = building.sort_values("case_id").head(n_each)
    removed: list[str] = []
    if len(building):
        real_gone = [c for c in building["case_id"] if hits.get(str(c)) in gone]
        removed = [real_gone[0] if real_gone else str(building["case_id"].iloc[0])]
    for _, case in building.iterrows():
        row(case, "stopped")
        if case["case_id"] in removed:
            row(case, "removed")

    existing = cases[(cases["ledger"] == "existing") & (cases["state"] == first["existing"])]
    true_nb = existing[existing["case_id"].isin(list(hits))].sort_values("case_id")
    reason = "false_detection"
    spare = true_nb[~true_nb["case_id"].map(lambda c: hits[str(c)] in gone)]
    if rejected is None and len(spare) >= 2:
        # no false detection to reject: a permit the office did not have yet (the last true
        # new_building case still standing, so notice and enforcement keep their cases)
        rejected, reason = str(spare["case_id"].iloc[-1]), "permitted"
        true_nb = true_nb[true_nb["case_id"] != rejected]
    if rejected is not None:
        row(cases[cases["case_id"] == rejected].iloc[0], REJECTED, reason)
    noticed = true_nb.head(n_each)
    enforced = [str(c) for c in true_nb["case_id"] if hits[str(c)] in gone][:1]
    extra = true_nb[
        true_nb["case_id"].isin(enforced) & ~true_nb["case_id"].isin(noticed["case_id"])
    ]
    for _, case in pd.concat([noticed, extra]).iterrows():
        row(case, "notice")
        if case["case_id"] in enforced:
            for step in ("penalty", "enforced"):
                row(case, step)

    still_open = [str(c) for c in building["case_id"] if c not in removed]
    still_open += [str(c) for c in noticed["case_id"] if c not in enforced]
    supervised = still_open[0] if still_open else None
    deadline = (dt.date.fromisoformat(day) + dt.timedelta(days=deadline_days)).isoformat()
    return OfficerPlan(
        rows=rows,
        stopped=[str(c) for c in building["case_id"]],
        removed=removed,
        noticed=[str(c) for c in pd.concat([noticed, extra])["case_id"]],
        enforced=enforced,
        rejected=rejected,
        rejected_reason=reason if rejected is not None else None,
        supervised=supervised,
        deadline=deadline if supervised else None,
    )


def write_update_file(plan: OfficerPlan, path: Path) -> Path:
    """Write the update rows as a township would: CSV (UTF-8 with BOM), Chinese headers and
    Chinese state/reason words; atomically."""
    frame = pd.DataFrame(plan.rows, columns=list(UPDATE_HEADERS_ZH))
    for col in ("to_state", "reason"):
        frame[col] = frame[col].map(lambda v: _WORD_ZH.get(v, v))
    frame = frame.rename(columns=UPDATE_HEADERS_ZH)
    with atomic_path(path, mkdir=True) as tmp:
        neutralize_frame(frame).to_csv(tmp, index=False, encoding="utf-8-sig")
    return path


def ledger_snapshot(cases: pd.DataFrame) -> dict[str, Any]:
    """Counts per ledger and state (every state listed), plus not_observed and supervised."""
    out: dict[str, Any] = {"total": int(len(cases))}
    for ledger, states in LEDGERS.items():
        part = cases[cases["ledger"] == ledger]
        out[ledger] = {s: int((part["state"] == s).sum()) for s in (*states, REJECTED)}
    out["not_observed"] = int(cases["not_observed"].astype(bool).sum()) if len(cases) else 0
    out["supervised"] = int(cases["supervised"].astype(bool).sum()) if len(cases) else 0
    return out


def evaluate_leads(
    leads: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, area_km2: float | None = None
) -> dict[str, Any]:
    """Object P/R/F1 of a night's leads (status ``lead``) against its truth (expected ``lead``),
    per class and overall, at IoU 0.25 — as ``buildwatch evaluate`` does."""
    from models.evaluate import evaluate_objects

    got = leads[leads["status"] == "lead"]
    want = truth[truth["expected"] == "lead"]
    if want.crs is not None and got.crs is not None and want.crs != got.crs:
        want = want.to_crs(got.crs)
    return evaluate_objects(
        got.geometry.values,
        list(got["class"]),
        list(got["score"]),
        want.geometry.values,
        list(want["class"]),
        iou_threshold=0.25,
        area_km2=area_km2,
    )


def write_preview(path: Path, flight: Path, baseline: Path, truth: Path, width: int = 1600) -> Path:
    """A before | after PNG of the district with the true changes outlined, drawn by the
    district writer's own preview helper (baseline warped onto the flight's grid)."""
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    from geo.synthetic.district import _preview  # the same drawing as `buildwatch synth-district`
    from geo.synthetic.scene import Change

    with rasterio.open(flight) as src:
        m = min(width, src.width, src.height)
        after = src.read((1, 2, 3), out_shape=(3, m, m), resampling=Resampling.average)
        grid = src.transform @ Affine.scale(src.width / m, src.height / m)
        crs = src.crs
    before = np.zeros_like(after)
    with rasterio.open(baseline) as src:
        reproject(
            rasterio.band(src, (1, 2, 3)),
            before,
            dst_transform=grid,
            dst_crs=crs,
            resampling=Resampling.average,
        )
    changes = []
    a, b, c, d, e, f = tuple(~grid)[:6]
    for _, t in gpd.read_file(truth, layer="changes").to_crs(crs).iterrows():
        parts = getattr(t.geometry, "geoms", [t.geometry])
        ring = np.asarray(max(parts, key=lambda g: g.area).exterior.coords)
        xs, ys = ring[:, 0], ring[:, 1]
        px = np.column_stack([a * xs + b * ys + c, d * xs + e * ys + f])
        changes.append(Change(t["kind"], t["class"] or "", t["expected"], px, int(t["change_id"])))
    with atomic_path(path) as tmp:
        _preview(tmp, before.transpose(1, 2, 0).copy(), after.transpose(1, 2, 0).copy(), changes)
    return path
