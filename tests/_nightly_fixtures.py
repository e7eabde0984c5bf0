"""Seeded, tiny fixtures for the nightly tests: an inbox of nights, a baseline folder, a config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

ORIGIN = (500_000.0, 3_300_000.0)
CRS = "EPSG:4544"


def _write(path: Path, arr: np.ndarray, gsd: float = 0.2, tag_date: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": from_origin(*ORIGIN, gsd, gsd),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if tag_date:
            dst.update_tags(TIFFTAG_DATETIME=tag_date.replace("-", ":") + " 00:00:00")
    return path


def make_site(root: Path, *, nights: int = 3, size: int = 256, seed: int = 7) -> dict[str, Path]:
    """``root/incoming/night_0k/flight.tif`` + sidecar, ``root/baselines/base_2023.tif``, config.

    Night k keeps night k-1's new structures and adds two more (so cases are seen again).
    """
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 90, (3, size, size), dtype=np.uint8)
    _write(root / "baselines" / "base_2023.tif", base, tag_date="2023-11-02")
    flight = base.copy()
    incoming = root / "incoming"
    for k in range(1, nights + 1):
        for _ in range(2):
            r, c = (int(v) for v in rng.integers(0, size - 20, 2))
            flight[:, r : r + 14, c : c + 14] = 220
        night = incoming / f"night_{k:02d}"
        _write(night / "flight.tif", flight)
        meta = {"flight_id": f"night_{k:02d}", "date": f"2024-05-0{k}", "district": "500106"}
        (night / "flight.json").write_text(json.dumps(meta), encoding="utf-8")
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        "nightly:\n  inbox: inbox\n  catalogue_dir: baselines\n  output_root: out\n  tile_batch: 2\n"
        "  settle_seconds: 0\n",
        encoding="utf-8",
    )
    return {
        "root": root,
        "incoming": incoming,
        "inbox": root / "inbox",
        "config": config,
        "out": root / "out",
    }


def drop(site: dict[str, Path], night: int) -> Path:
    """Copy night ``night``'s folder into the inbox (a flight landing)."""
    src = site["incoming"] / f"night_{night:02d}"
    dst = site["inbox"] / src.name
    shutil.copytree(src, dst)
    return dst
