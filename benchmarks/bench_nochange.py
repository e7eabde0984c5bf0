"""False detections per km² on no-change synthetic districts (target: <= 1 per km²).

A no-change district (``buildwatch synth-district OUT --seed N --no-changes``) shows the same
scene on both dates: only illumination, season, sun and shadows, moved cars, vegetation and the
baseline's misregistration differ. By default the baseline is 90-300 days older (drawn from the
seed), so usually of another season: harder than the issue's definition of a no-change pair (same
scene, other illumination, small misregistration), which ``--days-before 365`` gives (the same
season a year earlier, other sun hour, illumination and misregistration). Every lead the full detect pipeline
(:func:`pipelines.detect.detect_leads` with the default config thresholds) reports there is false.
Each false lead is attributed to the nuisance change it overlaps most (``none`` = no truth row).

    python benchmarks/bench_nochange.py [--seeds 5001 ... 5010] [--size-m 800] [--gsd 0.1]
        [--days-before N] [--weights W] [--alternative] [--json out.json]

Districts are generated under ``--root`` (default /tmp/buildwatch-bench/nochange) and reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common  # (also puts the repository on sys.path)
import geopandas as gpd

from geo.synthetic.district import generate_district
from pipelines.detect import detect_leads


def ensure_district(
    root: Path, seed: int, size_m: float, gsd: float, changes: bool, days_before: int | None = None
) -> Path:
    """The district folder for these settings, generated unless an identical one exists."""
    tag = f"-d{days_before}" if days_before else ""
    out = root / f"{'d' if changes else 'nc'}-{seed}-{size_m:g}m-{gsd:g}{tag}"
    meta = out / "district.json"
    if meta.is_file():
        m = json.loads(meta.read_text(encoding="utf-8"))
        if m.get("seed") == seed and m.get("changes", True) == changes and _alpha_ok(out):
            return out
    generate_district(
        out, seed, size_m, gsd, overwrite=True, changes=changes, days_before=days_before
    )
    return out


def _alpha_ok(folder: Path) -> bool:
    """A cached district whose flight lost its alpha flag (written before the writer checked it)
    would count its no-data corner as compared imagery: such a folder is made again."""
    import rasterio
    from rasterio.enums import ColorInterp

    with rasterio.open(folder / "flight.tif") as ds:
        return ds.count == 4 and ds.colorinterp[3] == ColorInterp.alpha


def _causes(leads: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> Counter[str]:
    causes: Counter[str] = Counter()
    if truth.crs is not None and leads.crs is not None and truth.crs != leads.crs:
        truth = truth.to_crs(leads.crs)
    for geom in leads.geometry:
        overlap = truth.geometry.intersection(geom).area
        causes[str(truth["kind"].iloc[int(overlap.argmax())]) if overlap.max() > 0 else "none"] += 1
    return causes


def run_district(detector: Any, folder: Path) -> dict[str, Any]:
    """Detect on one no-change district; the row of the table."""
    t0 = time.perf_counter()
    result = detect_leads(folder / "flight.tif", folder / "baseline.tif", predict=detector)
    elapsed = time.perf_counter() - t0
    truth = gpd.read_file(folder / "truth.gpkg", layer="changes")
    meta = json.loads((folder / "district.json").read_text(encoding="utf-8"))
    before, after = meta["before"], meta["after"]
    if (truth["expected"] == "lead").any():
        raise SystemExit(f"{folder}: truth has lead rows; not a no-change district")
    leads = result.leads
    area_km2 = float(result.coverage_m2.get("common", 0.0)) / 1e6
    by_class = Counter(str(c) for c in leads["class"]) if len(leads) else Counter()
    return {
        "district": folder.name,
        "area_km2": round(area_km2, 4),
        "tiles": result.n_tiles,
        "candidates": result.n_candidates,
        "false_leads": len(leads),
        "per_km2": round(len(leads) / area_km2, 2) if area_km2 else None,
        "by_class": dict(by_class),
        "causes": dict(_causes(leads, truth)) if len(leads) else {},
        "seasons": f"{before['season']} -> {after['season']}",
        "scores": [round(float(s), 3) for s in leads["score"]] if len(leads) else [],
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(5001, 5011)))
    ap.add_argument("--size-m", type=float, default=800.0)
    ap.add_argument("--gsd", type=float, default=0.1)
    ap.add_argument("--days-before", type=int, default=None,
                    help="days from baseline to flight (default: from the seed, 90-300); "
                         "365 = same season a year earlier")  # fmt: skip
    ap.add_argument("--weights", default=None, help="default: the shipped weights")
    ap.add_argument("--alternative", action="store_true",
                    help="time the classical difference detector instead of the YOLO")  # fmt: skip
    ap.add_argument("--root", type=Path,
                    default=Path(tempfile.gettempdir()) / "buildwatch-bench" / "nochange")  # fmt: skip
    ap.add_argument("--json", default=None)
    _common.add_check_flags(ap)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.alternative:
        from models.alternatives import DifferenceDetector

        detector: Any = DifferenceDetector()
    else:
        from models.detector import ChangeDetector
        from pipelines.config import BuildwatchConfig
        from pipelines.detect import wrap_detector

        # the detector as `detect` runs it (the config's checks around it; flags switch them)
        config = BuildwatchConfig.model_validate(_common.check_config(args))
        detector = wrap_detector(
            ChangeDetector.load(args.weights, batch=config.detector.batch), config
        )
    rows = []
    for seed in args.seeds:
        folder = ensure_district(args.root, seed, args.size_m, args.gsd, False, args.days_before)
        rows.append(run_district(detector, folder))
    name = detector.card.name
    when = (
        f"baseline {args.days_before} days older"
        if args.days_before
        else "baseline 90-300 days older"
    )
    print(f"no-change districts ({args.size_m:g} m at {args.gsd:g} m/px, {when}), {name}, "
          "default config thresholds")  # fmt: skip
    print(f"{'district':24s} {'km2':>6s} {'tiles':>5s} {'cands':>5s} {'false':>5s} "
          f"{'per km2':>7s}  {'seasons':16s} causes")  # fmt: skip
    for r in rows:
        causes = ", ".join(f"{k} {v}" for k, v in sorted(r["causes"].items())) or "-"
        print(f"{r['district']:24s} {r['area_km2']:6.3f} {r['tiles']:5d} {r['candidates']:5d} "
              f"{r['false_leads']:5d} {r['per_km2']:7.2f}  {r['seasons']:16s} {causes}")  # fmt: skip
    area = sum(r["area_km2"] for r in rows)
    false = sum(r["false_leads"] for r in rows)
    pooled = round(false / area, 2) if area else None
    print(f"{'pooled':24s} {area:6.3f} {'':5s} {'':5s} {false:5d} {pooled:7.2f}  (target <= 1)")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": name, "rows": rows, "pooled_per_km2": pooled},
                                              indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
