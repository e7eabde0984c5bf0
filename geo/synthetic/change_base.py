"""Change records and the planner's placement helpers (pure numpy).

A :class:`ChangeRecord` says what one change adds to or removes from the world in the later
epoch, in local metres. :class:`PlannerBase` holds the state shared by every kind of change (the
world, the random generator, the valid-pixel mask, the ids already used) and the helpers that find
room for a change; :mod:`geo.synthetic.change_nuisance` and :mod:`geo.synthetic.changes` add the
kinds themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from geo.synthetic.palette import CROPS
from geo.synthetic.shapes import BUILT, Building, Car, Rect, World, _free, _mark

__all__ = [
    "ChangeRecord",
    "PlannerBase",
    "KIND_CLASS",
    "KIND_EXPECTED",
    "REAL_KINDS",
    "NUISANCE_KINDS",
]

REAL_KINDS = ("new_building", "extension", "rooftop_addition", "construction")
NUISANCE_KINDS = (
    "moved_car",
    "vegetation",
    "shadow",
    "repaint",
    "demolished",
    "permitted_building",
)
KIND_CLASS = {
    "new_building": "new_building",
    "extension": "new_building",
    "rooftop_addition": "new_building",
    "construction": "construction",
    "permitted_building": "new_building",
}
KIND_EXPECTED = {k: "lead" for k in REAL_KINDS} | {"permitted_building": "permitted"}
_GREEN = {CROPS.index(c) for c in ("rice", "vegetable", "corn", "tea", "orchard", "wheat")}


@dataclass
class ChangeRecord:
    """One change: its kind, outline (local metres) and what the later epoch shows differently."""

    cid: int
    kind: str
    poly: np.ndarray
    add_buildings: list[Building] = field(default_factory=list)
    remove_bids: set[int] = field(default_factory=set)
    grounds: list[tuple[np.ndarray, int]] = field(default_factory=list)
    lines: list[tuple[np.ndarray, float, int, bool, int]] = field(default_factory=list)
    roof_of: dict[int, int] = field(default_factory=dict)
    crop_of: dict[int, int] = field(default_factory=dict)
    tone_of: dict[int, int] = field(default_factory=dict)
    remove_cars: set[int] = field(default_factory=set)
    remove_trees: set[int] = field(default_factory=set)
    add_cars: list[Car] = field(default_factory=list)
    shadow_of: Building | None = None
    permit: np.ndarray | None = None
    footprint: Rect | None = None  # construction: the building it becomes

    @property
    def cls(self) -> str:
        return KIND_CLASS.get(self.kind, "")

    @property
    def expected(self) -> str:
        return KIND_EXPECTED.get(self.kind, "none")


class PlannerBase:
    """State and placement helpers shared by every kind of change."""

    def __init__(self, world: World, rng: np.random.Generator, valid: np.ndarray, k: int):
        self.w, self.rng, self.valid, self.k = world, rng, valid, k
        self.used: set[int] = set()  # building / car / field ids already changed
        fr = world.frame
        n = fr.size_px
        self.visible_buildings = [
            b
            for b in world.buildings
            if b.parent is None and self._inside(b.rect.grown(1).corners())
        ]
        self.cid = 0
        del n

    # -- helpers --------------------------------------------------------------------------
    def _inside(self, poly: np.ndarray) -> bool:
        p = self.w.frame.to_px(np.concatenate([poly, poly.mean(0, keepdims=True)]))
        q = np.floor(p / self.k).astype(int)
        h, wd = self.valid.shape
        if (q < 0).any() or (q[:, 0] >= wd).any() or (q[:, 1] >= h).any():
            return False
        return bool(self.valid[q[:, 1], q[:, 0]].all())

    def _next(self) -> int:
        self.cid += 1
        return self.cid

    def _sample_point(self) -> np.ndarray:
        n = self.w.frame.size_px
        return self.w.frame.to_local(self.rng.uniform(0.05 * n, 0.95 * n, 2))

    def _roof(self, mats: tuple[str, ...]) -> tuple[int, str]:
        choices = [m for m in mats if self.w.roof_by_material.get(m)]
        m = choices[int(self.rng.integers(len(choices)))]
        shape = {
            "terracotta": "gable",
            "grey_tile": "gable",
            "blue_steel": "steel",
            "white_steel": "steel",
        }.get(m, "flat")
        return int(self.rng.choice(self.w.roof_by_material[m])), shape

    def _place_rect(self, lo: float, hi: float, ok: tuple[int, ...], margin: float) -> Rect | None:
        rng = self.rng
        for _ in range(150):
            houses = [b for b in self.visible_buildings if b.kind == "house"]
            if houses and rng.random() < 0.5:
                hb = houses[int(rng.integers(len(houses)))]
                ang = rng.uniform(0, 2 * np.pi)
                c = np.array([hb.rect.cx, hb.rect.cy]) + rng.uniform(10, 24) * np.array(
                    [math.cos(ang), math.sin(ang)]
                )
            else:
                c = self._sample_point()
            cell = self.w.cell_at(*c)
            if cell is None:
                continue
            rect = Rect(
                c[0],
                c[1],
                rng.uniform(lo, hi),
                rng.uniform(lo, hi) * rng.uniform(0.6, 1.0),
                rng.normal(0, 0.05) if cell.kind == "village" else 0.0,
            )
            if _free(self.w.occ, rect.corners(), margin, ok) and self._inside(
                rect.grown(2).corners()
            ):
                _mark(self.w.occ, rect.corners(), BUILT, margin + 1)
                return rect
        return None

    def _trees_under(self, r: Rect) -> set[int]:
        out = set()
        for i, t in enumerate(self.w.trees):
            if (
                abs(t.cx - r.cx) < r.w + r.h
                and abs(t.cy - r.cy) < r.w + r.h
                and _point_in_rect(np.array([t.cx, t.cy]), r.grown(t.r))
            ):
                out.add(i)
        return out

    def _pick_building(
        self, pred: Callable[[Building], bool], mark: bool = True
    ) -> Building | None:
        cands = [b for b in self.visible_buildings if b.bid not in self.used and pred(b)]
        if not cands:
            return None
        b = cands[int(self.rng.integers(len(cands)))]
        if mark:
            self.used.add(b.bid)
        return b


def _point_in_rect(p: np.ndarray, r: Rect) -> bool:
    d = p - np.array([r.cx, r.cy])
    u = d @ np.array([math.cos(r.ang), math.sin(r.ang)])
    v = d @ np.array([-math.sin(r.ang), math.cos(r.ang)])
    return abs(u) <= r.w / 2 and abs(v) <= r.h / 2
