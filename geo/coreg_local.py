"""Local misregistration: a smooth residual-shift field left after the global correction.

A baseline whose misregistration varies across the scene (an uncorrected DEM, a mosaic seam)
leaves residuals after the global shift/affine of :mod:`geo.coreg` that differ from place to
place. :func:`fit_local_field` turns the residual estimates of many sub-windows into a
:class:`~geo.registration.LocalField` — a regular grid of residual displacements (map metres) built with a
neighbourhood median (robust to single changed windows, and it keeps a seam a seam instead of
smearing it), clamped to a maximum magnitude. :func:`remap_tile` applies the field per pixel to
a baseline tile read with a margin (``cv2.remap``).

Convention (as :mod:`geo.registration`): the field's value ``d(q)`` at flight map point ``q`` is the
displacement to add before the global correction ``C``: the baseline pixel shown at ``q`` is the
one at ``C(q + d(q))``. ``d`` is in metres, x east, y north. Pure functions, no IO.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np
from affine import Affine

from geo.registration import LocalField, Measure, ShiftEstimate

__all__ = ["fit_local_field", "refine_field", "local_pass", "remap_tile"]

log = logging.getLogger(__name__)


def refine_field(base: LocalField, update: LocalField, max_shift_m: float = 3.0) -> LocalField:
    """``base`` plus ``update`` (a residual field measured with ``base`` applied), sampled at
    ``base``'s nodes and clamped to ``max_shift_m``."""
    ux, uy = update.at(*base.nodes())
    dx, dy = _clamp(base.dx + ux, base.dy + uy, max_shift_m)
    return LocalField(base.x0, base.y0, base.step, dx, dy)


def fit_local_field(
    residuals: Sequence[ShiftEstimate],
    gsd: float,
    *,
    max_shift_m: float = 3.0,
    min_shift_px: float = 0.5,
    min_estimates: int = 6,
) -> LocalField | None:
    """A :class:`LocalField` from residual sub-window estimates, or None when not worth it.

    Nodes lie on the lattice of the estimate centres (spacing = median nearest-neighbour
    distance); each node takes the component-wise median of the estimates within one lattice
    step in x and y (a 3 × 3 neighbourhood: one changed window among nine cannot move it, and a
    seam stays sharp), or of the three nearest where fewer than three are that close. Node
    magnitudes are clamped to ``max_shift_m``. None when there are fewer than ``min_estimates``
    estimates or no node's displacement reaches ``min_shift_px`` working pixels (a uniform
    residual is the global fit's job, and noise is left alone).
    """
    if len(residuals) < min_estimates:
        return None
    p = np.array([[e.x, e.y] for e in residuals], dtype=np.float64)
    d = np.array([[e.sx * gsd, -e.sy * gsd] for e in residuals], dtype=np.float64)
    dist = np.hypot(p[:, None, 0] - p[None, :, 0], p[:, None, 1] - p[None, :, 1])
    np.fill_diagonal(dist, np.inf)
    step = float(np.median(dist.min(axis=1)))
    if not np.isfinite(step) or step <= 0:
        return None
    x0, y1 = float(p[:, 0].min()), float(p[:, 1].max())
    cols = int(round((p[:, 0].max() - x0) / step)) + 1
    rows = int(round((y1 - p[:, 1].min()) / step)) + 1
    nx = x0 + step * np.arange(cols)
    ny = y1 - step * np.arange(rows)
    dx = np.zeros((rows, cols))
    dy = np.zeros((rows, cols))
    reach = 1.01 * step
    for i, yn in enumerate(ny):
        for j, xn in enumerate(nx):
            near = (np.abs(p[:, 0] - xn) <= reach) & (np.abs(p[:, 1] - yn) <= reach)
            if near.sum() < 3:
                near = np.argsort(np.hypot(p[:, 0] - xn, p[:, 1] - yn))[:3]
            dx[i, j], dy[i, j] = np.median(d[near], axis=0)
    dx, dy = _clamp(dx, dy, max_shift_m)
    field = LocalField(x0, y1, step, dx, dy)
    if field.max_m < min_shift_px * gsd:
        log.debug("local field below %.2f px everywhere: not applied", min_shift_px)
        return None
    return field


def _clamp(dx: np.ndarray, dy: np.ndarray, max_m: float) -> tuple[np.ndarray, np.ndarray]:
    mag = np.hypot(dx, dy)
    over = mag > max_m
    if not over.any():
        return dx, dy
    log.info("local field: %d node(s) clamped to %.1f m", int(over.sum()), max_m)
    scale = np.where(over, max_m / np.maximum(mag, 1e-12), 1.0)
    return dx * scale, dy * scale


def remap_tile(
    rgb: np.ndarray,
    valid: np.ndarray,
    margin: int,
    field: LocalField,
    transform: Affine,
    gsd: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``field`` to a tile read ``margin`` px wider on every side than wanted.

    ``rgb`` (H, W, 3) uint8 and ``valid`` (H, W) are the grown read; ``transform`` is the map
    transform of the *wanted* tile's pixel (0, 0) corner. Returns the wanted (H - 2m, W - 2m)
    tile, resampled bilinearly at ``pixel + d/gsd``; a pixel is valid only when all four source
    pixels were.
    """
    h, w = rgb.shape[0] - 2 * margin, rgb.shape[1] - 2 * margin
    cols = np.arange(w, dtype=np.float64) + 0.5
    rows = np.arange(h, dtype=np.float64) + 0.5
    xs = transform.c + transform.a * cols
    ys = transform.f + transform.e * rows
    ddx, ddy = field.at(xs[None, :], ys[:, None])
    map_x = (cols[None, :] - 0.5 + margin + ddx / gsd).astype(np.float32)
    map_y = (rows[:, None] - 0.5 + margin - ddy / gsd).astype(np.float32)
    out = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    v = cv2.remap(
        valid.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    ok = v > 0.999
    out[~ok] = 0
    return out, ok


def local_pass(
    measure: Measure,
    local_measure: Measure,
    correction: Affine,
    verify: list[ShiftEstimate | None],
    vidx: list[int],
    gsd: float,
    *,
    window_px: float,
    max_px: float,
    min_estimates: int,
    min_psr: float,
    max_local_m: float,
    min_local_px: float,
) -> tuple[LocalField | None, list[ShiftEstimate | None], list[int]]:
    """Fit a local field on top of ``correction`` and keep it only if verification improves.

    ``local_measure`` (dense sub-windows) gives the residuals the field is fitted from (then once
    more with the field applied, to refine it); ``measure`` (the gate's sub-windows) verifies it
    against ``verify``/``vidx`` (what it measured without the field). The field is kept when no
    more sub-windows exceed ``window_px``, the mean residual drops and the median stays within
    ``max(before, max_px)``. Returns ``(field or None, verification, confident indices)`` as
    the gate should use them.
    """

    def dense(field: LocalField | None) -> list[ShiftEstimate]:
        ests = local_measure(correction) if field is None else local_measure(correction, field)
        return [e for e in ests if e is not None and e.psr >= min_psr]

    local = fit_local_field(dense(None), gsd, max_shift_m=max_local_m, min_shift_px=min_local_px)
    if local is None:
        return None, verify, vidx
    # one refinement: large shifts are measured a little short; measure again with the field on
    update = fit_local_field(dense(local), gsd, max_shift_m=max_local_m, min_shift_px=0.0)
    if update is not None:
        local = refine_field(local, update, max_local_m)
    after = measure(correction, local)
    aidx = [i for i, e in enumerate(after) if e is not None and e.psr >= min_psr]
    if len(aidx) < min_estimates:
        log.info("local field dropped: only %d sub-windows verified with it", len(aidx))
        return None, verify, vidx

    def score(ests: list[ShiftEstimate]) -> tuple[int, float, float]:
        m = np.array([np.hypot(e.sx, e.sy) for e in ests])
        return (
            int((m > window_px).sum()),
            float(np.median(m)),
            float(np.minimum(m, 2 * window_px).mean()),
        )

    b_bad, b_med, b_mean = score([e for e in (verify[i] for i in vidx) if e is not None])
    a_bad, a_med, a_mean = score([e for e in (after[i] for i in aidx) if e is not None])
    # better on the whole, nowhere newly bad, and the median gate's verdict not made worse
    if a_bad <= b_bad and a_mean < b_mean and a_med <= max(b_med, max_px):
        log.info(
            "local field applied (%s): mean residual %.2f -> %.2f px, %d -> %d sub-windows "
            "above the window bound",
            local.describe(),
            b_mean,
            a_mean,
            b_bad,
            a_bad,
        )
        return local, after, aidx
    log.info(
        "local field dropped (%s): verification did not improve (%d -> %d sub-windows above "
        "the window bound, median %.2f -> %.2f px, mean %.2f -> %.2f px)",
        local.describe(),
        b_bad,
        a_bad,
        b_med,
        a_med,
        b_mean,
        a_mean,
    )
    return None, verify, vidx
