"""Two detectors of one architecture as one OpenVINO model: what one call for both would save.

Training item 24's ensemble (model card) runs two YOLO11n-seg detectors on every tile and was 3 %
short of its speed rule. Both share an architecture, so their OpenVINO graphs can be joined on one
input into a single model that a single call runs. This measures, in one run on the same tiles,
the network time of (a) the two models called one after the other, as the ensemble calls them
now, against (b) the joined model, and checks that (b) returns what (a) returns. Network time
only (uint8 NHWC in, raw outputs out); decoding and outline tracing are the same either way.

    python benchmarks/bench_fused_members.py [--first W.pt] [--second W.pt] [--tiles 32]
        [--batch 4] [--repeats 3] [--precision auto|f32] [--json out.json]

Both default to the shipped detector (the timing depends on the architecture, not the weights);
each needs its OpenVINO export beside it (``models/weights/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import numpy as np

from models.detector import DEFAULT_WEIGHTS


def _compile(model: Any, batch: int, imgsz: int, threads: int, precision: str) -> Any:
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    model.reshape({model.inputs[0].get_any_name(): [batch, 6, imgsz, imgsz]})
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if precision != "auto":  # as models.backends: auto is bf16 where the CPU has it
        config["INFERENCE_PRECISION_HINT"] = precision
    return ov.Core().compile_model(ppp.build(), "CPU", config)


def joined(first: Path, second: Path) -> Any:
    """One OpenVINO model: both graphs fed from the first one's input, both outputs kept."""
    import openvino as ov

    core = ov.Core()
    a, b = core.read_model(str(first)), core.read_model(str(second))
    pa, pb = a.get_parameters()[0], b.get_parameters()[0]
    for target in list(pb.output(0).get_target_inputs()):
        target.replace_source_output(pa.output(0))
    return ov.Model(list(a.get_results()) + list(b.get_results()), [pa], "joined")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--second", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--tiles", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="auto", choices=["auto", "f32"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import openvino as ov

    xml = [p.with_suffix(".openvino.xml") for p in (args.first, args.second)]
    for x in xml:
        if not x.is_file():
            raise SystemExit(f"{x}: no OpenVINO export; export it (models/weights/README.md)")
    threads = os.cpu_count() or 1
    core = ov.Core()
    apart = [_compile(core.read_model(str(x)), args.batch, args.imgsz, threads, args.precision)
             for x in xml]  # fmt: skip
    both = _compile(joined(*xml), args.batch, args.imgsz, threads, args.precision)
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (args.tiles, args.imgsz, args.imgsz, 6), np.uint8)
    batches = [tiles[i : i + args.batch] for i in range(0, len(tiles), args.batch)]
    batches = [b for b in batches if len(b) == args.batch]

    def run_apart() -> list[list[np.ndarray]]:
        return [[np.asarray(r[o]) for m in apart for r in [m(b)] for o in m.outputs]
                for b in batches]  # fmt: skip

    def run_both() -> list[list[np.ndarray]]:
        return [[np.asarray(r[o]) for r in [both(b)] for o in both.outputs] for b in batches]

    run_apart(), run_both()  # warm-up
    times: dict[str, list[float]] = {"apart": [], "joined": []}
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        for name, fn in (("apart", run_apart), ("joined", run_both)):
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            if name == "apart":
                ref = out
            else:
                # largest difference of an output, relative to that output's largest value
                diff = max(float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-9))
                           for rb, jb in zip(ref, out, strict=True)
                           for x, y in zip(rb, jb, strict=True))  # fmt: skip
    n = len(batches) * args.batch
    best = {k: min(v) for k, v in times.items()}
    row = {
        "tiles": n,
        "batch": args.batch,
        "apart_tiles_per_s": round(n / best["apart"], 2),
        "joined_tiles_per_s": round(n / best["joined"], 2),
        "apart_over_joined": round(best["apart"] / best["joined"], 3),
        "max_relative_output_difference": round(diff, 6),
        "precision": str(both.get_property("INFERENCE_PRECISION_HINT")),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
