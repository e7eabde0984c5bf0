"""The synthetic scene's result types: changes, layout, epoch info, pairs and sequences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Change", "SceneLayout", "EpochInfo", "ScenePair", "SceneSequence"]


@dataclass(frozen=True, eq=False)
class Change:
    """One true change: its kind, detector class ('' for nuisance), expected outcome, outline.

    ``polygon`` is an (N, 2) float array of pixel x, y on the scene grid; ``change_id`` is stable
    across the nights of a sequence.
    """

    kind: str
    cls: str
    expected: str
    polygon: np.ndarray
    change_id: int = 0


@dataclass(frozen=True, eq=False)
class SceneLayout:
    """The scene's structure in pixel units, for vector layers.

    cells: (polygon, kind, col, row) per block between road centrelines (kind compound | village |
    park); compounds: (polygon inside the wall, cell index); roads: ((2, 2) centreline, width px,
    main); buildings: (building id, polygon, height m, kind) standing in the *before* epoch;
    permits: (change_id, polygon); footprint: the flight's outline; baseline: the before epoch's.
    """

    cells: list[tuple[np.ndarray, str, int, int]]
    compounds: list[tuple[np.ndarray, int]]
    roads: list[tuple[np.ndarray, float, bool]]
    buildings: list[tuple[int, np.ndarray, float, str]]
    permits: list[tuple[int, np.ndarray]]
    footprint: np.ndarray
    baseline: np.ndarray


@dataclass(frozen=True)
class EpochInfo:
    """When an epoch was taken and how it was lit."""

    date: str
    season: str
    sun_azimuth: float
    sun_elevation: float


@dataclass(frozen=True, eq=False)
class ScenePair:
    """A flight (``after``) and its baseline (``before``) on the same pixel grid, with truth."""

    after: np.ndarray
    before: np.ndarray
    valid_after: np.ndarray
    valid_before: np.ndarray
    changes: list[Change]
    layout: SceneLayout
    info_after: EpochInfo
    info_before: EpochInfo
    gsd: float
    seed: int


@dataclass(frozen=True, eq=False)
class SceneSequence:
    """One baseline and N nights over the same scene; ``changes[k]`` is night k vs the baseline."""

    before: np.ndarray
    valid_before: np.ndarray
    nights: list[np.ndarray]
    valid_nights: list[np.ndarray]
    changes: list[list[Change]]
    removed: list[list[int]]
    layout: SceneLayout
    info_before: EpochInfo
    info_nights: list[EpochInfo]
    gsd: float
    seed: int
