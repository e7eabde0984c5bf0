"""Residual misregistration between baseline and flight: measure, correct, gate.

Pure core (no IO): :func:`phase_shift` measures the shift of one sub-window pair by phase
correlation (sub-pixel, with the correlation peak value as confidence); :func:`fit_correction`
combines many estimates robustly into a global shift, or an affine when a rotation/scale is
detectable; where the residuals left by that fit vary across the scene, a local residual-shift
field (:mod:`geo.coreg_local`) is fitted from a denser set of sub-windows and applied on top;
the gate then judges the pair as finally corrected. :func:`coregister` drives them through
``measure(correction, local=None)`` callbacks that read the sub-windows, so this module never
opens files.

Conventions: a correction ``C`` is an affine on map coordinates of the working CRS taking a
flight point to the baseline point that shows the same ground; the baseline is read through
``C @ grid.transform``. Pixel displacements ``(sx, sy)`` are in working-grid pixels (x right,
y down).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

from geo.coreg_local import LocalField, local_pass

__all__ = [
    "ShiftEstimate",
    "Registration",
    "RegistrationMode",
    "phase_shift",
    "texture_score",
    "fit_correction",
    "coregister",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShiftEstimate:
    """One sub-window measurement: centre (map), displacement (px) and confidence (0-1)."""

    x: float
    y: float
    sx: float
    sy: float
    confidence: float


#: what was applied to the baseline: nothing, a global shift or affine, and a local field on top
RegistrationMode = Literal["none", "shift", "affine", "shift+local", "affine+local"]


@dataclass
class Registration:
    """Outcome of co-registration, as applied to the baseline reads of a pair.

    ``residual_px``, ``residuals``, ``gate_passed`` and ``failed_areas`` describe the pair after
    *all* corrections (``correction`` and, when ``mode`` ends in ``+local``, the ``local`` field).
    """

    dx_m: float = 0.0
    dy_m: float = 0.0
    affine: Affine | None = None
    residual_px: float = float("nan")
    n_estimates: int = 0
    n_windows: int = 0
    confidence: float = 0.0
    gate_passed: bool = True
    failed_areas: BaseGeometry = field(default_factory=shapely.Polygon)
    message: str = ""
    correction: Affine = Affine.identity()
    estimates: tuple[ShiftEstimate, ...] = ()
    residuals: tuple[ShiftEstimate, ...] = ()
    mode: RegistrationMode = "none"
    local: LocalField | None = None

    @property
    def local_max_m(self) -> float:
        """Largest displacement of the local field (m); 0 when none was applied."""
        return self.local.max_m if self.local is not None else 0.0

    def map_point(self, x: float, y: float) -> tuple[float, float]:
        """The baseline map point read for flight map point ``(x, y)`` (all corrections)."""
        if self.local is not None:
            ddx, ddy = self.local.at(x, y)
            x, y = x + float(ddx), y + float(ddy)
        tx, ty = self.correction @ (x, y)
        return float(tx), float(ty)


def texture_score(gray: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Standard deviation of the gradient magnitude (DN/px) over valid pixels."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    mag = np.hypot(gx, gy)
    if valid is not None:
        mag = mag[valid]
    return float(mag.std()) if mag.size else 0.0


def _prepare(gray: np.ndarray, valid: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    fill = float(g[valid].mean()) if valid.any() else 0.0
    g = np.where(valid, g, fill)
    return g - fill


def phase_shift(
    flight: np.ndarray, baseline: np.ndarray, valid: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(sx, sy, confidence): baseline content sits at flight pixel + (sx, sy).

    Grayscale windows of equal shape; Hann-windowed, sub-pixel phase correlation
    (``cv2.phaseCorrelate``); confidence is the normalised correlation peak (≈0 for unrelated
    content, →1 for identical content).
    """
    if flight.shape != baseline.shape or flight.ndim != 2:
        raise ValueError(f"need equal 2-D windows, got {flight.shape} and {baseline.shape}")
    if valid is None:
        valid = np.ones(flight.shape, dtype=bool)
    sx, sy, response = _correlate(flight, baseline, valid)
    ix, iy = int(round(sx)), int(round(sy))
    h, w = flight.shape
    if max(abs(ix), abs(iy)) >= 2 and abs(ix) < w // 3 and abs(iy) < h // 3:
        # refine on the overlap after removing the integer shift (Hann bias grows with shift)
        # overlap trimmed to a multiple of 16 px (cv2 pads other sizes, biasing the peak)
        h2, w2 = (h - abs(iy)) // 16 * 16, (w - abs(ix)) // 16 * 16
        fa = (slice(max(0, -iy), max(0, -iy) + h2), slice(max(0, -ix), max(0, -ix) + w2))
        fb = (slice(max(0, iy), max(0, iy) + h2), slice(max(0, ix), max(0, ix) + w2))
        rx, ry, r2 = _correlate(flight[fa], baseline[fb], valid[fa] & valid[fb])
        if r2 >= 0.5 * response and max(abs(rx), abs(ry)) < 1.5:
            return ix + rx, iy + ry, r2
    return sx, sy, response


def _correlate(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> tuple[float, float, float]:
    pa, pb = _prepare(a, valid), _prepare(b, valid)
    hann = cv2.createHanningWindow(pa.shape[::-1], cv2.CV_32F)
    (sx, sy), response = cv2.phaseCorrelate(pa, pb, hann)
    return float(sx), float(sy), float(response)


def _shift_affine(sx_m: float, sy_m: float) -> Affine:
    return Affine.translation(sx_m, sy_m)


def fit_correction(
    estimates: Sequence[ShiftEstimate], gsd: float, allow_affine: bool = True
) -> tuple[Affine, np.ndarray, bool]:
    """Robust map-space update ``D`` (apply as ``C_new = C_old @ D``) from shift estimates.

    Returns ``(D, inlier_mask, is_affine)``. Shift: component-wise median. Affine (needs >= 6
    estimates spread in space): iteratively reweighted least squares dropping > 3 MAD outliers,
    kept only when it explains the data clearly better than the shift (a rotation/scale is
    detectable).
    """
    n = len(estimates)
    if n == 0:
        return Affine.identity(), np.zeros(0, dtype=bool), False
    p = np.array([[e.x, e.y] for e in estimates])
    # displacement in map metres: x right, y up (grid rows run south)
    d = np.array([[e.sx * gsd, -e.sy * gsd] for e in estimates])
    med = np.median(d, axis=0)
    res = np.linalg.norm(d - med, axis=1)
    mad = np.median(res) * 1.4826
    inl = res <= max(3.0 * mad, 0.5 * gsd)
    shift = d[inl].mean(axis=0) if inl.sum() >= 3 else med
    shift_rms = float(np.sqrt(np.mean(np.sum((d[inl] - shift) ** 2, axis=1))))
    best = _shift_affine(float(shift[0]), float(shift[1]))
    if not allow_affine or inl.sum() < 6:
        return best, inl, False
    p0 = p[inl].mean(axis=0)
    span = np.ptp(p[inl], axis=0)
    if span.min() < 10 * gsd:
        return best, inl, False
    a_inl = inl.copy()
    coef = np.zeros((3, 2))
    for _ in range(4):
        x = np.column_stack([p[a_inl] - p0, np.ones(a_inl.sum())])
        coef, *_ = np.linalg.lstsq(x, d[a_inl], rcond=None)
        pred = np.column_stack([p - p0, np.ones(n)]) @ coef
        r = np.linalg.norm(d - pred, axis=1)
        rmad = np.median(r[a_inl]) * 1.4826
        new = r <= max(3.0 * rmad, 0.5 * gsd)
        if new.sum() < 6 or (new == a_inl).all():
            break
        a_inl = new
    pred = np.column_stack([p[a_inl] - p0, np.ones(a_inl.sum())]) @ coef
    aff_rms = float(np.sqrt(np.mean(np.sum((d[a_inl] - pred) ** 2, axis=1))))
    # max displacement difference the linear part makes across the sampled area
    lin = coef[:2].T
    spread = float(np.abs(lin @ (span / 2.0)).max())
    if spread > 0.5 * gsd and aff_rms < 0.7 * shift_rms:
        # D(q) = q + lin (q - p0) + t  (q in map coords)
        m = np.eye(2) + lin
        t = coef[2] - lin @ p0
        return Affine(m[0, 0], m[0, 1], t[0], m[1, 0], m[1, 1], t[1]), a_inl, True
    return best, inl, False


_MODES: dict[tuple[bool, bool], RegistrationMode] = {
    (False, False): "shift",
    (True, False): "affine",
    (False, True): "shift+local",
    (True, True): "affine+local",
}

#: ``measure(correction)`` or ``measure(correction, local_field)`` -> one estimate per sub-window
Measure = Callable[..., list[ShiftEstimate | None]]


def _pick(ests: Sequence[ShiftEstimate | None], idx: Sequence[int]) -> list[ShiftEstimate]:
    return [e for e in (ests[i] for i in idx) if e is not None]


def _magnitudes(ests: Sequence[ShiftEstimate]) -> np.ndarray:
    return np.array([np.hypot(e.sx, e.sy) for e in ests])


def coregister(
    measure: Measure,
    cells: Sequence[BaseGeometry],
    gsd: float,
    *,
    max_residual_m: float = 0.5,
    max_window_residual_m: float | None = None,
    min_estimates: int = 4,
    min_confidence: float = 0.1,
    area: BaseGeometry | None = None,
    local_measure: Measure | None = None,
    max_local_m: float = 3.0,
    min_local_px: float = 0.5,
) -> Registration:
    """Estimate, apply, verify and gate the correction.

    ``measure(C)`` returns one estimate (or None where the window has too little texture/valid
    data) per sub-window, measured with the baseline read through correction ``C``; ``cells[i]``
    is the map area sub-window ``i`` stands for (used for ``failed_areas``); ``area`` (default:
    the union of the cells) is what a global gate failure marks failed.

    The gate fails when the median residual exceeds ``max_residual_m``; a single sub-window is
    marked failed when its own residual exceeds ``max_window_residual_m`` (default, and never
    less than, ``max_residual_m``): one window's estimate is noisier than the median (changes in
    it bias it), so a tight global gate need not throw away the areas of noisy windows.

    ``local_measure`` (None = no local correction) measures a denser set of sub-windows; their
    residuals after the global fit give a local field (:func:`geo.coreg_local.fit_local_field`,
    clamped to ``max_local_m``, none below ``min_local_px``) that is kept only when it makes the
    verification better (fewer sub-windows above the window bound, lower mean residual). The
    gate's statistics and ``failed_areas`` are those measured with everything applied.
    """
    whole = area if area is not None else shapely.union_all(list(cells))
    max_px = max_residual_m / gsd
    window_m = max(max_residual_m, max_window_residual_m or max_residual_m)
    window_px = window_m / gsd
    n_windows = len(cells)

    def confident(ests: list[ShiftEstimate | None]) -> list[int]:
        return [i for i, e in enumerate(ests) if e is not None and e.confidence >= min_confidence]

    first = measure(Affine.identity())
    idx = confident(first)
    if len(idx) < min_estimates:
        return _failed(
            whole,
            n_windows,
            first,
            idx,
            f"co-registration gate: only {len(idx)} of {n_windows} sub-windows gave a confident "
            f"shift estimate (need {min_estimates}); the epochs may not show the same place, "
            "or the common area lacks texture",
        )
    ests = _pick(first, idx)
    update, _, is_aff = fit_correction(ests, gsd)
    correction = update
    verify = measure(correction)
    vidx = confident(verify)
    # second pass: fold any remaining global shift in
    if len(vidx) >= min_estimates:
        vest = _pick(verify, vidx)
        if np.median(_magnitudes(vest)) > 0.1:
            upd2, _, _ = fit_correction(vest, gsd, allow_affine=False)
            cand = correction @ upd2
            verify2 = measure(cand)
            v2 = confident(verify2)
            if len(v2) >= min_estimates:
                m1 = np.median(_magnitudes(vest))
                m2 = np.median(_magnitudes(_pick(verify2, v2)))
                if m2 < m1:
                    correction, verify, vidx = cand, verify2, v2
    if len(vidx) < min_estimates:
        return _failed(
            whole,
            n_windows,
            first,
            idx,
            f"co-registration gate: after correction only {len(vidx)} of {n_windows} "
            "sub-windows could be verified; the correction is not trustworthy",
        )
    local: LocalField | None = None
    if local_measure is not None:
        local, verify, vidx = local_pass(
            measure,
            local_measure,
            correction,
            verify,
            vidx,
            gsd,
            window_px=window_px,
            max_px=max_px,
            min_estimates=min_estimates,
            min_confidence=min_confidence,
            max_local_m=max_local_m,
            min_local_px=min_local_px,
        )
    vest = _pick(verify, vidx)
    mags = _magnitudes(vest)
    residual = float(np.median(mags))
    bad = [vidx[k] for k in range(len(vidx)) if mags[k] > window_px]
    failed = shapely.union_all([cells[i] for i in bad]) if bad else shapely.Polygon()
    conf = float(np.median([e.confidence for e in vest]))
    reg = Registration(
        dx_m=float(correction.c) if not is_aff else 0.0,
        dy_m=float(correction.f) if not is_aff else 0.0,
        affine=correction if is_aff else None,
        residual_px=residual,
        n_estimates=len(idx),
        n_windows=n_windows,
        confidence=conf,
        correction=correction,
        estimates=tuple(ests),
        residuals=tuple(vest),
        failed_areas=failed,
        mode=_MODES[(is_aff, local is not None)],
        local=local,
    )
    if is_aff:  # report the shift at the centre of the measured area
        cx = float(np.mean([e.x for e in ests]))
        cy = float(np.mean([e.y for e in ests]))
        tx, ty = correction @ (cx, cy)
        reg.dx_m, reg.dy_m = tx - cx, ty - cy
    shift = f"shift ({reg.dx_m:+.2f}, {reg.dy_m:+.2f}) m" + (" + affine" if is_aff else "")
    if local is not None:
        shift += f" + local field ({local.describe()})"
    if residual > max_px or len(bad) > len(vidx) // 2:
        reg.gate_passed = False
        reg.failed_areas = whole
        reg.message = (
            f"co-registration gate: residual {residual:.2f} px ({residual * gsd:.2f} m) after "
            f"{shift} exceeds {max_residual_m} m ({len(bad)} of {len(vidx)} sub-windows above "
            f"{window_m} m); "
            "the whole pair is marked failed (compare with a better-registered baseline or raise "
            "max_residual_m)"
        )
    else:
        reg.message = (
            f"co-registered: {shift}, residual {residual:.2f} px ({residual * gsd:.2f} m) from "
            f"{len(idx)}/{n_windows} sub-windows, confidence {conf:.2f}"
            + (f"; {len(bad)} sub-window area(s) above {window_m} m marked failed" if bad else "")
        )
    log.info(reg.message)
    return reg


def _failed(
    whole: BaseGeometry,
    n_windows: int,
    ests: list[ShiftEstimate | None],
    idx: list[int],
    message: str,
) -> Registration:
    log.warning(message)
    good = _pick(ests, idx)
    return Registration(
        n_estimates=len(idx),
        n_windows=n_windows,
        confidence=float(np.median([e.confidence for e in good])) if good else 0.0,
        gate_passed=False,
        failed_areas=whole,
        message=message,
        estimates=tuple(good),
    )
