"""Nuisance change on real imagery: what differs between two dates where nothing was built.

The real-pair failures a detector trained on pseudo pairs makes (model card, *Real failures*)
are places that did change, but not by a new structure: cars that moved, a building demolished
to its slab, a roof re-covered in another colour, a field ploughed to grey soil, a pond, a flooded
paddy or puddles that one date has and the other not. These functions
paint such changes onto real drone windows at their stored GSD, in pixels that hold no labelled
new building, so a chip teaches "changed, yet nothing new". Pure functions on ``(h, w, 3)`` uint8
arrays, id masks and a seeded ``numpy.random.Generator``; the pseudo-pair builder
(:mod:`models.datasets.fairdrone`) calls :func:`add_nuisance` with its own generator per chip, so
the rest of a chip is the one it would be without nuisance.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.datasets.fairdrone import remove_buildings

__all__ = [
    "paint_vehicles",
    "recolour_ground",
    "reroof",
    "demolish",
    "lean_roofs",
    "flood_ground",
    "free_ground",
    "add_nuisance",
    "add_water",
]

#: car body colours (RGB): white, silver, grey, black, red, blue, beige
_CAR_COLOURS = np.array([[235, 235, 232], [190, 192, 195], [120, 122, 125], [30, 30, 33],
                         [170, 30, 30], [40, 60, 130], [200, 185, 150]], np.float32)  # fmt: skip
#: what a plot of ground turns into: grey bare soil, brown soil, green crop, straw, dark wet soil
_GROUND_COLOURS = np.array([[102, 106, 95], [140, 112, 82], [78, 112, 55], [190, 170, 120],
                            [80, 72, 60]], np.float32)  # fmt: skip
#: open water seen from above (RGB): murky green, silt brown, blue-grey, sky-lit, deep dark
_WATER_COLOURS = np.array([[52, 68, 56], [98, 88, 66], [72, 86, 100], [150, 162, 172],
                           [32, 37, 42]], np.float32)  # fmt: skip
#: roof coverings: red tile, blue tin, grey tin, white, rust, green
_ROOF_COLOURS = np.array([[165, 70, 50], [60, 95, 150], [150, 155, 160], [225, 225, 220],
                          [140, 80, 50], [70, 120, 90]], np.float32)  # fmt: skip


def _free_spot(free: np.ndarray, radius: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """A random pixel whose ``radius`` neighbourhood is all ``free``, or ``None``."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1,) * 2)
    ok = cv2.erode(free.astype(np.uint8), k)
    ys, xs = np.nonzero(ok)
    if not len(ys):
        return None
    i = int(rng.integers(len(ys)))
    return int(xs[i]), int(ys[i])


def paint_vehicles(
    img: np.ndarray, free: np.ndarray, rng: np.random.Generator, gsd: float, n: int
) -> np.ndarray:
    """Paint ``n`` cars (now and then a van or lorry) with windows and shadows on ``free`` ground."""
    out = img.astype(np.float32)
    h, w = free.shape
    for _ in range(n):
        truck = rng.random() < 0.15
        length = float(rng.uniform(6.5, 10.0) if truck else rng.uniform(3.8, 5.0)) / gsd
        width = float(rng.uniform(2.2, 2.5) if truck else rng.uniform(1.6, 1.95)) / gsd
        spot = _free_spot(free, max(1, int(length / 2)), rng)
        if spot is None:
            break
        angle = float(rng.uniform(0, 180))
        colour = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))] + rng.normal(0, 8, 3)
        body = np.zeros((h, w), np.uint8)
        box = cv2.boxPoints((spot, (length, width), angle)).astype(np.int32)
        cv2.fillPoly(body, [box], 1)
        # shadow: the body shifted by about half a metre, darkened, soft
        sx, sy = rng.normal(0, 0.5 / gsd, 2)
        m = np.array([[1, 0, sx], [0, 1, sy]], np.float32)
        shadow = cv2.warpAffine(body, m, (w, h), flags=cv2.INTER_NEAREST).astype(np.float32)
        shadow = cv2.GaussianBlur(shadow * (body == 0), (0, 0), max(0.5, 0.2 / gsd))[..., None]
        out *= 1 - 0.5 * shadow
        alpha = cv2.GaussianBlur(body.astype(np.float32), (0, 0), max(0.4, 0.08 / gsd))[..., None]
        shade = np.full((h, w, 3), colour, np.float32)
        if not truck:  # windscreen and rear window: dark bands across the body
            for at, size in ((0.25, 0.18), (0.78, 0.12)):
                t = np.deg2rad(angle)
                cx = spot[0] + (at - 0.5) * length * np.cos(t)
                cy = spot[1] + (at - 0.5) * length * np.sin(t)
                band = np.zeros((h, w), np.uint8)
                pts = cv2.boxPoints(((cx, cy), (size * length, 0.85 * width), angle))
                cv2.fillPoly(band, [pts.astype(np.int32)], 1)
                shade[band > 0] = (40, 45, 52)
        out = out * (1 - alpha) + shade * alpha
        free = free & (cv2.dilate(body, np.ones((5, 5), np.uint8)) == 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def recolour_ground(
    img: np.ndarray, free: np.ndarray, rng: np.random.Generator, gsd: float
) -> np.ndarray:
    """Turn one rectangular plot of ``free`` ground into another season's cover, texture kept.

    The plot (8-50 m a side, rotated) takes a new mean colour — grey or brown soil, green crop,
    straw, wet soil — with its own brightness texture kept and, half the time, crop rows.
    """
    h, w = free.shape
    side = np.asarray(rng.uniform(8, 50, 2)) / gsd
    spot = None
    while spot is None and min(side) * gsd >= 4:  # a smaller plot where a large one does not fit
        spot = _free_spot(free, max(2, int(min(side) / 4)), rng)
        if spot is None:
            side = side / 2
    if spot is None:
        return img
    plot = np.zeros((h, w), np.uint8)
    pts = cv2.boxPoints((spot, (float(side[0]), float(side[1])), float(rng.uniform(0, 90))))
    cv2.fillPoly(plot, [pts.astype(np.int32)], 1)
    plot &= free.astype(np.uint8)
    if plot.sum() < 16:
        return img
    x = img.astype(np.float32)
    lum = x.mean(axis=2, keepdims=True)
    inside = plot > 0
    texture = (lum - lum[inside].mean()) * float(rng.uniform(0.4, 1.0))
    target = _GROUND_COLOURS[int(rng.integers(len(_GROUND_COLOURS)))] + rng.normal(0, 10, 3)
    cover = target[None, None, :] + texture
    if rng.random() < 0.5:  # crop rows or plough furrows
        period = float(rng.uniform(0.5, 1.5)) / gsd
        t = np.deg2rad(float(rng.uniform(0, 180)))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rows = np.sin(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / period)
        cover += (rows * float(rng.uniform(5, 18)))[..., None]
    alpha = cv2.GaussianBlur(plot.astype(np.float32), (0, 0), max(0.7, 0.3 / gsd))[..., None]
    alpha *= free[..., None]
    return np.clip(x * (1 - alpha) + cover * alpha, 0, 255).astype(np.uint8)


def reroof(
    img: np.ndarray, ids: np.ndarray, which: list[int], rng: np.random.Generator
) -> np.ndarray:
    """Give the buildings ``which`` a new roof colour (texture kept): re-covered, painted, cleaned."""
    out = img.astype(np.float32)
    for bid in which:
        roof = cv2.erode((ids == bid).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        if roof.sum() < 9:
            continue
        target = _ROOF_COLOURS[int(rng.integers(len(_ROOF_COLOURS)))] + rng.normal(0, 12, 3)
        px = out[roof]
        mix = float(rng.uniform(0.6, 1.0))
        out[roof] = (px - px.mean(axis=0)) * 0.8 + target * mix + px.mean(axis=0) * (1 - mix)
    return np.clip(out, 0, 255).astype(np.uint8)


def demolish(
    img: np.ndarray, ids: np.ndarray, which: list[int], rng: np.random.Generator, gsd: float
) -> np.ndarray:
    """Remove the buildings ``which``; half of them leave their concrete slab behind."""
    out = remove_buildings(img, ids, which, rng, max(1, round(0.6 / gsd)))
    for bid in which:
        if rng.random() < 0.5:
            slab = (ids == bid).astype(np.float32)
            grey = float(rng.uniform(120, 200))
            tone = np.array([grey, grey, grey * float(rng.uniform(0.95, 1.05))], np.float32)
            grain = rng.normal(0, float(rng.uniform(3, 10)), out.shape)
            alpha = cv2.GaussianBlur(slab, (0, 0), 0.8)[..., None]
            out = np.clip(out * (1 - alpha) + (tone + grain) * alpha, 0, 255).astype(np.uint8)
    return out


def lean_roofs(
    img: np.ndarray, ids: np.ndarray, which: list[int], rng: np.random.Generator, gsd: float
) -> np.ndarray:
    """Relief displacement: the roofs of ``which`` as an off-nadir satellite or aerial frame sees them.

    One lean direction for the scene (away from the sensor's nadir); each building its own height
    (3-15 m) and the scene one off-nadir slope (tan 0.05-0.35), so a roof moves 0.15-3 m off its
    footprint, covering the ground on that side, and the facade it swept over shows as wall
    (the roof's colours, darker). A drone orthophoto has no lean; a baseline bought from a
    satellite or an older aerial survey does, and differently at every building.
    """
    out = img.astype(np.float32)
    h, w = ids.shape
    theta = float(rng.uniform(0, 2 * np.pi))
    slope = float(rng.uniform(0.05, 0.35))
    for bid in which:
        roof = (ids == bid).astype(np.uint8)
        if roof.sum() < 9:
            continue
        shift = min(3.0, float(rng.uniform(3, 15)) * slope) / gsd
        dx, dy = shift * np.cos(theta), shift * np.sin(theta)
        steps = max(1, int(np.ceil(shift)))
        sweep = np.zeros((h, w), bool)
        for k in range(steps + 1):
            m = np.array([[1, 0, dx * k / steps], [0, 1, dy * k / steps]], np.float32)
            sweep |= cv2.warpAffine(roof, m, (w, h), flags=cv2.INTER_NEAREST) > 0
        m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        moved = cv2.warpAffine(roof, m, (w, h), flags=cv2.INTER_NEAREST) > 0
        pixels = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR)
        wall = sweep & ~moved
        if wall.any():
            shade = out[roof > 0].mean(axis=0) * float(rng.uniform(0.45, 0.8))
            out[wall] = shade + rng.normal(0, 4, (int(wall.sum()), 3))
        out[moved] = pixels[moved]
    return np.clip(out, 0, 255).astype(np.uint8)


def flood_ground(
    img: np.ndarray, free: np.ndarray, rng: np.random.Generator, gsd: float
) -> np.ndarray:
    """Put standing water on ``free`` ground: a pond, a row of flooded paddies, or puddles.

    A pond is an irregular blob 6-40 m across; paddies are one to four rectangular plots
    (10-40 m a side, one orientation) with an earth bund of about half a metre between them, as
    a rice field looks in the weeks it is flooded; puddles are two to six blobs of 1-5 m. Water
    takes one colour (murky green, silt brown, blue-grey, lit by the sky, or dark), keeps a tenth
    of the ground's texture and gets faint ripples; its shore is darker wet soil. The one date
    that gets it is the date the water is there; the other sees dry ground.
    """
    h, w = free.shape
    x = img.astype(np.float32)
    body = np.zeros((h, w), np.uint8)
    kind = int(rng.integers(3))
    if kind == 1:  # paddies: adjacent rotated rectangles, bunds left dry
        side = np.asarray(rng.uniform(10, 40, 2)) / gsd
        n = int(rng.integers(1, 5))
        spot = None
        while spot is None and min(side) * gsd >= 2.5:  # smaller plots where large ones do not fit
            spot = _free_spot(free, max(2, int(min(side) / 3)), rng)
            if spot is None:
                side = side / 2
        if spot is None:
            return img
        angle = float(rng.uniform(0, 180))
        t = np.deg2rad(angle)
        step = side[0] + 0.5 / gsd
        for k in range(n):
            cx = spot[0] + (k - (n - 1) / 2) * step * np.cos(t)
            cy = spot[1] + (k - (n - 1) / 2) * step * np.sin(t)
            pts = cv2.boxPoints(((float(cx), float(cy)), (float(side[0]), float(side[1])), angle))
            cv2.fillPoly(body, [pts.astype(np.int32)], 1)
    else:  # a pond, or puddles: blobs made by thresholding smoothed noise around a centre
        count = 1 if kind == 0 else int(rng.integers(2, 7))
        for _ in range(count):
            d = float(rng.uniform(6, 40) if kind == 0 else rng.uniform(1, 5)) / gsd
            spot = None
            while spot is None and d * gsd >= 1:  # a smaller pond where a large one does not fit
                spot = _free_spot(free, max(1, int(d / 4)), rng)
                if spot is None:
                    d /= 2
            if spot is None:
                continue
            r = max(2, int(d))
            noise = cv2.GaussianBlur(rng.normal(0, 1, (2 * r + 1, 2 * r + 1)).astype(np.float32),
                                     (0, 0), max(1.0, r / 4))  # fmt: skip
            yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
            blob = ((np.hypot(xx, yy) / (r / 2) - noise / (noise.std() + 1e-6)) < 1).astype(
                np.uint8
            )
            outer, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.fillPoly(blob, outer, 1)  # no islands: the shore is the outer edge
            canvas = np.zeros((h + 2 * r + 1, w + 2 * r + 1), np.uint8)  # the blob, clipped
            canvas[spot[1] : spot[1] + 2 * r + 1, spot[0] : spot[0] + 2 * r + 1] = blob
            body |= canvas[r : r + h, r : r + w]
    body &= free.astype(np.uint8)
    if body.sum() < 16:
        return img
    lum = x.mean(axis=2, keepdims=True)
    inside = body > 0
    texture = (lum - lum[inside].mean()) * 0.1
    colour = _WATER_COLOURS[int(rng.integers(len(_WATER_COLOURS)))] + rng.normal(0, 8, 3)
    ripple = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0),
                              max(1.0, 0.4 / gsd))  # fmt: skip
    water = colour[None, None, :] + texture + (ripple / (ripple.std() + 1e-6) * 3)[..., None]
    shore_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(0.5 / gsd)) + 1,) * 2)
    shore = (cv2.dilate(body, shore_k) > 0) & ~inside & free
    out = x.copy()
    out[shore] *= float(rng.uniform(0.6, 0.85))  # wet soil
    alpha = cv2.GaussianBlur(body.astype(np.float32), (0, 0), max(0.6, 0.2 / gsd))[..., None]
    alpha *= free[..., None]
    return np.clip(out * (1 - alpha) + water * alpha, 0, 255).astype(np.uint8)


def _margin(gsd: float) -> np.ndarray:
    """A disc of about a metre, the distance painted nuisance keeps from buildings."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(1.0 / gsd)) + 1,) * 2)


def free_ground(
    after: np.ndarray, before: np.ndarray, ids: np.ndarray, new_mask: np.ndarray, gsd: float
) -> np.ndarray:
    """Pixels imaged on both dates and more than about a metre from every building, standing or new."""
    margin = _margin(gsd)
    valid = (after.max(axis=2) > 0) & (before.max(axis=2) > 0)
    return valid & (cv2.dilate(((ids > 0) | new_mask).astype(np.uint8), margin) == 0)


def add_water(
    after: np.ndarray,
    before: np.ndarray,
    ids: np.ndarray,
    new_mask: np.ndarray,
    rng: np.random.Generator,
    gsd: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Water on one of the two dates (:func:`flood_ground`), away from every building."""
    free = free_ground(after, before, ids, new_mask, gsd)
    dates = [after, before]
    k = int(rng.integers(2))
    dates[k] = flood_ground(dates[k], free, rng, gsd)
    return dates[0], dates[1]


def add_nuisance(
    after: np.ndarray,
    before: np.ndarray,
    ids: np.ndarray,
    new_mask: np.ndarray,
    standing: list[int],
    rng: np.random.Generator,
    gsd: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Nuisance change between ``before`` and ``after`` that leaves every label true.

    ``ids`` are the building ids of the window (both dates' buildings where they stand);
    ``new_mask`` the pixels of labelled new buildings in ``after``; ``standing`` the buildings
    that stand on both dates. Cars (moved: each date its own), a plot of ground in another
    cover, re-roofed and demolished standing buildings. Nothing is painted within about a metre
    of a building (standing or new) except the re-roof inside its own footprint, and the
    demolition of a building the labels do not name.
    """
    margin = _margin(gsd)
    free = free_ground(after, before, ids, new_mask, gsd)
    dates = [after, before]
    if rng.random() < 0.6:  # vehicles: each date its own
        for k in range(2):
            dates[k] = paint_vehicles(dates[k], free, rng, gsd, int(rng.integers(0, 7)))
    if rng.random() < 0.4:  # a plot in another season's cover, in one of the dates
        k = int(rng.integers(2))
        for _ in range(int(rng.integers(1, 3))):
            dates[k] = recolour_ground(dates[k], free, rng, gsd)
    if standing and rng.random() < 0.4:
        k = int(rng.integers(2))
        which = [i for i in standing if rng.random() < 0.3] or [standing[0]]
        dates[k] = reroof(dates[k], ids, which, rng)
    if standing and rng.random() < 0.25:  # demolished since the baseline: gone from the flight
        which = [int(standing[int(rng.integers(len(standing)))])]
        keep = cv2.dilate(new_mask.astype(np.uint8), margin) > 0
        razed = demolish(dates[0], ids, which, rng, gsd)
        razed[keep] = dates[0][keep]
        dates[0] = razed
    return dates[0], dates[1]
