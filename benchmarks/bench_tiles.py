"""Benchmarks (a) tile-pair throughput and (b) peak RSS of the tile iterator.

    .venv/bin/python benchmarks/bench_tiles.py            # both, prints tables
    .venv/bin/python benchmarks/bench_tiles.py --part a   # throughput only

(a) ``open_pair(...).tiles(512, 64, prefetch=2)`` against the raw windowed read of the same two
files at the same GSD (flight: decimated window read; baseline: decimated read of the window's
bounds in its own CRS, no warp, no correction), over the same tiles; ratio = pair / raw.
Flight 6000² px GeoTIFF (EPSG:4544, 0.1 m, overviews), baseline EPSG:3857 0.3 m shifted 1.5 m.
Also the same pair with the flight matched to the baseline's GSD (``match_baseline_above_m``
0.25, so the 0.3 m baseline triggers it): its cost against the unmatched tiles.

(b) peak RSS of a child process that opens a pair and iterates *every* tile, for flights of
10,000² and 40,000² px (0.05 m; VRT mosaics of a textured tile, baseline 0.25 m shifted), each
in a fresh process. Data is generated once under /tmp/buildwatch-bench.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import rasterio  # noqa: E402
from rasterio.crs import CRS  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402
from rasterio.warp import transform_bounds  # noqa: E402
from rasterio.windows import from_bounds  # noqa: E402

from benchmarks._bench_data import mosaic_vrt, texture_tif, warped_copy  # noqa: E402
from geo.tiles import open_pair  # noqa: E402

DATA = Path("/tmp/buildwatch-bench")
GSD = 0.2


def _raw_pass(flight: Path, baseline: Path, windows, grid_transform) -> float:
    t0 = time.perf_counter()
    with rasterio.open(flight) as f, rasterio.open(baseline) as b:
        for w in windows:
            bounds = w.bounds(grid_transform)
            fw = from_bounds(*bounds, transform=f.transform)
            f.read(
                [1, 2, 3],
                window=fw,
                out_shape=(3, w.height, w.width),
                resampling=Resampling.average,
            )
            bb = transform_bounds(f.crs, b.crs, *bounds)
            bw = from_bounds(*bb, transform=b.transform)
            b.read(
                [1, 2, 3],
                window=bw,
                out_shape=(3, w.height, w.width),
                boundless=False,
                resampling=Resampling.bilinear,
            )
    return time.perf_counter() - t0


def part_a() -> None:
    DATA.mkdir(exist_ok=True)
    flight = texture_tif(DATA / "a_flight.tif", 6000, 0.1, seed=3)
    baseline = warped_copy(
        flight, DATA / "a_baseline_3857.tif", CRS.from_epsg(3857), 0.3, (1.5, -1.0)
    )
    t0 = time.perf_counter()
    pair = open_pair(flight, baseline, GSD)
    setup = time.perf_counter() - t0
    with pair:
        windows = pair.tile_windows(512, 64)
        raw_t, pair_t = [], []
        for _ in range(2):
            raw_t.append(_raw_pass(flight, baseline, windows, pair.transform))
            t0 = time.perf_counter()
            n = sum(1 for _ in pair.tiles(512, 64, prefetch=2))
            pair_t.append(time.perf_counter() - t0)
        reg = pair.registration
    with open_pair(flight, baseline, GSD, match_baseline_above_m=0.25) as matched:
        assert matched.flight_seen_at_m is not None
        match_t = []
        for _ in range(2):
            t0 = time.perf_counter()
            nm = sum(1 for _ in matched.tiles(512, 64, prefetch=2))
            match_t.append(time.perf_counter() - t0)
    raw, pt, mt = min(raw_t), min(pair_t), min(match_t)
    print("\n(a) tile-pair throughput, 512 px tiles at 0.2 m (best of 2 passes)")
    print(f"| {'read':<34} | {'tiles':>5} | {'seconds':>7} | {'tiles/s':>7} |")
    print(f"|{'-' * 36}|{'-' * 7}|{'-' * 9}|{'-' * 9}|")
    print(
        f"| {'raw windowed read (both files)':<34} | {len(windows):>5} | {raw:>7.2f} | {len(windows) / raw:>7.1f} |"
    )
    print(f"| {'open_pair().tiles(prefetch=2)':<34} | {n:>5} | {pt:>7.2f} | {n / pt:>7.1f} |")
    label = "tiles(), flight matched to 0.3 m"
    print(f"| {label:<34} | {nm:>5} | {mt:>7.2f} | {nm / mt:>7.1f} |")
    print(f"ratio matched/pair = {(nm / mt) / (n / pt):.2f} (tiles/s)")
    print(
        f"ratio pair/raw = {(n / pt) / (len(windows) / raw):.2f}  (target >= 0.8); "
        f"open_pair setup (scan, footprints, histograms, coreg) {setup:.2f} s; {reg.message}"
    )


def rss_child(size: int) -> None:
    tile = texture_tif(DATA / "tile4000.tif", 4000, 0.05, seed=1)
    ground = size * 0.05
    flight = mosaic_vrt(DATA / f"b_flight_{size}.vrt", tile, ground, 0.05)
    baseline = mosaic_vrt(
        DATA / f"b_baseline_{size}.vrt", tile, ground + 20, 0.25, shift=(2.0, -1.0)
    )
    t0 = time.perf_counter()
    with open_pair(flight, baseline, GSD) as pair:
        n = 0
        checksum = 0
        for tp in pair.tiles(512, 64, prefetch=2):
            n += 1
            checksum += int(tp.valid.sum())
        out = dict(
            size=size,
            grid=pair.width,
            tiles=n,
            seconds=time.perf_counter() - t0,
            gate=pair.registration.gate_passed,
            dx=pair.registration.dx_m,
            dy=pair.registration.dy_m,
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
    print(json.dumps(out))


def part_b(sizes: list[int]) -> None:
    DATA.mkdir(exist_ok=True)
    texture_tif(DATA / "tile4000.tif", 4000, 0.05, seed=1)
    rows = []
    for size in sizes:
        res = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(size)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print("\n(b) peak RSS iterating every tile (fresh process per flight; limit 1536 MB)")
    print(
        f"| {'flight px':>11} | {'grid px':>7} | {'tiles':>5} | {'seconds':>7} | {'coreg dx,dy m':>14} | {'peak RSS MB':>11} |"
    )
    print(f"|{'-' * 13}|{'-' * 9}|{'-' * 7}|{'-' * 9}|{'-' * 16}|{'-' * 13}|")
    for r in rows:
        print(
            f"| {r['size']:>6}² px | {r['grid']:>7} | {r['tiles']:>5} | {r['seconds']:>7.1f} | "
            f"{r['dx']:+6.2f},{r['dy']:+6.2f} | {r['peak_rss_mb']:>11.0f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=["a", "b", "all"], default="all")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    if args.part in ("a", "all"):
        part_a()
    if args.part in ("b", "all"):
        part_b(args.sizes)


if __name__ == "__main__":
    main()
