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
    help="Date of the flight (YYYY-MM-DD): checks permit validity, recorded on leads "
    "(default: 'date' in the flight's sidecar <stem>.json/.yaml).",
)
@click.option(
    "--flight-id",
    default=None,
    help="Flight id used in lead ids (default: 'flight_id' in the sidecar, the FLIGHT_ID "
    "GeoTIFF tag, else the file name).",
)
@click.option(
    "--leads-only",
    is_flag=True,
    help="Stop after the leads: no ledger ingest, no maps.",
)
def command(
    config_path: Path,
    flight: Path,
    baseline: Path | None,
    out_dir: Path | None,
    flight_date: datetime | None,
    flight_id: str | None,
    leads_only: bool,
) -> None:
    """Detect, merge, filter, join, export and summarise one flight; then ingest its leads into
    the case ledger and draw the clearance maps.

    \b
    Writes into the output folder:
      leads.gpkg        layers leads, summary_units, summary_townships
      leads.csv         the leads table (UTF-8, English headers)
      leads.xlsx        leads + summaries (Chinese headers with output.chinese_headers: true)
      evidence/         <lead_id>_before.png / _after.png chips
      run_summary.json  counts, thresholds, model, coverage, co-registration
      run_summary.txt   the same for people
      ledger.gpkg       the case ledger, unless ledger.url in the config names another
                        (a GeoPackage path or postgresql://...; set it to keep cases across flights)
      maps/             priorities tables, hot spots, offline HTML maps, township PNGs
                        (needs units.path in the config)

    \b
    Example:
      buildwatch run --config pipelines/configs/default.yaml --flight F.tif --baseline B.tif
    """
    from pipelines.config import load_config
    from pipelines.progress import Progress, quiet
    from pipelines.run import run_flight

    config = load_config(config_path)
    day: date | None = flight_date.date() if flight_date else None
    progress = Progress("tiles")
    try:
        outputs = run_flight(
            flight,
            config=config,
            baseline=baseline,
            out_dir=out_dir,
            flight_date=day,
            flight_id=flight_id,
            progress=progress,
        )
    finally:
        progress.close()
    echo = (lambda *a, **k: None) if quiet() else click.echo
    echo(outputs.summary_txt.read_text(encoding="utf-8"), nl=False)
    if leads_only:
        maps = outputs.out_dir / "maps"
        if maps.is_dir():  # an earlier run's maps must not pass for this run's
            import shutil

            earlier = outputs.out_dir / "maps.earlier-run"
            shutil.rmtree(earlier, ignore_errors=True)
            maps.rename(earlier)
            echo(f"maps: not drawn (--leads-only); an earlier run's maps moved to {earlier}")
        return
    from pipelines.publish import publish_run

    pub = publish_run(
        outputs, config, flight=flight, flight_id=outputs.result.flight_id, flight_date=day
    )
    if pub.skipped:
        echo(f"ledger {pub.ledger}: flight {outputs.result.flight_id} already ingested")
    else:
        echo(
            f"ledger {pub.ledger}: {pub.new_cases} new cases, {pub.seen_again} seen again, "
            f"{pub.reopened} reopened, {pub.not_observed} not observed"
        )
    if "district_map" in pub.maps:
        echo(f"district map: {pub.maps['district_map']}")
