"""Nuisance changes: differences between epochs that are *not* new structures (pure numpy).

Demolished buildings, repainted roofs, shadows, moved cars and vegetation (crops, tree tone): the
detector must not report these, so the training data and the test districts contain them.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from geo.synthetic.change_base import _GREEN, ChangeRecord, PlannerBase
from geo.synthetic.palette import CROPS, LBL, ROOF_FIRST
from geo.synthetic.shapes import Car

__all__ = ["NuisancePlanner"]


class NuisancePlanner(PlannerBase):
    """Places the nuisance kinds (see the module docstring)."""

    def demolished(self) -> ChangeRecord | None:
        b = self._pick_building(lambda b: b.kind == "house") or self._pick_building(
            lambda b: b.kind == "block"
        )
        if b is None:
            return None
        rec = ChangeRecord(self._next(), "demolished", b.rect.corners(), remove_bids={b.bid})
        rec.grounds.append((b.rect.grown(0.6).corners(), LBL["rubble"]))
        c = b.rect.corners()
        for _ in range(6):
            t = self.rng.uniform(0, 1, 4)
            rec.lines.append(
                (
                    np.array(
                        [
                            c[0] + (c[1] - c[0]) * t[0] + (c[3] - c[0]) * t[1],
                            c[0] + (c[1] - c[0]) * t[2] + (c[3] - c[0]) * t[3],
                        ]
                    ),
                    0.4,
                    0,
                    False,
                    96,
                )
            )
        return rec

    def repaint(self) -> ChangeRecord | None:
        b = self._pick_building(lambda b: b.kind in ("house", "block"))
        if b is None:
            return None
        old = b.roof - ROOF_FIRST
        mats = self.w.roof_by_material
        new_mats = [
            m
            for m in ("blue_steel", "terracotta", "light", "green", "concrete")
            if mats.get(m) and b.roof not in mats[m]
        ]
        new = int(self.rng.choice(mats[new_mats[int(self.rng.integers(len(new_mats)))]]))
        del old
        return ChangeRecord(self._next(), "repaint", b.rect.corners(), roof_of={b.bid: new})

    def shadow(self) -> ChangeRecord | None:
        tall = [b for b in self.visible_buildings if b.height >= 9] or self.visible_buildings
        if not tall:
            return None
        b = tall[int(self.rng.integers(len(tall)))]
        return ChangeRecord(self._next(), "shadow", b.rect.corners(), shadow_of=b)

    def moved_car(self) -> ChangeRecord | None:
        rng = self.rng
        cars = [
            c
            for c in self.w.cars
            if c.cid not in self.used and self._inside(c.rect.grown(12).corners())
        ]
        if not cars:
            return None
        car = cars[int(rng.integers(len(cars)))]
        self.used.add(car.cid)
        r = car.rect
        d = rng.choice([-1, 1]) * rng.uniform(6, 15)
        moved = replace(r, cx=r.cx + d * math.cos(r.ang), cy=r.cy + d * math.sin(r.ang))
        new = Car(self.w.new_id(), moved, int(car.paint))
        poly = np.concatenate([r.corners(), moved.corners()])
        import cv2  # noqa: PLC0415

        hull = cv2.convexHull(poly.astype(np.float32))[:, 0, :].astype(float)
        return ChangeRecord(self._next(), "moved_car", hull, remove_cars={car.cid}, add_cars=[new])

    def vegetation(self) -> ChangeRecord | None:
        rng = self.rng
        fields = [f for f in self.w.fields if f.fid not in self.used and self._inside(f.poly)]
        if fields:
            f = fields[int(rng.integers(len(fields)))]
            self.used.add(f.fid)
            new = CROPS.index("fallow") if f.crop in _GREEN else CROPS.index("vegetable")
            return ChangeRecord(self._next(), "vegetation", f.poly, crop_of={f.fid: new})
        trees = [
            i
            for i, t in enumerate(self.w.trees)
            if i not in self.used and self._inside(np.array([[t.cx, t.cy]]))
        ]
        if not trees:
            return None
        i = trees[int(rng.integers(len(trees)))]
        t = self.w.trees[i]
        group = [
            j
            for j in trees
            if math.hypot(self.w.trees[j].cx - t.cx, self.w.trees[j].cy - t.cy) < 12
        ]
        self.used.update(group)
        pts = np.concatenate(
            [
                [
                    [
                        self.w.trees[j].cx + self.w.trees[j].r * math.cos(a),
                        self.w.trees[j].cy + self.w.trees[j].r * math.sin(a),
                    ]
                    for a in np.linspace(0, 2 * np.pi, 12)
                ]
                for j in group
            ]
        )
        import cv2  # noqa: PLC0415

        hull = cv2.convexHull(pts.astype(np.float32))[:, 0, :].astype(float)
        return ChangeRecord(
            self._next(),
            "vegetation",
            hull,
            tone_of={j: (self.w.trees[j].tone + 1 + int(rng.integers(3))) % 4 for j in group},
        )
