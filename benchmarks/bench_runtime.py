"""The detection runtime on big flights: memory, start-up, km²/h, and where the time goes.

    .venv/bin/python benchmarks/bench_runtime.py                 # all parts, prints tables
    .venv/bin/python benchmarks/bench_runtime.py --part rss      # (a) only
    .venv/bin/python benchmarks/bench_runtime.py --part rss --config C.yaml  # (a) with a config
    .venv/bin/python benchmarks/bench_runtime.py --part ratio    # (b) only
    .venv/bin/python benchmarks/bench_runtime.py --part decode   # (c) only

Flights: 10,000², 24,000² and 40,000² px at 5 cm (0.25, 1.44 and 4 km²), JPEG-compressed tiled
GeoTIFF **without overviews**, real drone texture (fair-drone, mirrored to size); baseline: the
same area at 0.3 m in EPSG:4326, shifted 1 m (``benchmarks/_flight_data.py``; generated once
under /tmp/buildwatch-bench).

(a) ``buildwatch detect`` on each flight, each in a fresh process, as a user runs it: its own
    ``speed:`` line (compared km², seconds from process start, km²/h, tiles/s, start-up to the
    first tile, peak RSS); the parent checks the peak RSS against the child's ``ru_maxrss``.
(b) on the 24,000² flight, in one process: tile pairs/s of the tile loop (read both epochs,
    predict, georeference) against (1) the raw decode of the same windows at the working GSD
    (flight: its JPEG read at 1/4 by DCT scaling, the fastest GDAL decode of it; baseline: the
    window in its own CRS, no warp) and (2) the bare model on the same number of tiles; ratio =
    loop / slower of the two.
(c) how to read a JPEG flight without overviews at the working GSD (1/4 of 5 cm), per 512² output
    tile, and the resident memory each way leaves behind: GDAL's average resampling of the full-
    resolution window (what buildwatch did), a full-resolution decode + ``cv2.resize`` area
    (1 and 2 GDAL threads), GDAL's implicit JPEG overview (DCT scaling inside GDAL), our
    tile-by-tile DCT-scaled decode (``geo/jpegtiles.py``, what buildwatch does now), and an
    overview built once (its build time, then reads from it).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._flight_data import jpeg_flight, satellite_baseline  # noqa: E402

SIZES = (10_000, 24_000, 40_000)
SPEED = re.compile(
    r"speed: (?P<km2>[\d.]+) km² in (?P<s>[\d.]+) s = (?P<kmh>\d+) km²/h; (?P<tiles>\d+) tiles at "
    r"(?P<tps>[\d.]+) tiles/s; first tile after (?P<first>[\d.]+) s; peak RSS (?P<rss>\d+) MB"
)


def part_rss(sizes: tuple[int, ...], config: Path | None = None) -> list[dict[str, float]]:
    rows = []
    for size in sizes:
        flight = jpeg_flight(size)
        baseline = satellite_baseline(flight)
        out = flight.with_suffix(".leads.gpkg")
        child = (
            "import resource, sys\n"
            "from pipelines.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code)\n"
        )
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", child, "detect", "--flight", str(flight),
             "--baseline", str(baseline), "--out", str(out),
             *(["--config", str(config)] if config else [])],
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        m = SPEED.search(done.stdout)
        maxrss = re.search(r"MAXRSS (\d+) (\S+)", done.stdout)
        if m is None or maxrss is None or maxrss.group(2) != "0":
            raise SystemExit(f"detect failed on {flight}:\n{done.stdout}\n{done.stderr[-2000:]}")
        rows.append(
            {
                "px": size,
                "km2": float(m["km2"]),
                "seconds": float(m["s"]),
                "wall_s": round(wall, 1),
                "km2_per_h": float(m["kmh"]),
                "tiles": int(m["tiles"]),
                "tiles_per_s": float(m["tps"]),
                "first_tile_s": float(m["first"]),
                "peak_rss_mb": float(m["rss"]),
                "child_maxrss_mb": round(int(maxrss.group(1)) / 1024),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print("\n(a) buildwatch detect, JPEG flights without overviews, fresh process each")
    print("| flight px | km² | s | km²/h | tiles | tiles/s | first tile s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['px']:,}² | {r['km2']:.2f} | {r['seconds']:.1f} | {r['km2_per_h']:.0f} | "
              f"{r['tiles']} | {r['tiles_per_s']:.1f} | {r['first_tile_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} |")  # fmt: skip
    return rows


def part_ratio(size: int = 24_000) -> dict[str, float]:
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    from geo.raster import open_overview, overview_level_for
    from geo.tiles import open_pair
    from models.detector import ChangeDetector, preprocess_uint8
    from pipelines.config import BuildwatchConfig
    from pipelines.leads.tiling import tile_candidates

    flight = jpeg_flight(size)
    baseline = satellite_baseline(flight)
    cfg = BuildwatchConfig()
    det = ChangeDetector.load(batch=cfg.detector.batch)
    gsd, tile, overlap = det.card.working_gsd_m, det.card.imgsz, det.card.overlap
    with open_pair(flight, baseline, gsd=gsd, **cfg.coreg.pair_kwargs()) as pair:
        windows = pair.tile_windows(tile, overlap)
        # (1) raw decode of the same windows at the working GSD
        t0 = time.perf_counter()
        with rasterio.open(flight) as f, rasterio.open(baseline) as b:
            level = overview_level_for(f, gsd)
            fo = open_overview(str(flight), level) if level is not None else f
            for w in windows:
                bounds = w.bounds(pair.transform)
                fw = from_bounds(*bounds, transform=fo.transform)
                fo.read([1, 2, 3], window=fw, out_shape=(3, w.height, w.width),
                        resampling=Resampling.nearest, boundless=False)  # fmt: skip
                bb = transform_bounds(pair.crs, b.crs, *bounds)
                bw = from_bounds(*bb, transform=b.transform)
                b.read([1, 2, 3], window=bw, out_shape=(3, w.height, w.width),
                       resampling=Resampling.bilinear, boundless=False)  # fmt: skip
            if fo is not f:
                fo.close()
        raw_tps = len(windows) / (time.perf_counter() - t0)
        # (2) the bare model on as many tiles
        rng = np.random.default_rng(0)
        tiles = [rng.integers(0, 255, (tile, tile, 6), dtype=np.uint8) for _ in range(8)]
        bsz = det.backend.batch or 4
        x, _ = preprocess_uint8(tiles[:bsz], tile)
        det.backend.run(x)
        t0 = time.perf_counter()
        for _ in range(0, len(windows), bsz):
            det.backend.run(x)
        model_tps = len(windows) / (time.perf_counter() - t0)
        # (3) the tile loop: read both epochs, predict, georeference
        t0 = time.perf_counter()
        _, n_tiles, _ = tile_candidates(
            pair, det.predict, tile, overlap, cfg.detector.batch, cfg.tiling.prefetch, None
        )
        loop_tps = n_tiles / (time.perf_counter() - t0)
    slower = min(raw_tps, model_tps)
    out = {
        "tiles": len(windows),
        "raw_decode_tps": round(raw_tps, 1),
        "bare_model_tps": round(model_tps, 1),
        "tile_loop_tps": round(loop_tps, 1),
        "ratio_loop_to_slower": round(loop_tps / slower, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(out))
    print(f"\n(b) {size:,}² flight, {len(windows)} tile pairs, one process")
    print("| raw decode tiles/s | bare model tiles/s | tile loop tiles/s | loop / slower |")
    print("|---|---|---|---|")
    print(f"| {raw_tps:.1f} | {model_tps:.1f} | {loop_tps:.1f} | {loop_tps / slower:.2f} |")
    return out


def part_decode(size: int = 24_000, n: int = 60) -> list[dict[str, float]]:
    import shutil

    import cv2
    import numpy as np
    import psutil
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    from geo.jpegtiles import JpegTiles

    flight = jpeg_flight(size)
    spots = [((i * 5171) % (size - 2048), (i * 10313) % (size - 2048)) for i in range(n)]
    rows: list[dict[str, float]] = []

    def run(name: str, fn, setup_s: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        proc = psutil.Process()
        before = proc.memory_info().rss / 2**20
        t0 = time.perf_counter()
        for r, c in spots:
            out = fn(r, c)
            assert out.shape[-2:] == (512, 512) or out.shape[:2] == (512, 512)
        ms = (time.perf_counter() - t0) / n * 1000
        grown = proc.memory_info().rss / 2**20 - before
        rows.append({"how": name, "ms_per_tile": round(ms, 1), "rss_growth_mb": round(grown),
                     "setup_s": round(setup_s, 1)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)

    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(flight) as ds:
        run("GDAL average of the full-resolution window (before)",
            lambda r, c: ds.read(window=Window(c, r, 2048, 2048), out_shape=(3, 512, 512),
                                 resampling=Resampling.average))  # fmt: skip

        def full_cv2(r: int, c: int) -> np.ndarray:
            img = np.moveaxis(ds.read(window=Window(c, r, 2048, 2048)), 0, -1)
            return cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA)

        run("full decode + cv2 area, 1 thread", full_cv2)
    with rasterio.Env(GDAL_CACHEMAX=64, GDAL_NUM_THREADS=2), rasterio.open(flight) as ds:
        run("full decode + cv2 area, 2 GDAL threads", full_cv2)
        jt = JpegTiles.open(ds)
        assert jt is not None
        run("DCT-scaled tiles, geo/jpegtiles.py (now)", lambda r, c: jt.read(r, c, 2048, 2048, 4))
        jt.close()
    with rasterio.Env(GTIFF_IMPLICIT_JPEG_OVR=True, GDAL_CACHEMAX=64):
        ovr = rasterio.open(flight, overview_level=1)
    run("GDAL implicit JPEG overview (DCT in GDAL)",
        lambda r, c: ovr.read(window=Window(c // 4, r // 4, 512, 512)))  # fmt: skip
    ovr.close()
    copy = flight.with_name(flight.stem + ".ovr-test.tif")
    shutil.copyfile(flight, copy)
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(copy, "r+") as ds:
        ds.build_overviews([4], Resampling.average)
    build_s = time.perf_counter() - t0
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(copy, overview_level=0) as o:
        run("overview built once (then read)",
            lambda r, c: o.read(window=Window(c // 4, r // 4, 512, 512)), build_s)  # fmt: skip
    copy.unlink()
    print(f"\n(c) reading a {size:,}² JPEG flight at 1/4, {n} tiles of 512² out")
    print("| how | ms per tile | RSS growth MB | one-off cost s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['how']} | {r['ms_per_tile']} | {r['rss_growth_mb']} | {r['setup_s']} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["rss", "ratio", "decode", "all"], default="all")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--config", type=Path, default=None,
                    help="(a): a config for `detect` (e.g. the main detector alone)")  # fmt: skip
    args = ap.parse_args()
    if args.part in ("rss", "all"):
        part_rss(tuple(args.sizes), args.config)
    if args.part in ("ratio", "all"):
        part_ratio()
    if args.part in ("decode", "all"):
        part_decode()


if __name__ == "__main__":
    main()
