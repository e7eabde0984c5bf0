"""Generated fixtures for the case-ledger tests: tiny seeded leads in EPSG:4544, both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.affinity import translate
from shapely.geometry import box

REPO = Path(__file__).resolve().parents[1]
X0, Y0 = 500_000.0, 3_270_000.0  # CGCS2000 GK CM 105°E, near Chongqing
CRS = "EPSG:4544"


def lead_box(i: int, size: float = 10.0) -> object:
    """A square site number *i* on a 100 m grid (sites never overlap each other)."""
    x, y = X0 + (i % 50) * 100.0, Y0 + (i // 50) * 100.0
    return box(x, y, x + size, y + size)


def make_leads(
    sites: Sequence[int],
    *,
    flight_id: str = "F1",
    flight_date: str = "2024-05-01",
    classes: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    shift: float = 1.0,
    district_code: str = "500104",
) -> gpd.GeoDataFrame:
    """Leads (pipelines/schema.py columns) at the given sites, slightly shifted per flight."""
    n = len(sites)
    classes = list(classes) if classes is not None else ["construction"] * n
    statuses = list(statuses) if statuses is not None else ["lead"] * n
    geoms = [translate(lead_box(s), shift, shift) for s in sites]
    townships = [f"{district_code}00{1 + s % 2}" for s in sites]
    return gpd.GeoDataFrame(
        {
            "lead_id": [f"{flight_id}-{i:05d}" for i in range(n)],
            "score": [0.5 + 0.4 * ((s * 7) % 10) / 10 for s in sites],
            "class": classes,
            "area_m2": [g.area for g in geoms],
            "lon": [105.0 + s * 1e-3 for s in sites],
            "lat": [29.5 + s * 1e-3 for s in sites],
            "status": statuses,
            "unit_type": ["village"] * n,
            "unit_code": [f"V{s % 3}" for s in sites],
            "unit_name": [f"村{s % 3}" for s in sites],
            "township_code": townships,
            "township_name": [f"镇{t[-1]}" for t in townships],
            "district_code": [district_code] * n,
            "district_name": ["渝中区"] * n,
            "responsible_party": ["村委会"] * n,
            "evidence_before": [f"evidence/{flight_id}-{i:05d}-before.png" for i in range(n)],
            "evidence_after": [f"evidence/{flight_id}-{i:05d}-after.png" for i in range(n)],
            "flight_id": [flight_id] * n,
            "flight_date": [flight_date] * n,
        },
        geometry=geoms,
        crs=CRS,
    )


def coverage_of(sites: Sequence[int]) -> object:
    """A polygon covering the given sites (with a margin)."""
    return gpd.GeoSeries([lead_box(s, 30).buffer(5) for s in sites]).union_all()


def pg_url() -> str | None:
    """The test PostGIS URL (env BUILDWATCH_TEST_PG_URL or .postgis-url), when a server answers."""
    url = os.environ.get("BUILDWATCH_TEST_PG_URL")
    if not url and (REPO / ".postgis-url").is_file():
        url = (REPO / ".postgis-url").read_text().strip()
    return url or None


def _pg_reachable(url: str) -> str:
    from sqlalchemy import create_engine, text

    from pipelines.cases.store import resolve_url

    try:
        engine = create_engine(resolve_url(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT postgis_version()"))
        engine.dispose()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means "skip with the reason"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(params=["gpkg", "postgis"], name="ledger_url")
def ledger_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger location: a GeoPackage path, or a PostGIS URL in its own schema."""
    if request.param == "gpkg":
        yield str(tmp_path / "ledger.gpkg")
        return
    url = pg_url()
    if url is None:
        pytest.skip("no PostGIS: set BUILDWATCH_TEST_PG_URL or run scripts/start_postgis.sh")
    why = _pg_reachable(url)
    if why:
        pytest.skip(f"PostGIS at {url} not reachable ({why}); run scripts/start_postgis.sh")
    from sqlalchemy import create_engine, text

    from pipelines.cases.store import resolve_url

    schema = f"bwtest_{uuid.uuid4().hex[:10]}"
    engine = create_engine(resolve_url(url))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}?options=-csearch_path%3D{schema},public"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def snapshot(url: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every table of a ledger as plain frames (geometry as WKT), for before/after comparison."""
    from pipelines.cases.store import LedgerStore

    store = LedgerStore(url)
    if not store.exists():
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    cases = store.cases()
    cases = pd.DataFrame(cases.drop(columns="geometry")).assign(wkt=cases.geometry.to_wkt())
    out = (cases, store.history(), store.ingests())
    store.dispose()
    return out
