"""Prepare real single-date drone mosaics for pseudo-pair synthesis (runs where rasterio is).

For each ``area*/*.tif`` mosaic under the fair-drone folder (EPSG:3857 GeoTIFF + ``buildings.geojson``
OSM outlines in CRS84) this writes, under ``out``:

* ``NAME.jpg`` - the mosaic resampled to ``gsd`` *ground* metres per pixel (EPSG:3857 metres are
  scaled by cos(latitude) to get ground metres), RGB, JPEG;
* ``NAME_ids.png`` - uint16 building ids on the same grid (0 = no building);
* ``NAME.json`` - gsd, size, building count, source and credits.

These files are compact enough to carry to a GPU machine, where :mod:`models.datasets.fairdrone`
turns them into before/after pairs with only OpenCV and NumPy.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np

from geo.atomic import atomic_path
from geo.errors import InputFileError

__all__ = ["prepare_fairdrone", "CREDITS"]

log = logging.getLogger(__name__)

CREDITS = (
    "Imagery: OpenAerialMap contributors (CC-BY 4.0); building outlines: (c) OpenStreetMap "
    "contributors (ODbL); as prepared for the HOT fAIr project (hotosm/fAIr-utilities)."
)


def _prepare_one(tif: Path, buildings_path: Path, out: Path, gsd: float, quality: int) -> dict:
    import geopandas as gpd
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.features import rasterize
    from rasterio.transform import Affine

    with rasterio.open(tif) as src:
        if src.crs is None or src.count < 3:
            raise InputFileError(
                f"{tif}: needs a CRS and 3 bands, has crs={src.crs} bands={src.count}"
            )
        b = src.bounds
        lat = math.degrees(math.atan(math.sinh(((b.top + b.bottom) / 2) / 6378137.0)))
        scale = math.cos(math.radians(lat)) if src.crs.to_epsg() == 3857 else 1.0
        res_crs = gsd / scale  # CRS units per output pixel
        width = max(1, round((b.right - b.left) / res_crs))
        height = max(1, round((b.top - b.bottom) / res_crs))
        rgb = src.read((1, 2, 3), out_shape=(3, height, width), resampling=Resampling.average)
        crs = src.crs
    transform = Affine(res_crs, 0, b.left, 0, -res_crs, b.top)
    outlines = gpd.read_file(buildings_path).to_crs(crs)
    outlines = outlines[outlines.geometry.notna() & ~outlines.geometry.is_empty]
    shapes = [(geom, i + 1) for i, geom in enumerate(outlines.geometry)]
    ids = rasterize(shapes, out_shape=(height, width), transform=transform, fill=0, dtype="uint16")
    img = np.moveaxis(rgb, 0, 2)
    name = tif.stem
    with atomic_path(out / f"{name}.jpg") as tmp:
        cv2.imwrite(str(tmp), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    with atomic_path(out / f"{name}_ids.png") as tmp:
        cv2.imwrite(str(tmp), ids)
    meta = {
        "name": name,
        "source": str(tif.name),
        "area": tif.parent.name,
        "gsd_m": gsd,
        "width": width,
        "height": height,
        "buildings": int(len(np.unique(ids)) - 1),
        "credits": CREDITS,
    }
    (out / f"{name}.json").write_text(json.dumps(meta, indent=1))
    return meta


def prepare_fairdrone(
    src_dir: str | Path, out: str | Path, gsd: float = 0.1, quality: int = 88
) -> list[dict]:
    """Prepare every ``area*/*.tif`` mosaic under ``src_dir``; returns one metadata dict each."""
    src_dir, out = Path(src_dir), Path(out)
    tifs = sorted(src_dir.glob("area*/*.tif"))
    if not tifs:
        raise InputFileError(
            f"{src_dir}: no area*/*.tif mosaics found; point at the fair-drone folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    metas = []
    for tif in tifs:
        buildings = tif.parent / "buildings.geojson"
        if not buildings.is_file():
            raise InputFileError(f"{buildings}: missing; each area needs its OSM building outlines")
        metas.append(_prepare_one(tif, buildings, out, gsd, quality))
        log.info("fair-drone: %s -> %dx%d, %d buildings", tif.name, metas[-1]["width"],
                 metas[-1]["height"], metas[-1]["buildings"])  # fmt: skip
    return metas
