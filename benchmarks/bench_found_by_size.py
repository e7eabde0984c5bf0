"""The real pairs' changed buildings found and missed, by the size of their true footprint.

    python benchmarks/bench_found_by_size.py WEIGHTS [MEMBER ...] [--member-weights 3 3 2]
        [--min-score 0.3] [--bins 100 300 1000] [--json out.json]

One weights file runs alone (the shipped ones alone, without the configured members); with
members, they run as one ensemble (``models.ensemble.ModelEnsemble``, ``--member-weights`` the
votes, the first file's outline). Everything else is the default config through
``pipelines.detect.detect_leads`` at ``--min-score``, as ``bench_detector_sets.py`` runs WHU-CD at
0.2 m and DSIFN-CD at 0.5 m; a changed building counts as found when a lead matches it at
IoU >= 0.25. What it shows is what a threshold hides: whether a detector misses a set's large
buildings or its small ones (model card, Training item 42). Skips a set that is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
from bench_detector_sets import _runs_pairs

from models.detector import ChangeDetector
from models.ensemble import ModelEnsemble
from models.evaluate import iou_matrix, match_greedy
from pipelines.config import BuildwatchConfig
from pipelines.detect import wrap_detector

SETS = (("whu-cd", 0.2), ("dsifn-cd", 0.5))


def found_by_size(runs: list[Any], edges: list[float], t: float) -> tuple[list[int], list[int]]:
    """``(found, total)`` per size bin (``edges`` in m², open at the top) over ``runs``."""
    found = [0] * (len(edges) + 1)
    total = [0] * (len(edges) + 1)
    for leads, truth, _km2 in runs:
        hit: set[int] = set()
        if leads is not None and len(truth):
            sel = leads[(leads["status"] == "lead") & (leads["score"] >= t)]
            geoms = np.asarray(sel.geometry.values, object)
            if len(geoms):
                m = match_greedy(iou_matrix(geoms, truth), np.asarray(sel["score"], float), 0.25)
                hit = {int(j) for j in m if j >= 0}
        for j, g in enumerate(truth):
            k = int(np.searchsorted(edges, g.area, side="right"))
            total[k] += 1
            found[k] += j in hit
    return found, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", help="the main detector's weights, then members'")
    ap.add_argument("--member-weights", nargs="+", type=float, default=None)
    ap.add_argument("--min-score", type=float, default=0.3)
    ap.add_argument("--bins", nargs="+", type=float, default=[100.0, 300.0, 1000.0])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    dets = [ChangeDetector.load(w, device="cpu") for w in args.weights]
    several = len(dets) > 1
    config = BuildwatchConfig.model_validate(
        {
            "filters": {"min_score": {"new_building": args.min_score, "construction": 0.8}},
            "detector": {"ensemble": {"enabled": several}},
        }
    )
    det: Any = dets[0]
    if several:
        votes = args.member_weights or [1.0] * len(dets)
        if len(votes) != len(dets):
            raise SystemExit(f"--member-weights: give {len(dets)} numbers, one per weights file")
        det = ModelEnsemble(dets, weights=votes)
    det = wrap_detector(det, config)
    edges = sorted(args.bins)
    names = [f"< {edges[0]:g} m²"]
    names += [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:], strict=False)]
    names += [f">= {edges[-1]:g}"]
    out: dict[str, Any] = {}
    for name, gsd in SETS:
        runs = _runs_pairs(det, config, name, gsd)
        if not runs:
            print(f"{name}: not found under ../shared/data; skipped")
            continue
        found, total = found_by_size(runs, edges, args.min_score)
        out[name] = {n: {"found": f, "of": t} for n, f, t in zip(names, found, total, strict=True)}
        cells = " | ".join(f"{n} {f}/{t}" for n, f, t in zip(names, found, total, strict=True))
        print(f"{name} at {args.min_score:g}: {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
