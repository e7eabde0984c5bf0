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
    help="Annual targets (.csv/.xlsx: district_code, year, cases_to_close, area_to_remove_m2, "
    "units_to_clear).",
)
@click.option("--year", type=int, default=None, help="Target year (default: the report day's).")
@click.option(
    "--plan",
    "plan_years",
    default=None,
    metavar="YYYY-YYYY",
    help="The five-year plan's years (default: the five years ending with the report's).",
)
@click.option(
    "--units",
    "units_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="GeoPackage with the city's 'districts' layer: draws city_map.html and city_map.png.",
)
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
    plan_years: str | None,
    units_path: Path | None,
    out_dir: Path,
) -> None:
    """The city's daily (在建) and monthly (存量) reports over every district ledger.

    \b
    Per district and township: counts by state, new and closed in the period, supervised and
    overdue, and a city row; supervised cases past their deadline come first in each summary.
    Also the supervised list, the five-year view per compound and village, the ranking against
    --targets and, with --units, the city map. Every ledger is read (read-only) and every input
    checked before anything is written.
    """
    from geo.atomic import check_writable
    from pipelines.city.report import headline, run_city_report
    from pipelines.progress import quiet

    check_writable(out_dir if out_dir.is_dir() else out_dir.parent, "--out folder")
    run = run_city_report(
        list(ledgers),
        out_dir,
        day=day.date() if day else None,
        month=month,
        targets=targets_path,
        year=year,
        plan_years=plan_years,
        units=units_path,
    )
    if quiet():
        return
    click.echo(headline(run), nl=False)
    for p in run.paths:
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


@group.command("demo")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace OUT (and --db's demo schemas) if present.")
@click.option(
    "--db",
    default=None,
    metavar="URL",
    help="postgresql://... : keep each district's ledger in a schema bw_<code> of this PostGIS "
    "database instead of OUT/ledgers/<code>.gpkg.",
)
@click.option(
    "--size-m",
    type=click.FloatRange(200, 2000),
    default=400.0,
    show_default=True,
    help="Side of each synthetic district, metres.",
)
def demo_command(out: Path, overwrite: bool, db: str | None, size_m: float) -> None:
    """A small synthetic city (three districts) through every channel into the city's view.

    \b
    Per district: patrol and hotline reports imported, a village marked cleared, a drone
    flight detected and ingested (leads meet the reported cases; new structures in the cleared
    village raise alerts), townships close cases, the city supervises one. Then the city
    report: daily and monthly reports, ranking against targets, supervised list, five-year view
    and the city map. The last line printed is the city map.
    """
    from pipelines.city_demo import run_city_demo

    result = run_city_demo(out, size_m=size_m, overwrite=overwrite, progress=click.echo, db=db)
    click.echo(result.headline, nl=False)
    s = result.summary
    click.echo(f"duplicates (a true structure with two open cases): {s['duplicates']}")
    click.echo(f"summary: {result.summary_json}")
    click.echo(f"city reports: {result.out / 'city'}")
    click.echo(f"city map (opens offline in a browser):\n{result.map_html}")
