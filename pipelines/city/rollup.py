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
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from geo.atomic import atomic_path
from geo.errors import ConfigError, LedgerError, LockError
from pipelines.cases.cleared import read_cleared, relapses
from pipelines.cases.reports import Report, build_table, summarise, write_report
from pipelines.cases.store import LedgerStore
from pipelines.cases.tables import SCHEMA_VERSION, SOURCE_LABELS_ZH, SOURCES
from pipelines.safety import neutralize_frame

__all__ = [
    "DistrictLedger",
    "CityReports",
    "open_district_ledgers",
    "city_reports",
    "write_city_reports",
    "supervised_cases",
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
    #: units marked cleared (整治完毕) and not lifted (pipelines.cases.cleared.read_cleared)
    cleared: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["unit_code"]))


@dataclass(frozen=True)
class CityReports:
    """The city's daily (in-progress) and monthly (existing) reports and the overdue list."""

    daily: Report
    monthly: Report
    overdue: pd.DataFrame
    ledgers: tuple[str, ...]
    #: every open supervised case, overdue first (most overdue first), then by deadline
    supervised: pd.DataFrame = field(default_factory=pd.DataFrame)


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
            found = store.schema_version(conn)
            if found != SCHEMA_VERSION:
                how = (
                    f"upgrade it with `buildwatch cases upgrade --ledger {store.label}`"
                    if found.isdigit() and int(found) < int(SCHEMA_VERSION)
                    else "use the buildwatch that wrote it, or a newer one"
                )
                raise LedgerError(
                    f"district ledger {store.label}: schema version {found!r}, this buildwatch "
                    f"reads version {SCHEMA_VERSION!r}; {how} (nothing was written)"
                )
            cases = pd.DataFrame(store.cases(conn).drop(columns="geometry"))
            history = store.history(conn=conn)
        return DistrictLedger(store.label, cases, history, read_cleared(store))
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


def supervised_cases(cases: pd.DataFrame, today: date) -> pd.DataFrame:
    """Open supervised cases with ``days_overdue`` (0 when not yet due), overdue ones first."""
    open_ = ~cases["state"].isin(["removed", "enforced", "rejected"])
    sup = cases[cases["supervised"].fillna(False).astype(bool) & open_].copy()
    deadline = sup["deadline"].fillna("").astype(str)
    sup["days_overdue"] = [
        max(0, (today - date.fromisoformat(d[:10])).days) if d else 0 for d in deadline
    ]
    sup["_due"] = deadline.replace("", "9999-12-31")
    sup = sup.sort_values(["days_overdue", "_due", "case_id"], ascending=[False, True, True])
    cols = [*OVERDUE_LABELS_ZH, "lon", "lat"]
    return sup[[c for c in cols if c in sup]].reset_index(drop=True)


def _overdue(cases: pd.DataFrame, today: date) -> pd.DataFrame:
    sup = supervised_cases(cases, today)
    late = sup[(sup["deadline"].fillna("") != "") & (sup["deadline"] < today.isoformat())]
    return late[list(OVERDUE_LABELS_ZH)].reset_index(drop=True)


def _relapses(ledgers: Sequence[DistrictLedger]) -> pd.DataFrame:
    """Cases found in cleared units since their clearance, over every district."""
    frames = []
    for d in ledgers:
        back = relapses(d.cases, d.cleared)
        if len(back):
            names = d.cases.drop_duplicates("case_id").set_index("case_id")
            back = back.assign(
                district_code=back["case_id"].map(names["district_code"]),
                district_name=back["case_id"].map(names["district_name"]),
            )
            frames.append(back)
    if not frames:
        return pd.DataFrame(columns=["case_id", "district_code", "district_name", "unit_code"])
    return pd.concat(frames, ignore_index=True)


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
    back = _relapses(ledgers)
    reports = []
    for kind, ledger, lo, hi in (("daily", "in_progress", day, day),
                                 ("monthly", "existing", start, end)):  # fmt: skip
        table = _with_city_row(build_table(cases, history, ledger, lo, hi, today))
        summary = summarise(table[table["level"] != "city"], ledger, kind, lo, hi)
        late = overdue[overdue["ledger"] == ledger]
        title, _, rest = summary.partition("\n")
        c = table[table["level"] == "city"].iloc[0]
        word = "本日" if kind == "daily" else "本月"
        by_src = "、".join(f"{SOURCE_LABELS_ZH[n]}{int(c[f'source_{n}'])}" for n in SOURCES
                           if int(c.get(f"source_{n}", 0) or 0))  # fmt: skip
        head = [title, f"全市：{len(ledgers)}个区县，共{int(c['total'])}宗（按发现渠道：{by_src or '无'}），"
                f"未办结{int(c['open'])}宗；{word}新增{int(c['new_in_period'])}宗，"
                f"{word}办结{int(c['closed_in_period'])}宗；督办中{int(c['supervised_open'])}宗，"
                f"逾期{len(late)}宗。"]  # fmt: skip
        head += [f"  逾期 {r.case_id}（{r.district_name or r.district_code}，{r.township_name}，"
                 f"期限{r.deadline}，逾期{r.days_overdue}天）" for r in late.itertuples()]  # fmt: skip
        if kind == "daily" and len(back):
            head.append(f"整治完毕单元新增线索（需立即核查）：{len(back)}宗")
            head += [f"  {r.district_name or r.district_code} {r.unit_name or r.unit_code}"
                     f"（{r.cleared_on}整治完毕）：{r.case_id}，{str(r.first_seen)[:10]}发现"
                     for r in back.itertuples()]  # fmt: skip
        reports.append(Report(kind, ledger, lo, hi, table, "\n".join([*head, rest])))
    return CityReports(
        reports[0],
        reports[1],
        overdue,
        tuple(d.label for d in ledgers),
        supervised_cases(cases, today),
    )


def write_city_reports(
    city: CityReports,
    out_dir: str | Path,
    stamp: str = "",
    ranking: pd.DataFrame | None = None,
    plan: pd.DataFrame | None = None,
) -> list[Path]:
    """``city_daily_<day>.xlsx``, ``city_monthly_<month>.xlsx`` (+ ``.txt``) and
    ``city_reports.gpkg`` (tables ``daily``, ``monthly``, ``overdue``) under *out_dir*; with a
    ``ranking`` (:func:`pipelines.city.targets.rank_districts`) also ``city_ranking.xlsx``, a
    ``ranking`` table and ``progress_<district>.png`` per district; the supervised list
    (``city_supervised.xlsx``, table ``supervised``, overdue first) and, with a ``plan``
    (:func:`pipelines.city.plan.plan_of`), ``city_five_year.xlsx`` and a ``five_year`` table."""
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
    sup = city.supervised
    tables.append(("supervised", sup))
    xlsx = out / "city_supervised.xlsx"
    with atomic_path(xlsx) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xl:
        shown = sup.drop(columns=[c for c in ("lon", "lat") if c in sup])
        neutralize_frame(shown.rename(columns=OVERDUE_LABELS_ZH)).to_excel(
            xl, sheet_name="挂牌督办", index=False
        )
    written.append(xlsx)
    if plan is not None:
        from pipelines.city.plan import PLAN_LABELS_ZH, PLAN_STATUS_ZH

        tables.append(("five_year", plan))
        xlsx = out / "city_five_year.xlsx"
        with atomic_path(xlsx) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xl:
            shown = plan.assign(status=plan["status"].map(PLAN_STATUS_ZH))
            neutralize_frame(shown.rename(columns=PLAN_LABELS_ZH)).to_excel(
                xl, sheet_name="五年整治", index=False
            )
        written.append(xlsx)
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
