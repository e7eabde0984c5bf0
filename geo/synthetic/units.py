"""Administrative and management units, permits and truth of a synthetic district (GeoPandas).

Turns a :class:`geo.synthetic.scene.SceneLayout` (pixels) into the layers of ``units.gpkg``
(districts, townships, villages, compounds, permits, known_buildings) and the ``changes`` layer
of ``truth.gpkg``, in the flight CRS. Names are fictional Chinese names; codes follow the
6 / 9 / 12-digit pattern of Chinese administrative division codes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from shapely.geometry import Polygon, box

from geo.synthetic.scene import Change, SceneLayout

__all__ = ["unit_layers", "truth_frame", "px_to_map"]

_A = list("青岚云溪松柏桂兰枫石龙凤清明福安康宁华新金玉")
_B = list("山湾坪坝桥塘湖林岭沟口园河田庙")
_COMPOUND = ["花园", "小区", "苑", "雅居", "名都", "家园", "丽景", "公馆"]
_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何罗")
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚")


def px_to_map(poly: np.ndarray, transform: Affine) -> Polygon:
    """Pixel polygon -> map polygon under the raster ``transform`` (valid, oriented)."""
    x, y = transform @ (poly[:, 0], poly[:, 1])  # type: ignore[operator]
    return shapely.make_valid(Polygon(np.stack([x, y], 1)))


def _name(rng: np.random.Generator, used: set[str]) -> str:
    for _ in range(200):
        s = str(rng.choice(_A)) + str(rng.choice(_B))
        if s not in used:
            used.add(s)
            return s
    return s + str(len(used))


def _polys(g: shapely.Geometry) -> shapely.Geometry | None:
    parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon" and p.area > 1]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def unit_layers(
    layout: SceneLayout,
    transform: Affine,
    size_px: int,
    crs: str,
    seed: int,
    date_before: str,
    date_after: str,
) -> dict[str, gpd.GeoDataFrame]:
    """Build every layer of ``units.gpkg``; the townships tile the district exactly."""
    rng = np.random.default_rng([seed, 31])
    used: set[str] = set()
    x0, y1 = transform @ (0, 0)
    x1, y0 = transform @ (size_px, size_px)
    district = box(x0, y0, x1, y1)
    d_code = f"5001{90 + seed % 10:02d}"
    d_name = _name(rng, used) + "区"
    cells = [
        (px_to_map(p, transform).intersection(district), kind, col, row)
        for p, kind, col, row in layout.cells
    ]
    cells = [(g, k, c, r) for g, k, c, r in cells if g.area > 1]
    cols = sorted({c for _, _, c, _ in cells})
    if len(cols) >= 2:
        k = cols[len(cols) // 2]
        west = shapely.union_all([g for g, _, c, _ in cells if c < k])
    else:
        xm = (x0 + x1) / 2
        west = box(x0, y0, xm, y1)
    west = west.intersection(district)
    east = district.difference(west)
    towns: list[dict[str, Any]] = []
    for i, (geom, kind) in enumerate(((west, "street"), (east, "township"))):
        name = _name(rng, used) + ("街道" if kind == "street" else "镇")
        towns.append(
            {
                "township_code": f"{d_code}{i + 1:03d}",
                "township_name": name,
                "township_kind": kind,
                "district_code": d_code,
                "geometry": _polys(geom),
            }
        )
    villages, compounds = [], []
    n_comm, n_vill = 0, 0
    for geom, kind, *_ in cells:
        for t in towns:
            part = _polys(geom.intersection(t["geometry"]))
            if part is None or part.area < 50:
                continue
            name = _name(rng, used)
            if kind == "village":
                n_vill += 1
                code, utype, uname, com = (
                    f"{t['township_code']}{200 + n_vill:03d}",
                    "village",
                    name + "村",
                    name + "村村民委员会",
                )
            else:
                n_comm += 1
                code, utype, uname, com = (
                    f"{t['township_code']}{n_comm:03d}",
                    "community",
                    name + "社区",
                    name + "社区居民委员会",
                )
            villages.append(
                {
                    "unit_code": code,
                    "unit_name": uname,
                    "unit_type": utype,
                    "committee_name": com,
                    "township_code": t["township_code"],
                    "geometry": part,
                }
            )
    for j, (p, _) in enumerate(layout.compounds):
        g = _polys(px_to_map(p, transform).intersection(district))
        if g is None or g.area < 400:
            continue
        t = next((t for t in towns if t["geometry"].contains(g.representative_point())), towns[0])
        name = _name(rng, used) + str(rng.choice(_COMPOUND))
        company = "重庆" + _name(rng, used) + "物业服务有限公司"
        compounds.append(
            {
                "unit_code": f"{t['township_code']}9{j % 100:02d}",
                "unit_name": name,
                "property_company": company,
                "township_code": t["township_code"],
                "geometry": g,
            }
        )
    permits = []
    for i, (cid, p) in enumerate(layout.permits):
        holder = str(rng.choice(_SURNAMES)) + "".join(rng.choice(_GIVEN, 2))
        permits.append(
            {
                "permit_id": f"P{seed}-{cid}",
                "permit_no": f"建字第{d_code}{date_after[:4]}{i + 1:05d}号",
                "holder": holder,
                "valid_from": date_before,
                "valid_to": (
                    dt.date.fromisoformat(date_after) + dt.timedelta(days=365)
                ).isoformat(),
                "geometry": px_to_map(p, transform),
            }
        )
    known = [
        {"building_id": f"B{bid}", "geometry": px_to_map(p, transform)}
        for bid, p, _, _ in layout.buildings
    ]
    known = [k for k in known if k["geometry"].intersects(district)]

    def frame(rows: list[dict], columns: list[str]) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(rows, columns=columns + ["geometry"], geometry="geometry", crs=crs)

    return {
        "districts": frame(
            [{"district_code": d_code, "district_name": d_name, "geometry": district}],
            ["district_code", "district_name"],
        ),
        "townships": frame(
            towns, ["township_code", "township_name", "township_kind", "district_code"]
        ),
        "villages": frame(
            villages, ["unit_code", "unit_name", "unit_type", "committee_name", "township_code"]
        ),
        "compounds": frame(
            compounds, ["unit_code", "unit_name", "property_company", "township_code"]
        ),
        "permits": frame(permits, ["permit_id", "permit_no", "holder", "valid_from", "valid_to"]),
        "known_buildings": frame(known, ["building_id"]),
    }


def truth_frame(
    changes: list[Change], transform: Affine, crs: str, layers: dict[str, gpd.GeoDataFrame]
) -> gpd.GeoDataFrame:
    """The ``changes`` layer of ``truth.gpkg``; ``unit_code`` is the compound, else the village."""
    rows = []
    comp, vill = layers["compounds"], layers["villages"]
    for c in changes:
        g = px_to_map(c.polygon, transform)
        pt = g.representative_point()
        hit = comp[comp.contains(pt)]
        if hit.empty:
            hit = vill[vill.contains(pt)]
        rows.append(
            {
                "change_id": int(c.change_id),
                "kind": c.kind,
                "class": c.cls,
                "expected": c.expected,
                "unit_code": str(hit.iloc[0]["unit_code"]) if len(hit) else "",
                "area_m2": round(float(g.area), 2),
                "geometry": g,
            }
        )
    cols = ["change_id", "kind", "class", "expected", "unit_code", "area_m2", "geometry"]
    return gpd.GeoDataFrame(rows, columns=cols, geometry="geometry", crs=crs)
