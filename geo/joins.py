"""Joins: each lead → its compound or village/community, township, district and who must act.

Rules (DOMAIN.md, "Who does what"):

* a lead inside a residential compound (居住小区) belongs to that compound; its property company
  (物业服务企业) patrols it;
* otherwise the village (村) or community (社区) it overlaps most; its village committee
  (村民委员会) or community committee (社区居民委员会) patrols it;
* otherwise it is ``unassigned`` and its township/street government is responsible;
* township and district come from the unit's codes (spatially when the lead is unassigned).

"Most" means the largest overlap area. A compound wins when the lead's area in its best compound
is at least its area in the best village/community *outside* compounds. All overlaps come from
STRtree bulk queries (O(n log n)).

>>> import numpy as np, shapely
>>> a, b = np.array([shapely.box(0, 0, 2, 2)]), np.array([shapely.box(1, 0, 5, 5), shapely.box(-5, 0, 1, 5)])
>>> index, area = best_overlap(a, b)
>>> index.tolist(), area.tolist()
([0], [2.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo.units import Units

__all__ = [
    "ADMIN_COLUMNS",
    "PLACE_COLUMNS",
    "JOIN_COLUMNS",
    "overlap_pairs",
    "best_overlap",
    "covered_area",
    "join_units",
    "committee_name",
    "township_authority",
]

#: the administrative areas a unit lies in: township (乡镇/街道) and district (区县), code + name
ADMIN_COLUMNS = ("township_code", "township_name", "district_code", "district_name")
#: where a lead is: its unit (compound / village / community / unassigned) and administrative areas
PLACE_COLUMNS = ("unit_type", "unit_code", "unit_name", *ADMIN_COLUMNS)
#: the columns :func:`join_units` returns: the place and who must act there
JOIN_COLUMNS = (*PLACE_COLUMNS, "responsible_party", "responsible_type")


def overlap_pairs(
    geoms: np.ndarray, others: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All intersecting pairs ``(i, j, area)`` between ``geoms[i]`` and ``others[j]``."""
    if not len(geoms) or not len(others):
        e = np.empty(0, np.int64)
        return e, e, np.empty(0)
    tree = shapely.STRtree(others)
    i, j = tree.query(geoms, predicate="intersects")
    area = shapely.area(shapely.intersection(geoms[i], others[j]))
    keep = area > 0
    return i[keep], j[keep], area[keep]


def best_overlap(geoms: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each geometry, the index of the ``other`` it overlaps most (-1: none) and that area.

    Ties go to the lower index, so the result is deterministic.
    """
    best = np.full(len(geoms), -1, np.int64)
    area = np.zeros(len(geoms))
    i, j, a = overlap_pairs(geoms, others)
    if len(i):
        order = np.lexsort((j, -a, i))  # by lead, then largest area, then lowest index
        i, j, a = i[order], j[order], a[order]
        first = np.ones(len(i), bool)
        first[1:] = i[1:] != i[:-1]
        best[i[first]] = j[first]
        area[i[first]] = a[first]
    return best, area


def covered_area(geoms: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Area of each geometry covered by ``others`` (assumed not to overlap one another)."""
    out = np.zeros(len(geoms))
    i, _, a = overlap_pairs(geoms, others)
    np.add.at(out, i, a)
    return np.minimum(out, shapely.area(geoms)) if len(geoms) else out


def committee_name(unit_name: str, unit_type: str, given: Any = None) -> str:
    """The village or community committee's name (the layer's, else derived from the unit)."""
    if isinstance(given, str) and given.strip():
        return given.strip()
    suffix = "村民委员会" if unit_type == "village" else "社区居民委员会"
    return f"{unit_name}{suffix}"


def township_authority(township_name: str, township_kind: str) -> str:
    """The township government (乡镇人民政府) or street office (街道办事处)."""
    if not township_name:
        return ""
    return f"{township_name}{'人民政府' if township_kind == 'township' else '办事处'}"


def _lookup(frame: pd.DataFrame, key: str) -> dict[str, dict[str, Any]]:
    if frame.empty:
        return {}
    cols = (
        [c for c in frame.columns if c != frame.geometry.name]
        if hasattr(frame, "geometry")
        else list(frame.columns)
    )
    records = frame[cols].drop_duplicates(key).to_dict("records")
    return {str(r[key]): r for r in records}


def join_units(geoms: np.ndarray, units: Units) -> pd.DataFrame:
    """Join each lead polygon (in ``units.crs``) to its unit, township, district and party.

    Returns a DataFrame with :data:`JOIN_COLUMNS`, one row per geometry, in order.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    comp_geom = units.compounds.geometry.to_numpy()
    vill_geom = units.villages.geometry.to_numpy()
    comp_idx, comp_area = best_overlap(geoms, comp_geom)
    vill_idx, vill_area = best_overlap(geoms, vill_geom)
    in_compounds = covered_area(geoms, comp_geom)
    outside = np.maximum(vill_area - in_compounds, 0.0)
    use_comp = (comp_idx >= 0) & (comp_area >= outside)
    use_vill = ~use_comp & (vill_idx >= 0) & (vill_area > 0)

    townships = _lookup(units.townships, "township_code")
    districts = _lookup(units.districts, "district_code")
    comp = units.compounds.drop(columns=units.compounds.geometry.name).to_dict("records")
    vill = units.villages.drop(columns=units.villages.geometry.name).to_dict("records")

    need_spatial = ~(use_comp | use_vill)
    tsp_idx = np.full(n, -1, np.int64)
    if need_spatial.any():
        tsp_idx[need_spatial] = best_overlap(
            geoms[need_spatial], units.townships.geometry.to_numpy()
        )[0]
    tsp_records = units.townships.drop(columns=units.townships.geometry.name).to_dict("records")
    dist_geom = units.districts.geometry.to_numpy()

    rows: list[dict[str, Any]] = []
    for k in range(n):
        row = dict.fromkeys(JOIN_COLUMNS, "")
        township_code = ""
        if use_comp[k]:
            u = comp[comp_idx[k]]
            row.update(unit_type="compound", unit_code=u["unit_code"], unit_name=u["unit_name"])
            row.update(
                responsible_party=str(u.get("property_company") or ""),
                responsible_type="property_company",
            )
            township_code = str(u.get("township_code") or "")
        elif use_vill[k]:
            u = vill[vill_idx[k]]
            kind = str(u["unit_type"])
            row.update(unit_type=kind, unit_code=u["unit_code"], unit_name=u["unit_name"])
            row.update(
                responsible_party=committee_name(
                    str(u["unit_name"]), kind, u.get("committee_name")
                ),
                responsible_type=f"{kind}_committee",
            )
            township_code = str(u.get("township_code") or "")
        else:
            row["unit_type"] = "unassigned"
            if tsp_idx[k] >= 0:
                township_code = str(tsp_records[tsp_idx[k]]["township_code"])
        tsp = townships.get(township_code)
        if tsp is None and (use_comp[k] or use_vill[k]):
            # the unit names a township the layer lacks: fall back to where the lead lies
            j = best_overlap(geoms[k : k + 1], units.townships.geometry.to_numpy())[0][0]
            tsp = tsp_records[j] if j >= 0 else None
        if tsp is not None:
            row.update(
                township_code=str(tsp["township_code"]), township_name=str(tsp["township_name"])
            )
            dist = districts.get(str(tsp.get("district_code", "")))
        else:
            dist = None
        if dist is None:
            j = best_overlap(geoms[k : k + 1], dist_geom)[0][0]
            dist = districts.get(str(units.districts.iloc[j]["district_code"])) if j >= 0 else None
        if dist is not None:
            row.update(
                district_code=str(dist["district_code"]), district_name=str(dist["district_name"])
            )
        if row["unit_type"] == "unassigned":
            kind = str(tsp.get("township_kind", "township")) if tsp is not None else "township"
            row.update(
                responsible_party=township_authority(row["township_name"], kind),
                responsible_type="township",
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(JOIN_COLUMNS))
