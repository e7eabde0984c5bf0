"""Direction test: drop a candidate that is a change the other way (a demolition, not a new building).

A change detector that compares two dates learns "something shaped like a building changed
here"; where a building stood in the baseline and the flight shows its bare plot, the change has
the same shape as a new building and the detector may report it as one. For a district office
that is the worst false lead there is: the site it has just cleared, reported as new
construction. The direction of a change is what swapping the dates reverses: a new building
seen with the baseline as the flight is a demolition, a demolition seen that way is a new
building. So every tile that holds a candidate is looked at a second time with the two dates'
bands swapped, and a candidate that the swapped look finds more surely - a swapped candidate
overlapping its outline at IoU >= ``min_iou`` scoring more than its own score plus ``margin`` -
is a change the other way and is dropped. Strictly more: a detector blind to direction scores
both looks alike and loses nothing to the test.

Only candidates that could become leads are tested (``from_score``, set from the lowest lead
threshold by :func:`pipelines.detect.wrap_detector`), and only their tiles are looked at again;
the swapped look runs the same detector (ensemble members included) on the same tiles. Measured
on the model card (*Training*, item 25).

>>> from models.candidates import Candidates
>>> class Roofs:  # scores a bright square in the first three bands (the flight) 0.9, else 0.6
...     def predict(self, images, conf=0.25):
...         out = []
...         for im in images:
...             s = 0.9 if im[20:40, 20:40, :3].mean() > 200 else 0.6
...             out.append(Candidates(np.array([[20, 20, 40, 40]], np.float32),
...                                   np.array([s], np.float32), np.zeros(1, np.int64)))
...         return out
>>> tile = np.zeros((64, 64, 6), np.uint8)
>>> new = tile.copy(); new[20:40, 20:40, :3] = 255      # a roof in the flight only
>>> gone = tile.copy(); gone[20:40, 20:40, 3:] = 255    # a roof in the baseline only
>>> [len(c) for c in DirectionTest(Roofs()).predict([new, gone])]
[1, 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.candidates import Candidates
from models.consensus import candidate_geometries
from models.evaluate import iou_matrix

__all__ = ["DirectionTest", "swap_dates"]


def swap_dates(tile: np.ndarray) -> np.ndarray:
    """The tile with its dates swapped: bands 3-5 (the baseline) first, then 0-2 (the flight)."""
    if tile.ndim != 3 or tile.shape[2] != 6:
        raise ValueError(f"a change tile has 6 bands (flight RGB, baseline RGB), got {tile.shape}")
    return np.ascontiguousarray(np.concatenate([tile[..., 3:6], tile[..., 0:3]], axis=2))


def reverse_scores(fwd: Candidates, rev: Candidates, min_iou: float) -> np.ndarray:
    """Per forward candidate, the best score of a swapped candidate overlapping it at ``min_iou``
    (0 where none does)."""
    out = np.zeros(len(fwd), np.float64)
    if not len(fwd) or not len(rev):
        return out
    iou = iou_matrix(candidate_geometries(fwd), candidate_geometries(rev))
    hit = iou >= min_iou
    return np.where(hit, np.asarray(rev.score, np.float64)[None, :], 0.0).max(axis=1)


def _takes_need(detector: Any) -> bool:
    """True for a model ensemble (it can skip members where no score could reach a need)."""
    from models.ensemble import ModelEnsemble

    return isinstance(detector, ModelEnsemble)


class DirectionTest:
    """A detector whose candidates are changes towards a structure (see module doc).

    Everything but :meth:`predict` (``card``, ``weights``, ``backend``…) is the wrapped
    detector's; :attr:`direction` gives the settings for provenance; :attr:`looked_again` counts
    (tiles looked at again, tiles seen).
    """

    def __init__(
        self,
        detector: Any,
        margin: float = 0.0,
        min_iou: float = 0.3,
        from_score: float = 0.0,
        looks: Any = None,
    ) -> None:
        if not -1 < margin < 1:
            raise ValueError(f"direction margin must be in (-1, 1), got {margin!r}")
        if not 0 < min_iou <= 1:
            raise ValueError(f"direction min_iou must be in (0, 1], got {min_iou!r}")
        if not 0 <= from_score <= 1:
            raise ValueError(f"direction from_score must be in [0, 1], got {from_score!r}")
        self.detector = detector
        self.margin = float(margin)
        self.min_iou = float(min_iou)
        self.from_score = float(from_score)
        #: what looks at the swapped tiles (default: ``detector``); a filter that only drops
        #: candidates (the unchanged test) may wrap ``looks`` in ``detector`` so that the
        #: swapped look is not filtered and fewer tiles are looked at again
        self.looks = detector if looks is None else looks
        self.looked_again = (0, 0)

    def __getattr__(self, name: str) -> Any:
        if name in ("detector", "looks"):  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.detector, name)

    @property
    def direction(self) -> dict[str, float]:
        """The settings, for provenance."""
        return {"margin": self.margin, "min_iou": self.min_iou}

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, **kwargs: Any
    ) -> list[Candidates]:
        """The wrapped detector's candidates on ``images`` that are not changes the other way."""
        out = list(self.detector.predict(images, conf=conf, **kwargs))
        tested = max(conf, self.from_score)
        look = [i for i, c in enumerate(out) if len(c) and float(c.score.max()) >= tested]
        self.looked_again = (self.looked_again[0] + len(look), self.looked_again[1] + len(images))
        if not look:
            return out
        # only a swapped candidate scoring above a tested one's score (+ margin) decides: an
        # ensemble told so spares its other members the tiles where none can (models.ensemble)
        need = [float(out[i].score[out[i].score >= tested].min()) + self.margin for i in look]
        tiles = [swap_dates(images[i]) for i in look]
        if _takes_need(self.looks):
            swapped = self.looks.predict(tiles, conf=conf, need=need, **kwargs)
        else:
            swapped = self.looks.predict(tiles, conf=conf, **kwargs)
        for i, rev in zip(look, swapped, strict=True):
            fwd = out[i]
            score = np.asarray(fwd.score, np.float64)
            # strictly: a detector blind to direction (equal both ways) drops nothing
            other_way = (score >= tested) & (
                reverse_scores(fwd, rev, self.min_iou) > score + self.margin
            )
            out[i] = fwd[~other_way]
        return out
