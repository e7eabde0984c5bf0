"""Write a synthetic district (or a sequence of nights) to a folder, atomically.

``generate_district`` renders a scene pair (:func:`geo.synthetic.scene.render_pair`) and writes
``flight.tif`` (EPSG:4544, COG, RGBA), ``baseline.tif`` (EPSG:3857, ~0.3 m, shifted by a known
misregistration), ``units.gpkg``, ``truth.gpkg``, ``district.json`` and ``preview.png``.
``generate_district(..., changes=False)`` writes a no-change district (only nuisance
differences). ``generate_nights`` writes one baseline and ``night_NN/flight.tif`` for N nights. Both write into
a temporary sibling folder and rename it into place, so OUT is never half-written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyogrio  # noqa: F401  (GeoPackage engine)
from affine import Affine
from pyproj import Transformer

from geo.errors import ConfigError, InputFileError
from geo.synthetic.geotiff import (
    BASELINE_EPSG,
    BASELINE_GSD_M,
    FLIGHT_EPSG,
    write_baseline,
    write_rgba_cog,
)
from geo.synthetic.scene import CHANGE_KINDS, Change, render_pair, render_sequence
from geo.synthetic.units import truth_frame, unit_layers

__all__ = [
    "DistrictPaths",
    "NightsPaths",
    "generate_district",
    "generate_nights",
    "check_args",
    "district_origin",
]

log = logging.getLogger(__name__)
LOCAL_LON_LAT = (106.3, 29.6)  # near Chongqing, inside the CM 105E 3-degree zone


@dataclass(frozen=True)
class DistrictPaths:
    """Where ``generate_district`` wrote each file."""

    root: Path
    flight: Path
    baseline: Path
    units: Path
    truth: Path
    meta: Path
    preview: Path


@dataclass(frozen=True)
class NightsPaths:
    """Where ``generate_nights`` wrote each file (``flights[k]`` is night k+1)."""

    root: Path
    baseline: Path
    units: Path
    meta: Path
    flights: list[Path]
    truths: list[Path]
    sidecars: list[Path]


def check_args(seed: int, size_m: float, gsd: float, days_before: int | None = None) -> int:
    """Validate the generator's arguments; returns the image size in pixels."""
    if days_before is not None and not 1 <= days_before <= 3650:
        raise ConfigError(f"--days-before {days_before}: must be between 1 and 3650 days")
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be 0 or more")
    if not 20 <= size_m <= 5000:
        raise ConfigError(f"--size-m {size_m:g}: must be between 20 and 5000 metres")
    if not 0.03 <= gsd <= 1.0:
        raise ConfigError(f"--gsd {gsd:g}: must be between 0.03 and 1.0 metres per pixel")
    n = int(round(size_m / gsd))
    if n > 40000:
        raise ConfigError(f"--size-m {size_m:g} at --gsd {gsd:g} is {n} px wide; keep it <= 40000")
    return n


@contextmanager
def _atomic_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(
            f"{out}: exists and is not empty; pass --overwrite to replace it, or choose a new folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        if out.is_dir():
            os.replace(out, old)
        else:
            raise InputFileError(f"{out}: is a file, not a folder; remove it or choose a folder")
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _origin(seed: int, size_m: float) -> tuple[Affine, float]:
    rng = np.random.default_rng([seed, 5])
    lon = LOCAL_LON_LAT[0] + rng.uniform(-0.1, 0.1)
    lat = LOCAL_LON_LAT[1] + rng.uniform(-0.08, 0.08)
    e, n = Transformer.from_crs(4490, FLIGHT_EPSG, always_xy=True).transform(lon, lat)
    return Affine(1.0, 0, round(e - size_m / 2), 0, -1.0, round(n + size_m / 2)), lat


def _placed(origin: tuple[float, float]) -> tuple[Affine, float]:
    """The grid whose top-left corner is *origin* (easting, northing in the flight CRS)."""
    e, n = origin
    _, lat = Transformer.from_crs(FLIGHT_EPSG, 4490, always_xy=True).transform(e, n)
    return Affine(1.0, 0, float(e), 0, -1.0, float(n)), lat


def district_origin(seed: int, size_m: float) -> tuple[float, float]:
    """The top-left corner (easting, northing) the generator picks for *seed*."""
    t, _ = _origin(seed, size_m)
    return t.c, t.f


def _misregistration(seed: int) -> tuple[float, float]:
    rng = np.random.default_rng([seed, 11])
    r, a = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * math.pi)
    return round(r * math.cos(a), 3), round(r * math.sin(a), 3)


def _preview(
    path: Path, before: np.ndarray, after: np.ndarray, changes: list[Change], width: int = 1600
) -> None:
    n = after.shape[0]
    half = width // 2
    f = half / n
    imgs = [cv2.resize(a, (half, half), interpolation=cv2.INTER_AREA) for a in (before, after)]
    colours = {"lead": (230, 40, 40), "permitted": (40, 220, 60), "none": (250, 220, 40)}
    for img in imgs:
        for c in changes:
            pts = np.round(c.polygon * f).astype(np.int32)
            cv2.polylines(img, [pts], True, colours[c.expected], 1, cv2.LINE_AA)
    canvas = np.concatenate([imgs[0], np.full((half, 4, 3), 255, np.uint8), imgs[1]], 1)
    legend = np.full((28, canvas.shape[1], 3), 255, np.uint8)
    text = "before (baseline epoch)  |  after (flight)   outlines: red = lead, green = permitted, yellow = nuisance"
    cv2.putText(legend, text, (8, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    ok = cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([canvas, legend]), cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputFileError(f"{path}: could not write the preview PNG")


def _write_units(tmp: Path, layers: dict) -> Path:
    path = tmp / "units.gpkg"
    for name, gdf in layers.items():
        gdf.to_file(path, layer=name, driver="GPKG", engine="pyogrio")
    return path


def _write_baseline_and_units(  # type: ignore[no-untyped-def]
    tmp: Path,
    scene,
    transform: Affine,
    shift: tuple[float, float],
    lat: float,
    n: int,
    crs: str,
    seed: int,
    first_flight_date: str,
) -> tuple[dict, Path]:
    """Write ``baseline.tif`` and ``units.gpkg`` of a rendered pair or night sequence."""
    write_baseline(tmp / "baseline.tif", scene.before, scene.valid_before, transform, shift, lat,
                   {"DATE": scene.info_before.date})  # fmt: skip
    layers = unit_layers(
        scene.layout, transform, n, crs, seed, scene.info_before.date, first_flight_date
    )
    return layers, _write_units(tmp, layers)


def generate_district(
    out_dir: str | Path,
    seed: int,
    size_m: float = 1000,
    gsd: float = 0.1,
    *,
    overwrite: bool = False,
    changes: bool = True,
    days_before: int | None = None,
) -> DistrictPaths:
    """Render and write a synthetic district into ``out_dir`` (see the module docstring).

    ``changes=False`` writes a *no-change* district: the same scene on both dates with only
    nuisance differences (illumination, season, sun and shadows, moved cars, vegetation, the
    baseline's misregistration); its truth layer has no ``lead`` or ``permitted`` rows.
    ``days_before`` fixes the days from the baseline to the flight (default: drawn from the seed,
    90-300 days, so usually another season; a few weeks keeps the season and changes only sun,
    illumination and misregistration).
    """
    n = check_args(seed, size_m, gsd, days_before)
    t0 = time.perf_counter()
    style: dict[str, object] = {} if changes else {"changes": False}
    if days_before is not None:
        style["days_before"] = int(days_before)
    pair = render_pair(seed, n, gsd, style=style or None)
    t_render = time.perf_counter() - t0
    log.info("rendered %d x %d px in %.1f s", n, n, t_render)
    t1, lat = _origin(seed, n * gsd)
    transform = t1 @ Affine.scale(gsd)
    shift = _misregistration(seed)
    crs = f"EPSG:{FLIGHT_EPSG}"
    with _atomic_dir(Path(out_dir), overwrite) as tmp:
        write_rgba_cog(
            tmp / "flight.tif",
            pair.after,
            pair.valid_after,
            transform,
            FLIGHT_EPSG,
            {"DATE": pair.info_after.date, "FLIGHT_ID": f"SYN-{seed}-01"},
        )
        layers, units = _write_baseline_and_units(
            tmp, pair, transform, shift, lat, n, crs, seed, pair.info_after.date
        )
        truth = truth_frame(pair.changes, transform, crs, layers)
        truth.to_file(tmp / "truth.gpkg", layer="changes", driver="GPKG", engine="pyogrio")
        _preview(tmp / "preview.png", pair.before, pair.after, pair.changes)
        meta = _meta(seed, n, gsd, shift, lat, layers, time.perf_counter() - t0, t_render)
        meta |= {
            "before": vars(pair.info_before),
            "after": vars(pair.info_after),
            "counts": dict(Counter(c.kind for c in pair.changes)),
            "counts_expected": dict(Counter(c.expected for c in pair.changes)),
            "flight_id": f"SYN-{seed}-01",
            "changes": changes,
        }
        (tmp / "district.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    root = Path(out_dir)
    del units
    return DistrictPaths(
        root,
        root / "flight.tif",
        root / "baseline.tif",
        root / "units.gpkg",
        root / "truth.gpkg",
        root / "district.json",
        root / "preview.png",
    )


def _meta(
    seed: int,
    n: int,
    gsd: float,
    shift: tuple[float, float],
    lat: float,
    layers: dict,
    total_s: float,
    render_s: float,
) -> dict:
    return {
        "seed": seed,
        "size_m": round(n * gsd, 3),
        "size_px": n,
        "gsd_m": gsd,
        "flight_crs": f"EPSG:{FLIGHT_EPSG}",
        "baseline_crs": f"EPSG:{BASELINE_EPSG}",
        "baseline_gsd_m": BASELINE_GSD_M,
        "latitude_deg": round(lat, 5),
        "misregistration_m": {
            "dx": shift[0],
            "dy": shift[1],
            "meaning": "baseline content appears displaced by dx east, dy north "
            "relative to the flight; shift it by (-dx, -dy) to align",
        },
        "district_code": str(layers["districts"].iloc[0]["district_code"]),
        "change_kinds": list(CHANGE_KINDS),
        "generation_s": round(total_s, 2),
        "render_s": round(render_s, 2),
    }


def generate_nights(
    out_dir: str | Path,
    seed: int,
    nights: int = 3,
    size_m: float = 1000,
    gsd: float = 0.1,
    *,
    overwrite: bool = False,
    origin: tuple[float, float] | None = None,
) -> NightsPaths:
    """Write one baseline + units and ``nights`` flights over the same district.

    ``night_NN/truth.gpkg`` holds that night's changes against the baseline (``change_id`` is
    stable across nights: a construction site completed later keeps its id and becomes
    ``new_building``); ``night_NN/flight.json`` gives date, flight_id, district_code and the ids
    of structures removed since the previous night. ``origin`` (easting, northing of the top-left
    corner in the flight CRS) places the district, e.g. beside another one to make a city.
    """
    n = check_args(seed, size_m, gsd)
    if not 1 <= nights <= 30:
        raise ConfigError(f"--nights {nights}: must be between 1 and 30")
    t0 = time.perf_counter()
    seq = render_sequence(seed, n, gsd, nights)
    t_render = time.perf_counter() - t0
    t1, lat = _origin(seed, n * gsd) if origin is None else _placed(origin)
    transform = t1 @ Affine.scale(gsd)
    shift = _misregistration(seed)
    crs = f"EPSG:{FLIGHT_EPSG}"
    root = Path(out_dir)
    flights, truths, sidecars = [], [], []
    with _atomic_dir(root, overwrite) as tmp:
        layers, _ = _write_baseline_and_units(
            tmp, seq, transform, shift, lat, n, crs, seed, seq.info_nights[0].date
        )
        d_code = str(layers["districts"].iloc[0]["district_code"])
        for k in range(nights):
            sub = f"night_{k + 1:02d}"
            (tmp / sub).mkdir()
            fid = f"SYN-{seed}-{k + 1:02d}"
            info = seq.info_nights[k]
            write_rgba_cog(
                tmp / sub / "flight.tif",
                seq.nights[k],
                seq.valid_nights[k],
                transform,
                FLIGHT_EPSG,
                {"DATE": info.date, "FLIGHT_ID": fid},
            )
            truth_frame(seq.changes[k], transform, crs, layers).to_file(
                tmp / sub / "truth.gpkg", layer="changes", driver="GPKG", engine="pyogrio"
            )
            side = {
                "date": info.date,
                "flight_id": fid,
                "district_code": d_code,
                "sun_azimuth": info.sun_azimuth,
                "sun_elevation": info.sun_elevation,
                "removed_change_ids": seq.removed[k],
                "counts": dict(Counter(c.kind for c in seq.changes[k])),
            }
            (tmp / sub / "flight.json").write_text(
                json.dumps(side, ensure_ascii=False, indent=2), encoding="utf-8"
            )
            flights.append(root / sub / "flight.tif")
            truths.append(root / sub / "truth.gpkg")
            sidecars.append(root / sub / "flight.json")
        meta = _meta(seed, n, gsd, shift, lat, layers, time.perf_counter() - t0, t_render)
        meta |= {"before": vars(seq.info_before), "nights": [vars(i) for i in seq.info_nights]}
        (tmp / "district.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return NightsPaths(
        root,
        root / "baseline.tif",
        root / "units.gpkg",
        root / "district.json",
        flights,
        truths,
        sidecars,
    )
