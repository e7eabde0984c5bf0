"""The whole job for one flight: leads, evidence, exports and a run summary, into one folder.

Outputs (see data/README.md): ``leads.gpkg`` (layers ``leads``, ``summary_units``,
``summary_townships``), ``leads.csv``, ``leads.xlsx``, ``evidence/``, ``run_summary.json`` and
``run_summary.txt``. Everything is written to a staging folder first and moved into place at
the end, so a failed run never leaves half-written outputs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from geo.atomic import atomic_path, check_writable
from geo.errors import ConfigError
from models.candidates import Candidates
from models.classes import CLASS_LABELS_ZH
from pipelines.config import BuildwatchConfig
from pipelines.detect import LeadsResult, Predict, detect_leads, load_detector
from pipelines.leads.summary import summarize_townships, summarize_units
from pipelines.safety import neutralize_frame, sheet_title
from pipelines.schema import LEAD_COLUMNS, LEAD_COLUMNS_ZH

__all__ = [
    "RunOutputs",
    "run_flight",
    "write_leads_gpkg",
    "area_layer",
    "area_layers",
    "AREA_LAYERS",
    "read_coverage",
    "summary_dict",
    "summary_text",
]

log = logging.getLogger(__name__)

STATUS_ZH = {"lead": "线索", "permitted": "已批准"}
UNIT_TYPE_ZH = {
    "compound": "居住小区",
    "village": "村",
    "community": "社区",
    "unassigned": "未归属",
}


@dataclass(frozen=True)
class RunOutputs:
    """Paths written by :func:`run_flight`, and the detection result behind them."""

    out_dir: Path
    gpkg: Path
    csv: Path
    xlsx: Path
    evidence_dir: Path | None
    summary_json: Path
    summary_txt: Path
    result: LeadsResult


def write_leads_gpkg(path: Path, layers: dict[str, gpd.GeoDataFrame]) -> None:
    """Write GeoPackage layers to ``path`` atomically (a temp file beside it, then os.replace),
    with their QGIS styles (:mod:`pipelines.qgis`)."""
    from pipelines.qgis import style_gpkg

    with atomic_path(path, mkdir=True) as tmp:
        for name, gdf in layers.items():
            gdf.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")
        style_gpkg(tmp)  # QGIS opens every layer styled (layer_styles: QML + SLD)


#: the area layers written beside ``leads`` in leads.gpkg, and what each holds
AREA_LAYERS: dict[str, str] = {
    "coverage": "compared: both epochs have data and are co-registered",
    "not_comparable": "both epochs have data but are misregistered beyond the gate: not looked at",
    "unknown": "only the flight has data: no baseline to compare with, not looked at",
}


def area_layer(result: LeadsResult, kind: str = "coverage") -> gpd.GeoDataFrame:
    """One of the run's :data:`AREA_LAYERS` as a one-row polygon layer of leads.gpkg.

    Columns ``flight_id``, ``baseline_id``, ``coreg_status``, ``area_m2`` and a (multi)polygon in
    the flight's CRS (empty when there is no such area). The ledger marks open cases inside
    ``coverage`` that no lead sighted ``not_observed``; the maps draw the other two as areas
    the product could not look at.
    """
    if kind not in AREA_LAYERS:
        raise ValueError(f"kind must be one of {sorted(AREA_LAYERS)}, got {kind!r}")
    geom = {
        "coverage": result.coverage,
        "not_comparable": result.not_comparable,
        "unknown": result.unknown,
    }[kind]
    if geom is None:
        geom = shapely.MultiPolygon()
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    multi = shapely.MultiPolygon(polys)
    return gpd.GeoDataFrame(
        {
            "flight_id": [result.flight_id],
            "baseline_id": [result.baseline_id],
            "coreg_status": [str(result.registration.get("status", ""))],
            "area_m2": [round(float(multi.area), 1)],
        },
        geometry=[multi],
        crs=result.crs,
    )


def area_layers(result: LeadsResult) -> dict[str, gpd.GeoDataFrame]:
    """Every one of :data:`AREA_LAYERS` for ``result``, by layer name."""
    return {kind: area_layer(result, kind) for kind in AREA_LAYERS}


def read_coverage(path: str | Path) -> gpd.GeoDataFrame | None:
    """The ``coverage`` layer of a run's leads.gpkg, or None for older runs without one."""
    import pyogrio

    if "coverage" not in [str(n) for n, _ in pyogrio.list_layers(path)]:
        return None
    frame = gpd.read_file(path, layer="coverage")
    frame = frame[frame.geometry.notna()]
    return frame


def read_area_layers(paths: list[Path] | list[str]) -> gpd.GeoDataFrame:
    """The :data:`AREA_LAYERS` of runs' leads.gpkg files as one frame in EPSG:4326.

    Columns ``flight_id``, ``baseline_id``, ``coreg_status``, ``kind`` (a layer name) and
    ``area_m2``; files without these layers (older runs) contribute nothing. Maps draw the
    ``not_comparable`` and ``unknown`` rows; reports list km² per flight.
    """
    import pyogrio

    frames = []
    for path in paths:
        names = {str(n) for n, _ in pyogrio.list_layers(path)}
        for kind in AREA_LAYERS:
            if kind not in names:
                continue
            frame = gpd.read_file(path, layer=kind)
            if frame.crs is not None:
                frame = frame.to_crs("EPSG:4326")
            frames.append(frame.assign(kind=kind))
    columns = ["flight_id", "baseline_id", "coreg_status", "kind", "area_m2"]
    if not frames:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs="EPSG:4326")
    out = pd.concat(frames, ignore_index=True)
    if "coreg_status" not in out.columns:
        out["coreg_status"] = ""
    return gpd.GeoDataFrame(out[[*columns, "geometry"]], geometry="geometry", crs="EPSG:4326")


def area_table(areas: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per flight: km² compared / not comparable / unknown and the co-registration status."""
    rows = []
    for fid, group in areas.groupby("flight_id", sort=True):
        km2 = {k: float(group.loc[group["kind"] == k, "area_m2"].sum()) / 1e6 for k in AREA_LAYERS}
        rows.append(
            {
                "flight_id": fid,
                "coreg_status": str(group["coreg_status"].iloc[0]),
                "compared_km2": round(km2["coverage"], 6),
                "not_comparable_km2": round(km2["not_comparable"], 6),
                "unknown_km2": round(km2["unknown"], 6),
            }
        )
    columns = ["flight_id", "coreg_status", "compared_km2", "not_comparable_km2", "unknown_km2"]
    return pd.DataFrame(rows, columns=columns)


def _table(leads: gpd.GeoDataFrame, chinese: bool) -> pd.DataFrame:
    table = pd.DataFrame(leads.drop(columns=leads.geometry.name))
    if chinese:
        table["class"] = table["class"].map(lambda c: CLASS_LABELS_ZH.get(c, c))
        table["status"] = table["status"].map(lambda s: STATUS_ZH.get(s, s))
        table["unit_type"] = table["unit_type"].map(lambda u: UNIT_TYPE_ZH.get(u, u))
        table = table.rename(columns=LEAD_COLUMNS_ZH)
    return table


def _write_xlsx(path: Path, sheets: dict[str, pd.DataFrame]) -> None:
    with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        for name, frame in sheets.items():
            neutralize_frame(frame).to_excel(xw, sheet_name=sheet_title(name), index=False)


def summary_dict(result: LeadsResult, outputs: dict[str, str]) -> dict[str, Any]:
    """The machine-readable run summary."""
    leads = result.leads
    is_lead = leads["status"] == "lead"
    by_township = (
        leads[is_lead]
        .groupby(["township_code", "township_name"])
        .size()
        .reset_index(name="n_leads")
    )
    return {
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "flight_id": result.flight_id,
        "baseline_id": result.baseline_id,
        "crs": str(result.crs),
        "software_version": str(leads["software_version"].iloc[0]) if len(leads) else None,
        "model": result.model.__dict__,
        "gsd_m": result.gsd_m,
        "native_gsd_m": result.native_gsd_m,
        "flight_seen_at_m": result.flight_seen_at_m,
        "baseline_detail_gsd_m": result.baseline_detail_gsd_m,
        "notes": result.notes,
        "tile_px": result.tile_px,
        "overlap_px": result.overlap_px,
        "thresholds": result.thresholds,
        "counts": {
            "tiles": result.n_tiles,
            "candidates": result.n_candidates,
            "merged_away": result.n_merged_away,
            "leads": int(is_lead.sum()),
            "leads_new_building": int((is_lead & (leads["class"] == "new_building")).sum()),
            "leads_construction": int((is_lead & (leads["class"] == "construction")).sum()),
            "permitted": int((leads["status"] == "permitted").sum()),
            "known_building": int(leads["known_building"].sum()) if len(leads) else 0,
            "unassigned": int((is_lead & (leads["unit_type"] == "unassigned")).sum()),
            "dropped": result.dropped.as_dict(),
        },
        "leads_by_township": by_township.to_dict("records"),
        "coverage_m2": result.coverage_m2,
        "registration": result.registration,
        "repairs": result.repairs,
        "elapsed_s": result.elapsed_s,
        "speed": _speed(result),
        "outputs": outputs,
    }


def _speed(result: LeadsResult) -> dict[str, float]:
    """km² compared per hour and tiles per second of the detection, and the peak RSS so far."""
    from pipelines.progress import peak_rss_mb

    compared = float(result.coverage_m2.get("compared", result.coverage_m2.get("common", 0.0)))
    seconds = max(float(result.elapsed_s), 1e-9)
    return {
        "km2": round(compared / 1e6, 4),
        "km2_per_hour": round(compared / 1e6 / seconds * 3600, 1),
        "tiles_per_s": round(result.n_tiles / seconds, 2),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def coverage_line(cov: dict[str, float]) -> str:
    """km² compared / not comparable / unknown, and the share of the flight compared."""
    flight = float(cov.get("flight", 0.0)) or 1.0
    compared = float(cov.get("compared", cov.get("common", 0.0)))
    return (
        f"area km²: compared 已比对 {compared / 1e6:.4f} ({compared / flight:.0%} of the flight), "
        f"not comparable 无法比对 {float(cov.get('not_comparable', 0.0)) / 1e6:.4f}, "
        f"unknown (no baseline) 无基准 {float(cov.get('unknown', 0.0)) / 1e6:.4f}"
    )


def summary_text(summary: dict[str, Any]) -> str:
    """A short human-readable run summary (English with Chinese labels)."""
    c = summary["counts"]
    d = c["dropped"]
    cov = summary["coverage_m2"]
    reg = summary["registration"]
    lines = [
        f"buildwatch run — flight {summary['flight_id']} vs baseline {summary['baseline_id']}",
        f"finished {summary['finished_at']} in {summary['elapsed_s']} s; CRS {summary['crs']}",
        f"model {summary['model']['name']} ({summary['model']['sha256'] or 'no hash'}), "
        f"GSD {summary['gsd_m']} m, tiles {summary['tile_px']} px / overlap {summary['overlap_px']} px",
        "",
        f"leads 线索: {c['leads']}  (new buildings 新建建筑 {c['leads_new_building']}, "
        f"construction 在建工程 {c['leads_construction']})",
        f"permitted 已批准 (kept, not leads): {c['permitted']};  on known buildings: {c['known_building']}",
        f"unassigned to any compound/village 未归属: {c['unassigned']}",
        f"tiles {c['tiles']}, candidates {c['candidates']}, merged across seams {c['merged_away']}",
        f"dropped: score {d['below_score']}, area {d['below_area']}, unknown coverage "
        f"{d['unknown_coverage']}, not comparable {d['not_comparable']}",
        coverage_line(cov),
        f"co-registration 配准: {reg.get('status', 'off')} ({reg.get('decision', '')})"
        f" — {reg.get('message') or ''}",
    ]
    native = summary.get("native_gsd_m") or {}
    if native:
        seen = summary.get("flight_seen_at_m")
        lines.append(
            f"native GSD 原始分辨率: flight {native.get('flight', 0):.2f} m, "
            f"baseline {native.get('baseline', 0):.2f} m"
            + (
                f" (its detail: {summary['baseline_detail_gsd_m']:.2f} m)"
                if summary.get("baseline_detail_gsd_m") is not None
                else ""
            )
            + (f" (flight compared at {seen:.2f} m)" if seen is not None else "")
        )
    lines += [f"note 注意: {n}" for n in summary.get("notes") or []]
    s = summary.get("speed")
    if s:
        lines.append(
            f"speed: {s['km2']:.3f} km² at {s['km2_per_hour']:.0f} km²/h, "
            f"{s['tiles_per_s']:.1f} tiles/s; peak RSS {s['peak_rss_mb']} MB"
        )
    if summary["leads_by_township"]:
        lines.append("")
        lines.append("by township 按乡镇(街道):")
        for row in summary["leads_by_township"]:
            lines.append(
                f"  {row['township_name'] or '(none)'} {row['township_code']}: {row['n_leads']}"
            )
    if summary["repairs"]:
        lines.append("")
        lines += [f"repaired input: {r}" for r in summary["repairs"]]
    lines.append("")
    lines += [f"{k}: {v}" for k, v in summary["outputs"].items()]
    return "\n".join(lines) + "\n"


def run_flight(
    flight: str | Path,
    *,
    config: BuildwatchConfig,
    baseline: str | Path | None = None,
    out_dir: str | Path | None = None,
    predict: Predict | Any | None = None,
    flight_date: date | None = None,
    candidates: Mapping[int, Candidates | None] | None = None,
    flight_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunOutputs:
    """Run the whole job for one flight into ``out_dir`` (default ``config.output.dir``).

    ``flight_id`` names the flight in lead ids; None takes it from the flight's sidecar
    metadata, its ``FLIGHT_ID`` tag, else the file stem (:mod:`pipelines.leads.identity`).

    ``candidates`` (per tile index, computed elsewhere, e.g. on dask workers) skip the tile
    loop; see :func:`pipelines.detect.detect_leads`. ``predict`` then only names the model.
    """
    baseline = baseline or config.baseline
    if baseline is None:
        raise ConfigError("no baseline: pass --baseline B.tif or set 'baseline' in the config")
    out = check_writable(Path(out_dir or config.output.dir), "output folder")
    if predict is None and candidates is None:
        predict = load_detector(config)
    clean_leftovers(out)
    stage = out / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        evidence = stage / "evidence" if config.output.evidence else None
        result = detect_leads(
            flight,
            baseline,
            predict=predict,
            config=config,
            flight_date=flight_date,
            evidence_dir=evidence,
            candidates=candidates,
            flight_id=flight_id,
            progress=progress,
        )
        layers = {"leads": result.leads, **area_layers(result)}
        sheets = {"leads": _table(result.leads, config.output.chinese_headers)}
        if result.units is not None:
            layers["summary_units"] = summarize_units(result.leads, result.units)
            layers["summary_townships"] = summarize_townships(result.leads, result.units)
            for name in ("summary_units", "summary_townships"):
                sheets[name] = pd.DataFrame(layers[name].drop(columns="geometry"))
        write_leads_gpkg(stage / "leads.gpkg", layers)
        neutralize_frame(
            pd.DataFrame(result.leads.drop(columns=result.leads.geometry.name))[list(LEAD_COLUMNS)]
        ).to_csv(stage / "leads.csv", index=False, encoding="utf-8-sig")
        _write_xlsx(stage / "leads.xlsx", sheets)
        names = {"leads": "leads.gpkg", "table": "leads.csv", "spreadsheet": "leads.xlsx"}
        if evidence is not None:
            evidence.mkdir(exist_ok=True)
            names["evidence"] = "evidence/"
        names.update(summary_json="run_summary.json", summary_txt="run_summary.txt")
        summary = summary_dict(result, {k: str(out / v) for k, v in names.items()})
        (stage / "run_summary.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
        )
        (stage / "run_summary.txt").write_text(summary_text(summary), encoding="utf-8")
        _publish(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.info("run for flight %s written to %s", result.flight_id, out)
    return RunOutputs(
        out_dir=out,
        gpkg=out / "leads.gpkg",
        csv=out / "leads.csv",
        xlsx=out / "leads.xlsx",
        evidence_dir=out / "evidence" if config.output.evidence else None,
        summary_json=out / "run_summary.json",
        summary_txt=out / "run_summary.txt",
        result=result,
    )


#: the temp-file names of geo.atomic.atomic_path: ``.<stem>.<12 hex><suffix>``
_ATOMIC_TEMP = re.compile(r"\..+\.[0-9a-f]{12}(\.[A-Za-z0-9]+)?")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_leftovers(out: Path) -> list[Path]:
    """Remove what a killed run left in ``out``: staging folders of processes that are gone
    (``.staging-<pid>-*``; older names without a pid too), half-swapped ``.old-*`` folders and,
    when no other run is writing there, half-written atomic temp files (``.<stem>.<hex>.<ext>``
    in ``out``, ``maps/`` and ``evidence/``). Returns what was removed."""
    removed = []
    for item in out.glob(".staging-*"):
        parts = item.name.split("-")
        pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue  # another run is writing into this folder right now
        shutil.rmtree(item, ignore_errors=True)
        removed.append(item)
    for item in out.glob(".old-*"):
        shutil.rmtree(item, ignore_errors=True)
        removed.append(item)
    live = [p for p in out.glob(".staging-*") if p.is_dir()]
    if not live:  # no other run writes here now: half-written atomic temp files are orphans
        for folder in (out, out / "maps", out / "evidence"):
            for item in folder.glob(".*") if folder.is_dir() else ():
                if item.is_file() and _ATOMIC_TEMP.fullmatch(item.name):
                    item.unlink(missing_ok=True)
                    removed.append(item)
    if removed:
        log.warning("removed %d leftover(s) of an interrupted run in %s", len(removed), out)
    return removed


def _publish(stage: Path, out: Path) -> None:
    """Move staged outputs into ``out`` (files by os.replace; evidence/ swapped as a folder)."""
    for item in sorted(stage.iterdir()):
        target = out / item.name
        if item.is_dir():
            if target.exists():
                old = out / f".old-{item.name}-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(item, target)
        else:
            os.replace(item, target)
