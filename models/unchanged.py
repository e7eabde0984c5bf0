"""Unchanged-structure test: drop a candidate whose outline the baseline still shows nearby.

A baseline bought from a satellite or an older aerial survey sees every standing roof leaning
away from the sensor (relief displacement: 0.5-3 m for houses at 10-25 degrees off nadir) and a
little misregistered, while the drone orthophoto sees it from straight above. A change detector
that compares the two dates pixel for pixel calls the leaning roof a change. A new structure has
no counterpart in the baseline; a standing one has, shifted by at most a few metres. So for each
candidate the flight's patch under its outline (its box where the detector gives no outline) is
looked for in the baseline within ``radius_m`` of where it is, by normalised cross-correlation
of the two dates' brightness (each lightly blurred, so a sharp drone image and a blurrier
baseline compare); where the best match reaches ``min_ncc`` the candidate is a standing
structure seen from another angle, or one that changed colour but not shape, and is dropped.
The outline, not the box: the box of an extension is mostly the standing house it was built
onto, which the baseline shows; its outline is the new part alone.

Measured on held-out pseudo pairs and no-change pairs (model card, *Unchanged-structure test*):
the best match of true new buildings rarely reaches 0.8, of false leads on no-change pairs
usually does. On by default (``detector.unchanged``).

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

__all__ = ["LeanConsensus", "UnchangedFilter", "best_match", "lean_consensus", "match_summary"]

#: brightness blur (px at the working GSD) applied to both dates before matching
BLUR_PX = 1.5
#: grey levels of brightness spread below which a patch has no texture to match
MIN_STD = 2.0
#: how much the correlation must fall when the match moves PEAK_PX in any direction: a patch
#: whose only texture is one straight edge (a shadow line across a new roof) matches along any
#: edge of the baseline like it, a ridge rather than a peak, and proves nothing
MIN_PEAK = 0.02
PEAK_PX = 2
#: px of ground around an outline compared with it; 0: the structure only (a ring of ground
#: ties a small extension to the standing house beside it; model card)
RING_PX = 0
#: the lean consensus (:class:`UnchangedFilter` ``lean_agree``): best matches at least this far
#: off (m) and within this angle of each other lean the same way
LEAN_MIN_SHIFT_M = 0.4
LEAN_MAX_ANGLE_DEG = 25.0


def _brightness(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.astype(np.float32).mean(axis=2)
    return cv2.GaussianBlur(grey, (0, 0), BLUR_PX)


def _outline_weights(
    outline: np.ndarray | None, x0: int, y0: int, shape: tuple[int, int], ring_px: int
) -> np.ndarray:
    """1 inside ``outline`` grown by ``ring_px`` (its edge, where a structure meets its ground),
    0 elsewhere, over the window ``shape`` at ``x0, y0``; all ones without an outline."""
    if outline is None or len(outline) < 3:
        return np.ones(shape, np.float32)
    mask: np.ndarray = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(outline, np.float64) - (x0, y0)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1)
    if ring_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
        mask = cv2.dilate(mask, k)
    return mask.astype(np.float32)


def best_match(
    tile: np.ndarray,
    box: np.ndarray,
    radius_px: int,
    outline: np.ndarray | None = None,
    ring_px: int = RING_PX,
    min_peak: float = MIN_PEAK,
) -> float:
    """Best normalised cross-correlation of the flight's patch within ``radius_px`` in the baseline.

    ``tile`` is ``(h, w, 6)``: flight RGB then baseline RGB. ``box`` is ``x0, y0, x1, y1`` in tile
    pixels. With an ``outline`` (``(k, 2)`` x, y tile pixels) only the structure and a ring of
    ``ring_px`` around it are compared — the outline of an extension is the new part only, so the
    standing roof it was built onto, which fills most of its box, does not match it away;
    without one, the whole box. Brightness only: a roof or a field that changed colour but not
    shape still matches (another season, a repainted roof, another sensor's colours). Baseline
    windows much flatter than the flight's patch (under a quarter of its spread, or under
    :data:`MIN_STD` grey levels: bare ground, water, a blank baseline) do not count as a match —
    a correlation over almost no texture says nothing — nor does a match that is not a peak
    (falls by less than ``min_peak`` a little way off in some direction: one edge matched along
    another). A patch under 36 px, or with no brightness texture (a roof as bright as the ground
    around it), returns 0: kept.
    """
    found = match_map(tile, box, radius_px, outline, ring_px)
    if found is None:
        return 0.0
    ncc, ok = found
    ok = ok & (peak_sharpness(ncc) >= min_peak)
    return float(np.clip(ncc[ok].max(), -1.0, 1.0)) if ok.any() else 0.0


def match_summary(
    tile: np.ndarray,
    box: np.ndarray,
    radius_px: int,
    outline: np.ndarray | None = None,
    ring_px: int = RING_PX,
    min_peak: float = MIN_PEAK,
) -> tuple[float, float, int, int]:
    """``(best, any_best, dx, dy)``: :func:`best_match`'s value, the best correlation where it
    counts without the peak rule, and the shift (px, baseline minus flight) where that lies;
    ``(0, 0, 0, 0)`` where there is nothing to match."""
    found = match_map(tile, box, radius_px, outline, ring_px)
    if found is None:
        return 0.0, 0.0, 0, 0
    ncc, ok = found
    peak = ok & (peak_sharpness(ncc) >= min_peak)
    best = float(np.clip(ncc[peak].max(), -1.0, 1.0)) if peak.any() else 0.0
    iy, ix = np.unravel_index(int(np.argmax(np.where(ok, ncc, -np.inf))), ncc.shape)
    h, w = tile.shape[:2]
    grow = ring_px if outline is not None else 0
    x0, y0 = max(0, int(np.floor(box[0])) - grow), max(0, int(np.floor(box[1])) - grow)
    sx0, sy0 = max(0, x0 - radius_px), max(0, y0 - radius_px)
    any_best = float(np.clip(ncc[iy, ix], -1.0, 1.0))
    return best, any_best, int(sx0 + ix - x0), int(sy0 + iy - y0)


def lean_consensus(
    any_best: np.ndarray,
    shift: np.ndarray,
    pool: np.ndarray,
    min_ncc: float,
    min_shift_px: float,
    agree: int,
    max_angle_deg: float = LEAN_MAX_ANGLE_DEG,
) -> np.ndarray:
    """Which candidates of one tile lean with others: each whose best match (``any_best`` ≥
    ``min_ncc``) lies at least ``min_shift_px`` off (``shift``, (n, 2) dx, dy) in a direction
    that at least ``agree`` other ``pool`` candidates' matches share within ``max_angle_deg``.

    >>> nb = np.array([0.7, 0.7, 0.7, 0.7, 0.7])
    >>> sh = np.array([[5, 0], [8, 1], [4, -1], [6, 0], [0, 6]])
    >>> lean_consensus(nb, sh, np.ones(5, bool), 0.6, 2, 3).tolist()
    [True, True, True, True, False]
    """
    n = len(any_best)
    length = np.hypot(shift[:, 0], shift[:, 1]) if n else np.zeros(0)
    able = (any_best >= min_ncc) & (length >= min_shift_px)
    out = np.zeros(n, bool)
    if agree <= 0 or able.sum() < agree + 1:
        return out
    angle = np.degrees(np.arctan2(shift[:, 1], shift[:, 0]))
    voters = np.flatnonzero(able & pool)
    for i in np.flatnonzero(able):
        diff = np.abs((angle[voters] - angle[i] + 180.0) % 360.0 - 180.0)
        out[i] = int(((diff <= max_angle_deg) & (voters != i)).sum()) >= agree
    return out


def peak_sharpness(ncc: np.ndarray, step: int = PEAK_PX) -> np.ndarray:
    """At every shift, the least the correlation falls ``step`` px away along any of four
    directions (the mean of both sides; one side at the search window's edge). A peak falls every
    way; a ridge — an edge matched along its length — does not fall along it."""
    h, w = ncc.shape
    pad = np.full((h + 2 * step, w + 2 * step), np.nan)
    pad[step : step + h, step : step + w] = ncc
    least = np.full((h, w), np.inf)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ys, xs = step + dy * step, step + dx * step
        ahead = pad[ys : ys + h, xs : xs + w]
        ys, xs = step - dy * step, step - dx * step
        behind = pad[ys : ys + h, xs : xs + w]
        with np.errstate(invalid="ignore"):
            side = np.where(np.isnan(ahead), behind, np.where(np.isnan(behind), ahead,
                            (ahead + behind) / 2))  # fmt: skip
        fall = ncc - side
        least = np.where(np.isnan(fall), least, np.minimum(least, fall))
    return least


def match_map(
    tile: np.ndarray,
    box: np.ndarray,
    radius_px: int,
    outline: np.ndarray | None = None,
    ring_px: int = RING_PX,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The correlation at every shift of the search window and where it counts (see
    :func:`best_match`), or None where there is nothing to match."""
    h, w = tile.shape[:2]
    grow = ring_px if outline is not None else 0
    x0, y0 = max(0, int(np.floor(box[0])) - grow), max(0, int(np.floor(box[1])) - grow)
    x1, y1 = min(w, int(np.ceil(box[2])) + grow), min(h, int(np.ceil(box[3])) + grow)
    if x1 - x0 < 6 or y1 - y0 < 6:
        return None
    wt = _outline_weights(outline, x0, y0, (y1 - y0, x1 - x0), ring_px)
    n = float(wt.sum())
    if n < 36:
        return None
    flight = _brightness(tile[y0:y1, x0:x1, :3])
    mean = float((wt * flight).sum()) / n
    t = wt * (flight - mean)  # zero weighted mean, zero off the outline
    t_norm = float(np.sqrt((t.astype(np.float64) ** 2).sum()))
    spread = t_norm / np.sqrt(n)
    if spread < MIN_STD:
        return None
    sx0, sy0 = max(0, x0 - radius_px), max(0, y0 - radius_px)
    sx1, sy1 = min(w, x1 + radius_px), min(h, y1 + radius_px)
    base = _brightness(tile[sy0:sy1, sx0:sx1, 3:6])
    base = base - float(base.mean())  # centred: the window variance below loses no precision
    num = cv2.matchTemplate(base, t, cv2.TM_CCORR).astype(np.float64)  # weighted covariance x n
    s1 = cv2.matchTemplate(base, wt, cv2.TM_CCORR).astype(np.float64)  # weighted window sums
    s2 = cv2.matchTemplate(base * base, wt, cv2.TM_CCORR).astype(np.float64)
    var = np.maximum(s2 / n - (s1 / n) ** 2, 0.0)
    ok = np.sqrt(var) >= max(MIN_STD, 0.25 * spread)
    dy, dx = np.ogrid[sy0 - y0 : sy0 - y0 + ok.shape[0], sx0 - x0 : sx0 - x0 + ok.shape[1]]
    ok &= dx * dx + dy * dy <= radius_px * radius_px  # within radius_px, not a square's corner
    if not ok.any():
        return None
    return num / (np.sqrt(var * n) * t_norm + 1e-9), ok


class UnchangedFilter:
    """A detector whose candidates the baseline does not show nearby (see module doc).

    Each candidate is matched by its outline where it has one (``outlines=False``: by its box,
    as the test first did; kept to measure the difference).

    Everything but :meth:`predict` (``card``, ``weights``, ``backend``…) is the wrapped
    detector's; :attr:`unchanged` gives the settings for provenance.
    """

    def __init__(
        self,
        detector: Any,
        radius_m: float = 3.0,
        min_ncc: float = 0.8,
        outlines: bool = True,
        min_peak: float = MIN_PEAK,
    ) -> None:
        if not radius_m >= 0:
            raise ValueError(f"unchanged radius_m must be >= 0, got {radius_m!r}")
        if not 0 < min_ncc <= 1:
            raise ValueError(f"unchanged min_ncc must be in (0, 1], got {min_ncc!r}")
        if not 0 <= min_peak <= 1:
            raise ValueError(f"unchanged min_peak must be in [0, 1], got {min_peak!r}")
        self.detector = detector
        self.radius_m = float(radius_m)
        self.min_ncc = float(min_ncc)
        self.min_peak = float(min_peak)
        self.outlines = bool(outlines)
        gsd = float(getattr(getattr(detector, "card", None), "working_gsd_m", None) or 0.2)
        self.radius_px = int(round(self.radius_m / gsd))

    def __getattr__(self, name: str) -> Any:
        if name == "detector":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.detector, name)

    @property
    def unchanged(self) -> dict[str, float]:
        """The settings, for provenance."""
        return {"radius_m": self.radius_m, "min_ncc": self.min_ncc, "min_peak": self.min_peak}

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, **kwargs: Any
    ) -> list[Candidates]:
        """The wrapped detector's candidates on ``images`` that the baseline does not show."""
        out = list(self.detector.predict(images, conf=conf, **kwargs))
        for i, (tile, cands) in enumerate(zip(images, out, strict=True)):
            if len(cands):
                shapes = cands.outline if self.outlines else [None] * len(cands)
                match = np.array([
                    best_match(tile, b, self.radius_px, o, min_peak=self.min_peak)
                    for b, o in zip(cands.xyxy, shapes, strict=True)
                ])  # fmt: skip
                out[i] = cands[match < self.min_ncc]
        return out


class LeanConsensus:
    """A detector whose candidates do not lean with the others of their tile.

    A satellite or aerial baseline is taken from one side, so every standing roof in it leans
    the same way (away from the sensor), further the taller the building. A candidate whose best
    baseline match (:func:`match_summary`, at least ``min_ncc``) lies ``LEAN_MIN_SHIFT_M`` or
    more off in a direction that at least ``agree`` other candidates of the same tile share
    (:func:`lean_consensus`; voters score at least ``from_score``) is such a roof, and is
    dropped. It runs last (after the direction test), on the candidates left. Opt-in
    (``detector.unchanged.lean_agree``; model card, *Roofs that lean one way*).
    """

    def __init__(
        self,
        detector: Any,
        agree: int = 3,
        min_ncc: float = 0.6,
        from_score: float = 0.0,
        radius_m: float = 3.0,
        outlines: bool = True,
    ) -> None:
        if agree < 1:
            raise ValueError(f"lean consensus agree must be >= 1, got {agree!r}")
        if not 0 < min_ncc <= 1:
            raise ValueError(f"lean consensus min_ncc must be in (0, 1], got {min_ncc!r}")
        if not radius_m >= 0:
            raise ValueError(f"lean consensus radius_m must be >= 0, got {radius_m!r}")
        self.detector = detector
        self.agree = int(agree)
        self.min_ncc = float(min_ncc)
        self.from_score = float(from_score)
        self.outlines = bool(outlines)
        gsd = float(getattr(getattr(detector, "card", None), "working_gsd_m", None) or 0.2)
        self.radius_px = int(round(float(radius_m) / gsd))
        self.min_shift_px = LEAN_MIN_SHIFT_M / gsd

    def __getattr__(self, name: str) -> Any:
        if name == "detector":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.detector, name)

    @property
    def lean(self) -> dict[str, float]:
        """The settings, for provenance."""
        return {"agree": self.agree, "min_ncc": self.min_ncc}

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, **kwargs: Any
    ) -> list[Candidates]:
        """The wrapped detector's candidates on ``images`` that do not lean with the others."""
        out = list(self.detector.predict(images, conf=conf, **kwargs))
        for i, (tile, cands) in enumerate(zip(images, out, strict=True)):
            if len(cands) <= self.agree:
                continue
            shapes = cands.outline if self.outlines else [None] * len(cands)
            found = np.array([
                match_summary(tile, b, self.radius_px, o)
                for b, o in zip(cands.xyxy, shapes, strict=True)
            ], np.float64).reshape(-1, 4)  # fmt: skip
            drop = lean_consensus(
                found[:, 1],
                found[:, 2:4],
                np.asarray(cands.score) >= self.from_score,
                self.min_ncc,
                self.min_shift_px,
                self.agree,
            )
            out[i] = cands[~drop]
        return out
