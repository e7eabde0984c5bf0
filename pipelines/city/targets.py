"""Annual targets per district, progress against them year to date, and the districts' ranking.

A targets file (CSV or XLSX; Chinese headers accepted) has one row per district and year::

    district_code, year, cases_to_close, area_to_remove_m2, units_to_clear
    区县编码,       年度, 办结案件目标,     拆除面积目标(平方米), 整治单元目标

(``units_to_clear``, the compounds and villages to bring to 整治完毕 in the year, may be left out:
no target.)

Every row is checked before anything is used: an unknown district (in none of the ledgers), a
year that is not a year, a negative or non-numeric target is refused with its row number,
column and value. Progress year to date counts the cases that reached ``removed`` or
``enforced`` in the year (a rejected lead closes nothing), their area, and the units marked
cleared in the year (``cleared_units``, not lifted); the ranking orders the
districts by their mean share of the targets met (each share capped at 100 %).

>>> t = pd.DataFrame({"district_code": ["500104"], "year": [2024], "cases_to_close": [4],
...     "area_to_remove_m2": [100.0]})
>>> done = pd.DataFrame({"district_code": ["500104"], "closed_ytd": [2], "area_removed_ytd_m2": [100.0]})
>>> rank_districts(t, done)[["district_code", "progress", "rank"]].values.tolist()
[['500104', 0.75, 1]]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from geo.errors import InputFileError, VectorError
from pipelines.city.rollup import DistrictLedger

__all__ = [
    "TARGET_COLUMNS",
    "TARGET_LABELS_ZH",
    "TargetProblem",
    "TargetsError",
    "read_targets",
    "progress_ytd",
    "rank_districts",
    "progress_chart",
]

TARGET_COLUMNS = ("district_code", "year", "cases_to_close", "area_to_remove_m2", "units_to_clear")
_REQUIRED = TARGET_COLUMNS[:4]
TARGET_LABELS_ZH = {
    "district_code": "区县编码",
    "district_name": "区县",
    "year": "年度",
    "cases_to_close": "办结案件目标",
    "area_to_remove_m2": "拆除面积目标(平方米)",
    "units_to_clear": "整治单元目标",
    "closed_ytd": "年内已办结",
    "area_removed_ytd_m2": "年内已拆除(平方米)",
    "units_cleared_ytd": "年内整治完毕单元",
    "progress": "目标完成率",
    "rank": "排名",
}
_ALIASES = {v: k for k, v in TARGET_LABELS_ZH.items()} | {c: c for c in TARGET_COLUMNS}
_CLOSING = ("removed", "enforced")


@dataclass(frozen=True)
class TargetProblem:
    row: int
    column: str
    value: str
    why: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r}, value {self.value!r}: {self.why}"


class TargetsError(VectorError):
    """A targets file with problems; ``problems`` lists them all. Nothing was used."""

    def __init__(self, source: str, problems: Sequence[TargetProblem]) -> None:
        self.problems = list(problems)
        lines = "\n  ".join(str(p) for p in self.problems)
        super().__init__(
            f"{source}: {len(self.problems)} problem(s) in the targets; fix them:\n  {lines}"
        )


def read_targets(path: str | Path, districts: Iterable[str]) -> pd.DataFrame:
    """The targets of *path*, every row checked against the known *districts*."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: targets file not found; pass a .csv or .xlsx file")
    if path.suffix.lower() == ".xlsx":
        raw = pd.read_excel(path, dtype=str)
    elif path.suffix.lower() == ".csv":
        raw = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    else:
        raise InputFileError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .xlsx")
    raw = raw.rename(columns={c: _ALIASES.get(str(c).strip(), str(c).strip()) for c in raw.columns})
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise InputFileError(
            f"{path}: missing column(s) {missing} (found {list(raw.columns)}); the header needs "
            f"{list(_REQUIRED)} or {[TARGET_LABELS_ZH[c] for c in _REQUIRED]}"
        )
    if "units_to_clear" not in raw.columns:
        raw["units_to_clear"] = "0"
    known = set(districts)
    problems: list[TargetProblem] = []
    rows = []
    for i, rec in enumerate(raw.fillna("").to_dict("records")):
        n = i + 2
        code = str(rec["district_code"]).strip()
        if code not in known:
            problems.append(
                TargetProblem(
                    n, "district_code", code, f"not a district of the ledgers {sorted(known)}"
                )
            )
        year = str(rec["year"]).strip()
        if not (year.isdigit() and 2000 <= int(year) <= 2100):
            problems.append(TargetProblem(n, "year", year, "not a year (e.g. 2024)"))
        values = {}
        for col in ("cases_to_close", "area_to_remove_m2", "units_to_clear"):
            v = str(rec[col]).strip() or ("0" if col == "units_to_clear" else "")
            try:
                f = float(v)
            except ValueError:
                problems.append(TargetProblem(n, col, v, "not a number"))
                continue
            if f < 0 or f != f:
                problems.append(TargetProblem(n, col, v, "a target cannot be negative"))
            values[col] = f
        rows.append({"district_code": code, "year": int(year) if year.isdigit() else 0, **values})
    if problems:
        raise TargetsError(str(path), problems)
    out = pd.DataFrame(rows, columns=list(TARGET_COLUMNS))
    dup = out[out.duplicated(["district_code", "year"], keep=False)]
    if len(dup):
        raise TargetsError(
            str(path),
            [
                TargetProblem(
                    int(i) + 2,
                    "district_code",
                    str(r.district_code),
                    f"a second target row for {r.year}",
                )
                for i, r in dup.iloc[1:].iterrows()
            ],  # fmt: skip
        )
    return out


def progress_ytd(ledgers: Sequence[DistrictLedger], year: int, today: date) -> pd.DataFrame:
    """Per district: cases closed (removed/enforced) from 1 January of *year* to *today*, and
    their area."""
    lo, hi = f"{year}-01-01", min(today.isoformat(), f"{year}-12-31")
    rows = []
    for d in ledgers:
        h = d.history
        closing = h[
            h["to_state"].isin(_CLOSING)
            & (h["from_state"] != h["to_state"])
            & h["at"].astype(str).str[:10].between(lo, hi)
        ]
        closed = d.cases[d.cases["case_id"].isin(closing["case_id"])]
        cleared = (
            d.cleared[d.cleared["cleared_on"].astype(str).str[:10].between(lo, hi)]
            if len(d.cleared)
            else d.cleared
        )
        unit_district = dict(zip(d.cases["unit_code"], d.cases["district_code"], strict=False))
        places = d.cases[["district_code", "district_name"]].drop_duplicates()
        only = str(places["district_code"].iloc[0]) if len(places) == 1 else ""
        for code, name in places.values:
            mine = closed[closed["district_code"] == code]
            units = [u for u in cleared.get("unit_code", []) if
                     str(unit_district.get(u, only)) == str(code)]  # fmt: skip
            rows.append({"district_code": str(code), "district_name": str(name),
                         "closed_ytd": int(len(mine)),
                         "area_removed_ytd_m2": round(float(mine["area_m2"].fillna(0).sum()), 1),
                         "units_cleared_ytd": len(set(units))})  # fmt: skip
    cols = ["district_code", "district_name", "closed_ytd", "area_removed_ytd_m2"]
    return pd.DataFrame(rows, columns=[*cols, "units_cleared_ytd"])


def rank_districts(targets: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """Targets beside progress, ``progress`` (mean share met, each capped at 1) and ``rank``."""
    if "units_to_clear" not in targets:
        targets = targets.assign(units_to_clear=0.0)
    if "units_cleared_ytd" not in done:
        done = done.assign(units_cleared_ytd=0)
    t = targets.merge(done, on="district_code", how="left").fillna(
        {"closed_ytd": 0, "area_removed_ytd_m2": 0.0, "units_cleared_ytd": 0}
    )
    shares = []
    for r in t.itertuples():
        parts = []
        if r.cases_to_close > 0:
            parts.append(min(1.0, r.closed_ytd / r.cases_to_close))
        if r.area_to_remove_m2 > 0:
            parts.append(min(1.0, r.area_removed_ytd_m2 / r.area_to_remove_m2))
        if r.units_to_clear > 0:
            parts.append(min(1.0, r.units_cleared_ytd / r.units_to_clear))
        shares.append(round(sum(parts) / len(parts), 4) if parts else 1.0)
    t["progress"] = shares
    t = t.sort_values(["progress", "district_code"], ascending=[False, True]).reset_index(drop=True)
    t["rank"] = range(1, len(t) + 1)
    return t


def progress_chart(row: pd.Series, path: str | Path) -> Path | None:
    """One district's year to date against its targets (cases closed, area removed) as a PNG;
    None without a CJK font."""
    from pipelines.maps.static import _font_or_warn, _save_png

    family = _font_or_warn("a district's progress chart")
    if family is None:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    done = [float(row["closed_ytd"]), float(row["area_removed_ytd_m2"])]
    goal = [float(row["cases_to_close"]), float(row["area_to_remove_m2"])]
    labels = [f"办结案件 {done[0]:.0f}/{goal[0]:.0f}", f"拆除面积 {done[1]:.0f}/{goal[1]:.0f} ㎡"]
    if float(row.get("units_to_clear", 0) or 0) > 0:
        done.append(float(row["units_cleared_ytd"]))
        goal.append(float(row["units_to_clear"]))
        labels.append(f"整治完毕单元 {done[2]:.0f}/{goal[2]:.0f}")
    share = [min(100.0, 100 * d / g) if g > 0 else 100.0 for d, g in zip(done, goal, strict=True)]
    name = str(row.get("district_name") or row["district_code"])
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(6, 2.4), dpi=110)
        ax.barh(labels[::-1], share[::-1], color=["#2e7d32", "#1565c0", "#ef6c00"][: len(share)])
        ax.set_xlim(0, 100)
        ax.set_xlabel("年度目标完成率（%）")
        ax.set_title(
            f"{name} {int(row['year'])}年 第{int(row['rank'])}名 完成率{row['progress']:.0%}"
        )
        return _save_png(fig, path)
