"""Throughput of the nightly path (km²/h): in-process vs dask.distributed with 1 and 2 workers.

Runs the full per-flight job (tiles, leads, ledger ingest; maps off) on one synthetic night of
``--size-m`` × ``--size-m`` metres, three ways, each on a fresh output folder, and prints a table
with the distributed overhead vs in-process. Uses the shipped detector when it loads, else the
stand-in change detector (the table says which model and runtime ran). Loopback-only local
clusters; each dask wall time includes the workers' own detector load and pair co-registration
(the in-process run has its detector loaded before the clock starts, as a nightly service would).

    python benchmarks/bench_distributed.py [--size-m 400]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from distributed import LocalCluster

from pipelines.nightly.demo import _backend
from pipelines.nightly.rasterinfo import read_raster_info, to_crs
from pipelines.nightly.runner import run_nightly


def _site(tmp: Path, size_m: float) -> tuple[Path, float]:
    from geo.synthetic.district import generate_nights

    gen = generate_nights(tmp / "gen", seed=3, nights=1, size_m=size_m)
    info = read_raster_info(gen.flights[0])
    km2 = to_crs(info.footprint, "EPSG:4326", info.crs).area / 1e6
    return gen.flights[0], km2, gen.baseline, gen.units  # type: ignore[return-value]


def _run(
    tmp: Path, name: str, flight: Path, baseline: Path, units: Path, scheduler: str | None
) -> tuple[float, int, str, pd.DataFrame]:
    root = tmp / name
    (root / "inbox").mkdir(parents=True)
    (root / "baselines").mkdir()
    shutil.copytree(flight.parent, root / "inbox" / flight.parent.name)
    shutil.copy(baseline, root / "baselines" / "baseline.tif")
    cfg = root / "cfg.yaml"
    cfg.write_text(
        f"units:\n  path: {units}\nnightly:\n  inbox: inbox\n  catalogue_dir: baselines\n"
        "  output_root: out\n  tile_batch: 4\n  refresh_maps: false\n",
        encoding="utf-8",
    )
    backend = _backend(cfg)
    t0 = time.perf_counter()
    summary = run_nightly(backend.config, backend, scheduler=scheduler)
    wall = time.perf_counter() - t0
    assert summary.status == "ok", summary.to_text()
    leads = pd.read_csv(root / "out" / summary.flights[0].flight_id / "leads.csv")
    return wall, summary.counts()["n_leads"], backend.describe(), leads


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-m", type=float, default=400.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-bench-dist-") as d:
        tmp = Path(d)
        flight, km2, baseline, units = _site(tmp, args.size_m)
        rows = [("in-process", *_run(tmp, "local", flight, baseline, units, None))]
        for n in (1, 2):
            with LocalCluster(
                n_workers=n,
                processes=True,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster:
                rows.append(
                    (
                        f"dask {n} worker{'s' * (n > 1)}",
                        *_run(tmp, f"dask{n}", flight, baseline, units, cluster.scheduler_address),
                    )
                )
    base, ref = rows[0][1], rows[0][4]
    print(f"flight {km2:.3f} km² ({args.size_m:.0f} m square), model: {rows[0][3]}")
    print(
        f"{'path':<16}{'wall s':>8}{'km²/h':>9}{'overhead vs in-process':>24}{'leads':>7}"
        f"{'same leads':>12}"
    )
    for name, wall, n_leads, _, leads in rows:
        same = "yes" if leads.equals(ref) else "NO"
        print(
            f"{name:<16}{wall:>8.1f}{km2 / wall * 3600:>9.2f}{wall / base - 1:>+23.0%}"
            f"{n_leads:>7}{same:>12}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
