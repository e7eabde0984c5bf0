"""A tiny reviewable ledger: one run folder with leads.gpkg and real PNG chips, ingested; units.

Unit names and notes carry markup on purpose (hostile data must stay text on the page).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
from shapely.geometry import box

from tests._cases_fixtures import CRS, X0, Y0, lead_box, make_leads

HOSTILE_UNIT = '<script>window.__pwned=1</script>村"><img src=x onerror="window.__pwned=2">'


@dataclass
class Reviewable:
    ledger: str
    run_dir: Path
    units: Path
    case_ids: list[str]


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def make_units(path: Path) -> Path:
    """units.gpkg with villages V0..V2 (V1 named with markup), one township, one district."""
    villages = gpd.GeoDataFrame(
        {
            "unit_code": ["V0", "V1", "V2"],
            "unit_name": ["村0", HOSTILE_UNIT, "村2"],
            "township_code": ["50010401"] * 3,
        },
        geometry=[
            box(X0 - 50 + 1700 * i, Y0 - 50, X0 - 50 + 1700 * (i + 1), Y0 + 300) for i in range(3)
        ],
        crs=CRS,
    )
    towns = gpd.GeoDataFrame(
        {"township_code": ["50010401"], "township_name": ["镇1"], "district_code": ["500104"]},
        geometry=[villages.union_all().envelope],
        crs=CRS,
    )
    dists = gpd.GeoDataFrame(
        {"district_code": ["500104"], "district_name": ["渝中区"]},
        geometry=[villages.union_all().envelope],
        crs=CRS,
    )
    villages.to_file(path, layer="villages", driver="GPKG")
    towns.to_file(path, layer="townships", driver="GPKG")
    dists.to_file(path, layer="districts", driver="GPKG")
    return path


def make_reviewable(tmp: Path, ledger: str | None = None, n: int = 4) -> Reviewable:
    """A run folder ``tmp/run1`` (leads.gpkg + chips), ingested into *ledger* (default a GPKG)."""
    from pipelines.cases.ingest import ingest_run
    from pipelines.cases.store import LedgerStore

    run = tmp / "run1"
    run.mkdir(parents=True)
    sites = list(range(n))
    leads = make_leads(sites, flight_id="F1", flight_date="2024-05-01")
    leads["unit_name"] = [HOSTILE_UNIT if s % 3 == 1 else f"村{s % 3}" for s in sites]
    for i, (before, after) in enumerate(
        zip(leads["evidence_before"], leads["evidence_after"], strict=True)
    ):
        _png(run / before, 2 * i)
        _png(run / after, 2 * i + 1)
    leads.to_file(run / "leads.gpkg", layer="leads", driver="GPKG")
    cover = gpd.GeoDataFrame(geometry=[box(X0 - 100, Y0 - 100, X0 + 5000, Y0 + 200)], crs=CRS)
    cover.to_file(run / "leads.gpkg", layer="coverage", driver="GPKG")
    url = ledger or str(tmp / "ledger.gpkg")
    store = LedgerStore(url)
    ingest_run(store, run / "leads.gpkg", flight_id="F1", flight_date="2024-05-01")
    ids = list(store.cases()["case_id"])
    store.dispose()
    assert len(ids) == n and lead_box(0).area > 0
    return Reviewable(url, run, make_units(tmp / "units.gpkg"), ids)
