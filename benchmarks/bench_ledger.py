"""Benchmark: ingest 10,000 leads into a ledger of 100,000 cases, on both backends (seconds).

    .venv/bin/python benchmarks/bench_ledger.py [--cases 100000] [--leads 10000] [--pg URL]

The ledger is seeded by one ingest of ``--cases`` leads (timed too). The measured ingest has half
its leads on existing cases (sightings) and half new, with a coverage polygon over the whole
ledger, so it also marks the unseen open cases ``not_observed``. PostGIS runs when a server is
reachable (``--pg``, env BUILDWATCH_TEST_PG_URL or .postgis-url), in a throw-away schema.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.cases.ingest import ingest_leads  # noqa: E402
from pipelines.cases.store import LedgerStore, resolve_url  # noqa: E402

X0, Y0, STEP, COLS = 500_000.0, 3_270_000.0, 50.0, 400


def leads_at(sites: np.ndarray, flight: str, day: str) -> gpd.GeoDataFrame:
    """10 m square leads on a 50 m grid (EPSG:4543), in one township per 1,000 sites."""
    x = X0 + (sites % COLS) * STEP
    y = Y0 + (sites // COLS) * STEP
    n = len(sites)
    town = np.char.add("500104", np.char.zfill((sites // 1000).astype(str), 3))
    return gpd.GeoDataFrame(
        {
            "lead_id": [f"{flight}-{i:06d}" for i in range(n)],
            "score": np.full(n, 0.8),
            "class": np.where(sites % 3 == 0, "new_building", "construction"),
            "area_m2": np.full(n, 100.0),
            "lon": 105.0 + sites * 1e-6,
            "lat": 29.5 + sites * 1e-6,
            "status": "lead",
            "unit_type": "village",
            "unit_code": town,
            "unit_name": "村",
            "township_code": town,
            "township_name": "镇",
            "district_code": "500104",
            "district_name": "渝中区",
            "responsible_party": "村委会",
            "evidence_before": "",
            "evidence_after": "",
            "flight_id": flight,
            "flight_date": day,
        },
        geometry=shapely.box(x, y, x + 10, y + 10),
        crs="EPSG:4543",
    )


def bench(url: str, n_cases: int, n_leads: int) -> tuple[float, float]:
    store = LedgerStore(url, lock_timeout_s=600)
    seed = leads_at(np.arange(n_cases), "SEED", "2024-05-01")
    t0 = time.perf_counter()
    ingest_leads(store, seed)
    t_seed = time.perf_counter() - t0
    half = n_leads // 2
    sites = np.concatenate(
        [np.arange(0, 2 * half, 2), np.arange(n_cases, n_cases + n_leads - half)]
    )
    leads = leads_at(sites, "NIGHT2", "2024-05-02")
    cover = shapely.box(
        X0 - 100, Y0 - 100, X0 + COLS * STEP + 100, Y0 + (n_cases // COLS + 30) * STEP
    )
    t0 = time.perf_counter()
    r = ingest_leads(store, leads, coverage=cover)
    t_ingest = time.perf_counter() - t0
    assert (r.n_seen_again, r.n_new) == (half, n_leads - half), r
    store.dispose()
    return t_seed, t_ingest


def _pg(url: str | None) -> str | None:
    url = url or os.environ.get("BUILDWATCH_TEST_PG_URL")
    if not url and (REPO / ".postgis-url").is_file():
        url = (REPO / ".postgis-url").read_text().strip()
    return url or None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--leads", type=int, default=10_000)
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (default: .postgis-url)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("gpkg", *bench(str(Path(tmp) / "ledger.gpkg"), args.cases, args.leads)))
    pg = _pg(args.pg)
    if pg:
        from sqlalchemy import create_engine, text

        schema = f"bwbench_{uuid.uuid4().hex[:8]}"
        engine = create_engine(resolve_url(pg))
        try:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            url = f"{pg}?options=-csearch_path%3D{schema},public"
            rows.append(("postgis", *bench(url, args.cases, args.leads)))
        except Exception as exc:  # noqa: BLE001 - report and carry on with the GPKG numbers
            print(f"postgis skipped: {exc}", file=sys.stderr)
        finally:
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    else:
        print("postgis skipped: no URL (run scripts/start_postgis.sh)", file=sys.stderr)
    print(f"ledger ingest: {args.leads:,} leads into {args.cases:,} cases")
    print(f"{'backend':<8} {'seed ' + format(args.cases, ',') + ' (s)':>18} {'ingest (s)':>11}")
    for name, t_seed, t_ingest in rows:
        print(f"{name:<8} {t_seed:>18.1f} {t_ingest:>11.1f}")


if __name__ == "__main__":
    main()
