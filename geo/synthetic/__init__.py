"""Synthetic districts: seeded before/after scenes with ground-truth changes.

The rendering core (:mod:`geo.synthetic.scene`) needs only numpy, scipy and OpenCV, so the
training-data builder can call it on machines without GDAL. The GeoTIFF/GeoPackage writer lives in
:mod:`geo.synthetic.district` and is *not* imported here.
"""

from __future__ import annotations

from geo.synthetic.scene import (
    CHANGE_KINDS,
    STYLE_KEYS,
    Change,
    EpochInfo,
    SceneLayout,
    ScenePair,
    SceneSequence,
    render_pair,
    render_sequence,
)

__all__ = [
    "CHANGE_KINDS",
    "STYLE_KEYS",
    "Change",
    "EpochInfo",
    "SceneLayout",
    "ScenePair",
    "SceneSequence",
    "render_pair",
    "render_sequence",
]
