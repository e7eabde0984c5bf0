"""The demo's words: the closing summary table and ``OUT/README.txt`` (every file explained).

Both are pure text built from the demo summary (see :mod:`pipelines.demo`); only
:func:`write_readme` touches the disk.
"""

from __future__ import annotations

import os
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from geo.atomic import write_text_atomic

__all__ = ["FILE_NOTES", "describe", "summary_lines", "readme_text", "write_readme"]

#: glob (relative to OUT, posix) -> what the file is; the first match wins
FILE_NOTES: tuple[tuple[str, str], ...] = (
    ("README.txt", "this file"),
    ("demo_summary.json", "everything the demo did, machine-readable (counts, ids, F1, paths)"),
    ("ledger.gpkg", "the case ledger (GeoPackage: layer 'cases' + tables case_history, ingests); "
     "open it in QGIS, or: buildwatch cases list --ledger ledger.gpkg"),
    ("district/baseline.tif", "baseline imagery, months before the flights: EPSG:3857, ~0.3 m, "
     "shifted by a known misregistration"),
    ("district/units.gpkg", "administrative units: districts, townships, villages, compounds, "
     "permits (Chinese names, codes as text; EPSG:4544)"),
    ("district/district.json", "generator facts: seed, size, CRSs, misregistration, dates"),
    ("district/preview.png", "before | after preview of night 1, true changes outlined "
     "(red = lead, green = permitted, yellow = nuisance)"),
    ("district/night_*/flight.tif", "the night's drone orthophoto: EPSG:4544 (CGCS2000 3-degree "
     "GK, CM 105E), 0.1 m, RGB + alpha, tiled with overviews"),
    ("district/night_*/truth.gpkg", "ground truth of the night (layer 'changes': kind, class, "
     "expected lead/permitted/none)"),
    ("district/night_*/flight.json", "flight sidecar: date, flight_id, district, sun, structures "
     "removed since the previous night"),
    ("runs/night_*/leads.gpkg", "the night's leads (layer 'leads', EPSG:4544; lead_id, score, "
     "class, area_m2, lon, lat, unit, township, responsible party, provenance) + summaries"),
    ("runs/night_*/leads.csv", "the leads as a table (UTF-8 with BOM)"),
    ("runs/night_*/leads.xlsx", "the leads as a spreadsheet, Chinese headers"),
    ("runs/night_*/run_summary.json", "the run: counts, thresholds, model, coverage, timings"),
    ("runs/night_*/run_summary.txt", "the run in a few lines"),
    ("runs/night_*/evidence/", "before/after chips per lead (PNG, the lead outlined)"),
    ("updates/*.csv", "a township's update file (案件编号, 新状态, 经办人, 日期, 备注, 驳回原因), "
     "imported between the nights with: buildwatch cases import FILE"),
    ("reports/daily_*.csv", "daily report of the in-progress ledger (在建), per township and "
     "district"),
    ("reports/daily_*.xlsx", "the same daily report as a spreadsheet (+ summary sheet)"),
    ("reports/daily_*.txt", "the daily report's text summary (Chinese)"),
    ("reports/monthly_*.csv", "monthly report of the existing ledger (存量), per township and "
     "district"),
    ("reports/monthly_*.xlsx", "the same monthly report as a spreadsheet (+ summary sheet)"),
    ("reports/monthly_*.txt", "the monthly report's text summary (Chinese)"),
    ("maps/map_district_*.html", "THE DISTRICT MAP: units by clearance priority, cases by state "
     "with evidence, hot spots, the flight as base layer; works with no internet"),
    ("maps/map_township_*.html", "a township's map (offline, same layers)"),
    ("maps/map_township_*.png", "a township's static map for printed reports"),
    ("maps/trend_*.png", "cases by state per month (static chart)"),
    ("maps/priorities_district_*.csv", "ranked clearance plan of the district (per unit)"),
    ("maps/priorities_district_*.xlsx", "the ranked plan as a spreadsheet, a sheet per township"),
    ("maps/priorities_township_*.csv", "ranked clearance plan of one township"),
    ("maps/priorities.gpkg", "ranked units with geometry (layer 'units')"),
    ("maps/hotspots.gpkg", "hot spots: clusters of cases across unit boundaries (layer "
     "'hotspots')"),
    ("maps/maps.qgz", "QGIS project: every layer above, the ledger's cases and the night's "
     "leads, styled, by relative path (every GeoPackage also carries its style)"),
)  # fmt: skip


def describe(rel: str) -> str:
    """What the file at ``rel`` (posix, relative to OUT; folders end in '/') is."""
    for pattern, note in FILE_NOTES:
        if fnmatch(rel, pattern):
            return note
    return "supporting file"


def _listing(out: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(out):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(root).relative_to(out).as_posix()
        here = "" if here == "." else here + "/"
        if fnmatch(here, "runs/night_*/evidence/"):
            rows.append((here, f"{describe(here)}; {len(files)} files"))
            dirs[:] = []
            continue
        for name in sorted(f for f in files if not f.startswith(".")):
            rows.append((here + name, describe(here + name)))
    return rows


def _pct(x: float) -> str:
    return f"{x:.2f}"


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The closing summary table of the demo (plain text lines)."""
    lines = ["", "night  flight        date        leads  new_building  construction  "
             "P     R     F1"]  # fmt: skip
    for n in s["nights"]:
        o, by = n["evaluation"]["overall"], n["leads_by_class"]
        lines.append(
            f"{n['night']:<6} {n['flight_id']:<13} {n['date']}  {n['leads']:<6} "
            f"{by.get('new_building', 0):<13} {by.get('construction', 0):<13} "
            f"{_pct(o['precision'])}  {_pct(o['recall'])}  {_pct(o['f1'])}"
        )
    lines += ["", "ledger after        in_progress (discovered/stopped/removed/rejected)   "
              "existing (evidence/notice/penalty/enforced/rejected)   not_observed  supervised"]  # fmt: skip
    for step, snap in s["ledger"].items():
        ip = "/".join(str(v) for v in snap["in_progress"].values())
        ex = "/".join(str(v) for v in snap["existing"].values())
        lines.append(
            f"{step.removeprefix('after_'):<19} {ip:<51} {ex:<54} "
            f"{snap['not_observed']:<13} {snap['supervised']}"
        )
    e = s["night_02_effects"]
    lines += [
        "",
        f"night 2: {len(e['seen_twice'])} case(s) seen on both nights, {len(e['new'])} new, "
        f"{len(e['not_observed'])} not observed (queued for verification), "
        f"{len(e['reopened'])} reopened {e['reopened'] or ''}".rstrip(),
    ]
    r = e["rejected_case"]
    if r:
        lines.append(
            f"rejected case {r['case_id']}: still {r['state']} ({r['reject_reason']}), "
            f"times seen {r['times_seen']}"
        )
    lines += ["", "top clearance priorities (district):"]
    for u in s["top_units"]:
        lines.append(
            f"  {u.get('rank_district')}. {u.get('unit_name')} ({u.get('unit_code')}, "
            f"{u.get('township_name')}): {u.get('open_cases')} open case(s), score "
            f"{float(u.get('priority_score') or 0):.1f} {u.get('priority', '')}".rstrip()
        )
    ev = s["evaluation_night_02"]
    lines += [
        "",
        f"night-2 leads vs night-2 truth (objects, IoU >= 0.25): P {_pct(ev['precision'])} "
        f"R {_pct(ev['recall'])} F1 {_pct(ev['f1'])} (tp {ev['tp']}, fp {ev['fp']}, fn {ev['fn']})",
        f"done in {s['elapsed_s']} s; everything is in {s['out']} (see README.txt there)",
    ]
    return lines


def readme_text(out: Path, summary: dict[str, Any]) -> str:
    """The README of a demo folder: what ran, then every file and what it is."""
    head = [
        "buildwatch demo — the whole main job on a synthetic district, two successive nights",
        "",
        "What ran: a synthetic district was generated (seed "
        f"{summary['seed']}, {summary['size_m']:g} m, {summary['gsd_m']} m/px); night 1 was "
        "detected and its leads ingested into the case ledger; the townships sent back updates "
        "(updates/) that were imported all-or-nothing and one case was put under supervision "
        "(挂牌督办); night 2 was detected and ingested (cases seen again, new, not observed, "
        "reopened); daily and monthly reports and the clearance-priority maps were made.",
        "The officers' updates are simulated from the ground truth (a real township checks on site).",
        "",
        "Open first: " + os.path.relpath(summary["district_map"], out),
        "",
        *summary_lines(summary)[1:-1],
        "",
        "Files:",
    ]
    listing = _listing(out)
    if not any(rel == "README.txt" for rel, _ in listing):
        listing.insert(0, ("README.txt", describe("README.txt")))
    width = max(len(rel) for rel, _ in listing)
    body = [f"  {rel:<{width}}  {note}" for rel, note in sorted(listing)]
    return "\n".join(head + body) + "\n"


def write_readme(out: Path, summary: dict[str, Any]) -> Path:
    """Write ``out/README.txt`` atomically; returns its path."""
    return write_text_atomic(out / "README.txt", readme_text(out, summary))
