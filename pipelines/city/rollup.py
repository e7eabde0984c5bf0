"""The city's view of every district ledger, read-only, and its daily and monthly reports.

:func:`open_district_ledgers` reads each ledger in one read transaction (a consistent snapshot)
and refuses, naming the ledger, one that is missing, not a buildwatch ledger, of another schema
version, or locked; nothing is written until every ledger has been read. :func:`city_reports`
builds the notice's two reports over all of them (rows per township and district, plus a city
row) and the list of supervised cases past their deadline, most overdue first.
:func:`write_city_reports` writes XLSX with Chinese headers (and the summary ``.txt``) and the
same tables in one GeoPackage, each file atomically.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from geo.atomic import atomic_path
from geo.errors import ConfigError, LedgerError, LockError
from pipelines.cases.reports import Report, build_table, summarise, write_report
from pipelines.cases.store import LedgerStore
from pipelines.cases.tables import SCHEMA_VERSION
from pipelines.safety import neutralize_frame

__all__ = [
    "DistrictLedger",
    "CityReports",
    "open_district_ledgers",
    "city_reports",
    "write_city_reports",
    "OVERDUE_LABELS_ZH",
]

OVERDUE_LABELS_ZH = {
    "case_id": "案件编号",
    "ledger": "台账",
    "state": "状态",
    "district_code": "区县编码",
    "district_name": "区县",
    "township_name": "乡镇(街道)",
    "unit_name": "小区/村",
    "deadline": "整改期限",
    "days_overdue": "逾期天数",
}


@dataclass(frozen=True)
class DistrictLedger:
    """One district ledger as read for the city: where it is and a snapshot of its tables."""

    label: str
    cases: pd.DataFrame
    history: pd.DataFrame


@dataclass(frozen=True)
class CityReports:
    """The city's daily (in-progress) and monthly (existing) reports and the overdue list."""

    daily: Report
    monthly: Report
    overdue: pd.DataFrame
    ledgers: tuple[str, ...]


def _read_one(url: str) -> DistrictLedger:
    is_path = "://" not in url
    if is_path and not Path(url).is_file():
        raise LedgerError(f"district ledger {url}: not found; check the path (nothing was written)")
    store = LedgerStore(url, lock_timeout_s=5.0)
    try:
        if not store.exists():
            raise LedgerError(
                f"district ledger {store.label}: not a buildwatch case ledger (no ledger_meta); "
                "pass the district's ledger.gpkg or its postgresql:// URL (nothing was written)"
            )
        with store.read() as conn:
            found = conn.execute(
                text("SELECT value FROM ledger_meta WHERE key = 'schema_version'")
            ).scalar()
            if str(found) != SCHEMA_VERSION:
                raise LedgerError(
                    f"district ledger {store.label}: schema version {found!r}, this buildwatch "
                    f"reads version {SCHEMA_VERSION!r}; open it once with this buildwatch's "
                    "district tools or upgrade the city's (nothing was written)"
                )
            cases = pd.DataFrame(store.cases(conn).drop(columns="geometry"))
            history = store.history(conn=conn)
        return DistrictLedger(store.label, cases, history)
    except LockError as exc:
        raise LedgerError(
            f"district ledger {store.label}: locked ({exc}); nothing was written"
        ) from exc
    except LedgerError as exc:
        if "locked" in str(exc).lower():
            raise LedgerError(
                f"district ledger {store.label}: locked by a writer; try again when it finishes "
                "(nothing was written)"
            ) from exc
        raise
    finally:
        store.dispose()


def open_district_ledgers(urls: Sequence[str | Path]) -> list[DistrictLedger]:
    """Read every district ledger (all, or an error naming the first bad one)."""
    if not urls:
        raise ConfigError("city: no district ledger given; pass --ledger once per district")
    out = [_read_one(str(u)) for u in urls]
    seen: dict[str, str] = {}
    for d in out:
        for code in sorted(set(d.cases["district_code"].astype(str))):
            if code in seen and seen[code] != d.label:
                raise LedgerError(
                    f"district {code} is in two ledgers ({seen[code]} and {d.label}); give each "
                    "district's ledger once (nothing was written)"
                )
            seen[code] = d.label
    return out


def _with_city_row(table: pd.DataFrame) -> pd.DataFrame:
    dist = table[table["level"] == "district"]
    numeric = [c for c in table.columns if c not in ("level", "district_code", "district_name",
                                                     "township_code", "township_name")]  # fmt: skip
    city = {c: "" for c in table.columns} | {"level": "city", "district_name": "全市"}
    city |= {c: int(dist[c].sum()) for c in numeric}
    return pd.concat([table, pd.DataFrame([city])], ignore_index=True)


def _overdue(cases: pd.DataFrame, today: date) -> pd.DataFrame:
    open_ = ~cases["state"].isin(["removed", "enforced", "rejected"])
    sup = cases["supervised"].fillna(False).astype(bool) & open_
    deadline = cases["deadline"].fillna("").astype(str)
    late = cases[sup & (deadline != "") & (deadline < today.isoformat())].copy()
    late["days_overdue"] = [(today - date.fromisoformat(d[:10])).days for d in late["deadline"]]
    cols = list(OVERDUE_LABELS_ZH)
    return late.sort_values(["days_overdue", "case_id"], ascending=[False, True])[cols].reset_index(
        drop=True
    )


def city_reports(
    ledgers: Sequence[DistrictLedger],
    *,
    day: date | None = None,
    month: str | None = None,
    today: date | None = None,
) -> CityReports:
    """The city's daily report for *day* and monthly report for *month* (``YYYY-MM``)."""
    today = today or date.today()
    day = day or today
    month = month or day.strftime("%Y-%m")
    try:
        year, mon = (int(p) for p in month.split("-"))
        start = date(year, mon, 1)
    except ValueError:
        raise ConfigError(f"month {month!r} is not YYYY-MM; e.g. --month 2024-05") from None
    end = date(year, mon, calendar.monthrange(year, mon)[1])
    cases = pd.concat([d.cases for d in ledgers], ignore_index=True)
    history = pd.concat([d.history for d in ledgers], ignore_index=True)
    overdue = _overdue(cases, today)
    reports = []
    for kind, ledger, lo, hi in (("daily", "in_progress", day, day),
                                 ("monthly", "existing", start, end)):  # fmt: skip
        table = _with_city_row(build_table(cases, history, ledger, lo, hi, today))
        summary = summarise(table[table["level"] != "city"], ledger, kind, lo, hi)
        late = overdue[overdue["ledger"] == ledger]
        head = [f"全市：{len(ledgers)}个区县台账；督办逾期{len(late)}宗。"]
        head += [f"  逾期 {r.case_id}（{r.district_name or r.district_code}，{r.township_name}，"
                 f"期限{r.deadline}，逾期{r.days_overdue}天）" for r in late.itertuples()]  # fmt: skip
        reports.append(Report(kind, ledger, lo, hi, table, "\n".join(head) + "\n" + summary))
    return CityReports(reports[0], reports[1], overdue, tuple(d.label for d in ledgers))


def write_city_reports(
    city: CityReports,
    out_dir: str | Path,
    stamp: str = "",
    ranking: pd.DataFrame | None = None,
) -> list[Path]:
    """``city_daily_<day>.xlsx``, ``city_monthly_<month>.xlsx`` (+ ``.txt``) and
    ``city_reports.gpkg`` (tables ``daily``, ``monthly``, ``overdue``) under *out_dir*; with a
    ``ranking`` (:func:`pipelines.city.targets.rank_districts`) also ``city_ranking.xlsx``, a
    ``ranking`` table and ``progress_<district>.png`` per district."""
    out = Path(out_dir)
    if not out.is_dir():
        raise ConfigError(f"city report folder {out} does not exist; create it")
    written: list[Path] = []
    d, m = city.daily, city.monthly
    written += write_report(d, out / f"city_daily_{stamp or d.start.isoformat()}.xlsx")
    written += write_report(m, out / f"city_monthly_{stamp or m.start.strftime('%Y-%m')}.xlsx")
    gpkg = out / "city_reports.gpkg"
    import pyogrio

    tables = [("daily", d.table), ("monthly", m.table), ("overdue", city.overdue)]
    if ranking is not None:
        from pipelines.city.targets import TARGET_LABELS_ZH, progress_chart
        from pipelines.safety import inside, safe_code

        tables.append(("ranking", ranking))
        xlsx = out / "city_ranking.xlsx"
        with atomic_path(xlsx) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xl:
            neutralize_frame(ranking.rename(columns=TARGET_LABELS_ZH)).to_excel(
                xl, sheet_name="目标排名", index=False
            )
        written.append(xlsx)
        for _, row in ranking.iterrows():
            png = progress_chart(
                row, inside(out, f"progress_{safe_code(row['district_code'])}.png")
            )
            if png is not None:
                written.append(png)
    with atomic_path(gpkg) as tmp:
        for name, frame in tables:
            pyogrio.write_dataframe(neutralize_frame(frame), tmp, layer=name, driver="GPKG")
    return [*written, gpkg]
