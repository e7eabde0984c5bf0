"""Plan the changes between epochs: real new structures and nuisance changes (pure numpy).

A :class:`ChangeRecord` says what one change adds to or removes from the world in the later
epoch, in local metres. The :class:`ChangePlanner` places records where the occupancy grid has
room and where both epochs have valid pixels; this module holds the real kinds (new buildings,
extensions, rooftop additions, construction sites) and the plan, the nuisance kinds live in
:mod:`geo.synthetic.change_nuisance`, the records and helpers in :mod:`geo.synthetic.change_base`.
"""

from __future__ import annotations

import math

import numpy as np

from geo.synthetic.change_base import (
    KIND_CLASS,
    KIND_EXPECTED,
    NUISANCE_KINDS,
    REAL_KINDS,
    ChangeRecord,
    _point_in_rect,
)
from geo.synthetic.change_nuisance import NuisancePlanner
from geo.synthetic.palette import LBL
from geo.synthetic.shapes import BUILT, FIELD, FREE, TREE, YARD, Building, Rect, _free, _mark

__all__ = [
    "ChangeRecord",
    "ChangePlanner",
    "KIND_CLASS",
    "KIND_EXPECTED",
    "REAL_KINDS",
    "NUISANCE_KINDS",
]


class ChangePlanner(NuisancePlanner):
    """Places change records in a world, keeping them apart and inside the valid area."""

    # -- kinds ----------------------------------------------------------------------------
    def new_building(self, kind: str = "new_building") -> ChangeRecord | None:
        big = kind == "permitted_building" or self.rng.random() < 0.2
        rect = self._place_rect(6, 25 if big else 14, (FREE, FIELD, YARD, TREE), 1.5)
        if rect is None:
            return None
        roof, shape = self._roof(("blue_steel", "concrete", "white_steel", "terracotta", "light"))
        h = float(self.rng.integers(1, 4) * 3.2)
        b = Building(self.w.new_id(), rect, h, roof, "new", shape)
        rec = ChangeRecord(
            self._next(),
            kind,
            rect.corners(),
            add_buildings=[b],
            remove_trees=self._trees_under(rect),
        )
        if kind == "permitted_building":
            rec.permit = rect.grown(float(self.rng.uniform(3, 8))).corners()
        return rec

    def extension(self) -> ChangeRecord | None:
        rng = self.rng
        for _ in range(12):
            host = self._pick_building(lambda b: b.kind in ("house", "block"), mark=False)
            if host is None:
                return None
            for side in rng.permutation(4):
                rec = self._extend(host, int(side))
                if rec is not None:
                    self.used.add(host.bid)
                    return rec
        return None

    def _extend(self, host: Building, side: int) -> ChangeRecord | None:
        rng = self.rng
        r = host.rect
        ux = np.array([math.cos(r.ang), math.sin(r.ang)])
        uy = np.array([-ux[1], ux[0]])
        normal, along, half_n, half_a = [
            (ux, uy, r.w, r.h),
            (-ux, uy, r.w, r.h),
            (uy, ux, r.h, r.w),
            (-uy, ux, r.h, r.w),
        ][side]
        depth, width = rng.uniform(3, 6), min(rng.uniform(3, 6), half_a)
        shift = rng.uniform(-(half_a - width) / 2, (half_a - width) / 2)
        c = np.array([r.cx, r.cy]) + normal * (half_n / 2 + depth / 2) + along * shift
        wl, hl = (depth, width) if side < 2 else (width, depth)
        ext = Rect(c[0], c[1], wl, hl, r.ang)
        pc = c + normal * 1.2
        probe = Rect(float(pc[0]), float(pc[1]), wl * 0.5, hl * 0.5, r.ang)
        if not (
            _free(self.w.occ, probe.corners(), 0.0, (FREE, FIELD, YARD))
            and self._inside(ext.grown(1).corners())
        ):
            return None
        _mark(self.w.occ, ext.corners(), BUILT, 1.0)
        roof, shape = self._roof(("blue_steel", "concrete", "light"))
        h = max(3.0, min(host.height * rng.uniform(0.3, 0.7), 7.0))
        b = Building(self.w.new_id(), ext, h, roof, "extension", shape)
        return ChangeRecord(self._next(), "extension", ext.corners(), add_buildings=[b])

    def rooftop_addition(self) -> ChangeRecord | None:
        rng = self.rng
        host = self._pick_building(
            lambda b: (
                b.shape == "flat"
                and b.kind in ("house", "block")
                and b.rect.w >= 8
                and b.rect.h >= 7
            )
        )
        if host is None:
            return None
        r = host.rect
        sw, sh = rng.uniform(3, 5), rng.uniform(3, min(5, r.h - 2))
        towers = [b for b in self.w.buildings if b.parent == host.bid]
        for _ in range(30):
            du = rng.uniform(-(r.w - sw) / 2 + 0.8, (r.w - sw) / 2 - 0.8)
            dv = rng.uniform(-(r.h - sh) / 2 + 0.8, (r.h - sh) / 2 - 0.8)
            c = (
                np.array([r.cx, r.cy])
                + du * np.array([math.cos(r.ang), math.sin(r.ang)])
                + dv * np.array([-math.sin(r.ang), math.cos(r.ang)])
            )
            if all(
                np.hypot(t.rect.cx - c[0], t.rect.cy - c[1]) > (t.rect.w + sw) / 2 + 1
                for t in towers
            ):
                add = Rect(c[0], c[1], sw, sh, r.ang)
                roof, shape = self._roof(
                    ("blue_steel",) if rng.random() < 0.8 else ("white_steel",)
                )
                b = Building(
                    self.w.new_id(),
                    add,
                    rng.uniform(2.6, 3.2),
                    roof,
                    "rooftop",
                    shape,
                    host.height,
                    host.bid,
                )
                return ChangeRecord(
                    self._next(), "rooftop_addition", add.corners(), add_buildings=[b]
                )
        return None

    def construction(self) -> ChangeRecord | None:
        rng = self.rng
        fp = self._place_rect(10, 30, (FREE, FIELD, TREE), 4.5)
        if fp is None:
            return None
        site = fp.grown(float(rng.uniform(2, 4)))
        rec = ChangeRecord(
            self._next(),
            "construction",
            site.corners(),
            footprint=fp,
            remove_trees=self._trees_under(site),
        )
        rec.grounds.append((site.corners(), LBL["site_soil"]))
        blue = self.w.roof_by_material.get("blue_steel") or [LBL["scaffold"]]
        rec.lines.append((site.grown(0.2).corners(), 0.35, int(blue[0]), True, -1))
        stage = str(
            rng.choice(["earth", "foundation", "frame", "scaffold"], p=[0.2, 0.3, 0.3, 0.2])
        )
        c = fp.corners()
        u, v = c[1] - c[0], c[3] - c[0]
        for t in rng.uniform(0.1, 0.9, 4):  # vehicle tracks
            rec.lines.append(
                (
                    np.array([c[0] + u * t - v * 0.1, c[3] + u * (1 - t) + v * 0.1]),
                    0.5,
                    0,
                    False,
                    100,
                )
            )
        if stage != "earth":
            rec.grounds.append((c, LBL["foundation"]))
            step = rng.uniform(4, 6)
            for t in np.arange(step, fp.w, step) / fp.w:
                rec.lines.append((np.array([c[0] + u * t, c[3] + u * t]), 0.4, 0, False, 92))
            for t in np.arange(step, fp.h, step) / fp.h:
                rec.lines.append((np.array([c[0] + v * t, c[1] + v * t]), 0.4, 0, False, 92))
        else:
            rec.grounds.append((fp.grown(-1.5).corners(), LBL["soil"]))
        if stage == "frame":
            step = rng.uniform(4, 6)
            hh = float(rng.uniform(3, 9))
            for a in np.arange(0, fp.w + 0.01, step) / fp.w:
                for b in np.arange(0, fp.h + 0.01, step) / fp.h:
                    p = c[0] + u * min(a, 0.97) + v * min(b, 0.97)
                    col = Rect(p[0], p[1], 0.6, 0.6, fp.ang)
                    rec.add_buildings.append(
                        Building(self.w.new_id(), col, hh, LBL["foundation"], "site", "flat")
                    )
        if stage == "scaffold":
            hh = float(rng.uniform(6, 14))
            rec.add_buildings.append(
                Building(self.w.new_id(), fp, hh, LBL["scaffold"], "site", "flat")
            )
            for t in np.arange(1.5, fp.w, 1.5) / fp.w:
                rec.lines.append((np.array([c[0] + u * t, c[3] + u * t]), 0.12, 0, False, 80))
        for _ in range(int(rng.integers(2, 6))):  # stacked materials in the margin
            cc = np.array([site.cx, site.cy]) + rng.uniform(-0.5, 0.5, 2) * np.array(
                [site.w, site.h]
            )
            if stage in ("frame", "scaffold") and _point_in_rect(cc, fp.grown(1.5)):
                continue
            m = Rect(
                cc[0], cc[1], rng.uniform(1.2, 3), rng.uniform(0.8, 2), fp.ang + rng.normal(0, 0.2)
            )
            lbl = int(rng.choice([LBL["bricks"], LBL["rebar"], LBL["timber"]]))
            rec.add_buildings.append(
                Building(self.w.new_id(), m, rng.uniform(0.6, 1.4), lbl, "site", "flat")
            )
        return rec

    def complete(self, rec: ChangeRecord) -> ChangeRecord:
        """The construction site of ``rec`` finished: a new building on its footprint (same id)."""
        assert rec.footprint is not None
        roof, shape = self._roof(("concrete", "light", "blue_steel", "terracotta"))
        b = Building(
            self.w.new_id(), rec.footprint, float(self.rng.integers(1, 4) * 3.2), roof, "new", shape
        )
        return ChangeRecord(
            rec.cid,
            "new_building",
            rec.footprint.corners(),
            add_buildings=[b],
            remove_trees=rec.remove_trees,
        )

    def plan(self, counts: dict[str, int]) -> list[ChangeRecord]:
        """Place ``counts[kind]`` changes of each kind (fewer where the scene has no room)."""
        recs: list[ChangeRecord] = []
        order = [
            "rooftop_addition",
            "extension",
            "construction",
            "permitted_building",
            "new_building",
            "demolished",
            "repaint",
            "shadow",
            "vegetation",
            "moved_car",
        ]
        left = {k: int(counts.get(k, 0)) for k in order}
        while any(left.values()):
            for kind in order:
                if left[kind] <= 0:
                    continue
                left[kind] -= 1
                if kind == "permitted_building":
                    rec = self.new_building("permitted_building")
                else:
                    rec = getattr(self, kind)()
                if rec is not None:
                    recs.append(rec)
        return recs
