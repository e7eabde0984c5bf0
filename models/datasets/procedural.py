"""A small self-contained scene renderer: the fallback when ``geo.synthetic.scene`` is absent.

It draws a top-down district patch (ground texture, roads, roofs with shadows, trees, cars) twice:
a 'before' and an 'after' with changes. Lead changes (new building, extension, rooftop addition,
construction site) carry boxes; nuisance changes (moved cars, vegetation, repaint, demolition)
don't. Output mirrors ``geo.synthetic.scene.ScenePair`` so the builders accept either.

>>> p = render_pair(1, 128, 0.2)
>>> p.after.shape, p.before.dtype.name, all(c.polygon.shape[1] == 2 for c in p.changes)
((128, 128, 3), 'uint8', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["Change", "ScenePair", "render_pair"]


@dataclass(frozen=True)
class Change:
    """One change between the epochs: kind, class name ('' for nuisance), expected, pixel polygon."""

    kind: str
    cls: str
    expected: str
    polygon: np.ndarray


@dataclass(frozen=True)
class ScenePair:
    """A rendered before/after pair on one pixel grid."""

    after: np.ndarray
    before: np.ndarray
    valid_after: np.ndarray
    valid_before: np.ndarray
    changes: list[Change] = field(default_factory=list)


def _noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    small = rng.normal(0, 1, (max(2, int(h / scale)), max(2, int(w / scale)))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _ground(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    palettes = [(96, 120, 70), (140, 130, 100), (120, 110, 90), (80, 105, 60), (165, 150, 125)]
    base = np.array(palettes[rng.integers(len(palettes))], np.float32) + rng.normal(0, 10, 3)
    tex = 14 * _noise(rng, h, w, 20) + 6 * _noise(rng, h, w, 3) + 3 * rng.normal(0, 1, (h, w))
    return np.clip(base[None, None, :] + tex[..., None], 0, 255).astype(np.uint8)


def _rect(cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    pts = cv2.boxPoints(((cx, cy), (w, h), angle))
    return pts.astype(np.float32)


def _roof_color(rng: np.random.Generator) -> tuple[int, int, int]:
    palettes = [(200, 200, 205), (170, 60, 50), (60, 90, 150), (150, 150, 150), (220, 215, 200),
                (110, 100, 95), (70, 130, 140), (180, 120, 80)]  # fmt: skip
    c = np.array(palettes[rng.integers(len(palettes))]) + rng.normal(0, 12, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _draw_building(img: np.ndarray, poly: np.ndarray, color: tuple[int, int, int],
                   shadow: tuple[float, float], rng: np.random.Generator) -> None:  # fmt: skip
    sh = (poly + np.array(shadow, np.float32)).astype(np.int32)
    overlay = img.copy()
    cv2.fillPoly(overlay, [sh], (30, 30, 35))
    img[:] = cv2.addWeighted(overlay, 0.55, img, 0.45, 0)
    cv2.fillPoly(img, [poly.astype(np.int32)], color)
    if rng.random() < 0.6:  # ridge line / roof texture
        a, b = poly[0], poly[2]
        mid1, mid2 = (poly[0] + poly[1]) / 2, (poly[2] + poly[3]) / 2
        shade = tuple(int(v * 0.8) for v in color)
        cv2.line(img, tuple(mid1.astype(int)), tuple(mid2.astype(int)), shade, 1)
        del a, b
    cv2.polylines(img, [poly.astype(np.int32)], True, tuple(int(v * 0.7) for v in color), 1)


def _draw_construction(img: np.ndarray, poly: np.ndarray, rng: np.random.Generator) -> None:
    soil = np.array([150, 120, 90]) + rng.normal(0, 15, 3)
    cv2.fillPoly(img, [poly.astype(np.int32)], tuple(int(v) for v in np.clip(soil, 0, 255)))
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    style = rng.integers(3)
    if style == 0:  # frame / foundation grid
        step = max(3, int(rng.uniform(4, 10)))
        grey = (175, 175, 170)
        for x in range(int(x0) + 2, int(x1) - 1, step):
            cv2.line(img, (x, int(y0) + 2), (x, int(y1) - 2), grey, 1)
        for y in range(int(y0) + 2, int(y1) - 1, step):
            cv2.line(img, (int(x0) + 2, y), (int(x1) - 2, y), grey, 1)
    elif style == 1:  # blue/green sheeting and material stacks
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            s = rng.uniform(2, max(3, (x1 - x0) / 3))
            col = [(40, 90, 170), (60, 140, 80), (200, 200, 200), (160, 90, 40)][rng.integers(4)]
            cv2.fillPoly(img, [_rect(cx, cy, s, s * 0.6, rng.uniform(0, 90)).astype(np.int32)], col)
    else:  # half-built slab with rebar dots
        cv2.fillPoly(img, [poly.astype(np.int32)], (185, 185, 180))
        for _ in range(int((x1 - x0) * (y1 - y0) / 30)):
            cv2.circle(
                img, (int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1))), 0, (90, 60, 40), -1
            )


def _place(rng: np.random.Generator, size: int, min_px: float, max_px: float,
           occupied: np.ndarray) -> np.ndarray | None:  # fmt: skip
    max_px = min(max_px, size * 0.6)
    min_px = min(min_px, max_px)
    for _ in range(20):
        w, h = rng.uniform(min_px, max_px), rng.uniform(min_px, max_px)
        cx, cy = rng.uniform(w / 2 + 2, size - w / 2 - 2), rng.uniform(h / 2 + 2, size - h / 2 - 2)
        poly = _rect(cx, cy, w, h, float(rng.choice([0.0, rng.uniform(-30, 30)])))
        mask = np.zeros_like(occupied)
        cv2.fillPoly(mask, [poly.astype(np.int32)], 1)
        mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
        if not (mask & occupied).any():
            occupied |= mask
            return poly
    return None


def render_pair(seed: int, size_px: int, gsd: float, style: str | None = None) -> ScenePair:
    """Render a ``size_px`` square before/after pair at ``gsd`` m/px (``style`` is ignored)."""
    rng = np.random.default_rng(seed)
    m = 1.0 / gsd  # pixels per metre
    img = _ground(rng, size_px, size_px)
    occupied = np.zeros((size_px, size_px), np.uint8)
    for _ in range(int(rng.integers(0, 3))):  # roads
        width = int(rng.uniform(4, 9) * m)
        grey = int(rng.uniform(90, 150))
        if rng.random() < 0.5:
            y = int(rng.uniform(0, size_px))
            cv2.line(img, (0, y), (size_px, y), (grey, grey, grey + 5), width)
            cv2.line(occupied, (0, y), (size_px, y), 1, width)
        else:
            x = int(rng.uniform(0, size_px))
            cv2.line(img, (x, 0), (x, size_px), (grey, grey, grey + 5), width)
            cv2.line(occupied, (x, 0), (x, size_px), 1, width)
    sun = rng.uniform(0, 2 * np.pi)
    shadow = (float(np.cos(sun) * 1.5 * m), float(np.sin(sun) * 1.5 * m))
    buildings = []
    density = rng.uniform(0.2, 1.0)
    for _ in range(int(density * (size_px / m) ** 2 / 250)):
        poly = _place(rng, size_px, 6 * m, 22 * m, occupied)
        if poly is not None:
            color = _roof_color(rng)
            _draw_building(img, poly, color, shadow, rng)
            buildings.append((poly, color))
    for _ in range(int(rng.integers(0, 12))):  # trees
        c = (int(rng.uniform(0, size_px)), int(rng.uniform(0, size_px)))
        cv2.circle(img, c, int(rng.uniform(1.5, 4) * m), (50, 90, 45), -1)
    before = img.copy()
    after = img.copy()
    changes: list[Change] = []
    n_changes = int(rng.integers(1, 6))
    for _ in range(n_changes):
        kind = str(rng.choice(["new_building", "new_building", "construction", "extension",
                               "rooftop_addition", "permitted_building", "moved_car",
                               "vegetation", "repaint", "demolished"]))  # fmt: skip
        if kind in ("new_building", "permitted_building", "construction"):
            poly = _place(rng, size_px, 5 * m, 20 * m, occupied)
            if poly is None:
                continue
            if kind == "construction":
                _draw_construction(after, poly, rng)
                changes.append(Change(kind, "construction", "lead", poly))
            else:
                _draw_building(after, poly, _roof_color(rng), shadow, rng)
                exp = "lead" if kind == "new_building" else "permitted"
                changes.append(Change(kind, "new_building", exp, poly))
        elif kind in ("extension", "rooftop_addition", "repaint", "demolished") and buildings:
            poly, color = buildings[int(rng.integers(len(buildings)))]
            center, (bw, bh), ang = cv2.minAreaRect(poly)
            if kind == "extension":
                ext = _rect(center[0] + bw * 0.55, center[1], bw * 0.5, bh * 0.8, ang)
                _draw_building(after, ext, color, shadow, rng)
                changes.append(Change(kind, "new_building", "lead", ext))
            elif kind == "rooftop_addition":
                add = _rect(center[0], center[1], bw * 0.45, bh * 0.45, ang)
                _draw_building(after, add, _roof_color(rng), (shadow[0] / 3, shadow[1] / 3), rng)
                changes.append(Change(kind, "new_building", "lead", add))
            elif kind == "repaint":
                cv2.fillPoly(after, [poly.astype(np.int32)], _roof_color(rng))
                changes.append(Change(kind, "", "none", poly))
            else:
                ground = _ground(rng, size_px, size_px)
                mask = np.zeros((size_px, size_px), np.uint8)
                cv2.fillPoly(mask, [poly.astype(np.int32)], 1)
                after[mask > 0] = ground[mask > 0]
                changes.append(Change(kind, "", "none", poly))
        elif kind == "moved_car":
            for _ in range(int(rng.integers(1, 5))):
                car = _rect(rng.uniform(0, size_px), rng.uniform(0, size_px), 4.5 * m, 1.8 * m,
                            rng.uniform(0, 180))  # fmt: skip
                cv2.fillPoly(after, [car.astype(np.int32)], _roof_color(rng))
                changes.append(Change(kind, "", "none", car))
        elif kind == "vegetation":
            vx, vy = float(rng.uniform(0, size_px)), float(rng.uniform(0, size_px))
            r = rng.uniform(2, 6) * m
            cv2.circle(after, (int(vx), int(vy)), int(r), (55, 100, 50), -1)
            changes.append(Change(kind, "", "none", _rect(vx, vy, 2 * r, 2 * r, 0)))
    valid = np.ones((size_px, size_px), bool)
    return ScenePair(after, before, valid, valid.copy(), changes)
