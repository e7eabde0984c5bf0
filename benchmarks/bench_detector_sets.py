"""Every target of the detector in one table, per weights and lead threshold, through the product.

    python benchmarks/bench_detector_sets.py --weights A.pt [B.pt ...] [--min-score 0.4 0.5]
        [--gsd 0.2] [--sets synthetic whu dsifn nochange-syn nochange-real] [--json out.json]
        [--consensus] [--unchanged [MIN_NCC] | --no-unchanged]

For each weights file and ``min_score`` (both classes), everything runs through
``pipelines.detect.detect_leads`` with the default config otherwise, objects matched at IoU >= 0.25:

* ``synthetic``: the held-out test districts (seeds 1001, 2002, 3003; 800 m at 0.1 m) — tp/fp/fn,
  F1 and the median lead-area / true-area ratio of matched objects;
* ``whu`` / ``dsifn``: the real pairs in ``../shared/data`` (validation only; 0.2 m and ≈0.5 m),
  class-agnostic against the label's changed blobs (``pipelines.evaluate_pairs``);
* ``nochange-syn``: districts 5001-5003 made with nothing built, the baseline in another season —
  false leads per km²;
* ``nochange-real``: every drone mosaic and the ODM orthophoto against a satellite-like copy of
  itself (``bench_real_pairs.no_change``) — false leads per km².

``--gsd`` sets another working GSD (tiling.gsd) to measure scale. Skips what is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # (also puts the repository on sys.path)
import numpy as np
from bench_nochange import ensure_district

from models.evaluate import iou_matrix, match_greedy
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads, wrap_detector

HERE = Path(__file__).resolve().parents[1]
DATA = HERE.parent / "shared" / "data"
ROOT = Path(tempfile.gettempdir()) / "buildwatch-bench"


def _prf(tp: int, fp: int, fn: int) -> float:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return round(2 * p * r / (p + r), 3) if p + r else 0.0


#: one detect run: (leads GeoDataFrame, truth geometries in its CRS or None, km² compared)
Run = tuple[Any, np.ndarray | None, float]


def _runs_synthetic(det: Any, config: BuildwatchConfig, changes: bool) -> list[Run]:
    import geopandas as gpd

    out: list[Run] = []
    seeds = (1001, 2002, 3003) if changes else (5001, 5002, 5003)
    for seed in seeds:
        d = ensure_district(ROOT / ("districts" if changes else "nochange"), seed, 800.0, 0.1,
                            changes)  # fmt: skip
        res = detect_leads(d / "flight.tif", d / "baseline.tif", predict=det, config=config)
        km2 = float(res.coverage_m2.get("common", 0.0)) / 1e6
        truth = None
        if changes:
            t = gpd.read_file(d / "truth.gpkg", layer="changes")
            t = t[t["class"].isin(["new_building", "construction"])].to_crs(res.crs)
            truth = np.asarray(t.geometry.values, object)
        out.append((res.leads, truth, km2))
    return out


def _runs_pairs(det: Any, config: BuildwatchConfig, name: str, gsd: float) -> list[Run]:
    from geo.errors import CoregistrationError
    from geo.pairsets import georeference_pair, list_pairs

    root = DATA / name
    out: list[Run] = []
    if not root.is_dir():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        for pair in list_pairs(root):
            gp = georeference_pair(root, pair, Path(tmp) / Path(pair).stem, gsd)
            truth = np.asarray(gp.truth.geometry.values, object)
            try:
                res = detect_leads(gp.flight, gp.baseline, predict=det, config=config)
            except CoregistrationError:
                out.append((None, truth, 0.0))
                continue
            truth = np.asarray(gp.truth.to_crs(res.crs).geometry.values, object)
            out.append((res.leads, truth, float(res.coverage_m2.get("compared", 0.0)) / 1e6))
    return out


def _runs_nochange_real(det: Any, config: BuildwatchConfig) -> list[Run]:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "bw_brp", HERE / "benchmarks" / "bench_real_pairs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bw_brp"] = module
    spec.loader.exec_module(module)
    runs: list[Run] = []
    module.no_change(det, config, keep=runs)
    return runs


def score(runs: list[Run], t: float) -> dict[str, Any]:
    """tp/fp/fn, F1, false leads per km² and area ratio of ``runs`` with leads scoring >= ``t``."""
    tp = fp = fn = 0
    km2 = 0.0
    ratios: list[float] = []
    for leads, truth, area in runs:
        km2 += area
        if leads is None or not len(leads):
            fn += 0 if truth is None else len(truth)
            continue
        sel = leads[(leads["status"] == "lead") & (leads["score"] >= t)]
        g = np.asarray(sel.geometry.values, object)
        if truth is None:
            fp += len(g)
            continue
        m = match_greedy(iou_matrix(g, truth), np.asarray(sel["score"], float), 0.25)
        k = int((m >= 0).sum())
        tp, fp, fn = tp + k, fp + len(g) - k, fn + len(truth) - k
        ratios += [float(g[i].area / truth[j].area) for i, j in enumerate(m) if j >= 0]
    out: dict[str, Any] = {"tp": tp, "fp": fp, "fn": fn, "f1": _prf(tp, fp, fn),
                           "false_per_km2": round(fp / km2, 2) if km2 else None}  # fmt: skip
    out["area_ratio"] = round(float(np.median(ratios)), 2) if ratios else None
    return out


def markdown_row(label: str, row: dict[str, Any]) -> str:
    """One line of the model card's "Measured through the product" table."""

    def found(r: dict[str, Any] | None, rate: bool) -> str:
        if not r:
            return "–"
        text = f"{r['f1']:.2f} ({r['tp']}/{r['fp']}/{r['fn']})"
        return text + (f" · {r['false_per_km2']}" if rate else "") + f" · {r['area_ratio']}"

    def quiet(r: dict[str, Any] | None) -> str:
        return f"{r['false_per_km2']} ({r['fp']})" if r else "–"

    cells = [label, str(row["min_score"]), found(row.get("synthetic"), False),
             found(row.get("whu"), True), found(row.get("dsifn"), True),
             quiet(row.get("nochange_syn")), quiet(row.get("nochange_real"))]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", default=[None])
    ap.add_argument("--min-score", type=float, nargs="+", default=[None])
    ap.add_argument("--gsd", type=float, default=None)
    ap.add_argument("--backend", default="auto")
    ap.add_argument(
        "--ensemble",
        type=Path,
        nargs="+",
        default=None,
        metavar="WEIGHTS",
        help="more detectors averaged with each --weights (models/ensemble.py)",
    )
    ap.add_argument("--ensemble-weights", type=float, nargs="+", default=None)
    _common.add_check_flags(ap)
    ap.add_argument("--sets", nargs="+",
                    default=["synthetic", "whu", "dsifn", "nochange-syn", "nochange-real"])  # fmt: skip
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", metavar="LABEL", default=None,
                    help="also print each row as a line of the model card's table, labelled")  # fmt: skip
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from models.detector import ChangeDetector

    rows = []
    thresholds = sorted(t for t in args.min_score if t is not None) or [None]
    for weights in args.weights:
        raw: dict[str, Any] = _common.check_config(args)
        if thresholds[0] is not None:  # one run at the lowest threshold; the others filter it
            low = thresholds[0]
            raw["filters"] = {"min_score": {"new_building": low, "construction": low}}
        if args.gsd:
            raw["tiling"] = {"gsd": args.gsd}
        config = BuildwatchConfig.model_validate(raw)
        # the detector as `detect` runs it: the checks the config switches on around it
        base = ChangeDetector.load(weights, device="cpu", backend=args.backend)
        if args.ensemble:
            from models.ensemble import ModelEnsemble

            others = [ChangeDetector.load(w, device="cpu", backend=args.backend)
                      for w in args.ensemble]  # fmt: skip
            base = ModelEnsemble([base, *others], weights=args.ensemble_weights)
        det = wrap_detector(base, config)
        t0 = time.perf_counter()
        runs: dict[str, list[Run]] = {}
        if "synthetic" in args.sets:
            runs["synthetic"] = _runs_synthetic(det, config, True)
        if "whu" in args.sets:
            runs["whu"] = _runs_pairs(det, config, "whu-cd", 0.2)
        if "dsifn" in args.sets:
            runs["dsifn"] = _runs_pairs(det, config, "dsifn-cd", 0.5)
        if "nochange-syn" in args.sets:
            runs["nochange_syn"] = _runs_synthetic(det, config, False)
        if "nochange-real" in args.sets:
            runs["nochange_real"] = _runs_nochange_real(det, config)
        seconds = round(time.perf_counter() - t0, 1)
        for t in thresholds:
            cut = t if t is not None else 0.0
            row: dict[str, Any] = {"weights": str(weights or "shipped"), "min_score": t,
                                   "gsd": args.gsd, **_common.checks_label(config),
                                   "seconds": seconds}  # fmt: skip
            row.update({name: score(r, cut) for name, r in runs.items()})
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.markdown:
                print(markdown_row(args.markdown, row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
