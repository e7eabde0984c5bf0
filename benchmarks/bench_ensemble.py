"""What the model ensemble costs: detect time with the main detector alone, with the ensemble
looking at every tile, and with it gated (a cascade), in one run; and that the gate loses no lead.

    python benchmarks/bench_ensemble.py [--ensemble W.pt ...] [--member-weights 3 3 2]
        [--gate auto] [--min-score 0.30] [--main W.pt] [--front 2] [--[no-]direction]
        [--json out.json]

The defaults are the shipped ensemble (``pipelines.config``: the seed-4 YOLO11n-seg and the
Siamese member beside the main detector, 3:3:2, two in front, the direction test on). The main
detector is loaded as ``buildwatch detect`` loads it (the config's batch of tiles per call).

Each input goes through ``pipelines.detect.detect_leads`` as ``buildwatch detect`` runs it (the
default config otherwise, OpenVINO on this CPU), after a warm-up: the synthetic test district 1001
and no-change district 5001 (800 m at 0.1 m, ``bench_nochange.ensure_district``) and, where
``../shared/data`` is present, the WHU-CD pairs (real aerial, 0.2 m). Per input and way: seconds,
km²/h of compared area, leads, and the share of tiles the other members looked at; then
``gated / ungated`` leads compared (count and scores at ``--min-score``) and the time ratios.
Peak RSS of the process at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
from bench_nochange import ensure_district

from pipelines.config import (
    DEFAULT_ENSEMBLE_MEMBERS,
    DEFAULT_FRONT,
    DEFAULT_MEMBER_WEIGHTS,
    DEFAULT_MIN_SCORE,
    BuildwatchConfig,
)
from pipelines.detect import detect_leads, wrap_detector

HERE = Path(__file__).resolve().parents[1]
DATA = HERE.parent / "shared" / "data"
ROOT = Path(tempfile.gettempdir()) / "buildwatch-bench"


def _inputs(tmp: Path) -> list[tuple[str, Path, Path]]:
    out = []
    for seed, changes in ((1001, True), (5001, False)):
        d = ensure_district(ROOT / ("districts" if changes else "nochange"), seed, 800.0, 0.1,
                            changes)  # fmt: skip
        out.append((f"synthetic {'change' if changes else 'no-change'} {seed}",
                    d / "flight.tif", d / "baseline.tif"))  # fmt: skip
    root = DATA / "whu-cd"
    if root.is_dir():
        from geo.pairsets import georeference_pair, list_pairs

        for pair in list_pairs(root):
            gp = georeference_pair(root, pair, tmp / Path(pair).stem, 0.2)
            out.append((f"WHU-CD {Path(pair).stem}", gp.flight, gp.baseline))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", nargs="+", default=list(DEFAULT_ENSEMBLE_MEMBERS))
    ap.add_argument("--member-weights", type=float, nargs="+", default=list(DEFAULT_MEMBER_WEIGHTS))
    ap.add_argument(
        "--gate",
        type=lambda v: v if v == "auto" else float(v),
        default="auto",
        help="the gate to compare with every tile (auto: as the config computes it)",
    )
    ap.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE["new_building"])
    ap.add_argument(
        "--front", type=int, default=DEFAULT_FRONT, help="detectors looking at every tile"
    )
    ap.add_argument("--main", type=Path, default=None, help="main detector (default: shipped)")
    ap.add_argument("--direction", action=argparse.BooleanOptionalAction, default=None,
                    help="the direction test on / off in every way (models/direction.py) "
                    "[default: as the config: on]")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from models.detector import ChangeDetector

    t = args.min_score
    base: dict[str, Any] = {"filters": {"min_score": {"new_building": t, "construction": t}}}
    direction = {} if args.direction is None else {"direction": {"enabled": args.direction}}
    ens = {"enabled": True, "weights": args.ensemble, "member_weights": args.member_weights,
           "front": args.front}  # fmt: skip
    ways = {
        "main alone": BuildwatchConfig.model_validate(
            base | {"detector": {"ensemble": {"enabled": False}} | direction}
        ),
        "ensemble, every tile": BuildwatchConfig.model_validate(
            # gate None: every tile (the config's default gate is auto)
            base | {"detector": {"ensemble": ens | {"gate": None}} | direction}
        ),
        f"ensemble, gate {args.gate}": BuildwatchConfig.model_validate(
            base | {"detector": {"ensemble": ens | {"gate": args.gate}} | direction}
        ),
    }
    # loaded as the product loads it (pipelines.detect.load_detector): a static batch of the
    # config's tiles per predict call; a larger one would be padded on every call
    main_det = ChangeDetector.load(args.main, device="cpu", batch=BuildwatchConfig().detector.batch)
    dets = {name: wrap_detector(main_det, cfg) for name, cfg in ways.items()}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = _inputs(Path(tmp))
        name0, f0, b0 = inputs[0]
        for name, det in dets.items():  # warm-up: compile, first-call costs
            detect_leads(f0, b0, predict=det, config=ways[name])
        for label, flight, baseline in inputs:
            got: dict[str, Any] = {}
            for name, det in dets.items():
                ens_obj = _ensemble_of(det)
                if ens_obj is not None:
                    ens_obj.looked = (0, 0)
                t0 = time.perf_counter()
                res = detect_leads(flight, baseline, predict=det, config=ways[name])
                s = time.perf_counter() - t0
                km2 = float(res.coverage_m2.get("compared", 0.0)) / 1e6
                looked = ens_obj.looked if ens_obj is not None else None
                scores = sorted(round(float(x), 4) for x in res.leads["score"])
                got[name] = {"seconds": round(s, 2), "km2": round(km2, 4),
                             "km2_per_h": round(km2 / s * 3600, 1) if s else None,
                             "leads": len(res.leads), "scores": scores,
                             "others_looked": None if looked is None
                             else f"{looked[0]}/{looked[1]}"}  # fmt: skip
            names = list(dets)
            row = {"input": label, **{n: {k: v for k, v in g.items() if k != "scores"}
                                      for n, g in got.items()},
                   "gated_leads_equal_ungated": got[names[2]]["scores"] == got[names[1]]["scores"],
                   "ungated_over_alone": round(got[names[1]]["seconds"] / got[names[0]]["seconds"], 2),
                   "gated_over_alone": round(got[names[2]]["seconds"] / got[names[0]]["seconds"], 2)}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": round(peak, 1)}))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "peak_rss_mib": round(peak, 1)}, indent=1))


def _ensemble_of(det: Any) -> Any:
    while det is not None:
        if hasattr(type(det), "lossless_gate"):
            return det
        det = det.__dict__.get("detector")
    return None


if __name__ == "__main__":
    main()
