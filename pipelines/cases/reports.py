"""Daily (in-progress ledger) and monthly (existing ledger) reports per township and district.

The notice's reporting chain: the in-progress ledger (在建违法建筑) goes up daily, the existing
ledger (存量违法建筑) monthly, township → district → city. A report is one table with a row per
township and a row per district: counts by state (as the ledger stands now), cases new in the
period (first seen in it), cases closed in the period (moved to removed/enforced/rejected in it),
supervised open cases and overdue ones, plus a short Chinese text summary.

:func:`build_table` is pure (cases + history → table); :func:`write_report` writes CSV or XLSX
(Chinese headers) and the summary as a ``.txt`` beside it, each atomically.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from geo.atomic import atomic_path, write_text_atomic
from geo.errors import ConfigError
from pipelines.cases.states import (
    CLOSED_STATES,
    LEDGER_LABELS_ZH,
    LEDGERS,
    REJECTED,
    STATE_LABELS_ZH,
)
from pipelines.cases.store import LedgerStore
from pipelines.cases.tables import SOURCE_LABELS_ZH, SOURCES
from pipelines.safety import neutralize_frame

__all__ = [
    "Report",
    "build_table",
    "summarise",
    "daily_report",
    "monthly_report",
    "write_report",
    "REPORT_LABELS_ZH",
]

REPORT_LABELS_ZH: dict[str, str] = {
    "level": "级别",
    "district_code": "区县编码",
    "district_name": "区县",
    "township_code": "乡镇(街道)编码",
    "township_name": "乡镇(街道)",
    **STATE_LABELS_ZH,
    "total": "合计",
    "open": "未办结",
    "new_in_period": "本期新增",
    "closed_in_period": "本期办结",
    "supervised_open": "督办中",
    "overdue": "逾期",
    **{f"source_{k}": f"来源:{v}" for k, v in SOURCE_LABELS_ZH.items()},
    **{f"new_{k}": f"本期新增:{v}" for k, v in SOURCE_LABELS_ZH.items()},
}
COVERAGE_LABELS_ZH = {
    "flight_id": "航拍批次",
    "coreg_status": "配准状态",
    "compared_km2": "已比对(平方公里)",
    "not_comparable_km2": "无法比对(平方公里)",
    "unknown_km2": "无基准(平方公里)",
}
_LEVEL_ZH = {"district": "区县", "township": "乡镇(街道)"}


@dataclass(frozen=True)
class Report:
    """One report: which ledger, which period (inclusive), the table and its summary."""

    kind: str
    ledger: str
    start: date
    end: date
    table: pd.DataFrame
    summary: str
    #: per flight: km² compared / not comparable / unknown (pipelines.run.area_table), if known
    coverage: pd.DataFrame | None = None

    def with_coverage(self, coverage: pd.DataFrame) -> Report:
        """This report plus the flights' compared areas (a sheet, and lines in the summary)."""
        lines = []
        for r in coverage.itertuples():
            note = ""
            if r.compared_km2 <= 0:
                note = "；未完成任何比对（NOTHING COMPARED）"
            elif r.not_comparable_km2 > 0 or r.unknown_km2 > 0:
                note = "；部分区域未比对"
            lines.append(
                f"航拍 {r.flight_id}：已比对 {r.compared_km2:.4f} km²，无法比对（配准不合格）"
                f"{r.not_comparable_km2:.4f} km²，无基准 {r.unknown_km2:.4f} km²，"
                f"配准 {r.coreg_status}{note}"
            )
        if coverage.empty:
            lines.append("本期无航拍比对记录（no flight compared）")
        summary = self.summary.rstrip("\n") + "\n比对范围：\n" + "\n".join(lines) + "\n"
        return Report(self.kind, self.ledger, self.start, self.end, self.table, summary, coverage)


def build_table(
    cases: pd.DataFrame, history: pd.DataFrame, ledger: str, start: date, end: date, today: date
) -> pd.DataFrame:
    """Rows per township then per district for one ledger (see the module docstring)."""
    states = [*LEDGERS[ledger], REJECTED]
    keys = ["district_code", "district_name", "township_code", "township_name"]
    c = cases[cases["ledger"] == ledger].copy()
    for k in keys:
        c[k] = c[k].fillna("").astype(str)
    lo, hi = start.isoformat(), end.isoformat()
    c["open"] = ~c["state"].isin(list(CLOSED_STATES))
    c["new_in_period"] = c["first_seen"].astype(str).str[:10].between(lo, hi)
    h = history[history["case_id"].isin(c["case_id"])]
    closing = h[
        h["to_state"].isin(list(CLOSED_STATES))
        & (h["from_state"] != h["to_state"])
        & h["at"].astype(str).str[:10].between(lo, hi)
    ]
    c["closed_in_period"] = c["case_id"].isin(closing["case_id"])
    c["supervised_open"] = c["supervised"].astype(bool) & c["open"]
    deadline = c["deadline"].fillna("").astype(str)
    c["overdue"] = c["supervised_open"] & (deadline != "") & (deadline < today.isoformat())
    for s in states:
        c[s] = c["state"] == s
    c["total"] = True
    src = c["source"].fillna("").astype(str) if "source" in c else pd.Series("", index=c.index)
    src = src.replace("", "drone")
    for name in SOURCES:  # every discovery channel: cases it opened, and those new in the period
        c[f"source_{name}"] = src == name
        c[f"new_{name}"] = c[f"source_{name}"] & c["new_in_period"]
    measures = [*states, "total", "open", "new_in_period", "closed_in_period"]
    measures += ["supervised_open", "overdue"]
    measures += [f"source_{n}" for n in SOURCES] + [f"new_{n}" for n in SOURCES]
    town = c.groupby(keys, dropna=False)[measures].sum().reset_index().assign(level="township")
    dist = c.groupby(keys[:2], dropna=False)[measures].sum().reset_index().assign(level="district")
    table = pd.concat([town, dist], ignore_index=True).fillna("")
    table = table[["level", *keys, *measures]]
    table[measures] = table[measures].astype(int)
    order = table["level"].map({"township": 0, "district": 1})
    return (
        table.assign(_o=order)
        .sort_values(["district_code", "_o", "township_code"])
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def summarise(table: pd.DataFrame, ledger: str, kind: str, start: date, end: date) -> str:
    """A few Chinese sentences a district office can paste into its report."""
    period = start.isoformat() if start == end else f"{start.isoformat()}至{end.isoformat()}"
    word = "本日" if kind == "daily" else "本月"
    name = LEDGER_LABELS_ZH[ledger]
    lines = [f"{name}台账{'日报' if kind == 'daily' else '月报'}（{period}）"]
    dist = table[table["level"] == "district"]
    if dist.empty:
        lines.append("台账中暂无案件。")
    for _, d in dist.iterrows():
        by_state = "、".join(
            f"{STATE_LABELS_ZH[s]}{int(d[s])}" for s in (*LEDGERS[ledger], REJECTED) if int(d[s])
        )
        lines.append(
            f"{d['district_name'] or d['district_code'] or '未知区县'}：共{int(d['total'])}宗"
            f"（{by_state or '无'}），未办结{int(d['open'])}宗；{word}新增{int(d['new_in_period'])}宗，"
            f"{word}办结{int(d['closed_in_period'])}宗；督办中{int(d['supervised_open'])}宗，"
            f"逾期{int(d['overdue'])}宗。"
        )
        if f"new_{SOURCES[0]}" in d and int(d["new_in_period"]):
            by_src = "、".join(
                f"{SOURCE_LABELS_ZH[n]}{int(d[f'new_{n}'])}宗"
                for n in SOURCES
                if int(d[f"new_{n}"])
            )
            lines.append(f"  {word}新增按发现渠道：{by_src}。")
        towns = table[
            (table["level"] == "township") & (table["district_code"] == d["district_code"])
        ]
        busiest = towns.sort_values("open", ascending=False).head(3)
        if len(busiest) and int(busiest["open"].iloc[0]):
            top = "、".join(
                f"{t['township_name'] or t['township_code']}（{int(t['open'])}宗）"
                for _, t in busiest.iterrows()
                if int(t["open"])
            )
            lines.append(f"  未办结最多的乡镇(街道)：{top}。")
    return "\n".join(lines) + "\n"


def _report(
    store: LedgerStore, kind: str, ledger: str, start: date, end: date, today: date
) -> Report:
    cases = pd.DataFrame(store.cases().drop(columns="geometry"))
    table = build_table(cases, store.history(), ledger, start, end, today)
    return Report(kind, ledger, start, end, table, summarise(table, ledger, kind, start, end))


def daily_report(store: LedgerStore, day: date | None = None, today: date | None = None) -> Report:
    """The in-progress ledger's daily report for *day* (default today); cases found in units
    marked cleared (整治完毕) since their clearance are flagged in its summary."""
    from pipelines.cases.cleared import read_cleared, relapses

    day = day or date.today()
    report = _report(store, "daily", "in_progress", day, day, today or max(day, date.today()))
    cases = pd.DataFrame(store.cases().drop(columns="geometry"))
    back = relapses(cases, read_cleared(store))
    if back.empty:
        return report
    lines = [f"整治完毕单元新增线索（需立即核查）：{len(back)}宗"]
    lines += [
        f"  {r.unit_name or r.unit_code}（{r.unit_code}，{r.cleared_on}整治完毕）：{r.case_id}，"
        f"{str(r.first_seen)[:10]}发现"
        for r in back.itertuples()
    ]
    summary = "\n".join(lines) + "\n" + report.summary
    return Report(report.kind, report.ledger, report.start, report.end, report.table, summary)


def monthly_report(
    store: LedgerStore, month: str | None = None, today: date | None = None
) -> Report:
    """The existing ledger's monthly report for *month* (``YYYY-MM``, default this month)."""
    month = month or date.today().strftime("%Y-%m")
    try:
        year, mon = (int(p) for p in month.split("-"))
        start = date(year, mon, 1)
    except ValueError:
        raise ConfigError(f"month {month!r} is not YYYY-MM; e.g. --month 2024-05") from None
    end = date(year, mon, calendar.monthrange(year, mon)[1])
    return _report(store, "monthly", "existing", start, end, today or date.today())


def write_report(report: Report, path: str | Path) -> list[Path]:
    """Write the table (``.csv`` UTF-8 with BOM, or ``.xlsx``) with Chinese headers, and the
    summary beside it as ``<stem>.txt``; returns the files written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ConfigError(f"report {path}: use a .csv or .xlsx file name")
    if not path.parent.is_dir():
        raise ConfigError(f"report {path}: folder {path.parent} does not exist; create it")
    table = report.table.assign(level=report.table["level"].map(_LEVEL_ZH))
    table = table.rename(columns=REPORT_LABELS_ZH)
    if suffix == ".csv":
        with atomic_path(path) as tmp:
            neutralize_frame(table).to_csv(tmp, index=False, encoding="utf-8-sig")
    else:
        with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xl:
            neutralize_frame(table).to_excel(xl, sheet_name="台账", index=False)
            neutralize_frame(pd.DataFrame({"说明": report.summary.splitlines()})).to_excel(
                xl, sheet_name="摘要", index=False
            )
            if report.coverage is not None:
                neutralize_frame(report.coverage.rename(columns=COVERAGE_LABELS_ZH)).to_excel(
                    xl, sheet_name="比对范围", index=False
                )
    summary = write_text_atomic(path.with_suffix(".txt"), report.summary)
    return [path, summary]
