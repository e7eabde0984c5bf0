"""Benchmark the synthetic district generator: time, peak memory and file sizes.

Run: ``.venv/bin/python benchmarks/bench_synth.py [--size-m 1000] [--gsd 0.1]``. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.synthetic import render_pair  # noqa: E402
from geo.synthetic.district import generate_district  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-m", type=float, default=1000)
    ap.add_argument("--gsd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="write the district here and keep it")
    a = ap.parse_args()
    rows = []
    t = time.perf_counter()
    for s in range(20):
        render_pair(s, 640, 0.2)
    rows.append(
        ("render_pair 640² px @0.2 m (mean of 20)", f"{(time.perf_counter() - t) / 20:.3f} s", "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = a.keep or Path(tmp) / "district"
        t = time.perf_counter()
        paths = generate_district(out, a.seed, a.size_m, a.gsd, overwrite=True)
        total = time.perf_counter() - t
        meta = json.loads(paths.meta.read_text(encoding="utf-8"))
        n = meta["size_px"]
        rows.append((f"render both epochs {n}² px", f"{meta['render_s']:.1f} s", ""))
        rows.append(
            (
                f"generate_district {a.size_m:g} m @ {a.gsd:g} m (total)",
                f"{total:.1f} s",
                f"peak RSS {_rss_mib():.0f} MiB",
            )
        )
        for p in (paths.flight, paths.baseline, paths.units, paths.truth, paths.preview):
            rows.append((f"  {p.name}", "", f"{p.stat().st_size / 2**20:.1f} MiB"))
        rows.append(
            ("  changes", "", ", ".join(f"{k} {v}" for k, v in sorted(meta["counts"].items())))
        )
    w = max(len(r[0]) for r in rows)
    print(f"{'step':<{w}}  {'time':>8}  other")
    for name, tm, other in rows:
        print(f"{name:<{w}}  {tm:>8}  {other}")


if __name__ == "__main__":
    main()
