"""Unchanged-structure test: drop a candidate whose flight patch the baseline still shows nearby.

A baseline bought from a satellite or an older aerial survey sees every standing roof leaning
away from the sensor (relief displacement: 0.5-3 m for houses at 10-25 degrees off nadir) and a
little misregistered, while the drone orthophoto sees it from straight above. A change detector
that compares the two dates pixel for pixel calls the leaning roof a change. A new structure has
no counterpart in the baseline; a standing one has, shifted by at most a few metres. So for each
candidate the flight's patch (its box) is looked for in the baseline within ``radius_m`` of where
it is, by normalised cross-correlation of the two dates' brightness (each lightly blurred, so a
sharp drone image and a blurrier baseline compare); where the best match reaches ``min_ncc`` the
candidate is a standing structure seen from another angle, and is dropped.

Measured on held-out pseudo pairs and no-change pairs (model card, *Unchanged-structure test*):
the best match of true new buildings rarely reaches 0.8, of false leads on no-change pairs
usually does.

>>> from models.candidates import Candidates
>>> rng = np.random.default_rng(0)
>>> ground = rng.integers(60, 120, (64, 64, 3), np.uint8)
>>> flight = ground.copy(); flight[20:40, 20:40] = 220   # a roof
>>> base = ground.copy(); base[23:43, 21:41] = 220       # the same roof, leaning 3 px
>>> box = Candidates(np.array([[18, 18, 42, 42]]), np.array([0.9]), np.array([0]))
>>> best_match(np.concatenate([flight, base], axis=2), box.xyxy[0], 8) > 0.9
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from models.candidates import Candidates

__all__ = ["UnchangedFilter", "best_match"]

#: brightness blur (px at the working GSD) applied to both dates before matching
BLUR_PX = 1.5
#: grey levels of brightness spread below which a patch has no texture to match
MIN_STD = 2.0


def _brightness(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.astype(np.float32).mean(axis=2)
    return cv2.GaussianBlur(grey, (0, 0), BLUR_PX)


def best_match(tile: np.ndarray, box: np.ndarray, radius_px: int) -> float:
    """Best normalised cross-correlation of the flight's ``box`` within ``radius_px`` in the baseline.

    ``tile`` is ``(h, w, 6)``: flight RGB then baseline RGB. ``box`` is ``x0, y0, x1, y1`` in tile
    pixels. Brightness only: a roof or a field that changed colour but not shape still matches
    (another season, a repainted roof, another sensor's colours). Baseline windows much flatter
    than the flight's patch (under a quarter of its spread, or under :data:`MIN_STD` grey
    levels: bare ground, water, a blank baseline) do not count as a match — a correlation over
    almost no texture says nothing. A box under 6 px a side, or a flight patch with no
    brightness texture (a roof as bright as the ground around it), returns 0: kept.
    """
    h, w = tile.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 6 or y1 - y0 < 6:
        return 0.0
    flight = _brightness(tile[y0:y1, x0:x1, :3])
    spread = float(flight.std())
    if spread < MIN_STD:
        return 0.0
    sx0, sy0 = max(0, x0 - radius_px), max(0, y0 - radius_px)
    sx1, sy1 = min(w, x1 + radius_px), min(h, y1 + radius_px)
    base = _brightness(tile[sy0:sy1, sx0:sx1, 3:6])
    th, tw = flight.shape
    n = th * tw
    t = flight - flight.mean()
    num = cv2.matchTemplate(base, t, cv2.TM_CCORR).astype(np.float64)  # zero-mean t: covariance
    s1, s2 = cv2.integral2(base.astype(np.float64))[:2]  # window sums of the baseline, its square
    win1 = s1[th:, tw:] - s1[:-th, tw:] - s1[th:, :-tw] + s1[:-th, :-tw]
    win2 = s2[th:, tw:] - s2[:-th, tw:] - s2[th:, :-tw] + s2[:-th, :-tw]
    var = np.maximum(win2 / n - (win1 / n) ** 2, 0.0)
    ok = np.sqrt(var) >= max(MIN_STD, 0.25 * spread)
    if not ok.any():
        return 0.0
    ncc = num / (np.sqrt(var * n) * float(np.sqrt((t.astype(np.float64) ** 2).sum())) + 1e-9)
    return float(np.clip(ncc[ok].max(), -1.0, 1.0))


class UnchangedFilter:
    """A detector whose candidates the baseline does not show nearby (see module doc).

    Everything but :meth:`predict` (``card``, ``weights``, ``backend``…) is the wrapped
    detector's; :attr:`unchanged` gives the settings for provenance.
    """

    def __init__(self, detector: Any, radius_m: float = 3.0, min_ncc: float = 0.8) -> None:
        if not radius_m >= 0:
            raise ValueError(f"unchanged radius_m must be >= 0, got {radius_m!r}")
        if not 0 < min_ncc <= 1:
            raise ValueError(f"unchanged min_ncc must be in (0, 1], got {min_ncc!r}")
        self.detector = detector
        self.radius_m = float(radius_m)
        self.min_ncc = float(min_ncc)
        gsd = getattr(getattr(detector, "card", None), "working_gsd_m", None)
        self.radius_px = int(round(self.radius_m / float(gsd or 0.2)))

    def __getattr__(self, name: str) -> Any:
        if name == "detector":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.detector, name)

    @property
    def unchanged(self) -> dict[str, float]:
        """The settings, for provenance."""
        return {"radius_m": self.radius_m, "min_ncc": self.min_ncc}

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, **kwargs: Any
    ) -> list[Candidates]:
        """The wrapped detector's candidates on ``images`` that the baseline does not show."""
        out = list(self.detector.predict(images, conf=conf, **kwargs))
        for i, (tile, cands) in enumerate(zip(images, out, strict=True)):
            if len(cands):
                match = np.array([best_match(tile, b, self.radius_px) for b in cands.xyxy])
                out[i] = cands[match < self.min_ncc]
        return out
