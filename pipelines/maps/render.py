"""Everything the maps area produces, in one call: tables, hot spots, HTML maps, PNGs.

:func:`compute_priorities` is the pure part (cases + units layers -> ranked units, hot spots);
:func:`render_all` writes every output under one folder and returns their paths:

========================  ==============================================================
key                       file
========================  ==============================================================
``district_map``          ``map_district_<code>.html`` of the first district (the demo's)
``district_map:<code>``   ``map_district_<code>.html`` per district
``township_map:<code>``   ``map_township_<code>.html`` per township
``township_png:<code>``   ``map_township_<code>.png`` (skipped without a CJK font)
``trend_png``             ``trend_cases_by_state.png`` (skipped without a CJK font)
``district:<code>`` ...   ranked tables (see :func:`pipelines.maps.tables.write_tables`)
``hotspots``              ``hotspots.gpkg`` (layer ``hotspots``, the cases' CRS)
``units``                 ``priorities.gpkg`` (layer ``units``: ranked units with geometry)
``qgis_project``          ``maps.qgz``: QGIS project with every styled layer, relative paths
========================  ==============================================================

Every GeoPackage written here carries its QGIS styles (:mod:`pipelines.qgis`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geo.atomic import atomic_path
from geo.errors import ConfigError
from pipelines.config import MapsConfig
from pipelines.maps.folium_map import build_map, save_map
from pipelines.maps.hotspots import find_hotspots
from pipelines.maps.inputs import check_cases, planning_units
from pipelines.maps.overlay import read_flight_overlay
from pipelines.maps.priorities import aggregate_units, rank_units
from pipelines.maps.static import township_png, trend_png
from pipelines.maps.tables import write_tables
from pipelines.qgis import style_gpkg, write_project
from pipelines.safety import inside, safe_code

__all__ = ["Priorities", "compute_priorities", "render_all", "write_priorities"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Priorities:
    """Ranked units (rank_units output), validated cases and hot spots, all in one projected CRS."""

    units: gpd.GeoDataFrame
    cases: gpd.GeoDataFrame
    hotspots: gpd.GeoDataFrame


def compute_priorities(
    cases: gpd.GeoDataFrame,
    units: dict[str, gpd.GeoDataFrame],
    config: MapsConfig | None = None,
    as_of: str | dt.date | None = None,
    cleared: pd.DataFrame | None = None,
) -> Priorities:
    """Validate ``cases`` and the ``units`` layers, aggregate, score, rank and find hot spots.

    ``cleared`` (:func:`pipelines.cases.cleared.read_cleared`): units under watch get
    ``cleared_on``; those with a case found since (``relapsed``) are raised to high priority.
    """
    from pipelines.cases.cleared import relapses

    cfg = config or MapsConfig()
    plan_units = planning_units(units)
    valid = check_cases(cases).to_crs(plan_units.crs)
    agg = aggregate_units(valid, plan_units, as_of=as_of, window_days=cfg.growth_window_days)
    watch = cleared if cleared is not None else pd.DataFrame(columns=["unit_code", "cleared_on"])
    on = dict(zip(watch["unit_code"].astype(str), watch["cleared_on"].astype(str), strict=True))
    back = relapses(pd.DataFrame(valid.drop(columns="geometry")), watch)
    agg["cleared_on"] = [on.get(str(u), "") for u in agg["unit_code"]]
    agg["relapsed"] = [int((back["unit_code"] == u).sum()) for u in agg["unit_code"]]
    ranked = rank_units(agg, cfg.weights.model_dump(), cfg.priority_bins)
    if (ranked["relapsed"] > 0).any():  # a cleared unit that builds again goes to the top tier
        up = ranked["relapsed"] > 0
        ranked.loc[up, "priority_score"] = ranked.loc[up, "priority_score"].clip(
            lower=float(cfg.priority_bins[1])
        )
        ranked.loc[up, "priority"] = "high"
        ranked = ranked.sort_values(
            ["district_code", "priority_score", "open_cases", "unit_code"],
            ascending=[True, False, False, True],
            kind="mergesort",
        ).reset_index(drop=True)
        ranked["rank_district"] = ranked.groupby("district_code", sort=False).cumcount() + 1
        ranked["rank_township"] = ranked.groupby("township_code", sort=False).cumcount() + 1
    hot = find_hotspots(valid, cfg.hotspot_eps_m, cfg.hotspot_min_samples, cfg.hotspot_open_only)
    log.info("ranked %d units, %d cases, %d hot spots", len(ranked), len(valid), len(hot))
    return Priorities(units=ranked, cases=valid, hotspots=hot)


def _write_layer(frame: gpd.GeoDataFrame, path: Path, layer: str) -> Path:
    with atomic_path(path, mkdir=True) as tmp:
        frame.to_file(tmp, layer=layer, driver="GPKG")
        style_gpkg(tmp)
    return path


def write_priorities(prio: Priorities, out_dir: str | Path, zh: bool = False) -> dict[str, Path]:
    """Ranked tables (CSV/XLSX), ``priorities.gpkg`` and ``hotspots.gpkg`` under ``out_dir``."""
    out_dir = Path(out_dir)
    paths = write_tables(prio.units, out_dir, zh=zh)
    paths["units"] = _write_layer(prio.units, out_dir / "priorities.gpkg", "units")
    if len(prio.hotspots):
        paths["hotspots"] = _write_layer(prio.hotspots, out_dir / "hotspots.gpkg", "hotspots")
    return paths


def _title(kind: str, name: str, as_of: str) -> str:
    return f"{name} 违法建筑整治优先级（{kind}，截至 {as_of}）"


def render_all(
    out_dir: str | Path,
    cases: gpd.GeoDataFrame,
    units: dict[str, gpd.GeoDataFrame],
    flight: str | Path | None = None,
    offline: bool = True,
    config: MapsConfig | None = None,
    as_of: str | dt.date | None = None,
    zh: bool = True,
    township: str | None = None,
    areas: gpd.GeoDataFrame | None = None,
    sources: Sequence[str | Path] = (),
    cleared: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write every maps-area output under ``out_dir`` (see the module table); return their paths.

    ``units`` holds the ``units.gpkg`` layers (see :func:`pipelines.maps.inputs.load_units`),
    ``flight`` an optional orthophoto for the base layer. ``township`` limits the township maps
    and PNGs to one township code. ``areas`` (:func:`pipelines.run.read_area_layers`) puts the
    areas the flights could not compare on the maps, and says so in the legend. ``sources`` are
    more GeoPackages (the ledger, runs' leads.gpkg) whose styled layers join priorities and hot
    spots in the QGIS project ``maps.qgz`` written beside the maps (relative paths).
    """
    cfg = config or MapsConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prio = compute_priorities(cases, units, cfg, as_of, cleared=cleared)
    paths = write_priorities(prio, out_dir, zh=zh)
    overlay = read_flight_overlay(flight, cfg.overlay_max_px) if flight is not None else None
    ranked, valid, hot = prio.units, prio.cases, prio.hotspots
    stamp = str(ranked["as_of"].iloc[0]) if len(ranked) else ""
    for dcode, dunits in ranked.groupby("district_code", sort=True):
        dcases = valid.loc[
            valid["unit_code"].isin(dunits["unit_code"]) | (valid["district_code"] == dcode)
        ]
        dhot = (
            hot.loc[hot["district_code"].str.contains(str(dcode), regex=False)] if len(hot) else hot
        )
        name = str(dunits["district_name"].iloc[0] or dcode)
        fmap = build_map(
            dunits,
            dcases,
            dhot,
            overlay,
            _title("区县", name, stamp),
            offline,
            cfg.embed_chips,
            out_dir,
            areas=areas,
        )
        key = f"district_map:{dcode}"
        paths[key] = save_map(
            fmap, inside(out_dir, f"map_district_{safe_code(dcode)}.html"), offline
        )
        paths.setdefault("district_map", paths[key])
    known = sorted(ranked["township_code"].unique())
    if township is not None and township not in known:
        raise ConfigError(f"--township {township!r}: not a township of the units; known: {known}")
    towns = [township] if township else known
    for tcode in towns:
        tunits = ranked.loc[ranked["township_code"] == tcode]
        tcases = valid.loc[valid["unit_code"].isin(tunits["unit_code"])]
        thot = (
            hot.loc[hot["township_codes"].str.contains(str(tcode), regex=False)]
            if len(hot)
            else hot
        )
        name = str(tunits["township_name"].iloc[0] or tcode)
        fmap = build_map(
            tunits,
            tcases,
            thot,
            overlay,
            _title("乡镇（街道）", name, stamp),
            offline,
            cfg.embed_chips,
            out_dir,
            areas=areas,
        )
        paths[f"township_map:{tcode}"] = save_map(
            fmap, inside(out_dir, f"map_township_{safe_code(tcode)}.html"), offline
        )
        png = township_png(
            ranked, valid, tcode, inside(out_dir, f"map_township_{safe_code(tcode)}.png")
        )
        if png is not None:
            paths[f"township_png:{tcode}"] = png
    trend = trend_png(valid, out_dir / "trend_cases_by_state.png")
    if trend is not None:
        paths["trend_png"] = trend
    layers = [paths[k] for k in ("units", "hotspots") if k in paths]
    project = write_project(
        out_dir / "maps.qgz", [*layers, *sources], title=f"buildwatch {stamp}".strip()
    )
    if project is not None:
        paths["qgis_project"] = project
    return paths
