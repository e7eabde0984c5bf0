"""The demo: the whole main job on the built-in synthetic district, over two successive nights.

:func:`run_demo` is what ``buildwatch demo OUT`` (and ``make demo``) runs:

1. a synthetic district with two nights (:func:`geo.synthetic.district.generate_nights`) and a
   preview PNG;
2. night 1: :func:`pipelines.run.run_flight`, then :func:`pipelines.cases.ingest.ingest_leads`
   into ``OUT/ledger.gpkg`` with the run's two-epoch coverage;
3. the townships' updates as a spreadsheet (``OUT/updates/``), imported all-or-nothing with
   :func:`pipelines.cases.imports.import_updates`, and one case supervised (挂牌督办);
4. night 2: run + ingest again (cases seen again, new, not observed, reopened);
5. daily and monthly reports (:mod:`pipelines.cases.reports`) into ``OUT/reports/``;
6. priorities and maps (:func:`pipelines.maps.render.render_all`) into ``OUT/maps/``;
7. ``OUT/demo_summary.json`` (everything above, with each night's object P/R/F1 against its
   ground truth) and ``OUT/README.txt`` (every file in OUT explained).

It never prints: progress goes to the optional ``progress`` callback and to logging.
A non-empty OUT is refused unless ``overwrite``; then the old OUT is kept aside until the new
one is complete, and put back if the demo fails (the ledger stores absolute evidence paths, so
the demo is built in place rather than in a folder renamed at the end).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo.atomic import write_text_atomic
from geo.errors import ConfigError, InputFileError

__all__ = ["DemoResult", "run_demo", "prepare_out", "QUICK_SIZE_M", "DEFAULT_SIZE_M"]

log = logging.getLogger(__name__)

DEFAULT_SIZE_M = 1000.0
QUICK_SIZE_M = 400.0
GSD_M = 0.1
INCOMPLETE = ".demo-incomplete"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs, and its summary (the content of demo_summary.json)."""

    out: Path
    summary: dict[str, Any]
    summary_json: Path
    readme: Path
    district_map: Path


def prepare_out(out: Path, overwrite: bool) -> Path | None:
    """Refuse a non-empty ``out`` unless ``overwrite``; with it, move the old one aside.

    Returns the aside folder (to delete after success or restore after failure), or None.
    """
    if out.exists() and not out.is_dir():
        raise InputFileError(f"{out}: is a file, not a folder; choose a folder for the demo")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return None
    if not overwrite:
        raise ConfigError(
            f"{out}: exists and is not empty; pass --overwrite to replace it, or choose a new folder"
        )
    aside = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(out, aside)
    out.mkdir()
    return aside


def run_demo(
    out: str | Path,
    *,
    size_m: float = DEFAULT_SIZE_M,
    seed: int = 7,
    overwrite: bool = False,
    progress: Progress | None = None,
    predict: Any | None = None,
) -> DemoResult:
    """Run the demo into ``out`` (see the module docstring); returns its summary."""
    out = Path(out).absolute()
    aside = prepare_out(out, overwrite)
    (out / INCOMPLETE).write_text("the demo is running or was interrupted\n", encoding="utf-8")
    try:
        result = _run(out, size_m, seed, progress or (lambda _msg: None), predict)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if aside is not None:
            os.replace(aside, out)
        raise
    (out / INCOMPLETE).unlink(missing_ok=True)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return result


def _run(out: Path, size_m: float, seed: int, say: Progress, predict: Any) -> DemoResult:
    from geo.synthetic.district import generate_nights
    from pipelines.cases.store import LedgerStore
    from pipelines.config import load_config
    from pipelines.demo_steps import ledger_snapshot, write_preview

    started = time.perf_counter()
    say(f"1/7 generating a {size_m:g} m synthetic district, two nights, seed {seed} ...")
    t0 = time.perf_counter()
    d = generate_nights(out / "district", seed=seed, nights=2, size_m=size_m, gsd=GSD_M)
    preview = out / "district" / "preview.png"
    if not preview.is_file():
        write_preview(preview, d.flights[0], d.baseline, d.truths[0])
    sides = [json.loads(p.read_text(encoding="utf-8")) for p in d.sidecars]
    district_s = round(time.perf_counter() - t0, 1)
    say(
        f"    district {sides[0]['district_code']} in {district_s} s -> {d.root}; preview {preview}"
    )

    cfg = load_config(
        None,
        {
            "units": {"path": str(d.units)},
            "output": {"chinese_headers": True},
            "ledger": {"url": str(out / "ledger.gpkg")},
        },
    )
    if predict is None:
        from pipelines.detect import load_detector

        predict = load_detector(cfg)
    store = LedgerStore(out / "ledger.gpkg", lock_timeout_s=cfg.ledger.lock_timeout_s)
    snapshots: dict[str, Any] = {}
    nights: list[dict[str, Any]] = []
    try:
        nights.append(_night(1, d, sides[0], cfg, store, predict, out, say))
        snapshots["after_night_01"] = ledger_snapshot(store.cases())
        officers = _officers(d, sides, store, out, say)
        snapshots["after_updates"] = ledger_snapshot(store.cases())
        nights.append(_night(2, d, sides[1], cfg, store, predict, out, say))
        snapshots["after_night_02"] = ledger_snapshot(store.cases())
        effects = _night2_effects(store, sides[1]["flight_id"], officers, nights[1])
        day2 = date.fromisoformat(sides[1]["date"])
        runs = sorted((out / "runs").glob("night_*/leads.gpkg"))
        reports = _reports(store, day2, out, say, runs[-1:])
        cases = store.cases()
    finally:
        store.dispose()
    maps = _maps(cases, d, cfg, day2, out, say, runs[-1:])
    summary = {
        "out": str(out),
        "seed": seed,
        "size_m": size_m,
        "gsd_m": GSD_M,
        "flight_crs": "EPSG:4544",
        "district_code": sides[0]["district_code"],
        "district_s": district_s,
        "preview": str(preview),
        "nights": nights,
        "officer_updates": officers,
        "ledger": snapshots,
        "night_02_effects": effects,
        "reports": reports,
        **maps,
        "evaluation_night_02": nights[1]["evaluation"]["overall"],
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    return _finish(out, summary, say)


def _night(
    k: int, d: Any, side: dict, cfg: Any, store: Any, predict: Any, out: Path, say: Progress
) -> dict[str, Any]:
    from pipelines.cases.ingest import ingest_run, read_leads
    from pipelines.demo_steps import evaluate_leads
    from pipelines.run import run_flight

    fid, day = side["flight_id"], side["date"]
    say(f"{2 if k == 1 else 4}/7 night {k} ({fid}, {day}): detecting new structures ...")
    t0 = time.perf_counter()
    run = run_flight(
        d.flights[k - 1],
        config=cfg,
        baseline=d.baseline,
        out_dir=out / "runs" / f"night_{k:02d}",
        predict=predict,
        flight_date=date.fromisoformat(day),
        flight_id=fid,
    )
    run_s = round(time.perf_counter() - t0, 1)
    leads = read_leads(run.gpkg)
    ing = ingest_run(
        store, run.gpkg, flight_id=fid, flight_date=day, min_overlap=cfg.ledger.min_overlap
    )
    truth = gpd.read_file(d.truths[k - 1], layer="changes")
    area_km2 = float(run.result.coverage_m2.get("common", 0.0)) / 1e6 or None
    ev = evaluate_leads(run.result.leads, truth, area_km2)
    is_lead = leads["status"] == "lead"
    o = ev["overall"]
    say(
        f"    {int(is_lead.sum())} leads + {int((~is_lead).sum())} permitted (inside approved "
        f"permits, not leads) in {run_s} s -> {run.gpkg}"
    )
    say(
        f"    ledger: {ing.n_new} new, {ing.n_seen_again} seen again, {ing.n_reopened} reopened, "
        f"{ing.n_not_observed} not observed; vs truth P {o['precision']:.2f} "
        f"R {o['recall']:.2f} F1 {o['f1']:.2f}"
    )
    return {
        "night": k,
        "flight_id": fid,
        "date": day,
        "run_dir": str(run.out_dir),
        "leads_gpkg": str(run.gpkg),
        "run_s": run_s,
        "leads": int(is_lead.sum()),
        "leads_by_class": {
            str(c): int(n) for c, n in leads[is_lead]["class"].value_counts().sort_index().items()
        },
        "permitted": int((~is_lead).sum()),
        "ingest": {
            "new": ing.n_new,
            "seen_again": ing.n_seen_again,
            "reopened": ing.n_reopened,
            "not_observed": ing.n_not_observed,
            "new_case_ids": list(ing.new_case_ids),
        },
        "evaluation": ev,
    }


def _officers(d: Any, sides: list[dict], store: Any, out: Path, say: Progress) -> dict[str, Any]:
    from pipelines.cases.imports import import_updates, supervise
    from pipelines.demo_steps import plan_officer_updates, write_update_file

    day = sides[0]["date"]
    truth = gpd.read_file(d.truths[0], layer="changes")
    plan = plan_officer_updates(store.cases(), truth, sides[1]["removed_change_ids"], day)
    path = write_update_file(plan, out / "updates" / "night_01_updates.csv")
    say(f"3/7 townships' updates: {len(plan.rows)} row(s) in {path}; importing (all or nothing)")
    result = import_updates(store, path)
    for cid, frm, to in result.changes:
        say(f"    {cid}: {frm} -> {to}")
    if plan.supervised:
        supervise(
            store,
            plan.supervised,
            deadline=plan.deadline,
            who="区违法建设治理办公室",
            note="集中整治重点案件",
        )
        say(f"    {plan.supervised}: 挂牌督办 (supervised), deadline {plan.deadline}")
    return {
        "file": str(path),
        "rows": len(plan.rows),
        "changes": [list(c) for c in result.changes],
        "stopped": plan.stopped,
        "removed": plan.removed,
        "notice": plan.noticed,
        "enforced": plan.enforced,
        "rejected": plan.rejected,
        "rejected_reason": plan.rejected_reason,
        "supervised": plan.supervised,
        "deadline": plan.deadline,
    }


def _night2_effects(
    store: Any, flight_id: str, officers: dict[str, Any], night: dict[str, Any]
) -> dict[str, Any]:
    cases = pd.DataFrame(store.cases().drop(columns="geometry"))
    hist = store.history()
    h2 = hist[hist["flight_id"] == flight_id]
    reopened = sorted(h2.loc[h2["from_state"] == "removed", "case_id"].astype(str))
    rej = officers["rejected"]
    rej_row = cases[cases["case_id"] == rej].iloc[0] if rej else None
    return {
        "seen_twice": sorted(cases.loc[cases["times_seen"] == 2, "case_id"].astype(str)),
        "new": night["ingest"]["new_case_ids"],
        "not_observed": sorted(cases.loc[cases["not_observed"], "case_id"].astype(str)),
        "reopened": reopened,
        "rejected_case": None
        if rej_row is None
        else {
            "case_id": rej,
            "state": str(rej_row["state"]),
            "reject_reason": str(rej_row["reject_reason"]),
            "times_seen": int(rej_row["times_seen"]),
        },
    }


def _reports(store: Any, day: date, out: Path, say: Progress, runs: list[Path]) -> list[str]:
    from pipelines.cases.reports import daily_report, monthly_report, write_report
    from pipelines.run import area_table, read_area_layers

    folder = out / "reports"
    folder.mkdir(exist_ok=True)
    daily = daily_report(store, day, today=day)
    if runs:  # the day's flight: what it compared, and what it could not
        daily = daily.with_coverage(area_table(read_area_layers(runs)))
    monthly = monthly_report(store, day.strftime("%Y-%m"), today=day)
    written: list[Path] = []
    for report, stem in (
        (daily, f"daily_in_progress_{day.isoformat()}"),
        (monthly, f"monthly_existing_{day.strftime('%Y-%m')}"),
    ):
        for suffix in (".csv", ".xlsx"):
            written += write_report(report, folder / f"{stem}{suffix}")
    say(f"5/7 reports (daily in-progress, monthly existing; per township and district) -> {folder}")
    for line in (daily.summary + monthly.summary).splitlines():
        say(f"    {line}")
    return sorted({str(p) for p in written})


def _maps(
    cases: gpd.GeoDataFrame,
    d: Any,
    cfg: Any,
    day: date,
    out: Path,
    say: Progress,
    runs: list[Path],
) -> dict[str, Any]:
    from pipelines.maps.inputs import load_units
    from pipelines.maps.render import render_all
    from pipelines.run import read_area_layers

    say("6/7 clearance priorities, hot spots and offline maps ...")
    paths = render_all(
        out / "maps",
        cases,
        load_units(d.units),
        flight=d.flights[1],
        offline=True,
        config=cfg.maps,
        as_of=day,
        zh=True,
        areas=read_area_layers(runs) if runs else None,
        sources=[out / "ledger.gpkg", *runs],
        cleared=_demo_cleared(out / "ledger.gpkg"),
    )
    ranked = gpd.read_file(paths["units"], layer="units")
    top = ranked.sort_values(["rank_district", "unit_code"]).head(3)
    cols = ["rank_district", "unit_code", "unit_name", "township_name", "open_cases"]
    cols += ["priority_score", "priority"]
    top_units = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in pd.DataFrame(top[[c for c in cols if c in top.columns]]).to_dict("records")
    ]
    return {
        "maps": {k: str(v) for k, v in sorted(paths.items())},
        "top_units": top_units,
        "hotspots": (
            int(len(gpd.read_file(paths["hotspots"], layer="hotspots")))
            if "hotspots" in paths
            else 0
        ),
        "district_map": str(paths["district_map"]),
    }


def _finish(out: Path, summary: dict[str, Any], say: Progress) -> DemoResult:
    from pipelines.demo_readme import write_readme

    say("7/7 summary and README ...")
    path = out / "demo_summary.json"
    write_text_atomic(path, json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    (out / INCOMPLETE).unlink(missing_ok=True)
    readme = write_readme(out, summary)
    return DemoResult(out, summary, path, readme, Path(summary["district_map"]))


def _demo_cleared(ledger: Path) -> Any:
    from pipelines.publish import _cleared

    return _cleared(str(ledger))
