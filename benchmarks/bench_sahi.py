"""buildwatch's detection against SAHI sliced prediction, same weights, same flight.

    .venv/bin/pip install '.[bench]'          # sahi, for this benchmark only
    .venv/bin/python benchmarks/bench_sahi.py [--size-m 1000] [--seed 7]

Flight: a synthetic district (``buildwatch synth-district``, 0.1 m, EPSG:4544) and its EPSG:3857
baseline with a known misregistration; both tools get the shipped weights.

* **buildwatch**: ``detect_leads`` end to end (open, co-register, tile, OpenVINO, merge seams,
  filter) — what ``buildwatch detect`` runs.
* **SAHI**: the same pair read into one 6-band array at the working GSD (our aligned reader, so
  the registration is the same; its time counted: SAHI needs the image in memory), then
  ``get_sliced_prediction`` with 512 px slices, the same 64 px overlap, its default GREEDYNMM
  merge, on the weights through ultralytics (PyTorch, CPU; SAHI has no OpenVINO path for a
  6-channel model). Its confidence floor is the lowest of our per-class thresholds; its results
  are then held to our per-class thresholds, so both keep the same scores.

Duplicates: pairs of same-class outputs whose overlap is ≥ 50 % of the smaller one (the same
structure reported twice, typically across a seam). F1 against the district's truth (new
buildings and construction sites, IoU ≥ 0.25) shows neither side gained speed by losing finds.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import geopandas as gpd  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402


def duplicates(geoms: list[shapely.Geometry], classes: list[str]) -> int:
    tree = shapely.STRtree(geoms)
    n = 0
    for i, g in enumerate(geoms):
        for j in tree.query(g):
            if j <= i or classes[j] != classes[i]:
                continue
            inter = g.intersection(geoms[j]).area
            if inter >= 0.5 * min(g.area, geoms[j].area) > 0:
                n += 1
    return n


def f1(pred: list[shapely.Geometry], truth: list[shapely.Geometry]) -> float:
    used: set[int] = set()
    tp = 0
    for p in pred:
        for k, t in enumerate(truth):
            if k in used:
                continue
            union = p.union(t).area
            if union > 0 and p.intersection(t).area / union >= 0.25:
                used.add(k)
                tp += 1
                break
    prec = tp / len(pred) if pred else 0.0
    rec = tp / len(truth) if truth else 0.0
    return 2 * prec * rec / (prec + rec) if prec + rec else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-m", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    try:
        from sahi import AutoDetectionModel
        from sahi.predict import get_sliced_prediction
    except ImportError:
        raise SystemExit("sahi is not installed: .venv/bin/pip install '.[bench]'") from None

    from geo.synthetic.district import generate_district
    from geo.tiles import open_pair
    from models.detector import DEFAULT_WEIGHTS, ChangeDetector
    from models.runtime import configure_ultralytics
    from pipelines.config import BuildwatchConfig
    from pipelines.detect import detect_leads

    work = Path(tempfile.gettempdir()) / "buildwatch-bench" / f"sahi-{args.seed}-{args.size_m:g}"
    d = generate_district(work, seed=args.seed, size_m=args.size_m, overwrite=True)
    truth = gpd.read_file(d.truth)
    truth = truth[truth["expected"] == "lead"]  # what should become a lead
    cfg = BuildwatchConfig()
    thresholds = cfg.filters.thresholds()
    floor = min(float(v) for v in thresholds["min_score"].values())

    # buildwatch, end to end
    t0 = time.perf_counter()
    det = ChangeDetector.load()
    res = detect_leads(d.flight, d.baseline, predict=det, config=cfg)
    ours_s = time.perf_counter() - t0
    leads = res.leads[res.leads["status"] == "lead"]
    ours_geoms = list(leads.geometry)
    ours_cls = list(leads["class"])

    # SAHI: the aligned 6-band mosaic at the working GSD, then sliced prediction
    configure_ultralytics()
    gsd, size, overlap = det.card.working_gsd_m, det.card.imgsz, det.card.overlap
    t0 = time.perf_counter()
    with open_pair(d.flight, d.baseline, gsd=gsd, **cfg.coreg.pair_kwargs()) as pair:
        left, top = pair.transform.c, pair.transform.f
        bounds = (left, top - pair.height * gsd, left + pair.width * gsd, top)
        flight, base, transform = pair.read_window(bounds)
        crs = pair.crs
    mosaic = np.concatenate([flight, base], axis=2)[:, :, ::-1].copy()  # SAHI flips to "BGR"
    model = AutoDetectionModel.from_pretrained(
        model_type="ultralytics", model_path=str(DEFAULT_WEIGHTS), confidence_threshold=floor,
        device="cpu", image_size=size,
    )  # fmt: skip
    result = get_sliced_prediction(
        mosaic, model, slice_height=size, slice_width=size,
        overlap_height_ratio=overlap / size, overlap_width_ratio=overlap / size, verbose=0,
    )  # fmt: skip
    sahi_s = time.perf_counter() - t0
    names = det.card.classes
    sahi_geoms, sahi_cls = [], []
    for p in result.object_prediction_list:
        name = names[p.category.id] if p.category.id < len(names) else str(p.category.id)
        if p.score.value < float(thresholds["min_score"].get(name, floor)):
            continue
        x0, y0, x1, y1 = p.bbox.to_xyxy()
        poly = shapely.box(x0, y0, x1, y1)
        if p.mask is not None:
            parts = [shapely.Polygon(np.asarray(s).reshape(-1, 2)) for s in p.mask.segmentation
                     if len(s) >= 6]  # fmt: skip
            if parts:
                poly = shapely.union_all([q.buffer(0) for q in parts])
        sahi_geoms.append(shapely.affinity.affine_transform(
            poly, [transform.a, transform.b, transform.d, transform.e, transform.xoff,
                   transform.yoff]))  # fmt: skip
        sahi_cls.append(name)
    t = list(truth.to_crs(crs).geometry)
    rows = {
        "buildwatch": {"seconds": round(ours_s, 1), "outputs": len(ours_geoms),
                       "duplicates": duplicates(ours_geoms, ours_cls),
                       "f1": round(f1(ours_geoms, t), 3)},
        "sahi": {"seconds": round(sahi_s, 1), "outputs": len(sahi_geoms),
                 "duplicates": duplicates(sahi_geoms, sahi_cls), "f1": round(f1(sahi_geoms, t), 3)},
    }  # fmt: skip
    rows["speed_ratio"] = round(sahi_s / ours_s, 2)  # type: ignore[assignment]
    rows["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # type: ignore[assignment]
    print(json.dumps(rows))
    print(f"\nSAHI vs buildwatch: {d.flight.name} {args.size_m:g} m (seed {args.seed}), "
          f"{len(t)} true new structures")  # fmt: skip
    print("| | seconds | outputs | seam duplicates | F1 |")
    print("|---|---|---|---|---|")
    for k in ("buildwatch", "sahi"):
        r = rows[k]
        print(f"| {k} | {r['seconds']} | {r['outputs']} | {r['duplicates']} | {r['f1']} |")  # type: ignore[index]
    print(f"buildwatch is {rows['speed_ratio']}x faster")


if __name__ == "__main__":
    main()
