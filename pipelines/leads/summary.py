"""Per-unit and per-township summaries of one flight's leads (the ``summary_*`` layers).

Every unit appears, with zeros where nothing was found, so a map of the layer shows the whole
district. Counts of ``n_leads``/``n_new_building``/``n_construction`` are leads only (status
``lead``); permitted structures are counted apart in ``n_permitted``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.units import Units

__all__ = ["summarize_units", "summarize_townships", "SUMMARY_COUNT_COLUMNS"]

SUMMARY_COUNT_COLUMNS = (
    "n_leads",
    "n_new_building",
    "n_construction",
    "n_permitted",
    "lead_area_m2",
)


def _counts(leads: pd.DataFrame, key: str) -> pd.DataFrame:
    is_lead = leads["status"].to_numpy() == "lead"
    frame = pd.DataFrame(
        {
            key: leads[key].astype(str).to_numpy(),
            "n_leads": is_lead.astype(int),
            "n_new_building": (is_lead & (leads["class"].to_numpy() == "new_building")).astype(int),
            "n_construction": (is_lead & (leads["class"].to_numpy() == "construction")).astype(int),
            "n_permitted": (~is_lead).astype(int),
            "lead_area_m2": np.where(is_lead, leads["area_m2"].to_numpy(dtype=float), 0.0),
        }
    )
    return frame.groupby(key, sort=True).sum()


def _attach(base: pd.DataFrame, counts: pd.DataFrame, key: str) -> pd.DataFrame:
    out = base.join(counts, on=key)
    for col in SUMMARY_COUNT_COLUMNS:
        out[col] = out[col].fillna(0)
        out[col] = out[col].round(2) if col == "lead_area_m2" else out[col].astype(int)
    return out


def summarize_units(leads: gpd.GeoDataFrame, units: Units) -> gpd.GeoDataFrame:
    """One row per compound and village/community, with its township/district and counts."""
    tsp = units.townships.drop(columns=units.townships.geometry.name)
    tsp = tsp[["township_code", "township_name", "district_code"]].drop_duplicates("township_code")
    comp = units.compounds.assign(unit_type="compound")
    vill = units.villages
    cols = ["unit_type", "unit_code", "unit_name", "township_code"]
    base = pd.concat([comp[[*cols, "geometry"]], vill[[*cols, "geometry"]]], ignore_index=True)
    base = base.merge(tsp, on="township_code", how="left")
    base["area_ha"] = (gpd.GeoSeries(base["geometry"], crs=units.crs).area / 1e4).round(3)
    base["unit_key"] = base["unit_type"] + ":" + base["unit_code"].astype(str)
    assigned = leads[leads["unit_type"] != "unassigned"]
    keyed = assigned.assign(
        unit_key=assigned["unit_type"] + ":" + assigned["unit_code"].astype(str)
    )
    out = _attach(base, _counts(keyed, "unit_key"), "unit_key").drop(columns="unit_key")
    out["leads_per_ha"] = np.where(out["area_ha"] > 0, out["n_leads"] / out["area_ha"], 0.0).round(
        3
    )
    order = [c for c in out.columns if c != "geometry"] + ["geometry"]
    return gpd.GeoDataFrame(out[order], geometry="geometry", crs=units.crs)


def summarize_townships(leads: gpd.GeoDataFrame, units: Units) -> gpd.GeoDataFrame:
    """One row per township/street, with its district and counts (unassigned leads included)."""
    base = units.townships[
        ["township_code", "township_name", "township_kind", "district_code", "geometry"]
    ]
    dist = units.districts[["district_code", "district_name"]].drop_duplicates("district_code")
    base = base.merge(dist, on="district_code", how="left")
    out = _attach(base, _counts(leads, "township_code"), "township_code")
    unassigned = (
        leads[leads["unit_type"] == "unassigned"]["township_code"].astype(str).value_counts()
    )
    out["n_unassigned"] = out["township_code"].map(unassigned).fillna(0).astype(int)
    order = [c for c in out.columns if c != "geometry"] + ["geometry"]
    return gpd.GeoDataFrame(out[order], geometry="geometry", crs=units.crs)
