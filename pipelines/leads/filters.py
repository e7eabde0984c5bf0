"""Which merged candidates become leads: score, area, coverage, permits, known buildings.

Pure functions over arrays of polygons (all in the working, projected CRS). Each returns a
boolean mask or a fraction so :mod:`pipelines.leads.build` can count every reason a candidate
was dropped (a district office must be able to see what the machine did not report and why).

>>> import numpy as np, shapely
>>> g = np.array([shapely.box(0, 0, 4, 4), shapely.box(10, 10, 11, 11)])
>>> fraction_inside(g, shapely.box(0, 0, 2, 4)).round(2).tolist()
[0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import shapely

from geo.joins import covered_area
from models.classes import CLASS_NAMES

__all__ = [
    "threshold_mask",
    "fraction_inside",
    "fraction_covered_by",
    "active_permits",
    "FilterCounts",
]


@dataclass
class FilterCounts:
    """How many merged candidates each filter removed (for the run summary)."""

    below_score: int = 0
    below_area: int = 0
    unknown_coverage: int = 0
    not_comparable: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def threshold_mask(
    class_id: np.ndarray, values: np.ndarray, per_class: Mapping[str, float]
) -> np.ndarray:
    """True where ``values`` reach their class's threshold in ``per_class`` (by class name)."""
    limits = np.array([per_class.get(name, 0.0) for name in CLASS_NAMES], dtype=np.float64)
    class_id = np.asarray(class_id, dtype=np.int64)
    if len(class_id) and (class_id.min() < 0 or class_id.max() >= len(CLASS_NAMES)):
        raise ValueError(f"class_id outside 0..{len(CLASS_NAMES) - 1}: {sorted(set(class_id))}")
    return np.asarray(values, dtype=np.float64) >= limits[class_id]


def fraction_inside(geoms: np.ndarray, region: shapely.Geometry | None) -> np.ndarray:
    """Share of each polygon's area inside ``region`` (0 where region is None/empty)."""
    geoms = np.asarray(geoms, dtype=object)
    if region is None or region.is_empty or not len(geoms):
        return np.zeros(len(geoms))
    shapely.prepare(region)
    area = shapely.area(geoms)
    inter = shapely.area(shapely.intersection(geoms, region))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, inter / area, 0.0)


def fraction_covered_by(geoms: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """Share of each polygon's area covered by a layer of ``polygons`` (STRtree, n log n)."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return np.zeros(0)
    area = shapely.area(geoms)
    covered = covered_area(geoms, np.asarray(polygons, dtype=object))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(area > 0, covered / area, 0.0), 0.0, 1.0)


def active_permits(permits: pd.DataFrame, on: date | None) -> np.ndarray:
    """Mask of permits valid on date ``on`` (all of them when the date or columns are unknown).

    Empty ``valid_from``/``valid_to`` mean open-ended.
    """
    n = len(permits)
    if on is None or n == 0:
        return np.ones(n, bool)
    mask = np.ones(n, bool)
    day = pd.Timestamp(on)
    if "valid_from" in permits:
        start = pd.to_datetime(permits["valid_from"], errors="coerce")
        mask &= ~(start > day).to_numpy()
    if "valid_to" in permits:
        end = pd.to_datetime(permits["valid_to"], errors="coerce")
        mask &= ~(end < day).to_numpy()
    return mask
