"""Where concentrated clearance (集中成片整治) should go: per-unit aggregation and a ranked plan.

For every planning unit (compound 居住小区, village/community 村(社区)片区) :func:`aggregate_units`
computes, from the cases that name it (``unit_code``; rejected cases count only in the share):

* ``open_cases`` — cases not removed/enforced/rejected;
* ``new_area_m2`` — m² of open new structures;
* ``density_per_ha`` — open cases per hectare of the unit;
* ``new_recent`` / ``new_previous`` — non-rejected cases first seen in the last
  ``window_days`` (default 30) before ``as_of`` and in the window before it; ``growth`` is their
  difference (growth since the previous month);
* ``confirmed_share`` — share of the unit's cases (rejected included) that officers confirmed
  (moved beyond their ledger's first state).

The **clearance-priority score** (0-100) is a weighted mean of the components, each scaled by its
maximum over the units ranked together (all units passed in)::

    score = 100 * sum_k w_k * x_k / max_u(x_k)  /  sum_k w_k
    k in {density, open_cases, new_area, growth (= new_recent), confirmed}

A component whose maximum is 0 contributes 0. Weights come from the ``maps.weights`` config
section (defaults: density 0.35, open_cases 0.20, new_area 0.15, growth 0.20, confirmed 0.10).
``rank_district`` / ``rank_township`` order units by score (ties: more open cases, then code);
``priority`` is 高/中/低/无 by ``maps.priority_bins`` (default 60 and 30).

>>> w = {"density": 1, "open_cases": 0, "new_area": 0, "growth": 0, "confirmed": 0}
>>> float(priority_score(pd.DataFrame({"density_per_ha": [2.0, 1.0], "open_cases": [1, 1],
...     "new_area_m2": [1.0, 1.0], "new_recent": [0, 0], "confirmed_share": [0.0, 0.0]}), w)[1])
50.0
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.errors import ConfigError
from pipelines.cases.states import CLOSED_STATES, FIRST_STATE, REJECTED

__all__ = [
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "PRIORITY_LABELS_ZH",
    "aggregate_units",
    "priority_score",
    "rank_units",
    "resolve_as_of",
]

#: score component -> the aggregate column it reads
COMPONENTS: dict[str, str] = {
    "density": "density_per_ha",
    "open_cases": "open_cases",
    "new_area": "new_area_m2",
    "growth": "new_recent",
    "confirmed": "confirmed_share",
}
DEFAULT_WEIGHTS: dict[str, float] = {
    "density": 0.35,
    "open_cases": 0.20,
    "new_area": 0.15,
    "growth": 0.20,
    "confirmed": 0.10,
}
PRIORITY_LABELS_ZH: dict[str, str] = {"high": "高", "medium": "中", "low": "低", "none": "无"}


def resolve_as_of(cases: pd.DataFrame, as_of: str | dt.date | None) -> pd.Timestamp:
    """The reference day: ``as_of`` if given, else the latest first/last seen day in ``cases``."""
    if as_of is not None:
        try:
            return pd.Timestamp(as_of).normalize()
        except ValueError as exc:
            raise ConfigError(f"as_of {as_of!r} is not an ISO date (YYYY-MM-DD)") from exc
    days = [pd.to_datetime(cases["first_seen"], errors="coerce")]
    if "last_seen" in cases.columns:
        days.append(pd.to_datetime(cases["last_seen"].replace("", None), errors="coerce"))
    latest = pd.concat(days).max() if len(cases) else pd.NaT
    return pd.Timestamp.today().normalize() if pd.isna(latest) else pd.Timestamp(latest).normalize()


def _case_flags(cases: pd.DataFrame, as_of: pd.Timestamp, window_days: int) -> pd.DataFrame:
    state = cases["state"].astype(str)
    ledger = (
        cases["ledger"].astype(str) if "ledger" in cases.columns else pd.Series("", cases.index)
    )
    first_state = ledger.map(FIRST_STATE).fillna("")
    first_seen = pd.to_datetime(cases["first_seen"])
    window = pd.Timedelta(days=window_days)
    valid = state != REJECTED
    supervised = (
        cases["supervised"] if "supervised" in cases.columns else pd.Series(False, cases.index)
    )
    return pd.DataFrame(
        {
            "unit_code": cases["unit_code"].astype(str),
            "all": 1,
            "valid": valid.astype(int),
            "open": (~state.isin(CLOSED_STATES)).astype(int),
            "open_area": np.where(~state.isin(CLOSED_STATES), cases["area_m2"].astype(float), 0.0),
            "confirmed": (valid & (state != first_state) & (first_state != "")).astype(int),
            "recent": (valid & (first_seen > as_of - window) & (first_seen <= as_of)).astype(int),
            "previous": (
                valid & (first_seen > as_of - 2 * window) & (first_seen <= as_of - window)
            ).astype(int),
            "supervised": (valid & supervised.fillna(False).astype(bool)).astype(int),
        }
    )


def aggregate_units(
    cases: pd.DataFrame,
    units: gpd.GeoDataFrame,
    as_of: str | dt.date | None = None,
    window_days: int = 30,
) -> gpd.GeoDataFrame:
    """Per-unit aggregates (see module doc) for every unit in ``units`` (zeros where no case).

    ``cases`` follows the cases contract (validated by
    :func:`pipelines.maps.inputs.check_cases`); ``units`` is
    :func:`pipelines.maps.inputs.planning_units`. Cases whose ``unit_code`` is not a unit are
    ignored here (hot spots still see them).
    """
    as_of_ts = resolve_as_of(cases, as_of)
    flags = _case_flags(cases, as_of_ts, window_days)
    sums = flags.groupby("unit_code").sum(numeric_only=True)
    out = units.merge(sums, left_on="unit_code", right_index=True, how="left")
    num = ["all", "valid", "open", "open_area", "confirmed", "recent", "previous", "supervised"]
    out[num] = out[num].fillna(0)
    area_ha = out["area_ha"].where(out["area_ha"] > 0)
    agg = pd.DataFrame(
        {
            "cases_total": out["valid"].astype(int),
            "open_cases": out["open"].astype(int),
            "new_area_m2": out["open_area"].round(1),
            "density_per_ha": (out["open"] / area_ha).fillna(0.0).round(4),
            "new_recent": out["recent"].astype(int),
            "new_previous": out["previous"].astype(int),
            "growth": (out["recent"] - out["previous"]).astype(int),
            "confirmed_share": (out["confirmed"] / out["all"].where(out["all"] > 0))
            .fillna(0.0)
            .round(4),
            "rejected": (out["all"] - out["valid"]).astype(int),
            "supervised": out["supervised"].astype(int),
        },
        index=out.index,
    )
    result = pd.concat([out[list(units.columns)], agg], axis=1)
    result["as_of"] = as_of_ts.date().isoformat()
    return gpd.GeoDataFrame(result, geometry="geometry", crs=units.crs)


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(COMPONENTS))
    if unknown:
        raise ConfigError(
            f"maps.weights: unknown component {unknown[0]!r}; use {sorted(COMPONENTS)}"
        )
    full = {k: float(weights.get(k, 0.0)) for k in COMPONENTS}
    if any(v < 0 for v in full.values()) or sum(full.values()) <= 0:
        raise ConfigError(f"maps.weights: weights must be >= 0 with a positive sum, got {full}")
    return full


def priority_score(agg: pd.DataFrame, weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The clearance-priority score (0-100) of each row of ``agg`` (formula in the module doc)."""
    w = _check_weights(DEFAULT_WEIGHTS if weights is None else weights)
    total = np.zeros(len(agg), dtype=float)
    for comp, col in COMPONENTS.items():
        x = agg[col].to_numpy(dtype=float)
        top = float(np.nanmax(x)) if len(x) else 0.0
        if top > 0:
            total += w[comp] * np.nan_to_num(x / top)
    return np.round(100.0 * total / sum(w.values()), 2)


def _label(score: float, bins: tuple[float, float]) -> str:
    if score >= bins[1]:
        return "high"
    if score >= bins[0]:
        return "medium"
    return "low" if score > 0 else "none"


def rank_units(
    agg: gpd.GeoDataFrame,
    weights: Mapping[str, float] | None = None,
    bins: tuple[float, float] = (30.0, 60.0),
) -> gpd.GeoDataFrame:
    """Add ``priority_score``, ``priority`` and the ranks within district and township.

    Returns a copy sorted by district, then score (best first).
    """
    if not bins[0] <= bins[1]:
        raise ConfigError(f"maps.priority_bins must be ascending (medium, high), got {bins}")
    out = agg.copy()
    out["priority_score"] = priority_score(out, weights)
    out["priority"] = [_label(s, bins) for s in out["priority_score"]]
    out = out.sort_values(
        ["district_code", "priority_score", "open_cases", "unit_code"],
        ascending=[True, False, False, True],
        kind="mergesort",
    )
    out["rank_district"] = out.groupby("district_code", sort=False).cumcount() + 1
    out["rank_township"] = out.groupby("township_code", sort=False).cumcount() + 1
    return out.reset_index(drop=True)
