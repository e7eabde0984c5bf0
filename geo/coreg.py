"""Residual misregistration between baseline and flight: measure, correct, gate.

Pure core (no IO): :func:`phase_shift` measures the shift of one sub-window pair by phase
correlation (sub-pixel; the peak's significance above the rest of the correlation surface
says whether it is evidence at all); :func:`fit_correction`
combines many estimates robustly into a global shift, or an affine when a rotation/scale is
detectable; where the residuals left by that fit vary across the scene, a local residual-shift
field (:mod:`geo.coreg_local`) is fitted from a denser set of sub-windows and applied on top;
the gate then judges the pair as finally corrected. :func:`coregister` drives them through
``measure(correction, local=None)`` callbacks that read the sub-windows, so this module never
opens files. Types, conventions and the meaning of each outcome: :mod:`geo.registration`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

from geo.coreg_local import local_pass
from geo.registration import (
    Gate,
    LocalField,
    Measure,
    Registration,
    RegistrationMode,
    ShiftEstimate,
)

__all__ = [
    "PhaseShift",
    "fit_candidates",
    "phase_shift",
    "texture_score",
    "fit_correction",
    "coregister",
]

log = logging.getLogger(__name__)


class PhaseShift(NamedTuple):
    """One phase correlation: baseline content sits at flight pixel + (sx, sy)."""

    sx: float
    sy: float
    confidence: float
    psr: float


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
) -> PhaseShift:
    """(sx, sy, confidence, psr): baseline content sits at flight pixel + (sx, sy).

    Grayscale windows of equal shape; Hann-windowed, sub-pixel phase correlation
    (``cv2.phaseCorrelate``); ``confidence`` is the normalised correlation peak (≈0 for unrelated
    content, →1 for identical content) and ``psr`` the peak-to-sidelobe ratio of the whole
    correlation surface: how many standard deviations the peak stands above everything away
    from it. Across years, sensors and seasons the peak of the same ground falls to a few
    hundredths while staying far above the surface's noise, so ``psr`` is what tells evidence
    from chance (unrelated windows: ≈4–7).
    """
    if flight.shape != baseline.shape or flight.ndim != 2:
        raise ValueError(f"need equal 2-D windows, got {flight.shape} and {baseline.shape}")
    if valid is None:
        valid = np.ones(flight.shape, dtype=bool)
    sx, sy, response, psr = _correlate(flight, baseline, valid, with_psr=True)
    ix, iy = int(round(sx)), int(round(sy))
    h, w = flight.shape
    if max(abs(ix), abs(iy)) >= 2 and abs(ix) < w // 3 and abs(iy) < h // 3:
        # refine on the overlap after removing the integer shift (Hann bias grows with shift)
        # overlap trimmed to a multiple of 16 px (cv2 pads other sizes, biasing the peak)
        h2, w2 = (h - abs(iy)) // 16 * 16, (w - abs(ix)) // 16 * 16
        fa = (slice(max(0, -iy), max(0, -iy) + h2), slice(max(0, -ix), max(0, -ix) + w2))
        fb = (slice(max(0, iy), max(0, iy) + h2), slice(max(0, ix), max(0, ix) + w2))
        rx, ry, r2, _ = _correlate(flight[fa], baseline[fb], valid[fa] & valid[fb])
        if r2 >= 0.5 * response and max(abs(rx), abs(ry)) < 1.5:
            return PhaseShift(ix + rx, iy + ry, r2, psr)
    return PhaseShift(sx, sy, response, psr)


def _correlate(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray, with_psr: bool = False
) -> tuple[float, float, float, float]:
    pa, pb = _prepare(a, valid), _prepare(b, valid)
    hann = cv2.createHanningWindow(pa.shape[::-1], cv2.CV_32F)
    # the significance is measured on the images tapered by the Hann window squared (a stronger
    # apodisation: less edge leakage, so chance peaks stay low; its threshold was calibrated this
    # way), computed here explicitly and before phaseCorrelate, which some OpenCV releases (5.0)
    # let window its inputs in place and others (5.1) not
    taper = hann * hann
    psr = _psr(pa * taper, pb * taper) if with_psr else float("nan")
    (sx, sy), response = cv2.phaseCorrelate(pa.copy(), pb.copy(), hann)
    return float(sx), float(sy), float(response), psr


def _psr(a: np.ndarray, b: np.ndarray, exclude: int = 5) -> float:
    """Peak-to-sidelobe ratio of the phase-correlation surface of two windowed images."""
    fa, fb = np.fft.rfft2(a), np.fft.rfft2(b)
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-9 * float(np.abs(cross).max() + 1e-30)
    surface = np.fft.irfft2(cross, s=a.shape)
    i, j = np.unravel_index(int(np.argmax(surface)), surface.shape)
    peak = float(surface[i, j])
    side = np.ones(surface.shape, dtype=bool)
    rows = np.arange(i - exclude, i + exclude + 1) % surface.shape[0]
    cols = np.arange(j - exclude, j + exclude + 1) % surface.shape[1]
    side[np.ix_(rows, cols)] = False
    rest = surface[side]
    sd = float(rest.std())
    return (peak - float(rest.mean())) / sd if sd > 0 else 0.0


#: largest linear part (rotation ≈ radians, scale - 1) an affine correction may have (≈ 2.9°, 5 %)
MAX_AFFINE_LINEAR = 0.05


def _shift_affine(sx_m: float, sy_m: float) -> Affine:
    return Affine.translation(sx_m, sy_m)


def _shift_consensus(d: np.ndarray, w: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The shift most estimates agree on (PSR-weighted support within ``tol``) and its inliers."""
    pair_d = np.linalg.norm(d[:, None, :] - d[None, :, :], axis=2)
    support = ((pair_d <= tol) * w[None, :]).sum(axis=1)
    seed = d[int(np.argmax(support))]
    inl = np.linalg.norm(d - seed, axis=1) <= tol
    shift = np.average(d[inl], axis=0, weights=w[inl])
    inl = np.linalg.norm(d - shift, axis=1) <= tol
    if inl.any():
        shift = np.average(d[inl], axis=0, weights=w[inl])
    return shift, inl


def _affine_consensus(
    p: np.ndarray, d: np.ndarray, tol: float, max_trials: int = 2000
) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC over triplets: the affine displacement model ``d = [p - p0, 1] @ coef`` most
    estimates agree on (within ``tol``), refitted on its inliers; None when no triplet works."""
    n = len(p)
    p0 = p.mean(axis=0)
    x = np.column_stack([p - p0, np.ones(n)])
    trios = list(itertools.combinations(range(n), 3))
    if len(trios) > max_trials:
        pick = np.random.default_rng(0).choice(len(trios), max_trials, replace=False)
        trios = [trios[i] for i in sorted(pick)]
    best: tuple[int, float] = (0, np.inf)
    best_inl: np.ndarray | None = None
    for trio in trios:
        idx = list(trio)
        a = x[idx]
        if abs(np.linalg.det(a)) < 1e-9 * max(1.0, float(np.abs(a).max()) ** 2):
            continue  # collinear
        coef = np.linalg.solve(a, d[idx])
        r = np.linalg.norm(d - x @ coef, axis=1)
        inl = r <= tol
        score = (int(inl.sum()), float(r[inl].sum()))
        if score[0] > best[0] or (score[0] == best[0] and score[1] < best[1]):
            best, best_inl = score, inl
    if best_inl is None or best_inl.sum() < 3:
        return None
    inl = best_inl
    for _ in range(2):  # refit on the inliers, take the inliers of the refit
        coef, *_ = np.linalg.lstsq(x[inl], d[inl], rcond=None)
        inl = np.linalg.norm(d - x @ coef, axis=1) <= tol
        if inl.sum() < 3:
            return None
    coef, *_ = np.linalg.lstsq(x[inl], d[inl], rcond=None)
    return coef, inl


def fit_candidates(
    estimates: Sequence[ShiftEstimate],
    gsd: float,
    allow_affine: bool = True,
    tol_m: float | None = None,
) -> tuple[tuple[Affine, np.ndarray], tuple[Affine, np.ndarray] | None]:
    """The robust shift and, where plausible, an affine candidate, each with its inliers.

    Shift: the consensus of the estimates — the one with the most support (estimates within
    ``tol_m``, default ``gsd``, weighted by their peak significance) seeds the inliers, whose
    weighted mean is the shift. Real pairs disagree locally (roofs lean differently between two
    ortho products, new buildings bias windows), so a median of few estimates can land between
    clusters; the consensus cannot. Affine (>= 6 estimates spread over >= 10 px): the
    displacement model most estimates agree on (RANSAC over triplets), kept as a candidate only
    when its rotation/scale is plausible for georeferencing (<= :data:`MAX_AFFINE_LINEAR`), it
    makes a visible difference across the area, and it agrees with at least 6 estimates and
    more than the shift does. :func:`coregister` measures both and keeps the better.
    """
    n = len(estimates)
    if n == 0:
        return (Affine.identity(), np.zeros(0, dtype=bool)), None
    tol = max(tol_m if tol_m is not None else gsd, 0.5 * gsd)
    p = np.array([[e.x, e.y] for e in estimates])
    # displacement in map metres: x right, y up (grid rows run south)
    d = np.array([[e.sx * gsd, -e.sy * gsd] for e in estimates])
    w = np.array([max(float(e.psr), 1e-3) for e in estimates])
    shift, inl = _shift_consensus(d, w, tol)
    best = (_shift_affine(float(shift[0]), float(shift[1])), inl)
    span = np.ptp(p, axis=0)
    if not allow_affine or n < 6 or span.min() < 10 * gsd:
        return best, None
    found = _affine_consensus(p, d, tol)
    if found is None:
        return best, None
    coef, a_inl = found
    lin = coef[:2].T
    spread = float(np.abs(lin @ (span / 2.0)).max())
    # a georeferencing error rotates/scales by a few degrees/percent at most: beyond that the
    # "affine" is fitting changed content, not misregistration
    plausible = float(np.abs(lin).max()) <= MAX_AFFINE_LINEAR
    if not (plausible and spread > 0.5 * gsd and a_inl.sum() >= 6 and a_inl.sum() > inl.sum()):
        return best, None
    # D(q) = q + lin (q - p0) + t  (q in map coords)
    p0 = p.mean(axis=0)
    m = np.eye(2) + lin
    t = coef[2] - lin @ p0
    return best, (Affine(m[0, 0], m[0, 1], t[0], m[1, 0], m[1, 1], t[1]), a_inl)


def fit_correction(
    estimates: Sequence[ShiftEstimate],
    gsd: float,
    allow_affine: bool = True,
    tol_m: float | None = None,
) -> tuple[Affine, np.ndarray, bool]:
    """Robust map-space update ``D`` (apply as ``C_new = C_old @ D``) from shift estimates.

    Returns ``(D, inlier_mask, is_affine)``: the affine candidate of :func:`fit_candidates`
    when there is one, else the shift (without measuring: :func:`coregister` measures both).
    """
    shift, affine = fit_candidates(estimates, gsd, allow_affine, tol_m)
    if affine is not None:
        return affine[0], affine[1], True
    return shift[0], shift[1], False


_MODES: dict[tuple[bool, bool], RegistrationMode] = {
    (False, False): "shift",
    (True, False): "affine",
    (False, True): "shift+local",
    (True, True): "affine+local",
}


def _pick(ests: Sequence[ShiftEstimate | None], idx: Sequence[int]) -> list[ShiftEstimate]:
    return [e for e in (ests[i] for i in idx) if e is not None]


def _magnitudes(ests: Sequence[ShiftEstimate]) -> np.ndarray:
    return np.array([e.magnitude for e in ests])


def coregister(
    measure: Measure,
    cells: Sequence[BaseGeometry],
    gsd: float,
    gate: Gate,
    *,
    area: BaseGeometry | None = None,
    local_measure: Measure | None = None,
    max_local_m: float = 3.0,
    min_local_px: float = 0.5,
) -> Registration:
    """Estimate, apply, verify and gate the correction (outcomes: :mod:`geo.registration`).

    ``measure(C)`` returns one estimate (or None where the window has too little texture/valid
    data) per sub-window, measured with the baseline read through correction ``C`` on a working
    grid of ``gsd`` m; ``cells[i]`` is the map area sub-window ``i`` stands for; ``area``
    (default: the union of the cells) is what a failed pair marks not comparable.

    * Fewer than ``gate.min_estimates`` confident sub-windows (``psr >= gate.min_psr``): the
      pair is ``unverified`` and used as georeferenced (nothing is marked, nothing corrected).
    * Otherwise a robust global shift (or affine) is fitted, verified by measuring again, and
      ``local_measure`` (dense sub-windows; None = no local correction) may add a local field
      (:func:`geo.coreg_local.local_pass`, kept only when verification improves).
    * The pair ``failed`` when the median residual stays above ``gate.max_residual_px`` or more
      than half the verified sub-windows stay above ``gate.max_window_px`` (estimates that
      contradict each other); else it is ``verified`` and the cells of sub-windows above the
      window bound are ``not_comparable``.
    """
    whole = area if area is not None else shapely.union_all(list(cells))
    to_ref = gsd / gate.ref_gsd  # working px -> reference px
    max_px = gate.max_residual_px / to_ref  # in working px
    window_px = gate.max_window_px / to_ref
    n_windows = len(cells)

    def confident(ests: list[ShiftEstimate | None]) -> list[int]:
        return [i for i, e in enumerate(ests) if e is not None and e.psr >= gate.min_psr]

    def base(**kw: object) -> Registration:
        return Registration(gsd=gsd, gate=gate, n_windows=n_windows, **kw)  # type: ignore[arg-type]

    first = measure(Affine.identity())
    idx = confident(first)
    if len(idx) < gate.min_estimates:
        return _unverified(
            base(n_estimates=len(idx), estimates=tuple(_pick(first, idx))),
            f"only {len(idx)} of {n_windows} sub-windows gave a confident shift estimate "
            f"(need {gate.min_estimates})",
        )
    ests = _pick(first, idx)
    (shift_c, agree), affine = fit_candidates(ests, gsd, tol_m=gate.max_window_m / 2)
    if affine is not None:
        agree = affine[1] if affine[1].sum() > agree.sum() else agree
    if int(agree.sum()) < gate.min_estimates:
        # chance peaks (unrelated or wholly changed content) scatter; a real misregistration
        # shows as a group of windows that agree on it
        return _unverified(
            base(n_estimates=len(idx), estimates=tuple(ests)),
            f"{len(idx)} of {n_windows} sub-windows gave a confident shift estimate but at most "
            f"{int(agree.sum())} agree on one shift (need {gate.min_estimates})",
        )
    # measured, not assumed: the shift and (where there is one) the affine are both applied and
    # measured again; the one that leaves the smaller residual is kept
    correction, is_aff = shift_c, False
    verify = measure(correction)
    vidx = confident(verify)
    if affine is not None:
        verify_a = measure(affine[0])
        vidx_a = confident(verify_a)
        if len(vidx_a) >= gate.min_estimates and (
            len(vidx) < gate.min_estimates
            or _residual(_pick(verify_a, vidx_a)) < _residual(_pick(verify, vidx))
        ):
            correction, is_aff, verify, vidx = affine[0], True, verify_a, vidx_a
    # second pass: fold any remaining global shift in
    if len(vidx) >= gate.min_estimates:
        vest = _pick(verify, vidx)
        if np.median(_magnitudes(vest)) > 0.1:
            upd2, _, _ = fit_correction(vest, gsd, allow_affine=False, tol_m=gate.max_window_m / 2)
            cand = correction @ upd2
            verify2 = measure(cand)
            v2 = confident(verify2)
            if len(v2) >= gate.min_estimates:
                m1 = np.median(_magnitudes(vest))
                m2 = np.median(_magnitudes(_pick(verify2, v2)))
                if m2 < m1:
                    correction, verify, vidx = cand, verify2, v2
    reg = base(
        n_estimates=len(idx),
        correction=correction,
        affine=correction if is_aff else None,
        estimates=tuple(ests),
        dx_m=float(correction.c),
        dy_m=float(correction.f),
    )
    if is_aff:  # report the shift at the centre of the measured area
        cx = float(np.mean([e.x for e in ests]))
        cy = float(np.mean([e.y for e in ests]))
        tx, ty = correction @ (cx, cy)
        reg.dx_m, reg.dy_m = tx - cx, ty - cy
    shift = f"shift ({reg.dx_m:+.2f}, {reg.dy_m:+.2f}) m" + (" + affine" if is_aff else "")
    if len(vidx) < gate.min_estimates:
        # the correction came from confident, agreeing estimates but could not be re-measured
        reg.mode = _MODES[(is_aff, False)]
        return _unverified(
            reg,
            f"{shift} estimated from {len(idx)} of {n_windows} sub-windows, but only "
            f"{len(vidx)} could be verified after applying it",
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
            min_estimates=gate.min_estimates,
            min_psr=gate.min_psr,
            max_local_m=max_local_m,
            min_local_px=min_local_px,
        )
    vest = _pick(verify, vidx)
    mags = _magnitudes(vest)
    weights = np.array([e.psr for e in vest])
    # strong peaks are better evidence than marginal ones: both the residual and the share of
    # sub-windows above the window bound are weighted by peak significance
    residual = _weighted_median(mags, weights)
    is_bad = mags > window_px
    bad = [vidx[k] for k in np.flatnonzero(is_bad)]
    bad_share = float(weights[is_bad].sum() / weights.sum())
    reg.residual_px = residual
    reg.residuals = tuple(vest)
    reg.confidence = float(np.median([e.confidence for e in vest]))
    reg.local = local
    reg.mode = _MODES[(is_aff, local is not None)]
    if local is not None:
        shift += f" + local field ({local.describe()})"
    res_txt = f"residual {residual * to_ref:.2f} px ({residual * gsd:.2f} m)"
    if residual > max_px or bad_share > 0.5:
        reg.status = "failed"
        reg.not_comparable = whole
        reg.message = (
            f"co-registration failed: {res_txt} after {shift} exceeds the {gate.describe()} "
            f"({len(bad)} of {len(vidx)} sub-windows above the window bound); the whole "
            "common area is not comparable (use a better-registered baseline, or raise "
            "coreg.max_residual_px)"
        )
        log.info(reg.message)  # the caller decides: an error where nothing else is compared
        return reg
    reg.status = "verified"
    local_bad, isolated = _clustered(bad, cells, gsd)
    reg.not_comparable = (
        shapely.union_all([cells[i] for i in local_bad]) if local_bad else shapely.Polygon()
    )
    reg.message = (
        f"co-registered: {shift}, {res_txt} from {len(idx)}/{n_windows} sub-windows, "
        f"confidence {reg.confidence:.2f}"
        + (
            f"; {len(local_bad)} sub-window area(s) above {gate.max_window_px:g} px "
            f"({gate.max_window_m:.2f} m) not comparable"
            if local_bad
            else ""
        )
        + (
            f"; {len(isolated)} isolated sub-window(s) disagree with all their neighbours "
            "(changed content, not misregistration): kept comparable"
            if isolated
            else ""
        )
    )
    log.info(reg.message)
    return reg


def _clustered(
    bad: Sequence[int], cells: Sequence[BaseGeometry], gsd: float
) -> tuple[list[int], list[int]]:
    """Split sub-windows above the window bound into those next to another such window (a
    misregistration spans neighbouring areas: a seam, a relief error) and isolated ones.

    An isolated disagreeing window among agreeing neighbours is what a new building, a
    demolition or a construction site does to phase correlation — exactly what the product
    must look at — so it is not marked not comparable.
    """
    grown = {i: cells[i].buffer(2 * gsd) for i in bad}
    local = [i for i in bad if any(j != i and grown[i].intersects(cells[j]) for j in bad)]
    return local, [i for i in bad if i not in local]


def _residual(ests: Sequence[ShiftEstimate]) -> float:
    """PSR-weighted median residual (working px) of verification estimates."""
    return _weighted_median(_magnitudes(ests), np.array([e.psr for e in ests]))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value at which half the total weight lies at or below (weights > 0).

    >>> _weighted_median(np.array([0.1, 9.0, 14.0]), np.array([54.0, 14.0, 32.0]))
    0.1
    """
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cum, 0.5 * cum[-1]))])


def _unverified(reg: Registration, why: str) -> Registration:
    reg.status = "unverified"
    reg.message = (
        f"co-registration unverified: {why}; the baseline is used as georeferenced"
        + (" with that correction" if reg.correction != Affine.identity() else "")
        + " (a scene that changed a lot, or little texture in common); leads are marked "
        "coreg_status=unverified"
    )
    log.warning(reg.message)
    return reg
