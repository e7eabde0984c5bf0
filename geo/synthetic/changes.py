"""Plan the changes between epochs: real new structures and nuisance changes (pure numpy).

A :class:`ChangeRecord` says what one change adds to or removes from the world in the later
epoch, in local metres. The :class:`ChangePlanner` places records where the occupancy grid has
room and where both epochs have valid pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from geo.synthetic.layout import (
    BUILT,
    FIELD,
    FREE,
    TREE,
    YARD,
    Building,
    Car,
    Rect,
    World,
    _free,
    _mark,
)
from geo.synthetic.palette import CROPS, LBL, ROOF_FIRST

__all__ = [
    "ChangeRecord",
    "ChangePlanner",
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


class ChangePlanner:
    """Places change records in a world, keeping them apart and inside the valid area."""

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


def _point_in_rect(p: np.ndarray, r: Rect) -> bool:
    d = p - np.array([r.cx, r.cy])
    u = d @ np.array([math.cos(r.ang), math.sin(r.ang)])
    v = d @ np.array([-math.sin(r.ang), math.cos(r.ang)])
    return abs(u) <= r.w / 2 and abs(v) <= r.h / 2
