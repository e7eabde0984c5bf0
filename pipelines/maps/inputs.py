"""Inputs of the maps: the planning units (compounds + villages) and the cases, validated.

:func:`planning_units` is pure: it turns the ``units.gpkg`` layers into one frame of the units of
the clearance plans (居住小区 and 村(社区)片区) with their township and district names.
:func:`check_cases` validates a cases GeoDataFrame against the cases contract (only the columns
the maps need are required). :func:`load_units` and :func:`load_cases` read files (IO edge).
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geo.errors import CRSError, InputFileError, VectorError
from geo.joins import ADMIN_COLUMNS
from pipelines.cases.states import STATES

__all__ = [
    "UNIT_COLUMNS",
    "CASE_REQUIRED",
    "planning_units",
    "check_cases",
    "load_units",
    "load_cases",
]

log = logging.getLogger(__name__)

#: columns of the planning-units frame returned by :func:`planning_units`
UNIT_COLUMNS = ("unit_code", "unit_name", "unit_type", *ADMIN_COLUMNS, "area_ha", "geometry")
#: case columns the maps cannot do without
CASE_REQUIRED = ("case_id", "state", "unit_code", "first_seen", "geometry")
_ALL_STATES = frozenset(s for states in STATES.values() for s in states)
_CASE_DEFAULTS: dict[str, object] = {
    "ledger": "",
    "class": "",
    "reject_reason": "",
    "score": float("nan"),
    **dict.fromkeys(("unit_name", "unit_type", *ADMIN_COLUMNS, "responsible_party"), ""),
    "last_seen": "",
    "times_seen": 1,
    "supervised": False,
    "not_observed": False,
    "deadline": "",
    "evidence_before": "",
    "evidence_after": "",
}


def _need(frame: pd.DataFrame, columns: tuple[str, ...], where: str, fix: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise VectorError(
            f"{where}: missing column(s) {', '.join(missing)}; has {sorted(map(str, frame.columns))}; {fix}"
        )


def _projected(frame: gpd.GeoDataFrame, where: str) -> gpd.GeoDataFrame:
    if frame.crs is None:
        raise CRSError(f"{where}: no CRS; set one (e.g. EPSG:4544) before computing areas")
    if frame.crs.is_projected:
        return frame
    utm = frame.estimate_utm_crs()
    log.info("%s is in %s; using %s for metres", where, frame.crs, utm)
    return frame.to_crs(utm)


def planning_units(layers: dict[str, gpd.GeoDataFrame], source: str = "units") -> gpd.GeoDataFrame:
    """Compounds and villages/communities as one frame with :data:`UNIT_COLUMNS`.

    ``layers`` holds the ``units.gpkg`` layers ``compounds``, ``villages``, ``townships`` and
    ``districts`` (either of compounds/villages may be absent). Compounds get
    ``unit_type="compound"``. Geometry stays in the layers' (projected) CRS; ``area_ha`` is
    computed in metres.
    """
    parts = []
    for name in ("compounds", "villages"):
        layer = layers.get(name)
        if layer is None or layer.empty:
            continue
        _need(
            layer,
            ("unit_code", "unit_name", "township_code"),
            f"{source}:{name}",
            "see data/README.md",
        )
        part = layer.copy()
        if name == "compounds" or "unit_type" not in part.columns:
            part["unit_type"] = "compound" if name == "compounds" else "village"
        parts.append(part[["unit_code", "unit_name", "unit_type", "township_code", "geometry"]])
    if not parts:
        raise VectorError(
            f"{source}: no 'compounds' or 'villages' layer with rows; nothing to rank"
        )
    crs = parts[0].crs
    units = gpd.GeoDataFrame(
        pd.concat([p.to_crs(crs) for p in parts], ignore_index=True), geometry="geometry", crs=crs
    )
    units = _projected(units, source)
    for col in ("unit_code", "township_code"):
        units[col] = units[col].astype(str)
    towns = layers.get("townships")
    if towns is not None:
        _need(
            towns,
            ("township_code", "township_name", "district_code"),
            f"{source}:townships",
            "see data/README.md",
        )
        t = pd.DataFrame(towns.drop(columns="geometry")).astype(
            {"township_code": str, "district_code": str}
        )
        units = units.merge(
            t[["township_code", "township_name", "district_code"]], on="township_code", how="left"
        )
    else:
        units["township_name"] = units["district_code"] = ""
    dists = layers.get("districts")
    if dists is not None:
        d = pd.DataFrame(dists.drop(columns="geometry")).astype({"district_code": str})
        units = units.merge(d[["district_code", "district_name"]], on="district_code", how="left")
    else:
        units["district_name"] = ""
    units = units.fillna({"township_name": "", "district_code": "", "district_name": ""})
    units["area_ha"] = units.geometry.area / 10_000.0
    dup = units["unit_code"][units["unit_code"].duplicated()]
    if not dup.empty:
        raise VectorError(
            f"{source}: unit_code {dup.iloc[0]!r} appears twice; unit codes must be unique"
        )
    return gpd.GeoDataFrame(units[list(UNIT_COLUMNS)], geometry="geometry", crs=units.crs)


def check_cases(cases: gpd.GeoDataFrame, source: str = "cases") -> gpd.GeoDataFrame:
    """Validate and complete a cases frame: required columns, known states, a projected CRS.

    Optional contract columns missing from ``cases`` are added with neutral defaults;
    ``area_m2`` is computed from the geometry when absent. Returns a new frame.
    """
    _need(cases, CASE_REQUIRED, source, "pass cases per the cases contract (data/README.md)")
    bad = sorted(set(cases["state"].astype(str)) - _ALL_STATES)
    if bad:
        raise VectorError(
            f"{source}: column 'state' has unknown value {bad[0]!r}; allowed: {sorted(_ALL_STATES)}"
        )
    out = _projected(cases, source).copy()
    for col, default in _CASE_DEFAULTS.items():
        if col not in out.columns:
            out[col] = default
    if "area_m2" not in out.columns:
        out["area_m2"] = out.geometry.area
    out["unit_code"] = out["unit_code"].fillna("").astype(str)
    try:
        out["first_seen"] = pd.to_datetime(out["first_seen"]).dt.normalize()
    except (ValueError, TypeError) as exc:
        raise VectorError(f"{source}: column 'first_seen' is not ISO dates ({exc})") from exc
    return out


def load_units(path: str | Path) -> dict[str, gpd.GeoDataFrame]:
    """Read the units layers of a ``units.gpkg`` (missing optional layers are skipped)."""
    import pyogrio

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: units GeoPackage not found; pass --units units.gpkg")
    names = {row[0] for row in pyogrio.list_layers(path)}
    wanted = [n for n in ("districts", "townships", "villages", "compounds") if n in names]
    if not {"villages", "compounds"} & set(wanted):
        raise VectorError(
            f"{path}: has layers {sorted(names)}, needs 'compounds' and/or 'villages'"
        )
    return {n: gpd.read_file(path, layer=n) for n in wanted}


def load_cases(ledger: str | Path) -> gpd.GeoDataFrame:
    """Read all cases of a ledger (GeoPackage path or ``postgresql://`` URL).

    A ledger made by ``buildwatch cases`` is read through :class:`pipelines.cases.store.LedgerStore`;
    any other GeoPackage must have a layer ``cases`` following the cases contract.
    """
    from pipelines.cases.store import LedgerStore

    text = str(ledger)
    if "://" not in text and not Path(text).is_file():
        raise InputFileError(
            f"{text}: ledger not found; pass --ledger with the case ledger (.gpkg or URL)"
        )
    store = LedgerStore(text)
    try:
        if store.exists():
            return store.cases()
    finally:
        store.dispose()
    if "://" in text:
        raise InputFileError(
            f"{store.label}: no ledger tables; ingest leads first (buildwatch cases ingest)"
        )
    try:
        return gpd.read_file(text, layer="cases")
    except Exception as exc:  # pyogrio raises DataSourceError / DataLayerError
        raise InputFileError(
            f"{text}: neither a ledger nor a GeoPackage with layer 'cases' ({exc})"
        ) from exc
