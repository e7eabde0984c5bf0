"""``buildwatch inspect`` and ``buildwatch coreg``: look at rasters and at a pair's registration."""

from __future__ import annotations

import click

__all__ = ["command", "coreg_command"]


@click.command("inspect")
@click.argument("rasters", nargs=-1, required=True, type=click.Path(path_type=str))
def command(rasters: tuple[str, ...]) -> None:
    """Print CRS, GSD, bands, footprint and overviews of each RASTER, and whether detect would
    take it as a flight and as a baseline (the default input.max_flight_gsd_m /
    max_baseline_gsd_m)."""
    from geo.pairing import scan_epoch
    from geo.raster import raster_info
    from pipelines.config import InputConfig

    limits = InputConfig()

    for path in rasters:
        info = raster_info(path)
        scan = scan_epoch(path, "raster")
        fp = scan.footprint
        area = f"{fp.area:,.0f} m²" if scan.crs.is_projected else f"{fp.area:.6g} deg²"
        click.echo(f"{info.path}")
        click.echo(
            f"  driver     {info.driver}, {info.width} x {info.height} px, block {info.block_shape}"
        )
        click.echo(f"  crs        {info.crs}")
        click.echo(f"  gsd        {info.res[0]:.4g} x {info.res[1]:.4g} (CRS units/px)")
        click.echo(f"  ground     {scan.gsd_m:.3f} m/px native; " + "; ".join(
            f"as a {role}: " + _taken(scan.gsd_m, role, limit, limits.match_baseline_above_m)
            for role, limit in (("flight", limits.max_flight_gsd_m),
                                ("baseline", limits.max_baseline_gsd_m))))  # fmt: skip
        click.echo(
            f"  bands      {info.count} x {info.dtype}; RGB = {info.rgb_bands}, "
            f"alpha = {info.alpha_band}, nodata = {info.nodata}"
        )
        click.echo(f"  bounds     {tuple(round(v, 3) for v in info.bounds)}")
        click.echo(
            f"  footprint  {fp.geom_type}, {area}, "
            f"{100.0 * scan.valid.mean():.1f}% of the extent valid"
        )
        ovr = ", ".join(str(f) for f in info.overviews) or "none (reads decimate full resolution)"
        click.echo(f"  overviews  {ovr}")
        if info.dtype != "uint8":
            lo = ", ".join(f"{v:.0f}" for v in scan.stretch.lo)
            hi = ", ".join(f"{v:.0f}" for v in scan.stretch.hi)
            click.echo(f"  stretch    2-98% lo ({lo}) hi ({hi}) -> 0-255")


def _taken(gsd_m: float, role: str, limit: float | None, match_above: float | None) -> str:
    """Whether detect takes a raster of ``gsd_m`` as ``role``, as inspect says it."""
    if limit is not None and gsd_m > limit * (1 + 1e-6):
        return f"refused, coarser than input.max_{role}_gsd_m {limit:g} m"
    if role == "baseline" and match_above is not None and gsd_m > match_above * (1 + 1e-6):
        return f"accepted, a finer flight is compared at its {gsd_m:.2f} m"
    return "accepted"


@click.command("coreg")
@click.option("--baseline", "baseline", required=True, type=click.Path(path_type=str))
@click.option("--flight", "flight", required=True, type=click.Path(path_type=str))
@click.option("--gsd", type=float, default=0.2, show_default=True, help="Working GSD (m/px).")
@click.option(
    "--max-residual-px", type=float, default=1.0, show_default=True,
    help="Gate: median residual (px of the coarser native GSD); config coreg.max_residual_px.",
)  # fmt: skip
@click.option(
    "--max-window-residual-px", type=float, default=2.5, show_default=True,
    help="A sub-window above this residual (px) is not comparable; "
    "config coreg.max_window_residual_px.",
)  # fmt: skip
@click.option(
    "--local/--no-local", default=True, show_default=True,
    help="Correct misregistration that varies across the scene; config coreg.local.",
)  # fmt: skip
def coreg_command(
    baseline: str,
    flight: str,
    gsd: float,
    max_residual_px: float,
    max_window_residual_px: float,
    local: bool,
) -> None:
    """Estimate the baseline's misregistration against the flight and apply the gate.

    \b
    status verified    confident estimates agree; corrected where needed
    status unverified  too little evidence (a scene that changed a lot): used as georeferenced
    status failed      positive evidence of misregistration; nothing comparable (exit 4)
    """
    import sys

    from geo.tiles import open_pair

    with open_pair(
        flight,
        baseline,
        gsd,
        max_residual_px=max_residual_px,
        max_window_residual_px=max_window_residual_px,
        local=local,
    ) as pair:
        reg = pair.registration
        fp = pair.footprints
        click.echo(
            f"flight    {flight} ({pair.crs.to_string()}, {pair.width} x {pair.height} px @ {gsd} m)"
        )
        click.echo(f"baseline  {baseline}")
        click.echo(
            f"coverage  common {fp.common.area:,.0f} m², unknown (flight only) {fp.unknown.area:,.0f} m²"
        )
        if reg.gate is not None:
            click.echo(f"gate      {reg.gate.describe().removeprefix('gate ')}")
        click.echo(f"mode      {reg.mode}")
        click.echo(f"shift     dx {reg.dx_m:+.3f} m, dy {reg.dy_m:+.3f} m")
        if reg.affine is not None:
            a = reg.affine
            click.echo(f"affine    [{a.a:.6f} {a.b:.6f} {a.c:.3f}; {a.d:.6f} {a.e:.6f} {a.f:.3f}]")
        if reg.local is not None:
            click.echo(f"local     {reg.local.describe()}")
        elif local and reg.status == "verified":
            click.echo("local     none needed (residuals uniform after the global fit)")
        click.echo(
            f"residual  {reg.residual_ref_px:.3f} px ({reg.residual_m:.3f} m) "
            f"from {reg.n_estimates}/{reg.n_windows} sub-windows"
        )
        click.echo(f"confidence {reg.confidence:.2f}")
        compared = pair.usable.area
        click.echo(
            f"compared  {compared:,.0f} m²; not comparable {reg.not_comparable.area:,.0f} m²"
        )
        click.echo(f"status    {reg.status} ({reg.decision}): {reg.message}")
    if reg.status == "failed":
        sys.exit(4)
