"""A tiny seeded district for the maps: units layers and cases, made in memory in EPSG:4544.

Used by the maps tests and the analyst notebooks when no real ledger is at hand. The layout is
a 3 x 3 grid of units (two townships) with cases *planted* per unit, so the expected ranking is
known: the units given the most cases should rank first.

>>> units = make_sample_units()
>>> sorted(units), len(units["compounds"]) + len(units["villages"])
(['compounds', 'districts', 'townships', 'villages'], 9)
>>> cases = make_sample_cases(units, {"500104001001": 5}, seed=1)
>>> len(cases), set(cases["unit_code"])
(5, {'500104001001'})
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer
from shapely.geometry import box

from pipelines.cases.states import LEDGER_OF_CLASS, LEDGERS, REJECTED

__all__ = ["SAMPLE_CRS", "SAMPLE_PLANTED", "make_sample_units", "make_sample_cases", "write_chip"]

SAMPLE_CRS = "EPSG:4544"
_ORIGIN_LONLAT = (105.60, 29.60)
_CELL_M = 600.0
_DISTRICT = ("500104", "大渡口区")
_TOWNSHIPS = (("500104001", "跃进村街道", "street"), ("500104002", "跳蹬镇", "township"))
#: default planted case counts per unit (unit_code -> n): the first two must rank first
SAMPLE_PLANTED: dict[str, int] = {
    "500104001001": 14,
    "500104002005": 11,
    "500104001002": 3,
    "500104001003": 2,
    "500104001004": 2,
    "500104002006": 1,
    "500104002007": 1,
}


def _origin() -> tuple[float, float]:
    to_gk = Transformer.from_crs("EPSG:4490", SAMPLE_CRS, always_xy=True)
    x, y = to_gk.transform(*_ORIGIN_LONLAT)
    return float(round(x, -2)), float(round(y, -2))


def make_sample_units() -> dict[str, gpd.GeoDataFrame]:
    """The units layers of a 3 x 3-unit sample district (``units.gpkg`` contract), EPSG:4544.

    Row 0 holds compounds of the street 500104001; rows 1-2 villages/communities, the first
    three cells in 500104001 and the rest in the township 500104002.
    """
    x0, y0 = _origin()
    compounds, villages = [], []
    for i in range(9):
        row, col = divmod(i, 3)
        town = _TOWNSHIPS[0] if i < 3 else _TOWNSHIPS[1]
        if i == 3:  # a village of the first township in the second row
            town = _TOWNSHIPS[0]
        idx = i + 1
        code = f"{town[0]}{idx:03d}"
        geom = box(
            x0 + col * _CELL_M,
            y0 + row * _CELL_M,
            x0 + (col + 1) * _CELL_M,
            y0 + (row + 1) * _CELL_M,
        )
        if row == 0:
            compounds.append(
                {
                    "unit_code": code,
                    "unit_name": f"滨江小区{idx}期",
                    "property_company": f"渝安物业{idx}公司",
                    "township_code": town[0],
                    "geometry": geom,
                }
            )
        else:
            kind = "community" if col == 0 else "village"
            villages.append(
                {
                    "unit_code": code,
                    "unit_name": f"{'新桥社区' if kind == 'community' else '石盘村'}{idx}",
                    "unit_type": kind,
                    "committee_name": f"{idx}号{'社区居委会' if kind == 'community' else '村委会'}",
                    "township_code": town[0],
                    "geometry": geom,
                }
            )
    comp = gpd.GeoDataFrame(compounds, crs=SAMPLE_CRS)
    vill = gpd.GeoDataFrame(villages, crs=SAMPLE_CRS)
    allu = pd.concat([comp, vill], ignore_index=True)
    towns = []
    for code, name, kind in _TOWNSHIPS:
        geom = allu.loc[allu["township_code"] == code].union_all()
        towns.append(
            {
                "township_code": code,
                "township_name": name,
                "township_kind": kind,
                "district_code": _DISTRICT[0],
                "geometry": geom,
            }
        )
    town_gdf = gpd.GeoDataFrame(towns, crs=SAMPLE_CRS)
    district = gpd.GeoDataFrame(
        [
            {
                "district_code": _DISTRICT[0],
                "district_name": _DISTRICT[1],
                "geometry": allu.union_all(),
            }
        ],
        crs=SAMPLE_CRS,
    )
    return {"districts": district, "townships": town_gdf, "villages": vill, "compounds": comp}


def write_chip(path: Path, seed: int, size: int = 48) -> Path:
    """Write a small random PNG "evidence chip" (for popups and notebooks); returns ``path``."""
    import matplotlib.image as mpimg

    rng = np.random.default_rng(seed)
    img = (rng.random((size, size, 3)) * 0.4 + 0.3).astype(np.float32)
    img[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (0.8, 0.3, 0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    mpimg.imsave(path, img)
    return path


def make_sample_cases(
    units: dict[str, gpd.GeoDataFrame],
    planted: dict[str, int] | None = None,
    seed: int = 0,
    as_of: str = "2024-06-30",
    chip_dir: Path | None = None,
) -> gpd.GeoDataFrame:
    """Cases (the cases contract) planted at random inside units: ``planted`` maps unit_code -> n.

    States, ledgers and dates are drawn from ``seed``; first_seen spans the 90 days up to
    ``as_of``. With ``chip_dir`` a before/after PNG pair is written per case and referenced.
    """
    planted = dict(SAMPLE_PLANTED if planted is None else planted)
    rng = np.random.default_rng(seed)
    allu = pd.concat([units["compounds"], units["villages"]], ignore_index=True)
    towns = units["townships"].set_index("township_code")
    district = units["districts"].iloc[0]
    to_ll = Transformer.from_crs(SAMPLE_CRS, "EPSG:4490", always_xy=True)
    end = dt.date.fromisoformat(as_of)
    rows = []
    for code, n in planted.items():
        hit = allu.loc[allu["unit_code"] == code]
        if hit.empty:
            raise KeyError(f"planted unit {code!r} is not in the sample units")
        unit = hit.iloc[0]
        minx, miny, maxx, maxy = unit.geometry.bounds
        for _ in range(n):
            k = len(rows) + 1
            cx = rng.uniform(minx + 40, maxx - 40)
            cy = rng.uniform(miny + 40, maxy - 40)
            w, h = rng.uniform(6, 18, size=2)
            geom = box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            cls = "construction" if rng.random() < 0.5 else "new_building"
            ledger = LEDGER_OF_CLASS[cls]
            state = str(rng.choice([*LEDGERS[ledger], REJECTED], p=_state_p(ledger)))
            first = end - dt.timedelta(days=int(rng.integers(0, 90)))
            lon, lat = to_ll.transform(cx, cy)
            case_id = f"BW-{district['district_code']}-{k:06d}"
            before = after = ""
            if chip_dir is not None:
                before = str(write_chip(Path(chip_dir) / f"{case_id}_before.png", seed * 1000 + k))
                after = str(
                    write_chip(Path(chip_dir) / f"{case_id}_after.png", seed * 1000 + k + 1)
                )
            town = towns.loc[unit["township_code"]]
            rows.append(
                {
                    "case_id": case_id,
                    "ledger": ledger,
                    "state": state,
                    "reject_reason": "false_detection" if state == REJECTED else "",
                    "class": cls,
                    "score": float(rng.uniform(0.4, 0.95)),
                    "area_m2": float(geom.area),
                    "lon": lon,
                    "lat": lat,
                    "unit_type": unit.get("unit_type")
                    if pd.notna(unit.get("unit_type"))
                    else "compound",
                    "unit_code": code,
                    "unit_name": unit["unit_name"],
                    "township_code": unit["township_code"],
                    "township_name": town["township_name"],
                    "district_code": district["district_code"],
                    "district_name": district["district_name"],
                    "responsible_party": unit.get("property_company") or town["township_name"],
                    "first_seen": first.isoformat(),
                    "last_seen": end.isoformat(),
                    "times_seen": int(rng.integers(1, 5)),
                    "last_flight_id": f"F{end:%Y%m%d}",
                    "not_observed": False,
                    "supervised": bool(rng.random() < 0.1),
                    "deadline": "",
                    "evidence_before": before,
                    "evidence_after": after,
                    "geometry": geom,
                }
            )
    if not rows:
        cols = ["case_id", "state", "unit_code", "first_seen", "geometry"]
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry="geometry", crs=SAMPLE_CRS)
    return gpd.GeoDataFrame(rows, crs=SAMPLE_CRS)


def _state_p(ledger: str) -> list[float]:
    if ledger == "in_progress":  # discovered, stopped, removed, rejected
        return [0.5, 0.25, 0.15, 0.10]
    return [0.45, 0.2, 0.15, 0.1, 0.10]  # evidence, notice, penalty, enforced, rejected
