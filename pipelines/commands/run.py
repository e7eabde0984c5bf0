"""``buildwatch run``: the whole job for one flight into an output folder."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

__all__ = ["command"]


@click.command("run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="YAML config; see pipelines/configs/default.yaml.",
)
@click.option(
    "--flight", required=True, type=click.Path(path_type=Path), help="Flight (after) orthophoto."
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="Baseline (before) raster (default: 'baseline' in the config).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default: output.dir in the config).",
)
@click.option(
    "--flight-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date of the flight (YYYY-MM-DD): checks permit validity, recorded on leads.",
)
def command(
    config_path: Path,
    flight: Path,
    baseline: Path | None,
    out_dir: Path | None,
    flight_date: datetime | None,
) -> None:
    """Detect, merge, filter, join, export and summarise one flight.

    \b
    Writes into the output folder:
      leads.gpkg        layers leads, summary_units, summary_townships
      leads.csv         the leads table (UTF-8, English headers)
      leads.xlsx        leads + summaries (Chinese headers with output.chinese_headers: true)
      evidence/         <lead_id>_before.png / _after.png chips
      run_summary.json  counts, thresholds, model, coverage, co-registration
      run_summary.txt   the same for people

    \b
    Example:
      buildwatch run --config pipelines/configs/default.yaml --flight F.tif --baseline B.tif
    """
    from pipelines.config import load_config
    from pipelines.run import run_flight

    config = load_config(config_path)
    day: date | None = flight_date.date() if flight_date else None
    outputs = run_flight(flight, config=config, baseline=baseline, out_dir=out_dir, flight_date=day)
    click.echo(outputs.summary_txt.read_text(encoding="utf-8"), nl=False)
