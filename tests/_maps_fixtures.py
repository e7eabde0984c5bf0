"""Seeded fixtures of the maps tests: a 3 x 3-unit district, planted cases, chips, a tiny flight."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from pipelines.maps.sample import SAMPLE_CRS, make_sample_cases, make_sample_units

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def units() -> dict[str, gpd.GeoDataFrame]:
    return make_sample_units()


@pytest.fixture(scope="module")
def cases(
    units: dict[str, gpd.GeoDataFrame], tmp_path_factory: pytest.TempPathFactory
) -> gpd.GeoDataFrame:
    chips = tmp_path_factory.mktemp("chips")
    return make_sample_cases(units, seed=3, chip_dir=chips)


def write_units_gpkg(units: dict[str, gpd.GeoDataFrame], path: Path) -> Path:
    for name, layer in units.items():
        layer.to_file(path, layer=name, driver="GPKG")
    return path


def write_flight(units: dict[str, gpd.GeoDataFrame], path: Path, gsd: float = 4.0) -> Path:
    """A small RGB GeoTIFF over the sample district (EPSG:4544), seeded noise + a bright square."""
    import rasterio
    from affine import Affine

    minx, miny, maxx, maxy = units["districts"].total_bounds
    w, h = int((maxx - minx) / gsd), int((maxy - miny) / gsd)
    rng = np.random.default_rng(7)
    data = (rng.random((3, h, w)) * 80 + 60).astype(np.uint8)
    data[:, h // 3 : h // 2, w // 3 : w // 2] = 230
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 3,
        "dtype": "uint8",
        "crs": SAMPLE_CRS,
        "transform": Affine(gsd, 0.0, minx, 0.0, -gsd, maxy),
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path
