"""``buildwatch synth-district`` and ``buildwatch synth-nights``: make synthetic test districts."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command", "nights_command"]

_SIZE = click.option(
    "--size-m",
    type=float,
    default=1000.0,
    show_default=True,
    help="Side of the square district in metres.",
)
_GSD = click.option(
    "--gsd",
    type=float,
    default=0.1,
    show_default=True,
    help="Flight ground sampling distance in metres per pixel.",
)
_SEED = click.option(
    "--seed", type=int, required=True, help="Random seed: same seed, same district."
)
_OVER = click.option("--overwrite", is_flag=True, help="Replace OUT if it exists and is not empty.")


@click.command("synth-district")
@click.argument("out", type=click.Path(path_type=Path))
@_SEED
@_SIZE
@_GSD
@_OVER
@click.option("--no-changes", is_flag=True,
              help="Same scene on both dates: only nuisance differences (no new structures).")  # fmt: skip
@click.option("--days-before", type=int, default=None,
              help="Days from baseline to flight [default: drawn from the seed, 90-300]; "
                   "e.g. 30 keeps the season.")  # fmt: skip
def command(
    out: Path,
    seed: int,
    size_m: float,
    gsd: float,
    overwrite: bool,
    no_changes: bool,
    days_before: int | None,
) -> None:
    """Make a synthetic district in OUT: flight, baseline, units, truth, preview.

    \b
    OUT/flight.tif     drone orthophoto, EPSG:4544 (CGCS2000 GK CM 105E), RGBA COG
    OUT/baseline.tif   months earlier, EPSG:3857 ~0.3 m, known misregistration
    OUT/units.gpkg     districts, townships, villages, compounds, permits
    OUT/truth.gpkg     true changes (layer "changes"), kind / class / expected
    OUT/district.json  seed, CRS, misregistration, sun, dates, counts, timing
    OUT/preview.png    before | after with the true changes outlined

    With --no-changes the two dates show the same scene (other illumination, season, sun and
    shadows, moved cars, vegetation, misregistration) and truth.gpkg has no lead rows.
    """
    from geo.synthetic.district import check_args, generate_district

    check_args(seed, size_m, gsd, days_before)
    paths = generate_district(
        out, seed, size_m, gsd, overwrite=overwrite, changes=not no_changes, days_before=days_before
    )
    import json

    meta = json.loads(paths.meta.read_text(encoding="utf-8"))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(meta["counts"].items()))
    kind = "no-change district" if no_changes else "district"
    click.echo(
        f"wrote synthetic {kind} {meta['district_code']} ({meta['size_m']:g} m at {gsd:g} m/px, "
        f"seed {seed}) to {paths.root} in {meta['generation_s']:.1f} s"
    )
    click.echo(f"changes: {counts}")
    click.echo(f"look at {paths.preview}")


@click.command("synth-nights")
@click.argument("out", type=click.Path(path_type=Path))
@_SEED
@click.option("--nights", type=int, default=3, show_default=True, help="Number of nightly flights.")
@_SIZE
@_GSD
@_OVER
def nights_command(
    out: Path, seed: int, nights: int, size_m: float, gsd: float, overwrite: bool
) -> None:
    """Make N nightly flights over one synthetic district in OUT.

    \b
    OUT/baseline.tif, OUT/units.gpkg, OUT/district.json    shared by every night
    OUT/night_NN/flight.tif, flight.json, truth.gpkg       one folder per night
    Structures appear, construction sites are completed, some are removed.
    """
    from geo.errors import ConfigError
    from geo.synthetic.district import check_args, generate_nights

    check_args(seed, size_m, gsd)
    if not 1 <= nights <= 30:
        raise ConfigError(f"--nights {nights}: must be between 1 and 30")
    paths = generate_nights(out, seed, nights, size_m, gsd, overwrite=overwrite)
    click.echo(f"wrote {nights} nights over one synthetic district to {paths.root}")
    for f in paths.flights:
        click.echo(f"  {f}")
