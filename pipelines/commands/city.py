"""``buildwatch city``: the city command office's view of every district ledger."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

__all__ = ["group"]


@click.group("city")
def group() -> None:
    """The city level (市指挥办): district ledgers gathered read-only into the city's reports."""


@group.command("report")
@click.option(
    "--ledger",
    "ledgers",
    multiple=True,
    required=True,
    metavar="PATH|URL",
    help="A district's ledger (GeoPackage or postgresql://...); once per district.",
)
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Daily report day.")
@click.option("--month", default=None, metavar="YYYY-MM", help="Monthly report month.")
@click.option(
    "--targets",
    "targets_path",
    default=None,
    type=click.Path(path_type=Path),
    help="Annual targets (.csv/.xlsx: district_code, year, cases_to_close, area_to_remove_m2).",
)
@click.option("--year", type=int, default=None, help="Target year (default: the report day's).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for city_daily_*.xlsx, city_monthly_*.xlsx and city_reports.gpkg.",
)
def report_command(
    ledgers: tuple[str, ...],
    day: datetime | None,
    month: str | None,
    targets_path: Path | None,
    year: int | None,
    out_dir: Path,
) -> None:
    """The city's daily (在建) and monthly (存量) reports over every district ledger.

    \b
    Per district and township: counts by state, new and closed in the period, supervised and
    overdue, and a city row; supervised cases past their deadline come first in each summary.
    Every ledger is read (read-only) before anything is written.
    """
    from geo.atomic import check_writable
    from pipelines.city.rollup import city_reports, open_district_ledgers, write_city_reports
    from pipelines.progress import quiet

    check_writable(out_dir if out_dir.is_dir() else out_dir.parent, "--out folder")
    districts = open_district_ledgers(list(ledgers))  # every ledger read before anything is made
    city = city_reports(districts, day=day.date() if day else None, month=month)
    ranked = None
    if targets_path is not None:
        from datetime import date

        from pipelines.city.targets import progress_ytd, rank_districts, read_targets

        codes = {str(c) for d in districts for c in d.cases["district_code"]}
        targets = read_targets(targets_path, codes)
        when = city.daily.end
        the_year = year or when.year
        targets = targets[targets["year"] == the_year]
        ranked = rank_districts(targets, progress_ytd(districts, the_year, min(when, date.today())))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_city_reports(city, out_dir, ranking=ranked)
    if quiet():
        return
    click.echo(city.daily.summary, nl=False)
    click.echo(city.monthly.summary, nl=False)
    if ranked is not None:
        for r in ranked.itertuples():
            click.echo(
                f"第{r.rank}名 {r.district_name or r.district_code}：完成率 {r.progress:.0%}"
                f"（办结 {r.closed_ytd}/{r.cases_to_close:g}，拆除 {r.area_removed_ytd_m2:g}/"
                f"{r.area_to_remove_m2:g} ㎡）"
            )
    for p in paths:
        click.echo(f"wrote {p}")


@group.command("supervise")
@click.argument("case_id")
@click.option("--ledger", required=True, metavar="PATH|URL", help="The district's ledger.")
@click.option("--deadline", default=None, metavar="YYYY-MM-DD", help="The deadline (整改期限).")
@click.option("--who", default="市指挥办", show_default=True, help="Who orders it.")
@click.option("--note", default="", help="Recorded in the case history.")
@click.option("--off", is_flag=True, help="Lift the supervision.")
def supervise_command(
    case_id: str, ledger: str, deadline: str | None, who: str, note: str, off: bool
) -> None:
    """Put a district's case under the city's supervision (挂牌督办) with a deadline.

    Written into the district's own ledger (one transaction, a history row), so the district's
    reports show it; overdue supervised cases come first in the city's reports.
    """
    from pipelines.cases.imports import supervise
    from pipelines.cases.store import LedgerStore
    from pipelines.progress import quiet

    store = LedgerStore(ledger)
    try:
        supervise(
            store, case_id, deadline=deadline, who=who, note=f"市级督办 {note}".strip(), off=off
        )
    finally:
        store.dispose()
    if not quiet():
        what = "lifted" if off else f"supervised by the city, deadline {deadline}"
        click.echo(f"{case_id}: {what} ({ledger})")
