"""Tiny generated fixtures for the leads tests: a GeoTIFF pair, a units GeoPackage, a stand-in
pair reader (until/besides geo.tiles) and an oracle predict callback.

Structures are painted only on the flight: red = new_building, yellow = construction. The oracle
finds them as connected regions where flight and baseline differ, so it needs nothing but pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.features import shapes
from rasterio.vrt import WarpedVRT
from rasterio.windows import from_bounds
from scipy import ndimage

from models.candidates import Candidates

RED = (220, 40, 40)
YELLOW = (230, 210, 40)
GROUND = (90, 120, 80)

# a projected CRS (UTM 48N, Chongqing-ish) and an origin inside it
UTM = "EPSG:32648"
ORIGIN = (600000.0, 3300000.0)


@dataclass
class Structure:
    """A rectangle in map coordinates (metres from ORIGIN's top-left) painted on the flight."""

    x0: float
    y0: float
    x1: float
    y1: float
    color: tuple[int, int, int] = RED

    def box(self, origin: tuple[float, float] = ORIGIN) -> shapely.Polygon:
        ox, oy = origin
        return shapely.box(ox + self.x0, oy - self.y1, ox + self.x1, oy - self.y0)


def write_pair(
    folder: Path,
    structures: Sequence[Structure],
    size_px: int = 256,
    gsd: float = 0.2,
    crs: str = UTM,
    flight_alpha_cols: int | None = None,
) -> tuple[Path, Path]:
    """Write flight.tif (RGBA, structures painted) and baseline.tif (RGB) on the same grid.

    ``flight_alpha_cols``: only the first that many columns of the flight are valid (alpha 255).
    With a geographic ``crs`` the grid is the projected one reprojected to it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = np.empty((3, size_px, size_px), np.uint8)
    for b, v in enumerate(GROUND):
        base[b] = np.clip(v + rng.normal(0, 4, (size_px, size_px)), 0, 255)
    flight = base.copy()
    transform = Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1])
    for s in structures:
        c0, r0 = int(round(s.x0 / gsd)), int(round(s.y0 / gsd))
        c1, r1 = int(round(s.x1 / gsd)), int(round(s.y1 / gsd))
        for b, v in enumerate(s.color):
            flight[b, r0:r1, c0:c1] = v
    alpha = np.full((1, size_px, size_px), 255, np.uint8)
    if flight_alpha_cols is not None:
        alpha[:, :, flight_alpha_cols:] = 0
    paths = (folder / "flight.tif", folder / "baseline.tif")
    for path, data in ((paths[0], np.concatenate([flight, alpha])), (paths[1], base)):
        profile = dict(
            driver="GTiff",
            width=size_px,
            height=size_px,
            count=len(data),
            dtype="uint8",
            crs=UTM,
            transform=transform,
        )
        if CRS.from_user_input(crs).is_geographic:
            mem = path.with_suffix(".utm.tif")
            with rasterio.open(mem, "w", **profile) as dst:
                dst.write(data)
            with (
                rasterio.open(mem) as src,
                WarpedVRT(src, crs=crs, resampling=Resampling.nearest) as vrt,
            ):
                prof = dict(
                    profile, crs=crs, transform=vrt.transform, width=vrt.width, height=vrt.height
                )
                with rasterio.open(path, "w", **prof) as dst:
                    dst.write(vrt.read())
            mem.unlink()
        else:
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data)
    return paths


def write_units(
    path: Path,
    crs: str = UTM,
    origin: tuple[float, float] = ORIGIN,
    extent_m: float = 51.2,
    drop: dict[str, str] | None = None,
    invalid_village: bool = False,
    permits: Sequence[shapely.Geometry] = (),
    known: Sequence[shapely.Geometry] = (),
) -> Path:
    """units.gpkg over the fixture: one district, two townships (west/east halves), a village on
    the north of the west half (the south-west is in no unit), a community on the east half,
    a compound inside the community.

    ``drop`` = {layer: column} removes a column to test errors.
    """
    ox, oy = origin
    half = extent_m / 2
    full = shapely.box(ox - 10, oy - extent_m - 10, ox + extent_m + 10, oy + 10)
    west = shapely.box(ox - 10, oy - extent_m - 10, ox + half, oy + 10)
    east = shapely.box(ox + half, oy - extent_m - 10, ox + extent_m + 10, oy + 10)
    compound = shapely.box(ox + half + 5, oy - 25, ox + extent_m, oy - 5)
    village = shapely.box(ox - 10, oy - 30, ox + half, oy + 10)  # north part of the west only
    if invalid_village:  # a bow-tie: invalid, repairable
        village = shapely.Polygon(
            [(ox - 10, oy + 10), (ox + half, oy - 30), (ox + half, oy + 10), (ox - 10, oy - 30)]
        )
    layers: dict[str, gpd.GeoDataFrame] = {
        "districts": gpd.GeoDataFrame(
            {"district_code": ["500101"], "district_name": ["测试区"]}, geometry=[full], crs=UTM
        ),
        "townships": gpd.GeoDataFrame(
            {
                "township_code": ["500101001", "500101002"],
                "township_name": ["西镇", "东街道"],
                "township_kind": ["township", "street"],
                "district_code": ["500101", "500101"],
            },
            geometry=[west, east],
            crs=UTM,
        ),
        "villages": gpd.GeoDataFrame(
            {
                "unit_code": ["500101001201", "500101002001"],
                "unit_name": ["西村", "东社区"],
                "unit_type": ["village", "community"],
                "committee_name": ["西村村民委员会", ""],
                "township_code": ["500101001", "500101002"],
            },
            geometry=[village, east],
            crs=UTM,
        ),
        "compounds": gpd.GeoDataFrame(
            {
                "unit_code": ["C001"],
                "unit_name": ["东苑小区"],
                "property_company": ["东苑物业公司"],
                "township_code": ["500101002"],
            },
            geometry=[compound],
            crs=UTM,
        ),
        "permits": gpd.GeoDataFrame(
            {
                "permit_id": [f"P{i}" for i in range(len(permits))],
                "permit_no": [f"建字{i}" for i in range(len(permits))],
                "holder": ["某公司"] * len(permits),
                "valid_from": ["2020-01-01"] * len(permits),
                "valid_to": ["2099-12-31"] * len(permits),
            },
            geometry=list(permits),
            crs=UTM,
        ),
    }
    if known:
        layers["known_buildings"] = gpd.GeoDataFrame(
            {"building_id": [f"B{i}" for i in range(len(known))]}, geometry=list(known), crs=UTM
        )
    for name, gdf in layers.items():
        if drop and name in drop:
            gdf = gdf.drop(columns=[drop[name]])
        gdf.to_crs(crs).to_file(path, layer=name, driver="GPKG", engine="pyogrio")
    return path


def oracle_predict(images: list[np.ndarray]) -> list[Candidates]:
    """Boxes around connected regions where flight (ch 0-2) and baseline (ch 3-5) differ."""
    out = []
    for img in images:
        f, b = img[..., :3].astype(np.int16), img[..., 3:].astype(np.int16)
        changed = np.abs(f - b).max(axis=-1) > 60
        # isolated pixels are noise (e.g. histogram matching of a near-flat fixture image)
        changed = ndimage.binary_opening(changed, structure=np.ones((3, 3), bool))
        labels, n = ndimage.label(changed)
        boxes, classes = [], []
        for sl in ndimage.find_objects(labels):
            if sl is None:
                continue
            r, c = sl
            patch = img[r, c, :3].reshape(-1, 3).astype(int).mean(axis=0)
            boxes.append([c.start, r.start, c.stop, r.stop])
            classes.append(1 if patch[1] > 0.6 * patch[0] else 0)  # yellow vs red
        out.append(
            Candidates(
                np.array(boxes, np.float32).reshape(-1, 4),
                np.full(len(boxes), 0.9, np.float32),
                np.array(classes, np.int64),
            )
        )
    return out


# ---------------------------------------------------------------- stand-in for geo.tiles
@dataclass(frozen=True)
class _Tile:
    index: int
    row_off: int
    col_off: int
    height: int
    width: int


@dataclass(frozen=True)
class _TilePair:
    tile: _Tile
    flight: np.ndarray
    baseline: np.ndarray
    valid: np.ndarray
    transform: Affine


@dataclass
class _Footprints:
    flight: Any
    baseline: Any
    common: Any
    unknown: Any


@dataclass
class _Registration:
    status: str = "off"
    decision: str = "off"
    not_comparable: Any = None
    message: str = "stand-in: no co-registration"
    dx_m: float = 0.0
    dy_m: float = 0.0
    residual_px: float = 0.0


def _offsets(n: int, size: int, step: int) -> list[int]:
    if n <= size:
        return [0]
    offs = list(range(0, n - size, step))
    return offs + [n - size]


@dataclass
class StandInPair:
    """What ``geo.tiles.open_pair`` gives, for same-area tiny test rasters (read into memory)."""

    flight_path: Path
    baseline_path: Path
    gsd: float = 0.2
    registration: _Registration = field(default_factory=_Registration)

    def __post_init__(self) -> None:
        with rasterio.open(self.flight_path) as src:
            crs = CRS.from_user_input(src.crs)
            if crs.is_geographic:
                lon = (src.bounds.left + src.bounds.right) / 2
                crs = CRS.from_epsg(32600 + int((lon + 180) // 6) + 1)
            with WarpedVRT(src, crs=crs, resampling=Resampling.nearest) as vrt:
                left, bottom, right, top = vrt.bounds
        self.crs = crs
        self.width = int(round((right - left) / self.gsd))
        self.height = int(round((top - bottom) / self.gsd))
        self.transform = Affine(self.gsd, 0, left, 0, -self.gsd, top)
        self._flight = self._read(self.flight_path)
        self._baseline = self._read(self.baseline_path)
        fvalid = (
            self._flight[3] > 0
            if len(self._flight) > 3
            else np.ones((self.height, self.width), bool)
        )
        bvalid = self._baseline[:3].max(axis=0) > 0
        self._valid = fvalid & bvalid
        fp = self._polygon(fvalid)
        bp = self._polygon(bvalid)
        self.footprints = _Footprints(fp, bp, fp.intersection(bp), fp.difference(bp))
        self.flight_id = self.flight_path.stem
        self.baseline_id = self.baseline_path.stem

    def _read(self, path: Path) -> np.ndarray:
        with (
            rasterio.open(path) as src,
            WarpedVRT(
                src,
                crs=self.crs,
                transform=self.transform,
                width=self.width,
                height=self.height,
                resampling=Resampling.nearest,
            ) as vrt,
        ):
            return vrt.read()

    def _polygon(self, mask: np.ndarray) -> shapely.Geometry:
        polys = [
            shapely.geometry.shape(g)
            for g, v in shapes(mask.astype(np.uint8), transform=self.transform)
            if v == 1
        ]
        return shapely.union_all(polys) if polys else shapely.Polygon()

    def __enter__(self) -> StandInPair:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def tiles(self, size: int = 512, overlap: int = 64, prefetch: int = 2) -> Iterator[_TilePair]:
        step = size - overlap
        index = 0
        for r in _offsets(self.height, size, step):
            for c in _offsets(self.width, size, step):
                h, w = min(size, self.height - r), min(size, self.width - c)
                valid = self._valid[r : r + h, c : c + w]
                if valid.any():
                    yield _TilePair(
                        _Tile(index, r, c, h, w),
                        np.moveaxis(self._flight[:3, r : r + h, c : c + w], 0, -1).copy(),
                        np.moveaxis(self._baseline[:3, r : r + h, c : c + w], 0, -1).copy(),
                        valid,
                        self.transform @ Affine.translation(c, r),
                    )
                index += 1

    def read_window(self, bounds: tuple[float, float, float, float], pad_m: float = 0.0):
        minx, miny, maxx, maxy = bounds
        win = from_bounds(minx - pad_m, miny - pad_m, maxx + pad_m, maxy + pad_m, self.transform)
        r0, c0 = max(0, int(win.row_off)), max(0, int(win.col_off))
        r1 = min(self.height, int(np.ceil(win.row_off + win.height)))
        c1 = min(self.width, int(np.ceil(win.col_off + win.width)))
        f = np.moveaxis(self._flight[:3, r0:r1, c0:c1], 0, -1).copy()
        b = np.moveaxis(self._baseline[:3, r0:r1, c0:c1], 0, -1).copy()
        return f, b, self.transform @ Affine.translation(c0, r0)


def stand_in_open_pair(flight: Path, baseline: Path, gsd: float = 0.2, **_: Any) -> StandInPair:
    return StandInPair(Path(flight), Path(baseline), gsd=gsd)
