"""``buildwatch detect``: flight + baseline → a GeoPackage layer ``leads``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["command"]


def _overrides(weights: Path | None, device: str | None, units: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if weights is not None:
        out["detector"] = {"weights": str(weights.resolve())}
    if device is not None:
        out.setdefault("detector", {})["device"] = device
    if units is not None:
        out["units"] = {"path": str(units.resolve())}
    return out


@click.command("detect")
@click.option(
    "--baseline",
    "baseline",
    required=True,
    type=click.Path(path_type=Path),
    help="Baseline (before) raster, any CRS.",
)
@click.option(
    "--flight",
    "flight",
    required=True,
    type=click.Path(path_type=Path),
    help="Flight (after) orthophoto, any CRS.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output GeoPackage; layer 'leads' in the flight's projected CRS.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Detector weights (default: the shipped weights).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="Where to run the detector (default auto).",
)
@click.option(
    "--units",
    type=click.Path(path_type=Path),
    default=None,
    help="units.gpkg: join leads to compound/village, township, district.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML config (thresholds, tiling...); see pipelines/configs/default.yaml.",
)
def command(
    baseline: Path,
    flight: Path,
    out: Path,
    weights: Path | None,
    device: str | None,
    units: Path | None,
    config_path: Path | None,
) -> None:
    """Find new structures in FLIGHT that are not in BASELINE; write them to OUT.gpkg.

    \b
    Columns: lead_id, score, class (new_building | construction), area_m2, lon/lat (EPSG:4490
    centroid), status (lead | permitted), unit and township joins when --units is given, and
    provenance (flight, baseline, coreg_status, model hash, thresholds, software version).
    Beside `leads`: layers coverage (compared), not_comparable (misregistered) and unknown
    (no baseline). Exit 4 when nothing could be compared.

    \b
    Example:
      buildwatch detect --baseline before.tif --flight after.tif --out leads.gpkg
    """
    import time

    from geo.atomic import check_writable
    from pipelines.config import load_config
    from pipelines.detect import detect_leads, load_detector
    from pipelines.progress import Progress, peak_rss_mb, process_age_s, quiet, speed_line
    from pipelines.run import area_layers, coverage_line, write_leads_gpkg

    config = load_config(config_path, _overrides(weights, device, units))
    check_writable(out.parent if str(out.parent) else Path("."), "--out folder")
    started = time.time() - process_age_s()
    detector = load_detector(config)
    progress = Progress("tiles")
    try:
        result = detect_leads(flight, baseline, predict=detector, config=config, progress=progress)
    finally:
        progress.close()
    write_leads_gpkg(out, {"leads": result.leads, **area_layers(result)})
    if quiet():
        return
    leads = result.leads
    n_lead = int((leads["status"] == "lead").sum())
    reg = result.registration
    click.echo(
        f"{out}: {n_lead} leads, {len(leads) - n_lead} permitted "
        f"({result.n_tiles} tiles, {result.n_candidates} candidates, "
        f"{result.dropped.unknown_coverage} in unknown coverage) in {result.elapsed_s:.1f} s"
    )
    click.echo(coverage_line(result.coverage_m2))
    click.echo(
        f"co-registration: {reg.get('status')} ({reg.get('decision')}): {reg.get('message')}"
    )
    if result.native_gsd_m:
        g = result.native_gsd_m
        seen = (
            f" (flight compared at {result.flight_seen_at_m:.2f} m)"
            if result.flight_seen_at_m is not None
            else ""
        )
        detail = (
            f" (its detail: {result.baseline_detail_gsd_m:.2f} m)"
            if result.baseline_detail_gsd_m is not None
            else ""
        )
        click.echo(
            f"native GSD: flight {g['flight']:.2f} m, baseline {g['baseline']:.2f} m{detail}{seen}"
        )
    for note in result.notes:
        click.echo(f"note: {note}")
    compared = float(result.coverage_m2.get("compared", result.coverage_m2.get("common", 0.0)))
    first = progress.first_at - started if progress.first_at is not None else None
    click.echo(speed_line(compared, time.time() - started, result.n_tiles, first, peak_rss_mb()))
