"""One city report run: every district ledger read, every input checked, then everything written.

:func:`run_city_report` is what ``buildwatch city report`` and the city demo call: the daily and
monthly reports, the supervised list, the five-year view per compound and village, the ranking
against the year's targets (with a chart per district) and the city map (HTML and PNG).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from geo.errors import ConfigError
from pipelines.city.plan import PLAN_STATUS_ZH, plan_of
from pipelines.city.rollup import CityReports, city_reports, open_district_ledgers
from pipelines.city.rollup import write_city_reports as _write

__all__ = ["CityRun", "run_city_report", "parse_plan_years", "headline"]


@dataclass(frozen=True)
class CityRun:
    """What one city report run made."""

    city: CityReports
    ranking: pd.DataFrame | None
    plan: pd.DataFrame
    plan_years: tuple[int, int]
    paths: tuple[Path, ...]
    map_html: Path | None
    map_png: Path | None


def parse_plan_years(text: str | None, report_year: int) -> tuple[int, int]:
    """``YYYY-YYYY`` → (first, last); None → the five years ending with *report_year*.

    >>> parse_plan_years("2024-2028", 2026), parse_plan_years(None, 2026)
    ((2024, 2028), (2022, 2026))
    """
    if not text:
        return report_year - 4, report_year
    parts = text.split("-")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 4 for p in parts):
        raise ConfigError(f"--plan {text!r}: write the plan's years as YYYY-YYYY, e.g. 2024-2028")
    first, last = int(parts[0]), int(parts[1])
    if first > last:
        raise ConfigError(f"--plan {text!r}: the first year comes after the last")
    return first, last


def run_city_report(
    ledgers: Sequence[str | Path],
    out_dir: str | Path,
    *,
    day: date | None = None,
    month: str | None = None,
    targets: str | Path | None = None,
    year: int | None = None,
    plan_years: str | None = None,
    units: str | Path | None = None,
    today: date | None = None,
) -> CityRun:
    """Read, check, then write (see the module docstring); nothing is written on a bad input."""
    today = today or date.today()
    districts = open_district_ledgers(list(ledgers))
    city = city_reports(districts, day=day, month=month, today=today)
    first, last = parse_plan_years(plan_years, city.daily.end.year)
    plan = plan_of(districts, first, last)
    ranked = None
    if targets is not None:
        from pipelines.city.targets import progress_ytd, rank_districts, read_targets

        codes = {str(c) for d in districts for c in d.cases["district_code"]}
        table = read_targets(targets, codes)
        the_year = year or city.daily.end.year
        table = table[table["year"] == the_year]
        if table.empty:
            raise ConfigError(f"{targets}: no target for {the_year}; add its rows or pass --year")
        ranked = rank_districts(
            table, progress_ytd(districts, the_year, min(city.daily.end, today))
        )
    fmap = boundaries = title = None
    if units is not None:  # the map is built before anything is written: a bad layer stops here
        from pipelines.city.citymap import build_city_map, read_districts

        boundaries = read_districts(units)
        the_year = int(ranked["year"].iloc[0]) if ranked is not None else city.daily.end.year
        title = f"全市违法建筑整治 {the_year}年目标完成情况（{city.daily.end}）"
        fmap = build_city_map(boundaries, ranked, city.supervised, title=title)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _write(city, out, ranking=ranked, plan=plan)
    html = png = None
    if fmap is not None and boundaries is not None and title is not None:
        from pipelines.city.citymap import city_png
        from pipelines.maps.folium_map import save_map

        html = save_map(fmap, out / "city_map.html")
        png = city_png(boundaries, ranked, city.supervised, out / "city_map.png", title=title)
        paths += [p for p in (html, png) if p is not None]
    return CityRun(city, ranked, plan, (first, last), tuple(paths), html, png)


def headline(run: CityRun) -> str:
    """The lines ``buildwatch city report`` prints: both summaries, ranking, plan, supervised."""
    lines = [run.city.daily.summary.rstrip("\n"), run.city.monthly.summary.rstrip("\n")]
    if run.ranking is not None:
        for r in run.ranking.itertuples():
            extra = (
                f"，整治完毕单元 {r.units_cleared_ytd}/{r.units_to_clear:g}"
                if r.units_to_clear > 0
                else ""
            )
            lines.append(
                f"第{r.rank}名 {r.district_name or r.district_code}：完成率 {r.progress:.0%}"
                f"（办结 {r.closed_ytd}/{r.cases_to_close:g}，拆除 {r.area_removed_ytd_m2:g}/"
                f"{r.area_to_remove_m2:g} ㎡{extra}）"
            )
    counts = run.plan["status"].value_counts()
    first, last = run.plan_years
    lines.append(
        f"五年整治（{first}–{last}）："
        + "，".join(f"{PLAN_STATUS_ZH[k]}{int(counts.get(k, 0))}个" for k in PLAN_STATUS_ZH)
        + "（小区/村）"
    )
    lines.append(f"挂牌督办：{len(run.city.supervised)}宗（逾期{len(run.city.overdue)}宗）")
    return "\n".join(lines) + "\n"
