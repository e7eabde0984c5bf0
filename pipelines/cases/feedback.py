"""Officers' verdicts back to training: confirmed and rejected cases as a labelled polygon layer.

The layer ``labels`` of a GeoPackage (ledger CRS) has one polygon per case with:

* ``label`` — ``confirmed`` (officers moved the case beyond its first state: a real new
  structure) or ``rejected`` (rejected as ``false_detection``: a **hard negative**, the detector
  fired where there is nothing to find);
* ``class`` — the detector class (``construction`` | ``new_building``; for a confirmed
  construction site that later completed, the latest class ``last_class``);
* ``flight_id`` — the latest flight that showed it (``last_flight_id``), ``first_flight_id``,
  ``case_id``, ``state``, ``reject_reason``, ``last_seen``.

Cases rejected as ``permitted`` are real structures with a permit (not detector errors) and are
exported as ``confirmed``; ``duplicate`` rejections are left out (their original case is there).
Cases still in their first state are unverified and left out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geo.atomic import atomic_path
from geo.errors import ConfigError
from pipelines.cases.states import FIRST_STATE, REJECTED
from pipelines.cases.store import LedgerStore
from pipelines.qgis import style_gpkg

__all__ = ["LABEL_COLUMNS", "label_cases", "export_labels"]

log = logging.getLogger(__name__)

LABEL_COLUMNS = (
    "case_id",
    "label",
    "class",
    "flight_id",
    "first_flight_id",
    "state",
    "reject_reason",
    "last_seen",
)


def label_cases(cases: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The labelled subset of *cases* (pure; see the module docstring)."""
    state = cases["state"].astype(str)
    reason = cases["reject_reason"].fillna("").astype(str)
    first = cases["ledger"].map(FIRST_STATE)
    confirmed = ((state != REJECTED) & (state != first)) | (
        (state == REJECTED) & (reason == "permitted")
    )
    negative = (state == REJECTED) & (reason == "false_detection")
    keep = cases[confirmed | negative].copy()
    keep["label"] = ["confirmed" if c else "rejected" for c in confirmed[confirmed | negative]]
    last = keep["last_class"].fillna("").astype(str)
    keep["class"] = last.where(last != "", keep["class"])
    keep["flight_id"] = keep["last_flight_id"]
    out = keep[[*LABEL_COLUMNS, "geometry"]].reset_index(drop=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=cases.crs)


def export_labels(store: LedgerStore, path: str | Path) -> pd.Series:
    """Write the ``labels`` layer to the GeoPackage *path* (atomically); returns counts by label."""
    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise ConfigError(f"labels {path}: use a .gpkg file name")
    if not path.parent.is_dir():
        raise ConfigError(f"labels {path}: folder {path.parent} does not exist; create it")
    labels = label_cases(store.cases())
    with atomic_path(path) as tmp:
        labels.to_file(tmp, layer="labels", driver="GPKG")
        style_gpkg(tmp)
    counts = labels["label"].value_counts()
    log.info("wrote %d labelled cases to %s: %s", len(labels), path, counts.to_dict())
    return counts
