"""``buildwatch priorities`` and ``buildwatch map``: where concentrated clearance should go."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["priorities_command", "map_command"]

_ledger = click.option(
    "--ledger",
    required=True,
    metavar="LEDGER",
    help="Case ledger: GeoPackage path or postgresql:// URL (or a GPKG with a 'cases' layer).",
)
_units = click.option(
    "--units",
    "units_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="units.gpkg (layers compounds, villages, townships, districts).",
)
_out = click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created).",
)
_config = click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="buildwatch YAML config (section maps: weights, hot spots, offline).",
)
_as_of = click.option(
    "--as-of",
    default=None,
    metavar="YYYY-MM-DD",
    help="Reference day for 'growth since the previous month' (default: latest sighting).",
)


def _load(ledger: str, units_path: Path, config_path: Path | None):  # type: ignore[no-untyped-def]
    from pipelines.config import load_config
    from pipelines.maps.inputs import load_cases, load_units

    return load_cases(ledger), load_units(units_path), load_config(config_path).maps


@click.command("priorities")
@_ledger
@_units
@_out
@click.option("--zh", is_flag=True, help="Chinese column headers (中文表头).")
@_config
@_as_of
def priorities_command(
    ledger: str,
    units_path: Path,
    out_dir: Path,
    zh: bool,
    config_path: Path | None,
    as_of: str | None,
) -> None:
    """Rank compounds and villages for concentrated clearance (集中成片整治).

    Writes ranked tables per district and township (CSV, XLSX), priorities.gpkg and
    hotspots.gpkg, and prints the top units of each district.
    """
    from pipelines.maps.render import compute_priorities, write_priorities

    cases, units, cfg = _load(ledger, units_path, config_path)
    prio = compute_priorities(cases, units, cfg, as_of)
    paths = write_priorities(prio, out_dir, zh=zh)
    for dcode, part in prio.units.groupby("district_code", sort=True):
        click.echo(
            f"district {dcode} ({part['district_name'].iloc[0]}), as of {part['as_of'].iloc[0]}:"
        )
        for u in part.head(5).itertuples():
            click.echo(
                f"  {u.rank_district:>2}. {u.unit_code} {u.unit_name}  score {u.priority_score:5.1f}  "
                f"open {u.open_cases}  per ha {u.density_per_ha:.2f}  new {u.new_recent}"
            )
    click.echo(f"hot spots: {len(prio.hotspots)}")
    for key, path in paths.items():
        click.echo(f"{key}: {path}")


@click.command("map")
@_ledger
@_units
@click.option(
    "--flight",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Flight orthophoto for the base layer (decimated overlay).",
)
@_out
@click.option(
    "--offline/--online",
    default=None,
    help="Offline: Leaflet inlined, no tiles or CDN (default: maps.offline, true).",
)
@click.option("--township", default=None, metavar="CODE", help="Only this township's map and PNG.")
@click.option(
    "--run",
    "runs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A run's leads.gpkg (repeatable): show the area each flight compared, could not "
    "compare (not comparable, unknown) and its co-registration.",
)
@_config
@_as_of
def map_command(
    ledger: str,
    units_path: Path,
    flight: Path | None,
    out_dir: Path,
    offline: bool | None,
    township: str | None,
    runs: tuple[Path, ...],
    config_path: Path | None,
    as_of: str | None,
) -> None:
    """Interactive maps per district and township, township PNGs and a trend chart.

    Prints every path written; the district map is printed last.
    """
    from pipelines.maps.render import render_all

    cases, units, cfg = _load(ledger, units_path, config_path)
    use_offline = cfg.offline if offline is None else offline
    from pipelines.run import read_area_layers

    areas = read_area_layers(list(runs)) if runs else None
    paths = render_all(
        out_dir, cases, units, flight, use_offline, cfg, as_of, zh=True, township=township,
        areas=areas, sources=[*([Path(ledger)] if "://" not in str(ledger) else []), *runs],
        cleared=_cleared_of(ledger),
    )  # fmt: skip
    for key, path in paths.items():
        if key != "district_map":
            click.echo(f"{key}: {path}")
    click.echo(f"district map: {paths['district_map']}")


def _cleared_of(ledger: str):  # type: ignore[no-untyped-def]
    """Units under watch in a buildwatch ledger (none for a plain cases GeoPackage)."""
    from pipelines.cases.store import LedgerStore
    from pipelines.publish import _cleared

    store = LedgerStore(ledger)
    try:
        exists = store.exists()
    finally:
        store.dispose()
    return _cleared(str(ledger)) if exists else None
