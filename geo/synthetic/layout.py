"""Lay out the synthetic world: roads, compounds, villages, parks, buildings, trees and cars.

Everything is laid out in a *local* frame in metres (x right, y down) that is larger than the image
so that, once rotated by the scene angle (:class:`Frame`), it still covers the whole image. The
shapes and the occupancy grid live in :mod:`geo.synthetic.shapes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from geo.synthetic.palette import CROPS, LBL, ROOF_FIRST
from geo.synthetic.shapes import (
    BUILT,
    FIELD,
    FREE,
    PAVED,
    TREE,
    WATER,
    YARD,
    Building,
    Car,
    Cell,
    Field,
    Frame,
    Rect,
    Road,
    Tree,
    World,
    _free,
    _mark,
)

__all__ = ["build_world"]


def _cuts(rng: np.random.Generator, extent: float, lo: float, hi: float) -> np.ndarray:
    pos = [-rng.uniform(20, lo)]
    while pos[-1] < extent + 20:
        pos.append(pos[-1] + rng.uniform(lo, hi))
    return np.array(pos)


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    k = np.arange(1, 4)
    amp = rng.normal(0, 0.12, 3) / k
    ph = rng.uniform(0, 2 * np.pi, 3)
    rr = r * (1 + (amp[:, None] * np.cos(k[:, None] * t + ph[:, None])).sum(0))
    return np.stack([cx + rr * np.cos(t) * 1.3, cy + rr * np.sin(t)], 1)


def _pick_roof(w: World, rng: np.random.Generator, mats: Mapping[str, float]) -> tuple[int, str]:
    names = [m for m in mats if w.roof_by_material.get(m)]
    p = np.array([mats[m] for m in names])
    m = names[rng.choice(len(names), p=p / p.sum())]
    shape = {"terracotta": "gable", "grey_tile": "gable", "blue_steel": "steel"}.get(m, "flat")
    if m == "white_steel":
        shape = "steel"
    return int(rng.choice(w.roof_by_material[m])), shape


def _add_building(w: World, b: Building, rng: np.random.Generator) -> None:
    w.buildings.append(b)
    _mark(w.occ, b.rect.corners(), BUILT, 1.0)
    if b.shape == "flat" and b.kind in ("block", "house") and b.rect.w > 9:
        n_t = 2 if b.kind == "block" and b.rect.w > 35 else 1
        c, s = math.cos(b.rect.ang), math.sin(b.rect.ang)
        for k in range(n_t):
            off = (k + 0.5) / n_t - 0.5 + rng.uniform(-0.05, 0.05)
            d = off * b.rect.w
            tw, th = rng.uniform(3, 5), min(b.rect.h * 0.45, rng.uniform(3.5, 6))
            r = Rect(b.rect.cx + c * d, b.rect.cy + s * d, tw, th, b.rect.ang)
            lbl = int(rng.choice(w.roof_by_material["concrete"]))
            w.buildings.append(
                Building(
                    w.new_id(), r, rng.uniform(2.5, 3.5), lbl, "tower", "flat", b.height, b.bid
                )
            )
        b.solar = int(rng.integers(0, 7)) if rng.random() < 0.5 else 0


def _trees_in(
    w: World,
    rng: np.random.Generator,
    box: tuple[float, float, float, float],
    n: int,
    r_lo: float = 1.6,
    r_hi: float = 4.0,
) -> None:
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    for _ in range(n):
        x, y, r = rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(r_lo, r_hi)
        pts = np.array([[x - r, y - r], [x + r, y + r]])
        if _free(w.occ, pts, 0.5, (FREE, FIELD, YARD)):
            w.trees.append(Tree(x, y, r, r * rng.uniform(1.6, 2.6), int(rng.integers(0, 4))))
            _mark(
                w.occ,
                np.array([[x - r, y - r], [x + r, y - r], [x + r, y + r], [x - r, y + r]]),
                TREE,
            )


def _car(w: World, rng: np.random.Generator, x: float, y: float, ang: float) -> None:
    r = Rect(x, y, rng.uniform(4.2, 4.9), rng.uniform(1.75, 1.9), ang)
    paint = int(rng.choice(8, p=[0.28, 0.16, 0.18, 0.1, 0.06, 0.06, 0.1, 0.06]))
    w.cars.append(Car(w.new_id(), r, LBL[f"car_{paint}"]))


def _compound(w: World, rng: np.random.Generator, cell: Cell, density: float) -> None:
    x0, y0, x1, y1 = cell.interior
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    w.grounds.append((box, LBL["grass"]))
    w.paths.append((box, 0.5, LBL["wall"], True))
    ring = np.array([[x0 + 6, y0 + 6], [x1 - 6, y0 + 6], [x1 - 6, y1 - 6], [x0 + 6, y1 - 6]])
    w.paths.append((ring, 6.0, LBL["asphalt"], True))
    occ_ring = np.zeros_like(w.occ)
    cv2.polylines(occ_ring, [np.round(ring).astype(np.int32)], True, 1, 8)
    w.occ[occ_ring > 0] = PAVED
    mats = {"concrete": 3, "light": 3, "terracotta": 1.5, "grey_tile": 1, "green": 0.5, "brown": 1}
    roof, shape = _pick_roof(w, rng, mats)
    floors = int(rng.integers(6, 12))
    depth, gap = rng.uniform(11, 15), rng.uniform(20, 32) / max(density, 0.5) ** 0.3
    y = y0 + 14
    while y + depth < y1 - 12:
        x = x0 + 14
        while x < x1 - 34:
            ln = min(rng.uniform(28, 58), x1 - 14 - x)
            if ln < 20:
                break
            r = Rect(x + ln / 2, y + depth / 2, ln, depth)
            h = (floors + int(rng.integers(-1, 2))) * 3.0
            rf = roof if rng.random() < 0.85 else _pick_roof(w, rng, mats)[0]
            _add_building(w, Building(w.new_id(), r, h, rf, "block", shape), rng)
            x += ln + rng.uniform(9, 16)
        py = y + depth + rng.uniform(3, 5)
        if py < y1 - 12:
            path = np.array([[x0 + 9, py], [x1 - 9, py]])
            w.paths.append((path, 2.2, LBL["paving"], False))
            _mark(
                w.occ,
                np.array(
                    [[x0 + 9, py - 1.2], [x1 - 9, py - 1.2], [x1 - 9, py + 1.2], [x0 + 9, py + 1.2]]
                ),
                PAVED,
            )
        y += depth + gap
    # parking bays along the inside of the ring road (top and bottom stretches)
    for yy, sgn in ((y0 + 10.5, 1), (y1 - 10.5, -1)):
        for x in np.arange(x0 + 14, x1 - 14, 2.6):
            if rng.random() < 0.55 * density**0.5:
                _car(w, rng, x, yy + sgn * rng.uniform(-0.2, 0.2), math.pi / 2)
    for x in np.arange(x0 + 14, x1 - 14, 2.6):
        r = Rect(x, y0 + 10.5, 2.4, 5.0)
        _mark(w.occ, r.corners(), PAVED)
        _mark(w.occ, Rect(x, y1 - 10.5, 2.4, 5.0).corners(), PAVED)
    _trees_in(w, rng, (x0 + 10, y0 + 10, x1 - 10, y1 - 10), int((x1 - x0) * (y1 - y0) / 90))
    gate = Rect(x0 + (x1 - x0) * rng.uniform(0.3, 0.7), y1 - 3.5, 6, 4)
    if _free(w.occ, gate.corners(), 0.2, (FREE, TREE)):
        _add_building(w, Building(w.new_id(), gate, 3.5, roof, "gatehouse", "flat"), rng)


def _fields(w: World, rng: np.random.Generator, box: tuple[float, float, float, float]) -> None:
    stack = [box]
    while stack:
        x0, y0, x1, y1 = stack.pop()
        wd, ht = x1 - x0, y1 - y0
        if max(wd, ht) > 55 or (max(wd, ht) > 25 and rng.random() < 0.5):
            if wd >= ht:
                c = rng.uniform(x0 + wd * 0.3, x1 - wd * 0.3)
                stack += [(x0, y0, c, y1), (c, y0, x1, y1)]
            else:
                c = rng.uniform(y0 + ht * 0.3, y1 - ht * 0.3)
                stack += [(x0, y0, x1, c), (x0, c, x1, y1)]
            continue
        if wd < 4 or ht < 4:
            continue
        inset = rng.uniform(0.6, 1.2)
        poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
        poly += np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * inset
        poly += rng.normal(0, 0.6, poly.shape)
        crop = int(rng.choice(len(CROPS), p=[0.2, 0.22, 0.14, 0.12, 0.1, 0.06, 0.06, 0.1]))
        fid = w.new_id()
        w.fields.append(Field(fid, poly, crop, 0.0 if wd > ht else math.pi / 2))
        _mark(w.occ, poly, FIELD)


def _village(w: World, rng: np.random.Generator, cell: Cell, density: float) -> None:
    x0, y0, x1, y1 = cell.interior
    w.grounds.append((np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), LBL["grass"]))
    _fields(w, rng, cell.interior)
    if rng.random() < 0.4:
        pr = rng.uniform(10, 24)
        cx, cy = rng.uniform(x0 + pr * 1.4, x1 - pr * 1.4), rng.uniform(y0 + pr, y1 - pr)
        if x1 - x0 > 3 * pr and y1 - y0 > 2.2 * pr:
            pond = _blob(rng, cx, cy, pr)
            w.waters.append(pond)
            _mark(w.occ, pond, WATER, 1.5)
    # a winding lane across the village
    n = 7
    xs = np.linspace(x0, x1, n)
    ys = np.clip(rng.uniform(y0 + 20, y1 - 20) + np.cumsum(rng.normal(0, 8, n)), y0 + 8, y1 - 8)
    lane = np.stack([xs, ys], 1)
    w.paths.append((lane, 3.5, LBL["concrete"], False))
    occ_l = np.zeros_like(w.occ)
    cv2.polylines(occ_l, [np.round(lane).astype(np.int32)], False, 1, 5)
    w.occ[occ_l > 0] = PAVED
    mats = {"concrete": 3, "light": 2, "terracotta": 2, "grey_tile": 2, "blue_steel": 1, "brown": 1}
    n_h = int(rng.integers(8, 22) * density * (x1 - x0) * (y1 - y0) / 45000) + 3
    centres = rng.uniform(0.15, 0.85, 2)
    for _ in range(n_h * 4):
        if n_h <= 0:
            break
        t = np.clip(rng.choice(centres) + rng.normal(0, 0.12), 0, 0.999) * (n - 1)
        i = int(t)
        p = lane[i] + (lane[i + 1] - lane[i]) * (t - i)
        d = lane[i + 1] - lane[i]
        d = d / (np.linalg.norm(d) + 1e-9)
        nrm = np.array([-d[1], d[0]]) * rng.choice([-1, 1])
        c = p + nrm * rng.uniform(9, 26) + d * rng.normal(0, 3)
        ang = math.atan2(d[1], d[0]) * (rng.random() < 0.6) + rng.normal(0, 0.08)
        r = Rect(c[0], c[1], rng.uniform(8, 15), rng.uniform(8, 12), ang)
        yard = r.grown(rng.uniform(2, 4))
        if not _free(w.occ, yard.corners(), 0.5, (FREE, FIELD)):
            continue
        w.grounds.append((yard.corners(), int(rng.choice([LBL["concrete"], LBL["dirt"]]))))
        _mark(w.occ, yard.corners(), YARD)
        roof, shape = _pick_roof(w, rng, mats)
        h = int(rng.integers(1, 5)) * 3.2
        _add_building(w, Building(w.new_id(), r, h, roof, "house", shape), rng)
        _trees_in(w, rng, (c[0] - 16, c[1] - 16, c[0] + 16, c[1] + 16), 4, 1.5, 3.5)
        if rng.random() < 0.35:
            q = yard.corners()[2] - (yard.corners()[2] - yard.corners()[1]) * 0.5
            cq = q + (r.corners()[2] - q) * 0.1
            _car(w, rng, float(cq[0]), float(cq[1]), ang + math.pi / 2)
        n_h -= 1


def _park(w: World, rng: np.random.Generator, cell: Cell) -> None:
    x0, y0, x1, y1 = cell.interior
    w.grounds.append((np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), LBL["grass"]))
    r = min(x1 - x0, y1 - y0) * rng.uniform(0.18, 0.3)
    cx, cy = (x0 + x1) / 2 + rng.normal(0, 10), (y0 + y1) / 2 + rng.normal(0, 10)
    lake = _blob(rng, cx, cy, r)
    w.waters.append(lake)
    _mark(w.occ, lake, WATER, 2)
    t = np.linspace(0, 2 * np.pi, 40)
    loop = np.stack([cx + r * 1.6 * np.cos(t), cy + r * 1.25 * np.sin(t)], 1)
    w.paths.append((loop, 3.0, LBL["paving"], True))
    occ_l = np.zeros_like(w.occ)
    cv2.polylines(occ_l, [np.round(loop).astype(np.int32)], True, 1, 4)
    w.occ[occ_l > 0] = PAVED
    _trees_in(w, rng, (x0 + 2, y0 + 2, x1 - 2, y1 - 2), int((x1 - x0) * (y1 - y0) / 45), 2, 5)


def _roads(w: World, rng: np.random.Generator, ext: float) -> dict[tuple[str, int], float]:
    widths: dict[tuple[str, int], float] = {}
    for axis, pos in (("x", w.xs), ("y", w.ys)):
        for i, p in enumerate(pos):
            main = bool(rng.random() < 0.4)
            wd = rng.uniform(15, 21) if main else rng.uniform(7, 9.5)
            widths[(axis, i)] = wd
            a, b = (p, -30.0), (p, ext + 30.0)
            road = Road(a if axis == "x" else a[::-1], b if axis == "x" else b[::-1], wd, main)
            w.roads.append(road)
            occ_r = np.zeros_like(w.occ)
            cv2.line(
                occ_r,
                np.round(road.p0).astype(int).tolist(),
                np.round(road.p1).astype(int).tolist(),
                1,
                int(wd + 7),
            )
            w.occ[occ_r > 0] = PAVED
    return widths


def _road_life(
    w: World, rng: np.random.Generator, widths: dict[tuple[str, int], float], density: float
) -> None:
    """Street trees along main roads; parked and moving cars."""
    for road in w.roads:
        p0, p1 = np.array(road.p0), np.array(road.p1)
        d = (p1 - p0) / np.linalg.norm(p1 - p0)
        nrm = np.array([-d[1], d[0]])
        ang = math.atan2(d[1], d[0])
        ln = np.linalg.norm(p1 - p0)
        if road.main:
            for s in np.arange(rng.uniform(0, 9), ln, rng.uniform(8, 11)):
                for sg in (-1, 1):
                    c = p0 + d * s + nrm * sg * (road.width / 2 + 1.6)
                    r = rng.uniform(1.8, 2.8)
                    w.trees.append(Tree(c[0], c[1], r, r * 2.2, int(rng.integers(0, 4))))
            lanes = [-0.375, -0.125, 0.125, 0.375]
            for s in np.arange(rng.uniform(0, 30), ln, 30 / density):
                lane = rng.choice(lanes)
                c = p0 + d * (s + rng.uniform(-10, 10)) + nrm * lane * road.width
                _car(w, rng, c[0], c[1], ang)
        else:
            for s in np.arange(0, ln, 6.0):
                if rng.random() < 0.3 * density:
                    sg = rng.choice([-1, 1])
                    c = p0 + d * s + nrm * sg * (road.width / 2 - 1.2)
                    _car(w, rng, c[0], c[1], ang + rng.normal(0, 0.03))


def build_world(rng: np.random.Generator, frame: Frame, style: dict) -> World:
    """Lay out roads, cells (compounds, villages, parks) and their contents in local metres."""
    ext = frame.extent_m
    n = int(math.ceil(ext)) + 1
    from geo.synthetic.palette import ROOF_MATERIALS  # noqa: PLC0415

    roof_by: dict[str, list[int]] = {m: [] for m in ROOF_MATERIALS}
    for i, m in enumerate(style["roof_materials"]):
        roof_by[m].append(ROOF_FIRST + i)
    w = World(
        frame,
        [],
        _cuts(rng, ext, 170, 320),
        _cuts(rng, ext, 160, 300),
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        roof_by,
        np.zeros((n, n), np.uint8),
    )
    widths = _roads(w, rng, ext)
    density = float(style["density"])
    p_comp = min(0.85, 0.42 * density)
    for i in range(len(w.xs) - 1):
        for j in range(len(w.ys) - 1):
            b = (w.xs[i], w.ys[j], w.xs[i + 1], w.ys[j + 1])
            if b[2] < 0 or b[3] < 0 or b[0] > ext or b[1] > ext:
                continue
            inner = (
                b[0] + widths[("x", i)] / 2 + 3.5,
                b[1] + widths[("y", j)] / 2 + 3.5,
                b[2] - widths[("x", i + 1)] / 2 - 3.5,
                b[3] - widths[("y", j + 1)] / 2 - 3.5,
            )
            u = rng.random()
            kind = "compound" if u < p_comp else "park" if u > 0.92 else "village"
            cell = Cell(len(w.cells), b, inner, kind, i, j)
            w.cells.append(cell)
    for cell in w.cells:  # contents after all roads, so occupancy knows every road
        {
            "compound": lambda c: _compound(w, rng, c, density),
            "village": lambda c: _village(w, rng, c, density),
            "park": lambda c: _park(w, rng, c),
        }[cell.kind](cell)
    _road_life(w, rng, widths, density)
    n_l = 4
    lobes = rng.uniform(-0.42, 0.42, (len(w.trees), n_l, 3))
    lobes[..., 2] = rng.uniform(0.5, 0.72, (len(w.trees), n_l))
    for t, lb in zip(w.trees, lobes, strict=True):
        t.lobes = lb
    return w
