"""A whole area built at once: does the baseline's measured detail stay honest?

    .venv/bin/python benchmarks/bench_new_estate.py [--gsd 0.3 0.5] [--fraction 1.0]
        [--detail-only] [--weights W [--with-members] --min-score T] [--json out.json]

The product measures what a baseline resolves against the flight
(``ImageryPair.measure_baseline_detail``) and, where the baseline is coarser than
``input.match_baseline_above_m``, shows the detector the flight at that GSD. Where most of the
compared area was built between the dates, the flight's new roofs have detail the baseline's
bare ground lacks, which a naive measure reads as a blurred baseline: the flight would then be
matched coarser than the baseline is, and new buildings lost.

Each real drone mosaic of ``../shared/data/fair-drone`` is the flight; its baseline is the same
mosaic with ``--fraction`` of its OSM buildings removed (texture transplant or inpainting, as the
training pseudo pairs do), made satellite-like at each ``--gsd`` (EPSG:3857, shifted 1.5 px,
other colours, blur, JPEG q60: ``bench_real_pairs.satellite_like``). Per mosaic and GSD: the
baseline's measured detail, the GSD the flight is compared at, and (unless ``--detail-only``)
object tp/fp/fn at IoU >= 0.25 against the removed buildings, through ``detect_leads`` with the
shipped detector, as configured and with matching off (``input.match_baseline_above_m: null``).
The mosaics are training imagery except the two marked held out: compare the two columns, not
the F1 with other sets. Skips (with a line) where the data is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import _common  # (also puts the repository on sys.path)
import cv2
import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from bench_real_pairs import DATA, satellite_like

from models.datasets.fairdrone import remove_buildings

HERE = Path(__file__).resolve().parents[1]
PREPARED = HERE / ".device" / "fairdrone"
HELD_OUT = {"area2_cluster01_z21", "area4_cluster02_z21"}


def _ids_at(src: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The prepared building-id mask of ``src``'s mosaic, on ``src``'s own grid (nearest)."""
    ids_png = PREPARED / f"{src.stem}_ids.png"
    if not ids_png.is_file():
        return None
    ids = cv2.imread(str(ids_png), cv2.IMREAD_UNCHANGED)
    return cv2.resize(ids, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def built_before(src: Path, out: Path, fraction: float, seed: int) -> tuple[Path, list] | None:
    """``src`` with ``fraction`` of its buildings removed, written to ``out``; and the removed
    buildings' outlines in ``src``'s CRS (None: no prepared id mask)."""
    with rasterio.open(src) as ds:
        profile, arr = ds.profile, ds.read([1, 2, 3])
        transform = ds.transform
    ids = _ids_at(src, arr.shape[1:])
    if ids is None:
        return None
    rng = np.random.default_rng(seed)
    present = [int(i) for i in np.unique(ids) if i > 0]
    take = [i for i in present if rng.random() < fraction]
    img = np.ascontiguousarray(np.moveaxis(arr, 0, -1))
    dilate = max(1, round(0.6 / abs(transform.a)))
    before = remove_buildings(img, ids, take, rng, dilate)
    profile.update(count=3, photometric="RGB", driver="GTiff")
    profile.pop("nodata", None)
    with rasterio.open(out, "w", **profile) as ds:
        ds.write(np.moveaxis(before, -1, 0))
    mask = np.isin(ids, take)
    truth = [
        shapely.geometry.shape(g)
        for g, v in rasterio.features.shapes(ids.astype(np.int32), mask=mask, transform=transform)
        if v > 0
    ]
    return out, [t for t in truth if t.area >= 4.0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gsd", type=float, nargs="+", default=[0.3, 0.5])
    ap.add_argument("--fraction", type=float, default=1.0, help="share of buildings removed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detail-only", action="store_true", help="measure, detect nothing")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--weights", type=Path, default=None, help="weights (default: shipped)")
    ap.add_argument("--min-score", type=float, default=None, help="lead threshold, both classes")
    _common.add_check_flags(ap)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from geo.tiles import open_pair
    from models.evaluate import iou_matrix, match_greedy
    from pipelines.config import BuildwatchConfig
    from pipelines.detect import detect_leads

    raw = _common.check_config(args)
    if args.min_score is not None:
        raw["filters"] = {"min_score": {"new_building": args.min_score,
                                        "construction": args.min_score}}  # fmt: skip
    config = BuildwatchConfig.model_validate(raw)
    radiometric = _common.shipped_radiometric(config, args.weights)
    configs = {"as configured": config}
    if not args.detail_only:
        from models.detector import ChangeDetector
        from pipelines.detect import wrap_detector

        off = config.model_dump()
        off["input"]["match_baseline_above_m"] = None
        configs["matching off"] = BuildwatchConfig.model_validate(off)
        det = wrap_detector(
            ChangeDetector.load(args.weights, device="cpu", batch=config.detector.batch), config
        )
    sources = sorted((DATA / "fair-drone").glob("area*/*.tif"))
    if not sources or not PREPARED.is_dir():
        print(f"({DATA / 'fair-drone'} or {PREPARED} not present: skipped; "
              "run `buildwatch build-dataset fairdrone-prepare .device/fairdrone`)")  # fmt: skip
        return
    rows: list[dict] = []
    totals: dict[tuple[float, str], list[int]] = {}
    for src in sources:
        with tempfile.TemporaryDirectory() as tmp:
            made = built_before(src, Path(tmp) / "before.tif", args.fraction, args.seed)
            if made is None:
                print(f"({src.stem}: no prepared id mask: skipped)")
                continue
            before, truth = made
            with rasterio.open(src) as ds:
                src_crs = ds.crs
            for gsd in args.gsd:
                sub = Path(tmp) / f"g{gsd:g}"
                sub.mkdir()
                baseline = satellite_like(before, sub, gsd)
                kwargs = config.coreg.pair_kwargs() | config.input.pair_kwargs()
                kwargs["radiometric"] = radiometric  # as detect opens it
                with open_pair(src, baseline, gsd=config.tiling.gsd or 0.2, **kwargs) as pair:
                    row = {
                        "mosaic": src.stem,
                        "held_out": src.stem in HELD_OUT,
                        "baseline_gsd": gsd,
                        "new_buildings": len(truth),
                        "detail_m": pair.baseline_detail_gsd_m,
                        "flight_seen_at_m": pair.flight_seen_at_m,
                    }
                for name, cfg in configs.items() if not args.detail_only else ():
                    res = detect_leads(src, baseline, predict=det, config=cfg)
                    leads = (
                        res.leads[res.leads["status"] == "lead"] if len(res.leads) else res.leads
                    )
                    g = np.asarray(leads.geometry.values, dtype=object)
                    t = np.asarray(
                        gpd.GeoSeries(truth, crs=src_crs).to_crs(res.crs).values, dtype=object
                    )
                    m = match_greedy(iou_matrix(g, t), np.asarray(leads["score"], float), 0.25)
                    tp = int((m >= 0).sum())
                    cell = [tp, len(g) - tp, len(t) - tp]
                    row[name] = {"tp": cell[0], "fp": cell[1], "fn": cell[2],
                                 "seen_at_m": res.flight_seen_at_m}  # fmt: skip
                    acc = totals.setdefault((gsd, name), [0, 0, 0])
                    for k in range(3):
                        acc[k] += cell[k]
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for (gsd, name), (tp, fp, fn) in sorted(totals.items()):
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        summary[f"{gsd:g} m, {name}"] = {"tp": tp, "fp": fp, "fn": fn, "f1": round(f1, 3)}
        print(f"baseline {gsd:g} m, {name:14s} F1 {f1:.3f} ({tp}/{fp}/{fn})")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
