"""Per-household registration of existing cases (分小区分户登记) and its export per compound.

The notice asks the townships to register existing illegal structures compound by compound and
household by household. A registration file (CSV/XLSX) has the columns ``case_id, household,
owner`` (案件编号, 户号, 户主; ``note``/备注 optional); it is validated whole and applied in one
transaction with a history row per case, or not at all. :func:`export_households` writes one
workbook: a summary sheet (per compound/village: cases, registered households, area) and one sheet
per compound or village listing its cases with household and owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from geo.atomic import atomic_path
from geo.errors import ConfigError
from pipelines.cases.imports import ImportValidationError, Problem, read_sheet
from pipelines.cases.states import STATE_LABELS_ZH
from pipelines.cases.store import LedgerStore, now_iso
from pipelines.safety import neutralize_frame, sheet_title

__all__ = ["Registration", "read_registrations", "register_households", "export_households"]

_ALIASES = {
    "case_id": "case_id",
    "案件编号": "case_id",
    "编号": "case_id",
    "household": "household",
    "户号": "household",
    "门牌号": "household",
    "owner": "owner",
    "户主": "owner",
    "业主": "owner",
    "note": "note",
    "备注": "note",
}
HOUSEHOLD_LABELS_ZH = {
    "case_id": "案件编号",
    "household": "户号",
    "owner": "户主",
    "state": "状态",
    "area_m2": "面积(㎡)",
    "address": "地址",
    "first_seen": "发现日期",
    "township_name": "乡镇(街道)",
    "unit_name": "小区/村",
    "unit_code": "小区/村编码",
    "n_cases": "案件数",
    "n_households": "登记户数",
    "n_unregistered": "未登记案件",
}


@dataclass(frozen=True)
class Registration:
    """One household registration (``row`` as in the spreadsheet)."""

    row: int
    case_id: str
    household: str
    owner: str
    note: str = ""


def read_registrations(path: str | Path) -> list[Registration]:
    """Rows of a registration file, headers normalised."""
    frame = read_sheet(path, "registration file")
    frame = frame.rename(columns={c: _ALIASES.get(str(c).strip().lower(), c) for c in frame})
    frame = frame.fillna("")
    missing = [c for c in ("case_id", "household") if c not in frame.columns]
    if missing:
        raise ImportValidationError(
            str(path),
            [Problem(1, c, "", "missing column (案件编号, 户号, 户主)") for c in missing],
        )
    return [
        Registration(
            int(i) + 2,
            str(r["case_id"]).strip(),
            str(r["household"]).strip(),
            str(r.get("owner", "")).strip(),
            str(r.get("note", "")).strip(),
        )
        for i, r in zip(frame.index, frame.to_dict("records"), strict=True)
        if any(str(v).strip() for v in r.values())
    ]


def register_households(
    store: LedgerStore, rows: Sequence[Registration], *, who: str, source: str = "cli"
) -> int:
    """Validate every registration, then write them all in one transaction; returns how many."""
    if not who.strip():
        raise ConfigError("registration: say who registers the households (--who)")
    t = store.require()
    with store.write() as conn:
        known = store.cases(conn, columns=("case_id", "ledger", "state"))
        states = dict(zip(known["case_id"], known["state"], strict=True))
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for r in rows:
            if r.case_id not in states:
                why = "case id is empty" if not r.case_id else "no such case in the ledger"
                problems.append(Problem(r.row, "case_id", r.case_id, why))
            elif r.case_id in seen:
                problems.append(
                    Problem(
                        r.row, "case_id", r.case_id, f"registered twice (row {seen[r.case_id]})"
                    )
                )
            if not r.household:
                problems.append(Problem(r.row, "household", "", "the household (户号) is required"))
            seen.setdefault(r.case_id, r.row)
        if problems:
            raise ImportValidationError(source, problems)
        now = now_iso()
        for r in rows:
            conn.execute(
                t.cases.update()
                .where(t.cases.c.case_id == r.case_id)
                .values(household=r.household, owner=r.owner, updated_at=now)
            )
        conn.execute(
            t.history.insert(),
            [
                {
                    "case_id": r.case_id,
                    "at": now[:10],
                    "who": who,
                    "from_state": states[r.case_id],
                    "to_state": states[r.case_id],
                    "reject_reason": "",
                    "note": f"分户登记: 户号 {r.household}, 户主 {r.owner or '-'}"
                    + (f"; {r.note}" if r.note else ""),
                    "flight_id": "",
                    "source": source,
                    "recorded_at": now,
                }
                for r in rows
            ],
        )
    return len(rows)


def export_households(
    store: LedgerStore, path: str | Path, *, unit_code: str | None = None
) -> pd.DataFrame:
    """The existing ledger per compound/village and household, as one workbook; returns the
    summary (one row per unit)."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise ConfigError(f"households export {path}: use a .xlsx file name")
    if not path.parent.is_dir():
        raise ConfigError(f"households export {path}: folder {path.parent} does not exist")
    cases = pd.DataFrame(store.cases(ledger="existing").drop(columns="geometry"))
    if unit_code:
        cases = cases[cases["unit_code"] == unit_code]
        if cases.empty:
            raise ConfigError(f"unit {unit_code}: no existing-ledger case in {store.label}")
    cases["unit_code"] = cases["unit_code"].fillna("").replace("", "unassigned")
    cases["household"] = cases["household"].fillna("")
    keys = ["unit_code", "unit_name", "township_name"]
    summary = (
        cases.groupby(keys, dropna=False)
        .agg(
            n_cases=("case_id", "size"),
            n_households=("household", lambda h: h[h != ""].nunique()),
            n_unregistered=("household", lambda h: int((h == "").sum())),
            area_m2=("area_m2", "sum"),
        )
        .reset_index()
        .sort_values(["township_name", "unit_code"])
    )
    summary["area_m2"] = summary["area_m2"].round(1)
    cols = ["case_id", "household", "owner", "state", "area_m2", "address", "first_seen"]
    used: set[str] = set()
    with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xl:
        neutralize_frame(summary.rename(columns=HOUSEHOLD_LABELS_ZH)).to_excel(
            xl, sheet_name="汇总", index=False
        )
        for (code, name, _), group in cases.groupby(keys, dropna=False, sort=True):
            title = sheet_title(f"{name or code}")
            k = 2
            base = title
            while title in used or title == "汇总":
                title = sheet_title(f"{base[:27]}_{k}")
                k += 1
            used.add(title)
            rows = group.sort_values(["household", "case_id"])[cols].copy()
            rows["state"] = rows["state"].map(STATE_LABELS_ZH).fillna(rows["state"])
            neutralize_frame(rows.rename(columns=HOUSEHOLD_LABELS_ZH)).to_excel(
                xl, sheet_name=title, index=False
            )
    return summary.reset_index(drop=True)
