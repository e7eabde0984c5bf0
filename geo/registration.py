"""The co-registration types, in one place: estimates, the local field, the gate and the outcome.

Read the baseline's path as one line (:func:`geo.tiles.open_pair`)::

    open (geo.pairing.scan_epoch) -> footprints (geo.coverage.pair_footprints)
      -> register (geo.coreg.coregister: global shift/affine, then geo.coreg_local's field)
      -> readers (geo.warp.EpochSpec.registered) -> tile pairs (geo.tiles.ImageryPair)

Conventions: a correction ``C`` is an affine on map coordinates of the working CRS taking a
flight point to the baseline point that shows the same ground; the baseline is read through
``C @ grid.transform``. Pixel displacements ``(sx, sy)`` are in working-grid pixels (x right,
y down). A local field's value ``d(q)`` (metres, x east, y north) is added before ``C``: the
baseline pixel shown at flight point ``q`` is the one at ``C(q + d(q))``.

The gate is in **pixels of the reference GSD**: the coarser of the two epochs' native GSDs, and
never finer than the working GSD (the detector sees nothing finer); :class:`Gate` converts.

Outcomes (:data:`CoregStatus`):

* ``verified``   — confident estimates agree; the correction (if any) brought the median
  residual under the gate. Neighbouring sub-windows whose own residual stays above the window
  bound are *not comparable* (``Registration.not_comparable``); an isolated one (a new building
  biases its window) stays comparable; the rest is compared.
* ``unverified`` — too few sub-windows gave a confident estimate (a scene that changed a lot,
  bare land built over, little texture). No evidence is not evidence of misregistration: the
  baseline is used as georeferenced and every lead says so.
* ``failed``     — positive evidence of misregistration: confident estimates stay above the
  gate after correction, or contradict each other. The whole common area is not comparable.
* ``off``        — co-registration switched off by configuration (not checked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

__all__ = [
    "CoregStatus",
    "COREG_STATUSES",
    "Gate",
    "LocalField",
    "Measure",
    "Registration",
    "RegistrationMode",
    "ShiftEstimate",
]

CoregStatus = Literal["verified", "unverified", "failed", "off"]
COREG_STATUSES: tuple[str, ...] = ("verified", "unverified", "failed", "off")

#: what was applied to the baseline: nothing, a global shift or affine, and a local field on top
RegistrationMode = Literal["none", "shift", "affine", "shift+local", "affine+local"]

#: default significance (peak-to-sidelobe ratio) a sub-window's correlation peak needs
DEFAULT_MIN_PSR = 10.0


@dataclass(frozen=True)
class ShiftEstimate:
    """One sub-window measurement: centre (map), displacement (working px) and its strength.

    ``confidence`` is the normalised phase-correlation peak (≈0 unrelated, →1 identical);
    ``psr`` its significance, the peak's height above the rest of the correlation surface in
    standard deviations (unrelated content: ≈4–7; the same ground: >10, even across years).
    """

    x: float
    y: float
    sx: float
    sy: float
    confidence: float
    psr: float = 20.0

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.sx, self.sy))


#: ``measure(correction)`` or ``measure(correction, local_field)`` -> one estimate per sub-window
Measure = Callable[..., list[ShiftEstimate | None]]


@dataclass(frozen=True)
class Gate:
    """The co-registration gate in pixels of ``ref_gsd`` (m): see the module docstring.

    ``max_residual_px``: the median residual after correction above which the pair fails;
    ``max_window_px``: one sub-window's residual above which its area is not comparable;
    ``min_psr``: the correlation-peak significance an estimate needs to count as evidence;
    ``min_estimates``: confident sub-windows needed to verify (fewer: ``unverified``).
    """

    ref_gsd: float
    max_residual_px: float = 1.0
    max_window_px: float = 2.5
    min_psr: float = DEFAULT_MIN_PSR
    min_estimates: int = 3

    def __post_init__(self) -> None:
        if not self.ref_gsd > 0:
            raise ValueError(f"ref_gsd must be > 0 m, got {self.ref_gsd!r}")
        if not self.max_residual_px > 0:
            raise ValueError(f"max_residual_px must be > 0, got {self.max_residual_px!r}")
        if self.max_window_px < self.max_residual_px:
            raise ValueError(
                f"max_window_residual_px ({self.max_window_px}) must be >= max_residual_px "
                f"({self.max_residual_px})"
            )

    @property
    def max_residual_m(self) -> float:
        return self.max_residual_px * self.ref_gsd

    @property
    def max_window_m(self) -> float:
        return self.max_window_px * self.ref_gsd

    def describe(self) -> str:
        return (
            f"gate {self.max_residual_px:g} px ({self.max_residual_m:.2f} m) median, "
            f"{self.max_window_px:g} px ({self.max_window_m:.2f} m) per sub-window, "
            f"at the reference GSD {self.ref_gsd:.3f} m"
        )


@dataclass(frozen=True, eq=False)
class LocalField:
    """Residual displacements on a regular node grid (north-up, rows run south).

    Node ``(i, j)`` sits at map ``(x0 + j * step, y0 - i * step)``; ``dx``/``dy`` are
    ``(rows, cols)`` arrays of metres. Between nodes the field is bilinear; beyond the outer
    nodes it is constant (the edge value).
    """

    x0: float
    y0: float
    step: float
    dx: np.ndarray
    dy: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the node grid."""
        return (int(self.dx.shape[0]), int(self.dx.shape[1]))

    @property
    def max_m(self) -> float:
        """Largest displacement magnitude over the nodes (m)."""
        return float(np.hypot(self.dx, self.dy).max()) if self.dx.size else 0.0

    def at(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear ``(dx, dy)`` (m) at map points ``x``, ``y`` (arrays broadcast together)."""
        rows, cols = self.shape
        fj = np.clip((np.asarray(x, dtype=np.float64) - self.x0) / self.step, 0, cols - 1)
        fi = np.clip((self.y0 - np.asarray(y, dtype=np.float64)) / self.step, 0, rows - 1)
        j0 = np.minimum(np.floor(fj).astype(int), max(cols - 2, 0))
        i0 = np.minimum(np.floor(fi).astype(int), max(rows - 2, 0))
        j1, i1 = np.minimum(j0 + 1, cols - 1), np.minimum(i0 + 1, rows - 1)
        tj, ti = fj - j0, fi - i0

        def interp(a: np.ndarray) -> np.ndarray:
            top = a[i0, j0] * (1 - tj) + a[i0, j1] * tj
            bottom = a[i1, j0] * (1 - tj) + a[i1, j1] * tj
            return np.asarray(top * (1 - ti) + bottom * ti)

        return interp(self.dx), interp(self.dy)

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Map ``(x, y)`` of every node, each a ``(rows, cols)`` array."""
        rows, cols = self.shape
        xs = self.x0 + self.step * np.arange(cols)
        ys = self.y0 - self.step * np.arange(rows)
        return np.broadcast_to(xs[None, :], (rows, cols)), np.broadcast_to(
            ys[:, None], (rows, cols)
        )

    def describe(self) -> str:
        """One line: node grid and largest displacement."""
        rows, cols = self.shape
        return f"{cols} x {rows} nodes every {self.step:.1f} m, max {self.max_m:.2f} m"


@dataclass
class Registration:
    """Outcome of co-registration, as applied to the baseline reads of a pair.

    ``residual_px`` (working pixels), ``residuals`` and ``not_comparable`` describe the pair
    after *all* corrections (``correction`` and, when ``mode`` ends in ``+local``, the ``local``
    field). ``gate`` is None when co-registration was off.
    """

    status: CoregStatus = "off"
    gsd: float = 0.0
    gate: Gate | None = None
    dx_m: float = 0.0
    dy_m: float = 0.0
    affine: Affine | None = None
    residual_px: float = float("nan")
    n_estimates: int = 0
    n_windows: int = 0
    confidence: float = 0.0
    not_comparable: BaseGeometry = field(default_factory=shapely.Polygon)
    message: str = ""
    correction: Affine = Affine.identity()
    estimates: tuple[ShiftEstimate, ...] = ()
    residuals: tuple[ShiftEstimate, ...] = ()
    mode: RegistrationMode = "none"
    local: LocalField | None = None

    @property
    def gate_passed(self) -> bool:
        """False only on positive evidence of misregistration (``status == 'failed'``)."""
        return self.status != "failed"

    @property
    def residual_m(self) -> float:
        return self.residual_px * self.gsd

    @property
    def residual_ref_px(self) -> float:
        """The median residual in pixels of the gate's reference GSD."""
        if self.gate is None:
            return float("nan")
        return self.residual_m / self.gate.ref_gsd

    @property
    def shift_m(self) -> float:
        """Size of the global correction at the centre of the measured area (m)."""
        return float(np.hypot(self.dx_m, self.dy_m))

    @property
    def decision(self) -> str:
        """pass / corrected / partial / unverified / failed / off (one word for tables)."""
        if self.status != "verified":
            return self.status
        if not self.not_comparable.is_empty:
            return "partial"
        moved = self.shift_m + self.local_max_m
        assert self.gate is not None
        corrected = self.affine is not None or moved >= 0.5 * self.gate.ref_gsd
        return "corrected" if corrected else "pass"

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
