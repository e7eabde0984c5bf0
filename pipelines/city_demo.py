"""The city demo: a small synthetic city of three districts, every discovery channel, the city's view.

:func:`run_city_demo` is what ``buildwatch city demo OUT`` (``make city-demo``) runs:

1. three synthetic districts side by side (:func:`geo.synthetic.district.generate_nights` with an
   ``origin`` each), their boundaries gathered into ``OUT/city_units.gpkg``;
2. per district, before its flight: the patrols' and the hotline's reports (``OUT/reports_in/``,
   Chinese headers) made from the district's true changes — two patrol reports of the same
   structure, a hotline report by address only, one false report where nothing is built —
   imported into the district's own ledger (``OUT/ledgers/<code>.gpkg``); one village marked
   cleared (整治完毕) a month before the flight;
3. the flight: :func:`pipelines.run.run_flight` and :func:`pipelines.cases.ingest.ingest_run`, so
   drone leads meet the reported cases (one structure, one case) and the cleared village's new
   structures raise alerts;
4. the townships close some cases; the city supervises one case per district (one overdue);
5. the year's targets (``OUT/city_targets.csv``) and the city report
   (:func:`pipelines.city.report.run_city_report`) into ``OUT/city/``: daily and monthly reports,
   ranking, supervised list, five-year view, city map (HTML + PNG);
6. ``OUT/city_demo_summary.json``: per district the reports imported, attached and met by the
   drone, duplicates against the truth (must be 0), relapses; the city's files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.atomic import atomic_path, write_text_atomic

__all__ = ["CityDemoResult", "run_city_demo", "SEEDS"]

#: one seed per district (each gives its own district code 5001<90 + seed % 10>)
SEEDS = (7, 8, 9)
GSD_M = 0.1
FLIGHT_CRS = "EPSG:4544"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class CityDemoResult:
    """Where the city demo wrote its outputs and what it found."""

    out: Path
    summary: dict[str, Any]
    summary_json: Path
    headline: str
    map_html: Path | None


def _lonlat(points: gpd.GeoSeries) -> list[tuple[float, float]]:
    ll = points.to_crs("EPSG:4490")
    return [(round(p.x, 7), round(p.y, 7)) for p in ll]


def _reports(truth: gpd.GeoDataFrame, units_path: Path, day: str, seed: int) -> pd.DataFrame:
    """Patrol and hotline reports a district might have had before its flight (see module)."""
    from pipelines.cases.imports import parse_date

    rng = np.random.default_rng([seed, 77])
    leads = truth[truth["expected"] == "lead"].sort_values("change_id").reset_index(drop=True)
    d0 = date.fromisoformat(parse_date(day) or day)
    rows: list[dict[str, Any]] = []
    if len(leads) >= 1:
        c = leads.geometry.iloc[0].centroid
        (lon, lat), (lon2, lat2) = _lonlat(
            gpd.GeoSeries([shapely.Point(c.x + 4, c.y - 3), shapely.Point(c.x - 5, c.y + 4)],
                          crs=truth.crs)
        )  # fmt: skip
        rows += [
            {"渠道": "巡查", "编号": f"XC-{seed}-01", "日期": str(d0 - timedelta(days=6)),
             "经度": lon, "纬度": lat, "描述": "村民在自家院内新建房屋", "上报人": "村委会巡查员"},
            {"渠道": "巡查", "编号": f"XC-{seed}-02", "日期": str(d0 - timedelta(days=4)),
             "经度": lon2, "纬度": lat2, "描述": "同一处在建房屋，已劝阻", "上报人": "镇巡查队"},
        ]  # fmt: skip
    villages = gpd.read_file(units_path, layer="villages")
    compounds = gpd.read_file(units_path, layer="compounds")
    names = dict(zip(villages["unit_code"], villages["unit_name"], strict=True))
    names |= dict(zip(compounds["unit_code"], compounds["unit_name"], strict=True))
    later = leads.iloc[1:]
    named = later[later["unit_code"].map(lambda u: bool(names.get(u)))]
    if len(named):
        unit = names[named["unit_code"].iloc[0]]
        rows.append({"渠道": "12345", "编号": f"RX-{seed}-07", "日期": str(d0 - timedelta(days=3)),
                     "地址": f"{unit}内", "描述": "群众举报有人违法建房", "上报人": "12345热线"})  # fmt: skip
    # a report where nothing was built: the flight covers the spot and sees nothing
    district = gpd.read_file(units_path, layer="districts").geometry.iloc[0]
    changed = truth.geometry.buffer(60).union_all()
    for _ in range(200):
        x = rng.uniform(district.bounds[0] + 30, district.bounds[2] - 30)
        y = rng.uniform(district.bounds[1] + 30, district.bounds[3] - 30)
        if not changed.contains(shapely.Point(x, y)):
            (lon, lat) = _lonlat(gpd.GeoSeries([shapely.Point(x, y)], crs=truth.crs))[0]
            rows.append({"渠道": "热线", "编号": f"RX-{seed}-09", "日期": str(d0 - timedelta(days=2)),
                         "经度": lon, "纬度": lat, "描述": "举报疑似搭建棚房", "上报人": "12345热线"})  # fmt: skip
            break
    return pd.DataFrame(rows)


def _truth_cases(cases: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> tuple[int, int]:
    """(true structures with a case, true structures with more than one live case)."""
    live = cases[cases["state"] != "rejected"]
    leads = truth[truth["expected"] == "lead"]
    if live.empty or leads.empty:
        return 0, 0
    tg = np.asarray(leads.geometry.values)
    cg = np.asarray(live.to_crs(truth.crs).geometry.values)
    ti, ci = shapely.STRtree(cg).query(tg, predicate="intersects")
    inter = shapely.area(shapely.intersection(tg[ti], cg[ci]))
    keep = inter >= 0.1 * np.minimum(shapely.area(tg[ti]), shapely.area(cg[ci]))
    per = pd.Series(ti[keep]).value_counts()
    return int(len(per)), int((per > 1).sum())


def _ledger_places(out: Path, db: str | None, overwrite: bool) -> Callable[[str], str]:
    """Where each district's ledger goes: a GeoPackage under OUT/ledgers, or a PostGIS schema."""
    if db is None:
        (out / "ledgers").mkdir(parents=True, exist_ok=True)
        return lambda code: str(out / "ledgers" / f"{code}.gpkg")
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from geo.errors import ConfigError
    from pipelines.cases.store import resolve_url

    url = resolve_url(db)
    if not url.startswith("postgresql") or "?" in url:
        raise ConfigError(f"--db {db!r}: give a plain postgresql://user@host:port/database URL")
    made: dict[str, str] = {}

    def place(code: str) -> str:
        if code not in made:  # the schema is made once per district, on first use
            if not code.isdigit():
                raise ConfigError(f"district code {code!r} cannot name a schema")
            schema = f"bw_{code}"
            engine = create_engine(url, poolclass=NullPool)
            try:
                with engine.begin() as conn:
                    found = conn.execute(
                        text("SELECT count(*) FROM information_schema.tables "
                             "WHERE table_schema = :s"), {"s": schema},
                    ).scalar_one()  # fmt: skip
                    if found and not overwrite:
                        raise ConfigError(f"--db: schema {schema} already holds a ledger; "
                                          "pass --overwrite to replace it")  # fmt: skip
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            finally:
                engine.dispose()
            made[code] = f"{db}?options=-csearch_path%3D{schema},public"
        return made[code]

    return place


def _district(
    k: int, seed: int, size_m: float, origin: tuple[float, float], out: Path, cfg_of: Any,
    ledger_of: Callable[[str], str], predict: Any, say: Progress,
) -> dict[str, Any]:  # fmt: skip
    from geo.synthetic.district import generate_nights
    from geo.units import read_units
    from pipelines.cases.channels import import_reports
    from pipelines.cases.cleared import mark_cleared, read_cleared, relapses
    from pipelines.cases.imports import Update, apply_updates, supervise
    from pipelines.cases.ingest import ingest_run
    from pipelines.cases.store import LedgerStore
    from pipelines.run import run_flight

    d = generate_nights(out / "synthetic" / f"district_{k + 1}", seed=seed, nights=1,
                        size_m=size_m, gsd=GSD_M, origin=origin)  # fmt: skip
    side = json.loads(d.sidecars[0].read_text(encoding="utf-8"))
    code, day, fid = side["district_code"], side["date"], side["flight_id"]
    say(f"district {k + 1}/3: {code}, flight {fid} on {day} ({d.root})")
    ledger = ledger_of(code)
    cfg = cfg_of(d.units, ledger)
    store = LedgerStore(ledger, lock_timeout_s=cfg.ledger.lock_timeout_s)
    truth = gpd.read_file(d.truths[0], layer="changes")
    try:
        reports = _reports(truth, d.units, day, seed)
        path = out / "reports_in" / f"{code}_巡查_热线.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            reports.to_csv(tmp, index=False, encoding="utf-8-sig")
        units = read_units(d.units, FLIGHT_CRS, optional=False)
        imp = import_reports(store, path, units, who="区指挥办", attach_m=cfg.ledger.attach_distance_m,
                             radius_m=cfg.ledger.report_radius_m)  # fmt: skip
        say(f"    {len(reports)} patrol/hotline reports -> {imp.n_new} cases opened, "
            f"{imp.n_attached} attached to a case already open")  # fmt: skip
        # a village cleared a month before the flight, where the flight will find new structures
        vill = truth[(truth["expected"] == "lead") & truth["unit_code"].astype(str).str.len().gt(0)]
        cleared_unit = str(vill["unit_code"].iloc[-1]) if len(vill) else ""
        if cleared_unit:
            mark_cleared(store, cleared_unit, day=str(date.fromisoformat(day) - timedelta(days=30)),
                         who="镇政府", note="集中整治完毕，纳入日常监管")  # fmt: skip
        run = run_flight(d.flights[0], config=cfg, baseline=d.baseline,
                         out_dir=out / "runs" / code, predict=predict,
                         flight_date=date.fromisoformat(day), flight_id=fid)  # fmt: skip
        ing = ingest_run(store, run.gpkg, flight_id=fid, flight_date=day,
                         min_overlap=cfg.ledger.min_overlap, attach_m=cfg.ledger.attach_distance_m)  # fmt: skip
        cases = store.cases()
        met = cases[(cases["source"] != "drone") & (cases["times_seen"] > 0)]
        say(f"    flight: {ing.n_new} new drone cases, {ing.n_seen_again} leads met an open "
            f"case ({len(met)} reported cases confirmed by the drone)")  # fmt: skip
        back = relapses(pd.DataFrame(cases.drop(columns="geometry")), read_cleared(store))
        if len(back):
            say(f"    ALERT: {len(back)} new case(s) in the cleared unit {cleared_unit}")
        # townships act: stop and remove the first drone cases of the in-progress ledger
        after = str(date.fromisoformat(day) + timedelta(days=2))
        inprog = cases[(cases["ledger"] == "in_progress") & (cases["state"] == "discovered")]
        n_close = (k % 3) + 1
        ups = []
        for cid in inprog["case_id"].head(n_close):
            ups += [Update(cid, "stopped", "镇执法队", after),
                    Update(cid, "removed", "镇执法队", after)]  # fmt: skip
        existing = cases[(cases["ledger"] == "existing") & (cases["state"] == "evidence")]
        for cid in existing["case_id"].head(1):
            ups.append(Update(cid, "notice", "区执法局", after))
        if ups:
            apply_updates(store, ups, source="demo:townships")
        open_ = store.cases(open_only=True)
        supervised = ""
        if len(open_):
            supervised = str(open_.sort_values("area_m2", ascending=False)["case_id"].iloc[0])
            due = date.fromisoformat(day) + timedelta(days=3 if k == 0 else 40)
            supervise(store, supervised, deadline=str(due), who="市指挥办", note="市级挂牌督办")
        dup_truth = _truth_cases(store.cases(), truth)
    finally:
        store.dispose()
    return {
        "district_code": code,
        "flight_id": fid,
        "date": day,
        "ledger": store.label,  # password hidden; the URL itself is not kept in the summary
        "units": str(d.units),
        "reports_file": str(path),
        "reports": len(reports),
        "report_cases_opened": imp.n_new,
        "reports_attached_on_import": imp.n_attached,
        "drone_new_cases": ing.n_new,
        "leads_meeting_open_cases": ing.n_seen_again,
        "reported_cases_confirmed_by_drone": int(len(met)),
        "cleared_unit": cleared_unit,
        "relapses": int(len(back)),
        "closed_by_townships": n_close,
        "supervised": supervised,
        "true_structures_with_a_case": dup_truth[0],
        "true_structures_with_two_cases": dup_truth[1],
    }


def run_city_demo(
    out: str | Path,
    *,
    size_m: float = 400.0,
    seeds: tuple[int, ...] = SEEDS,
    overwrite: bool = False,
    progress: Progress | None = None,
    predict: Any | None = None,
    db: str | None = None,
) -> CityDemoResult:
    """Run the city demo into *out* (see the module docstring).

    With *db* (``postgresql://...``) each district's ledger is a schema ``bw_<district code>``
    of that PostGIS database instead of ``OUT/ledgers/<code>.gpkg``; the city report reads them
    there. Existing demo schemas are replaced only with *overwrite*.
    """
    from geo.synthetic.district import district_origin
    from pipelines.city.report import headline, run_city_report
    from pipelines.config import load_config
    from pipelines.demo import prepare_out

    say = progress or (lambda _m: None)
    started = time.perf_counter()
    out = Path(out).absolute()
    aside = prepare_out(out, overwrite)
    try:

        def cfg_of(units: Path, ledger: Path) -> Any:
            return load_config(None, {"units": {"path": str(units)},
                                      "ledger": {"url": str(ledger)}})  # fmt: skip

        if predict is None:
            from pipelines.detect import load_detector

            predict = load_detector(load_config(None))
        ledger_of = _ledger_places(out, db, overwrite)
        e0, n0 = district_origin(seeds[0], size_m)
        rows = [
            _district(k, s, size_m, (e0 + k * size_m, n0), out, cfg_of, ledger_of, predict, say)
            for k, s in enumerate(seeds)
        ]
        bounds = pd.concat(
            [gpd.read_file(r["units"], layer="districts") for r in rows], ignore_index=True
        )
        city_units = out / "city_units.gpkg"
        with atomic_path(city_units) as tmp:
            gpd.GeoDataFrame(bounds, crs=bounds.crs).to_file(tmp, layer="districts", driver="GPKG")
        # the day the last district's townships act (see _district): its closures are "today"
        report_day = max(date.fromisoformat(r["date"]) for r in rows) + timedelta(days=2)
        targets = out / "city_targets.csv"
        with atomic_path(targets) as tmp:
            pd.DataFrame(
                {
                    "区县编码": [r["district_code"] for r in rows],
                    "年度": [report_day.year] * len(rows),
                    "办结案件目标": [4 + 2 * k for k in range(len(rows))],
                    "拆除面积目标(平方米)": [150 * (k + 1) for k in range(len(rows))],
                    "整治单元目标": [1] * len(rows),
                }
            ).to_csv(tmp, index=False, encoding="utf-8-sig")
        say(f"city report for {report_day} over {len(rows)} district ledgers ...")
        run = run_city_report(
            [ledger_of(r["district_code"]) for r in rows],
            out / "city",
            day=report_day,
            month=report_day.strftime("%Y-%m"),
            targets=targets,
            units=city_units,
            today=report_day,
        )
        text = headline(run)
        summary = {
            "out": str(out),
            "size_m": size_m,
            "seeds": list(seeds),
            "report_day": str(report_day),
            "districts": rows,
            "duplicates": sum(r["true_structures_with_two_cases"] for r in rows),
            "city_files": [str(p) for p in run.paths],
            "city_map_html": str(run.map_html) if run.map_html else "",
            "city_map_png": str(run.map_png) if run.map_png else "",
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
        path = write_text_atomic(
            out / "city_demo_summary.json",
            json.dumps(summary, ensure_ascii=False, indent=2, default=str),
        )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if aside is not None:
            os.replace(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return CityDemoResult(out, summary, path, text, run.map_html)
