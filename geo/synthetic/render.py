"""Draw one epoch of the synthetic world into an RGB image (numpy + cv2 only).

Three single-channel maps are drawn with ``cv2.fillPoly``/``cv2.line``: *labels* (what surface
is there, coloured by the epoch's palette), *shading* (roof facets, crop rows, crown gradients,
128 = unshaded) and the *cast-shadow* mask. Texture comes from noise generated at low resolution
and upsampled, and from a small tile of fine noise repeated over the image, so a 10,000² px
epoch takes a few seconds. No Python loop touches single pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from geo.synthetic.palette import LBL
from geo.synthetic.shapes import Building, Car, Frame, Tree, World

__all__ = ["Epoch", "Sun", "render_epoch", "world_noise", "shadow_offset"]

_SHIFT = 3  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Sun:
    """Sun azimuth (degrees clockwise from north) and elevation (degrees) of an epoch."""

    azimuth: float
    elevation: float

    def vector(self) -> np.ndarray:
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        return np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])


@dataclass
class Epoch:
    """What one epoch shows on top of the world, and how it is lit and graded."""

    season: str
    sun: Sun
    palette: np.ndarray  # (256, 3) uint8
    buildings: list[Building]
    trees: list[Tree]
    cars: list[Car]
    crop_of: dict[int, int] = field(default_factory=dict)
    roof_of: dict[int, int] = field(default_factory=dict)
    grounds: list[tuple[np.ndarray, int]] = field(default_factory=list)
    lines: list[tuple[np.ndarray, float, int, bool, int]] = field(default_factory=list)
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    haze: float = 0.0
    shadow_depth: float = 0.45
    noise_seed: int = 0


def shadow_offset(sun: Sun, height: float, gsd: float) -> np.ndarray:
    """Pixel offset (dx, dy) of the shadow of a point ``height`` metres up (north = -y)."""
    a = math.radians(sun.azimuth)
    length = height / math.tan(math.radians(max(sun.elevation, 5.0))) / gsd
    return np.array([-math.sin(a), math.cos(a)]) * length


def _pts(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * _ONE).astype(np.int32)


def _fill(img: np.ndarray, polys: list[np.ndarray], value: int) -> None:
    if polys:
        cv2.fillPoly(img, [_pts(p) for p in polys], int(value), cv2.LINE_8, _SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, width_px: float, value: int, closed: bool) -> None:
    cv2.polylines(img, [_pts(pts)], closed, int(value), max(1, round(width_px)), cv2.LINE_8, _SHIFT)


def _hull(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.concatenate([a, b]).astype(np.float32))[:, 0, :]


def world_noise(seed: int, h: int, w: int, gsd: float) -> tuple[np.ndarray, np.ndarray]:
    """Ground texture shared by every epoch: (low/mid-frequency map, 512² fine-noise tile)."""
    rng = np.random.default_rng(seed)
    lf = np.zeros((h, w), np.float32)
    for cell_m, amp in ((6.0, 6.0), (1.2, 5.0)):
        k = max(1, round(cell_m / gsd))
        raw = rng.normal(0, 1, (h // k + 3, w // k + 3)).astype(np.float32)
        small = cv2.GaussianBlur(raw, (0, 0), 0.8)
        small = (small * (amp / (small.std() + 1e-6))).astype(np.float32)
        lf += cv2.resize(
            small, ((w // k + 3) * k, (h // k + 3) * k), interpolation=cv2.INTER_CUBIC
        )[:h, :w]
    lf += 128
    tile = np.clip(rng.normal(128, 7, (512, 512)), 0, 255).astype(np.uint8)
    return np.clip(lf, 0, 255).astype(np.uint8), tile


def _roads(world: World, fr: Frame, lab: np.ndarray) -> None:
    g = fr.gsd
    verticals = [r for r in world.roads if r.p0[0] == r.p1[0]]
    horizontals = [r for r in world.roads if r.p0[0] != r.p1[0]]
    for r in world.roads:
        _line(lab, fr.to_px(np.array([r.p0, r.p1])), (r.width + 7) / g, LBL["concrete"], False)
    for r in world.roads:
        _line(lab, fr.to_px(np.array([r.p0, r.p1])), r.width / g, LBL["asphalt"], False)
    for road in world.roads:
        vertical = road.p0[0] == road.p1[0]
        ax = 1 if vertical else 0
        crossing = horizontals if vertical else verticals
        cuts = sorted((c.p0[ax], c.width) for c in crossing)
        lo, hi = road.p0[ax], road.p1[ax]
        segs: list[tuple[float, float]] = []
        prev = lo
        for pos, wd in cuts:
            segs.append((prev, pos - wd / 2 - 4))
            prev = pos + wd / 2 + 4
        segs.append((prev, hi))
        fixed = road.p0[1 - ax]

        def pt(s: float, off: float, ax: int = ax, fixed: float = fixed) -> list[float]:
            return [s, fixed + off] if ax == 0 else [fixed + off, s]

        wd = road.width
        for a, b in segs:
            if b - a < 3:
                continue
            offs: list[tuple[float, int, float, float]] = []  # offset, label, dash, gap
            if road.main:
                offs += [(-0.2, LBL["mark_yellow"], 0, 0), (0.2, LBL["mark_yellow"], 0, 0)]
                offs += [(-wd / 4, LBL["mark_white"], 6, 9), (wd / 4, LBL["mark_white"], 6, 9)]
                offs += [
                    (-wd / 2 + 0.6, LBL["mark_white"], 0, 0),
                    (wd / 2 - 0.6, LBL["mark_white"], 0, 0),
                ]
            else:
                offs += [(0.0, LBL["mark_white"], 4, 6)]
            for off, lbl, dash, gap in offs:
                if dash == 0:
                    _line(
                        lab, fr.to_px(np.array([pt(a, off), pt(b, off)])), 0.15 / fr.gsd, lbl, False
                    )
                    continue
                starts = np.arange(a, b - dash, dash + gap)
                for s in starts:
                    _line(
                        lab,
                        fr.to_px(np.array([pt(s, off), pt(s + dash, off)])),
                        0.15 / g,
                        lbl,
                        False,
                    )
            if road.main:  # zebra crossings at both ends of the segment
                for end, sgn in ((a, 1), (b, -1)):
                    if end in (lo, hi):
                        continue
                    c = end + sgn * 2.5
                    for off in np.arange(-wd / 2 + 1.2, wd / 2 - 1.0, 1.0):
                        seg = np.array([pt(c - 1.5, off), pt(c + 1.5, off)])
                        _line(lab, fr.to_px(seg), 0.45 / g, LBL["mark_white"], False)


def _crop_rows(
    shade: np.ndarray, poly_px: np.ndarray, rows_ang: float, crop: str, gsd: float
) -> None:
    spacing = {
        "vegetable": 1.2,
        "corn": 0.8,
        "wheat": 0.45,
        "rape": 0.6,
        "tea": 1.6,
        "orchard": 4.0,
    }
    if crop not in spacing:
        return
    a, b, c, d = poly_px
    if rows_ang:
        a, b, c, d = b, c, d, a
    n = int(np.linalg.norm(d - a) * gsd / spacing[crop])
    thick = max(1.0, 0.25 * spacing[crop] / gsd)
    val = 100 if crop in ("tea", "orchard") else 112
    for t in (np.arange(n) + 0.5) / max(n, 1):
        _line(shade, np.array([a + (d - a) * t, b + (c - b) * t]), thick, val, False)


def _facet_shade(sun: Sun, normal_enu: np.ndarray) -> int:
    s = sun.vector()
    b = max(0.12, float(normal_enu @ s)) / max(s[2], 0.1)
    return int(np.clip(128 * (0.3 + 0.7 * b), 40, 250))


def _roof(
    lab: np.ndarray, shade: np.ndarray, b: Building, c: np.ndarray, roof: int, sun: Sun, gsd: float
) -> None:
    _fill(lab, [c], roof)
    if b.shape == "flat":
        _fill(shade, [c], 128)
        if b.kind in ("block", "house", "gatehouse", "extension", "new") and b.rect.w > 5:
            _line(shade, c, 0.35 / gsd, 104, True)
        if b.solar:
            u, v = c[1] - c[0], c[3] - c[0]
            for k in range(b.solar):
                o = c[0] + u * (0.12 + 0.1 * k) + v * 0.12
                panel = np.array([o, o + u * 0.07, o + u * 0.07 + v * 0.22, o + v * 0.22])
                _fill(lab, [panel], LBL["solar"])
                tank = np.array([panel[3], panel[2], panel[2] + v * 0.05, panel[3] + v * 0.05])
                _fill(lab, [tank], LBL["wall"])
        return
    pitch = math.radians(26 if b.shape == "gable" else 9)
    m0, m1 = (c[0] + c[3]) / 2, (c[1] + c[2]) / 2
    v = c[3] - c[0]
    v = v / (np.linalg.norm(v) + 1e-9)
    for half, sgn in (([c[0], c[1], m1, m0], -1), ([m0, m1, c[2], c[3]], 1)):
        n = np.array([sgn * v[0] * math.sin(pitch), -sgn * v[1] * math.sin(pitch), math.cos(pitch)])
        _fill(shade, [np.array(half)], _facet_shade(sun, n))
    u = c[1] - c[0]
    if b.shape == "steel":  # corrugation across the slope
        n_r = int(np.linalg.norm(u) * gsd / 0.8)
        for t in (np.arange(n_r) + 0.5) / max(n_r, 1):
            _line(shade, np.array([c[0] + u * t, c[3] + u * t]), 1, 112, False)
    else:
        _line(shade, np.array([m0, m1]), 0.3 / gsd, 150, False)


def _tree(
    lab: np.ndarray, shade: np.ndarray, t: Tree, c: np.ndarray, r: float, sun_dir: np.ndarray
) -> None:
    lbl = LBL[f"tree_{t.tone}"]
    for dx, dy, rr in t.lobes:
        p = c + np.array([dx, dy]) * r
        pr = rr * r
        q = _pts(p)
        cv2.circle(lab, (int(q[0]), int(q[1])), int(pr * _ONE), lbl, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(shade, (int(q[0]), int(q[1])), int(pr * _ONE), 92, -1, cv2.LINE_8, _SHIFT)
    for dx, dy, rr in t.lobes:
        p = c + np.array([dx, dy]) * r + sun_dir * r * 0.18
        q = _pts(p)
        cv2.circle(
            shade, (int(q[0]), int(q[1])), int(rr * r * 0.7 * _ONE), 124, -1, cv2.LINE_8, _SHIFT
        )
        q = _pts(p + sun_dir * r * 0.12)
        cv2.circle(
            shade, (int(q[0]), int(q[1])), int(rr * r * 0.35 * _ONE), 150, -1, cv2.LINE_8, _SHIFT
        )


def _visible(p: np.ndarray, n: int, margin: float) -> bool:
    lo, hi = p.min(0), p.max(0)
    return bool(hi[0] > -margin and hi[1] > -margin and lo[0] < n + margin and lo[1] < n + margin)


def render_epoch(world: World, ep: Epoch, lf: np.ndarray, tile: np.ndarray) -> np.ndarray:
    """Render one epoch: an (H, W, 3) uint8 RGB image of the world as ``ep`` shows it."""
    fr = world.frame
    n, g = fr.size_px, fr.gsd
    lab = np.full((n, n), LBL["soil"], np.uint8)
    shade = np.full((n, n), 128, np.uint8)
    sh = np.zeros((n, n), np.uint8)
    from geo.synthetic.palette import CROPS  # noqa: PLC0415

    for poly, lbl in world.grounds:
        p = fr.to_px(poly)
        if _visible(p, n, 0):
            _fill(lab, [p], lbl)
    for f in world.fields:
        p = fr.to_px(f.poly)
        if not _visible(p, n, 0):
            continue
        crop = ep.crop_of.get(f.fid, f.crop)
        _fill(lab, [p], 20 + crop)
        _crop_rows(shade, p, f.rows_ang, CROPS[crop], g)
    for poly in world.waters:
        p = fr.to_px(poly)
        _fill(lab, [p], LBL["water"])
        _line(shade, p, 1.2 / g, 110, True)
    _roads(world, fr, lab)
    for pl, wd, lbl, closed in world.paths:
        _line(lab, fr.to_px(pl), wd / g, lbl, closed)
    for poly, lbl in ep.grounds:
        _fill(lab, [fr.to_px(poly)], lbl)
    for pl, wd, lbl, closed, val in ep.lines:
        _line(lab if val < 0 else shade, fr.to_px(pl), wd / g, lbl if val < 0 else val, closed)

    sun = ep.sun
    a = math.radians(sun.azimuth)
    sun_dir = np.array([math.sin(a), -math.cos(a)])
    # cars: body, windows, own shadow
    for car in ep.cars:
        c = fr.to_px(car.rect.corners())
        if not _visible(c, n, 10):
            continue
        _fill(sh, [_hull(c, c + shadow_offset(sun, 1.4, g))], 1)
    for car in ep.cars:
        c = fr.to_px(car.rect.corners())
        if not _visible(c, n, 10):
            continue
        _fill(lab, [c], car.paint)
        _fill(sh, [c], 0)
        u, v = c[1] - c[0], c[3] - c[0]
        for t0, t1 in ((0.22, 0.4), (0.78, 0.88)):
            _fill(
                lab,
                [
                    np.array(
                        [
                            c[0] + u * t0 + v * 0.12,
                            c[0] + u * t1 + v * 0.12,
                            c[0] + u * t1 + v * 0.88,
                            c[0] + u * t0 + v * 0.88,
                        ]
                    )
                ],
                LBL["car_window"],
            )
    # cast shadows of buildings (ground level and raised parts) and trees
    blds = [(b, fr.to_px(b.rect.corners())) for b in ep.buildings]
    blds = [(b, c) for b, c in blds if _visible(c, n, 400)]
    for b, c in blds:
        _fill(
            sh,
            [
                _hull(
                    c + shadow_offset(sun, b.base, g), c + shadow_offset(sun, b.base + b.height, g)
                )
            ],
            1,
        )
    trees = [(t, fr.to_px(np.array([t.cx, t.cy])), t.r / g) for t in ep.trees]
    trees = [(t, c, r) for t, c, r in trees if _visible(c[None], n, 60 + r)]
    for t, c, r in trees:
        q = _pts(c + shadow_offset(sun, t.height * 0.7, g))
        cv2.circle(sh, (int(q[0]), int(q[1])), int(r * 0.95 * _ONE), 1, -1, cv2.LINE_8, _SHIFT)
    for b, c in sorted(blds, key=lambda bc: bc[0].base + bc[0].height):
        _fill(sh, [c], 0)
        if b.base > 0:
            _fill(sh, [_hull(c, c + shadow_offset(sun, b.height, g))], 1)
            _fill(sh, [c], 0)
        _roof(lab, shade, b, c, ep.roof_of.get(b.bid, b.roof), sun, g)
    for t, c, r in trees:
        _tree(lab, shade, t, c, r, sun_dir)
        q = _pts(c)
        cv2.circle(sh, (int(q[0]), int(q[1])), int(r * 0.8 * _ONE), 0, -1, cv2.LINE_8, _SHIFT)
    return _compose(lab, shade, sh, ep, lf, tile)


def _compose(
    lab: np.ndarray, shade: np.ndarray, sh: np.ndarray, ep: Epoch, lf: np.ndarray, tile: np.ndarray
) -> np.ndarray:
    n = lab.shape[0]
    rng = np.random.default_rng(ep.noise_seed)
    tex = tile.astype(np.int16) + rng.normal(0, 2.5, tile.shape).astype(np.int16)
    tex_u8 = np.clip(tex, 0, 255).astype(np.uint8)
    reps = (n + 511) // 512
    tex_full = np.tile(tex_u8, (reps, reps))[:n, :n]
    m = cv2.multiply(shade, lf, scale=1 / 128)
    m = cv2.multiply(m, tex_full, scale=1 / 128)
    del tex_full
    out = []
    tint = (0.92, 0.98, 1.18)  # shadows are lit by the blue sky
    x = np.arange(256) / 255.0
    for ch in range(3):
        lut_sh = np.array([128] + [round(128 * ep.shadow_depth * tint[ch])] * 255, np.uint8)
        mc = cv2.multiply(m, cv2.LUT(sh, lut_sh), scale=1 / 128)
        col = cv2.LUT(lab, np.ascontiguousarray(ep.palette[:, ch]))
        c = cv2.multiply(col, mc, scale=1 / 128)
        grade = np.clip(255 * (ep.gain[ch] * x) ** ep.gamma * (1 - ep.haze / 255) + ep.haze, 0, 255)
        c = cv2.LUT(c, grade.astype(np.uint8))
        out.append(cv2.GaussianBlur(c, (3, 3), 0.6))
    return cv2.merge(out)
