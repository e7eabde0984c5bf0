"""``buildwatch report daily|monthly``: the ledgers' reports per township and district."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.commands.cases import config_option, ledger_option, open_store

__all__ = ["group"]

_out = click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Report file (.csv or .xlsx); the text summary goes beside it as .txt.",
)


@click.group("report")
def group() -> None:
    """Reports for the reporting chain: daily (在建, in-progress) and monthly (存量, existing)."""


@group.command("daily")
@ledger_option
@config_option
@_out
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="Day (default today).")
@click.option(
    "--run",
    "runs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A run's leads.gpkg (repeatable): show the area each flight compared, could not "
    "compare (not comparable, unknown) and its co-registration.",
)
def daily_command(
    ledger: str | None,
    config_path: Path | None,
    out_path: Path,
    day: str | None,
    runs: tuple[Path, ...],
) -> None:
    """Daily report of the in-progress ledger (在建违法建筑台账日报)."""
    from datetime import date

    from geo.errors import ConfigError
    from pipelines.cases.reports import daily_report, write_report

    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        raise ConfigError(f"--date {day!r} is not YYYY-MM-DD") from None
    store, _ = open_store(ledger, config_path)
    report = daily_report(store, when)
    if runs:
        from pipelines.run import area_table, read_area_layers

        report = report.with_coverage(area_table(read_area_layers(list(runs))))
    for path in write_report(report, out_path):
        click.echo(f"wrote {path}")
    click.echo(report.summary, nl=False)


@group.command("monthly")
@ledger_option
@config_option
@_out
@click.option("--month", default=None, metavar="YYYY-MM", help="Month (default this month).")
def monthly_command(
    ledger: str | None, config_path: Path | None, out_path: Path, month: str | None
) -> None:
    """Monthly report of the existing ledger (存量违法建筑台账月报)."""
    from pipelines.cases.reports import monthly_report, write_report

    store, _ = open_store(ledger, config_path)
    report = monthly_report(store, month)
    for path in write_report(report, out_path):
        click.echo(f"wrote {path}")
    click.echo(report.summary, nl=False)
