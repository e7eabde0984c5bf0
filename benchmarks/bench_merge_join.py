"""Benchmark: seam merge + unit join of N candidates against M unit polygons.

Two sizes (half and full: 50,000 → 100,000 candidates, 10,000 → 20,000 units) show how the
cost grows; ~n log n means the full size takes a little over twice the half size.

    .venv/bin/python benchmarks/bench_merge_join.py [--candidates 100000] [--units 20000]

Candidates are 5-20 m boxes scattered over the units; a third of them are seen twice (a
second, slightly shifted view, as across a tile seam) so the merge has real work to do.
"""

from __future__ import annotations

import argparse
import math
import time

import geopandas as gpd
import numpy as np
import shapely

from geo.joins import join_units
from geo.units import Units
from pipelines.leads.georef import MapCandidates
from pipelines.leads.merge import merge_candidates

CRS = "EPSG:4543"
X0, Y0 = 500000.0, 3300000.0


def make_units(n_units: int, rng: np.random.Generator) -> Units:
    """n_units/2 villages/communities on a square grid, one compound inside each."""
    n_vill = n_units // 2
    side = int(math.ceil(math.sqrt(n_vill)))
    cell = 200.0
    i = np.arange(n_vill)
    x, y = X0 + (i % side) * cell, Y0 + (i // side) * cell
    villages = shapely.box(x, y, x + cell, y + cell)
    compounds = shapely.box(x + 20, y + 20, x + 120, y + 120)
    tside = max(1, side // 10)
    t_of = ((i % side) // 10) + ((i // side) // 10) * tside
    n_tsp = int(t_of.max()) + 1
    ext = side * cell
    tcell = cell * 10
    j = np.arange(n_tsp)
    townships = shapely.box(
        X0 + (j % tside) * tcell,
        Y0 + (j // tside) * tcell,
        X0 + (j % tside + 1) * tcell,
        Y0 + (j // tside + 1) * tcell,
    )
    tcode = np.array([f"T{k:05d}" for k in range(n_tsp)], dtype=object)
    kinds = np.where(rng.random(n_vill) < 0.5, "village", "community")
    return Units(
        path=None,  # type: ignore[arg-type]
        crs=CRS,
        districts=gpd.GeoDataFrame(
            {"district_code": ["D1"], "district_name": ["区"]},
            geometry=[shapely.box(X0, Y0, X0 + ext, Y0 + ext)],
            crs=CRS,
        ),
        townships=gpd.GeoDataFrame(
            {
                "township_code": tcode,
                "township_name": tcode,
                "township_kind": "street",
                "district_code": "D1",
            },
            geometry=townships,
            crs=CRS,
        ),
        villages=gpd.GeoDataFrame(
            {
                "unit_code": [f"V{k}" for k in i],
                "unit_name": [f"村{k}" for k in i],
                "unit_type": kinds,
                "committee_name": "",
                "township_code": tcode[t_of],
            },
            geometry=villages,
            crs=CRS,
        ),
        compounds=gpd.GeoDataFrame(
            {
                "unit_code": [f"C{k}" for k in i],
                "unit_name": [f"小区{k}" for k in i],
                "property_company": "物业",
                "township_code": tcode[t_of],
            },
            geometry=compounds,
            crs=CRS,
        ),
    )


def make_candidates(n: int, extent: float, rng: np.random.Generator) -> MapCandidates:
    n_unique = int(round(n / (4 / 3)))
    n_dup = n - n_unique
    x = X0 + rng.random(n_unique) * (extent - 20)
    y = Y0 + rng.random(n_unique) * (extent - 20)
    w, h = rng.uniform(5, 20, n_unique), rng.uniform(5, 20, n_unique)
    k = rng.choice(n_unique, n_dup, replace=False)
    dx = rng.normal(0, 0.3, n_dup)
    xs = np.concatenate([x, x[k] + dx])
    ys = np.concatenate([y, y[k] + dx])
    ws, hs = np.concatenate([w, w[k]]), np.concatenate([h, h[k]])
    geoms = shapely.box(xs, ys, xs + ws, ys + hs)
    return MapCandidates(
        geoms,
        rng.uniform(0.3, 1, n).astype(np.float32),
        rng.integers(0, 2, n),
        np.zeros(n, np.int64),
        np.zeros((n, 4), bool),
    )


def run(n_cand: int, n_units: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    units = make_units(n_units, rng)
    extent = float(units.districts.total_bounds[2] - X0)
    cands = make_candidates(n_cand, extent, rng)
    t0 = time.perf_counter()
    merged, absorbed = merge_candidates(cands, iosa=0.5)
    t1 = time.perf_counter()
    joined = join_units(merged.geometry, units)
    t2 = time.perf_counter()
    assert (joined["unit_type"] != "unassigned").mean() > 0.95
    return {
        "candidates": n_cand,
        "units": n_units,
        "leads": len(merged),
        "merged": absorbed,
        "merge_s": t1 - t0,
        "join_s": t2 - t1,
        "total_s": t2 - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--units", type=int, default=20_000)
    args = ap.parse_args()
    rows = [run(args.candidates // 2, args.units // 2), run(args.candidates, args.units)]
    print(
        f"{'candidates':>10} {'units':>7} {'leads':>7} {'merged':>7} {'merge s':>8} {'join s':>8} {'total s':>8}"
    )
    for r in rows:
        print(
            f"{r['candidates']:>10} {r['units']:>7} {r['leads']:>7} {r['merged']:>7} "
            f"{r['merge_s']:>8.2f} {r['join_s']:>8.2f} {r['total_s']:>8.2f}"
        )
    small, big = rows
    nlogn = (big["candidates"] * math.log(big["candidates"])) / (
        small["candidates"] * math.log(small["candidates"])
    )
    print(
        f"time ratio full/half: {big['total_s'] / small['total_s']:.2f} "
        f"(n log n predicts {nlogn:.2f}, n² would be 4.00)"
    )


if __name__ == "__main__":
    main()
