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
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for city_daily_*.xlsx, city_monthly_*.xlsx and city_reports.gpkg.",
)
def report_command(
    ledgers: tuple[str, ...], day: datetime | None, month: str | None, out_dir: Path
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
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_city_reports(city, out_dir)
    if quiet():
        return
    click.echo(city.daily.summary, nl=False)
    click.echo(city.monthly.summary, nl=False)
    for p in paths:
        click.echo(f"wrote {p}")
