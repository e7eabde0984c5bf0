"""Real imagery through the product, comparable across versions of the code.

    .venv/bin/python benchmarks/bench_real_pairs.py [--label now] [--coreg-off]

Measures, with the ``geo``/``models``/``pipelines`` of the checkout it sits in (``_common``
puts that checkout first on ``sys.path``; to measure an older commit with this same harness,
copy it in: ``git worktree add /tmp/old COMMIT && cp benchmarks/bench_real_pairs.py
benchmarks/_common.py /tmp/old/benchmarks/ && cd /tmp/old && /work/main/.venv/bin/python
benchmarks/bench_real_pairs.py --label before``):

* **change pairs** — WHU-CD (0.2 m) and DSIFN-CD (≈0.5 m) from ``../shared/data``, each pair
  georeferenced in UTM 50N with its baseline shifted by 0 and 2 px (this repository's
  ``geo/pairsets.py``, loaded by file path), run through ``pipelines.detect.detect_leads``
  with the default config and the shipped weights; per set: pairs compared (tiles read and a
  compared area > 0), pairs that stopped with a co-registration error, pairs refused at the
  door as coarser than ``input.max_flight_gsd_m`` / ``max_baseline_gsd_m``, object tp/fp/fn and F1
  (IoU >= 0.25 against the label's changed blobs as polygons), false leads per km² compared,
  the median lead-area / true-area ratio of matched objects, and what each error is
  (``errors``: :func:`error_kinds`);
* **no-change pairs** — every fair-drone mosaic (the two held out of training are marked) and
  the ODM orthophoto against a satellite-like copy of itself (an EPSG:3857 warp at 0.3, 0.4, 0.5
  or 0.6 m in turn, other colours, blur, JPEG q60, a 1.5 px shift at that GSD): every lead is
  false.

``--dsifn-gsd`` reads DSIFN-CD at another GSD than 0.5 m. ``--weights`` measures other weights, ``--gsd`` another working GSD (tiling.gsd), ``--min-score``
another lead threshold (both classes), ``--consensus`` the detector with scale consensus on,
``--no-unchanged`` without the unchanged-structure test the default config runs.

Validation only: nothing here is trained on. Skips (with a line) what is absent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
from pathlib import Path

import _common  # (also puts the repository on sys.path)
import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

HERE = Path(__file__).resolve().parents[1]
DATA = HERE.parent / "shared" / "data"


def _load(name: str, path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def change_pairs(det, config, dsifn_gsd: float = 0.5) -> dict:  # type: ignore[no-untyped-def]
    from models.evaluate import iou_matrix, match_greedy
    from pipelines.detect import detect_leads

    pairsets = _load("bw_pairsets", HERE / "geo" / "pairsets.py")
    out = {}
    for set_name, gsd in (("whu-cd", 0.2), ("dsifn-cd", dsifn_gsd)):
        root = DATA / set_name
        if not root.is_dir():
            print(f"({root} not present: skipped)")
            continue
        for shift in (0.0, 2.0):
            t = {"pairs": 0, "compared": 0, "stopped": 0, "refused": 0, "tp": 0, "fp": 0,
                 "fn": 0}  # fmt: skip
            km2, ratios = 0.0, []
            kinds: dict[str, int] = {}
            for name in pairsets.list_pairs(root):
                with tempfile.TemporaryDirectory() as tmp:
                    gp = pairsets.georeference_pair(root, name, Path(tmp), gsd, shift_px=shift)
                    t["pairs"] += 1
                    try:
                        res = detect_leads(gp.flight, gp.baseline, predict=det, config=config)
                    except Exception as exc:
                        kind = type(exc).__name__
                        if kind == "RasterError" and "native pixel" in str(exc):
                            t["refused"] += 1  # coarser than input.max_*_gsd_m: not compared
                        elif kind == "CoregistrationError":
                            t["stopped"] += 1
                        else:
                            raise
                        t["fn"] += len(gp.truth)
                        continue
                    area = float(res.coverage.area) if res.coverage is not None else 0.0
                    if res.n_tiles > 0 and area > 0:
                        t["compared"] += 1
                        km2 += area / 1e6
                    leads = (
                        res.leads[res.leads["status"] == "lead"] if len(res.leads) else res.leads
                    )
                    g = np.asarray(leads.geometry.values, dtype=object)
                    truth = np.asarray(gp.truth.to_crs(res.crs).geometry.values, dtype=object)
                    m = match_greedy(iou_matrix(g, truth), np.asarray(leads["score"], float), 0.25)
                    tp = int((m >= 0).sum())
                    t["tp"] += tp
                    t["fp"] += len(g) - tp
                    t["fn"] += len(truth) - tp
                    ratios += [float(g[i].area / truth[j].area) for i, j in enumerate(m) if j >= 0]
                    for k in error_kinds(g, truth, m):
                        kinds[k] = kinds.get(k, 0) + 1
            p = t["tp"] / (t["tp"] + t["fp"]) if t["tp"] + t["fp"] else 0.0
            r = t["tp"] / (t["tp"] + t["fn"]) if t["tp"] + t["fn"] else 0.0
            row = {
                **t,
                "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
                "compared_km2": round(km2, 4),
                "false_per_km2": round(t["fp"] / km2, 1) if km2 else None,
                "area_ratio": round(float(np.median(ratios)), 2) if ratios else None,
                "errors": dict(sorted(kinds.items())),
            }
            out[f"{set_name} shift {shift:g} px"] = row
            print(f"{set_name:9s} shift {shift:g} px  {json.dumps(row)}", flush=True)
    return out


def error_kinds(leads, truth, match) -> list[str]:  # type: ignore[no-untyped-def]
    """What each unmatched lead and missed structure is, for the row's ``errors``:

    * ``fp_off_change`` — a false lead with < 10 % of its area on any changed structure;
    * ``fp_spans`` — a false lead over more than one changed structure (each ≥ 10 % of it);
    * ``fp_outline`` — a false lead on one changed structure, IoU 0.1–0.25 (outlined badly);
    * ``fp_part`` — a false lead on one changed structure, IoU < 0.1 (a small part of it);
    * ``fn_unseen`` — a missed structure that leads cover < 5 % of;
    * ``fn_part`` — a missed structure that leads cover 5–50 % of;
    * ``fn_covered`` — a missed structure leads cover ≥ 50 % of, none at IoU ≥ 0.25.
    """
    import shapely

    from models.evaluate import iou_matrix

    out: list[str] = []
    iou = iou_matrix(leads, truth)
    union = shapely.union_all(truth) if len(truth) else shapely.Polygon()
    for i, g in enumerate(leads):
        if match[i] >= 0:
            continue
        if g.intersection(union).area < 0.1 * g.area:
            out.append("fp_off_change")
        elif sum(g.intersection(t).area > 0.1 * g.area for t in truth) > 1:
            out.append("fp_spans")
        else:
            out.append("fp_outline" if iou[i].max() >= 0.1 else "fp_part")
    found = {int(j) for j in match if j >= 0}
    for j, t in enumerate(truth):
        if j in found:
            continue
        cover = sum(g.intersection(t).area for g in leads) / t.area if len(leads) else 0.0
        out.append("fn_unseen" if cover < 0.05 else "fn_part" if cover < 0.5 else "fn_covered")
    return out


def satellite_like(src: Path, tmp: Path, gsd: float, written_gsd: float | None = None) -> Path:
    """``src`` as a satellite-like baseline in ``tmp``: warped to EPSG:3857 at ``gsd`` m with a
    1.5 px shift, other colours, blur (sigma 0.8 px), JPEG q60; with ``written_gsd`` then
    resampled (bilinear) onto that finer grid, as a map service delivers a coarse image."""
    warped_copy = _load("bw_bench_data", HERE / "benchmarks" / "_bench_data.py").warped_copy
    shift = (1.5 * gsd * 0.8, -1.5 * gsd * 0.6)
    base = warped_copy(src, tmp / "w.tif", CRS.from_epsg(3857), gsd, shift)
    with rasterio.open(base) as ds:
        profile, arr = ds.profile, ds.read()
    rgb = cv2.GaussianBlur(np.ascontiguousarray(np.moveaxis(arr[:3], 0, -1)), (0, 0), 0.8)
    _, enc = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 60])
    arr[:3] = np.moveaxis(cv2.imdecode(enc, cv2.IMREAD_UNCHANGED), -1, 0)
    if written_gsd is not None and written_gsd < gsd:
        f = gsd / written_gsd
        h, w = round(arr.shape[1] * f), round(arr.shape[2] * f)
        arr = np.stack([cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR) for a in arr])
        t = profile["transform"]
        profile.update(width=w, height=h,
                       transform=t @ Affine.scale(profile["width"] / w, profile["height"] / h))  # fmt: skip
    baseline = tmp / "baseline.tif"
    with rasterio.open(baseline, "w", **profile) as ds:
        ds.write(arr)
    return baseline


def no_change(det, config, keep=None, baseline_gsd=None, written_gsd=None) -> dict:  # type: ignore[no-untyped-def]
    """False leads on the no-change pairs; ``keep`` (a list) also gets (leads, None, km²) each;
    ``baseline_gsd`` warps every baseline to that GSD instead of 0.3-0.6 m in turn;
    ``written_gsd`` then resamples each baseline onto that finer grid (bilinear), as a map
    service or export delivers a coarse image on finer tiles: it declares that pixel."""
    from pipelines.detect import detect_leads

    held_out = {"area2_cluster01_z21", "area4_cluster02_z21", "orthophoto"}
    sources = sorted((DATA / "fair-drone").glob("area*/*.tif")) + [DATA / "odm" / "orthophoto.tif"]
    rows: dict = {}
    km2_total, false_total = 0.0, 0
    km2_held, false_held = 0.0, 0
    for k, src in enumerate(sources):
        if not src.is_file():
            print(f"({src} not present: skipped)")
            continue
        base_gsd = baseline_gsd or (0.3, 0.4, 0.5, 0.6)[k % 4]
        with tempfile.TemporaryDirectory() as tmp:
            baseline = satellite_like(src, Path(tmp), base_gsd, written_gsd)
            try:
                res = detect_leads(src, baseline, predict=det, config=config)
            except Exception as exc:
                rows[src.stem] = {"stopped": f"{type(exc).__name__}: {str(exc)[:100]}"}
                print(f"{src.stem:22s} {json.dumps(rows[src.stem], ensure_ascii=False)}")
                continue
            km2 = (float(res.coverage.area) if res.coverage is not None else 0.0) / 1e6
            n = int((res.leads["status"] == "lead").sum()) if len(res.leads) else 0
            if keep is not None:
                keep.append((res.leads, None, km2))
            reg = res.registration
            status = reg.get("status") or ("passed" if reg.get("gate_passed") else "gate failed")
            rows[src.stem] = {"compared_km2": round(km2, 4), "false_leads": n, "coreg": status,
                              "baseline_gsd": base_gsd, "held_out": src.stem in held_out}  # fmt: skip
            if written_gsd is not None:
                rows[src.stem]["written_gsd"] = written_gsd
            for key in ("baseline_detail_gsd_m", "flight_seen_at_m"):
                if getattr(res, key, None) is not None:
                    rows[src.stem][key] = getattr(res, key)
            km2_total += km2
            false_total += n
            if src.stem in held_out:
                km2_held += km2
                false_held += n
            print(f"{src.stem:22s} {json.dumps(rows[src.stem])}", flush=True)
    rows["total"] = {
        "compared_km2": round(km2_total, 4),
        "false_leads": false_total,
        "false_per_km2": round(false_total / km2_total, 1) if km2_total else None,
        "held_out_false_per_km2": round(false_held / km2_held, 1) if km2_held else None,
    }
    print(f"{'total':22s} {json.dumps(rows['total'])}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="now", help="name of this measurement in the output")
    ap.add_argument("--coreg-off", action="store_true", help="co-registration mode off")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--weights", type=Path, default=None, help="weights (default: shipped)")
    ap.add_argument("--gsd", type=float, default=None, help="working GSD (tiling.gsd)")
    ap.add_argument("--min-score", type=float, default=None, help="lead threshold, both classes")
    ap.add_argument("--only", choices=["change", "no_change"], default=None)
    ap.add_argument("--no-input-limits", action="store_true",
                    help="compare imagery of any GSD (input.max_flight_gsd_m / "
                    "max_baseline_gsd_m off): measures the detector beyond the product's limits")  # fmt: skip
    ap.add_argument("--no-match", action="store_true",
                    help="input.match_baseline_above_m off: the flight as flown against any "
                    "baseline (model card, Matching the flight to a coarse baseline)")  # fmt: skip
    ap.add_argument("--nochange-written-gsd", type=float, default=None, metavar="M",
                    help="resample each no-change baseline onto this finer grid after making it "
                    "(a resampled product: declares M, resolves --nochange-baseline-gsd)")  # fmt: skip
    ap.add_argument("--nochange-baseline-gsd", type=float, default=None, metavar="M",
                    help="warp every no-change baseline to M m (default: 0.3-0.6 m in turn)")  # fmt: skip
    ap.add_argument("--dsifn-gsd", type=float, default=0.5, metavar="M",
                    help="the GSD DSIFN-CD is read at (default 0.5 m, as its README says; "
                    "objects of known size put it near 2 m: model card)")  # fmt: skip
    _common.add_check_flags(ap)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from models.detector import ChangeDetector
    from pipelines.config import BuildwatchConfig
    from pipelines.detect import wrap_detector

    raw: dict = _common.check_config(args, {"coreg": {"mode": "off"}} if args.coreg_off else {})
    if args.gsd:
        raw["tiling"] = {"gsd": args.gsd}
    if args.no_input_limits:
        raw["input"] = {"max_flight_gsd_m": None, "max_baseline_gsd_m": None}
    if args.no_match:
        raw.setdefault("input", {})["match_baseline_above_m"] = None
    if args.min_score is not None:
        raw["filters"] = {"min_score": {"new_building": args.min_score,
                                        "construction": args.min_score}}  # fmt: skip
    config = BuildwatchConfig.model_validate(raw)
    # the detector as `detect` runs it: the checks the config switches on around it
    det = wrap_detector(
        ChangeDetector.load(args.weights, device="cpu", batch=config.detector.batch), config
    )
    result: dict = {}
    if args.only != "no_change":
        print(f"== {args.label}: change pairs (WHU-CD, DSIFN-CD) through detect_leads")
        result["change"] = change_pairs(det, config, args.dsifn_gsd)
    if args.only != "change":
        print(f"== {args.label}: no-change pairs (drone mosaics, ODM vs satellite-like copy)")
        result["no_change"] = no_change(det, config, baseline_gsd=args.nochange_baseline_gsd,
                                        written_gsd=args.nochange_written_gsd)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
