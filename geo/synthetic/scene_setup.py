"""Set-up shared by a scene pair and a scene sequence: style, sun, masks, counts, epochs.

:class:`_Scene` draws the style, builds the world, the valid-area masks and the change planner
from the seed; :meth:`_Scene.epoch` renders one epoch with a list of change records applied.
Pure numpy / OpenCV, like the rest of the scene core.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from geo.errors import ConfigError
from geo.synthetic.changes import ChangePlanner, ChangeRecord
from geo.synthetic.layout import build_world
from geo.synthetic.palette import SEASONS, epoch_palette, sample_roof_palette
from geo.synthetic.render import Epoch, Sun, render_epoch, shadow_offset, world_noise
from geo.synthetic.scene_types import Change, EpochInfo, SceneLayout
from geo.synthetic.shapes import Frame, World

__all__ = ["STYLE_KEYS", "LAT_DEG", "NO_CHANGE_KINDS"]

LAT_DEG = 29.6
#: style keys a caller may override (everything else is drawn from the seed)
STYLE_KEYS = (
    "density",
    "angle_deg",
    "footprint",
    "baseline_clip",
    "min_per_kind",
    "date_after",
    "days_before",
    "roof_weights",
    "before_gsd",
    "changes",
)
#: what still differs between the epochs of a no-change scene (style ``{"changes": False}``)
NO_CHANGE_KINDS = ("moved_car", "vegetation", "shadow")


def _season(date: dt.date) -> str:
    return SEASONS[((date.month - 3) % 12) // 3]


def _sun(date: dt.date, hour: float) -> Sun:
    doy = date.timetuple().tm_yday
    decl = math.radians(23.44 * math.sin(2 * math.pi * (284 + doy) / 365))
    lat, ha = math.radians(LAT_DEG), math.radians(15 * (hour - 12))
    el = math.asin(math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha))
    az = math.degrees(
        math.atan2(math.sin(ha), math.cos(ha) * math.sin(lat) - math.tan(decl) * math.cos(lat))
    )
    return Sun((az + 180) % 360, math.degrees(el))


def _style(seed: int, style: dict[str, Any] | None) -> dict[str, Any]:
    style = dict(style or {})
    bad = sorted(set(style) - set(STYLE_KEYS))
    if bad:
        raise ConfigError(f"style: unknown key(s) {bad}; allowed keys are {list(STYLE_KEYS)}")
    rng = np.random.default_rng([seed, 7])
    out: dict[str, Any] = {
        "density": float(rng.uniform(0.7, 1.4)),
        "angle_deg": float(rng.choice([0.0, rng.uniform(-35, 35)], p=[0.25, 0.75])),
        "footprint": True,
        "baseline_clip": True,
        "min_per_kind": 1,
        "date_after": (
            dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 366)))
        ).isoformat(),
        "days_before": int(rng.integers(90, 300)),
        "roof_weights": {
            "concrete": 3,
            "light": 2,
            "terracotta": 2,
            "grey_tile": 1.5,
            "blue_steel": 1.5,
            "white_steel": 0.5,
            "green": 0.5,
            "brown": 1,
        }
        | {
            k: float(v)
            for k, v in zip(
                ["concrete", "terracotta", "blue_steel"], rng.uniform(0.5, 2, 3), strict=True
            )
        },
        "before_gsd": None,
        "changes": True,
        "hours": (float(rng.uniform(9.5, 14.5)), float(rng.uniform(9.5, 14.5))),
    }
    out.update(style)
    if not isinstance(out["changes"], bool):
        raise ConfigError(f"style changes={out['changes']!r}: use true or false")
    if not 0.1 <= float(out["density"]) <= 3:
        raise ConfigError(f"style density={out['density']!r} is out of range; use 0.1..3")
    return out


def _valid_masks(
    rng: np.random.Generator, n: int, st: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    full = np.array([[0, 0], [n, 0], [n, n], [0, n]], float)
    if st["footprint"]:
        pts = []
        for (x0, y0), (x1, y1) in zip(full, np.roll(full, -1, 0), strict=True):
            for t in np.linspace(0, 1, 4, endpoint=False):
                p = np.array([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t])
                inward = np.array([n / 2, n / 2]) - p
                pts.append(p + inward / np.linalg.norm(inward) * rng.uniform(0.0, 0.09) * n)
        foot = np.array(pts)
    else:
        foot = full
    if st["baseline_clip"]:
        k = int(rng.integers(4))
        a, b = rng.uniform(0.25, 0.5) * n, rng.uniform(0.25, 0.5) * n
        corner = full[k]
        d1 = full[(k + 1) % 4] - corner
        d2 = full[(k - 1) % 4] - corner
        pts_b: list[np.ndarray] = []
        for i in range(4):
            if i == k:
                pts_b += [corner + d2 / n * b, corner + d1 / n * a]
            else:
                pts_b.append(full[i])
        base = np.array(pts_b, float)
    else:
        base = full
    return foot, base


def _mask(poly: np.ndarray, n: int, k: int = 1) -> np.ndarray:
    m = np.zeros((n // k + 1, n // k + 1) if k > 1 else (n, n), np.uint8)
    cv2.fillPoly(m, [np.round(poly / k * 8).astype(np.int32)], 1, cv2.LINE_8, 3)
    return m.astype(bool)


def _counts(n: int, gsd: float, st: dict[str, Any], rng: np.random.Generator) -> dict[str, int]:
    area_km2 = (n * gsd / 1000) ** 2
    real = area_km2 * 4 * rng.uniform(8, 15) * float(st["density"])
    mk = int(st["min_per_kind"])
    share = {
        "new_building": 0.3,
        "extension": 0.2,
        "rooftop_addition": 0.15,
        "construction": 0.35,
        "moved_car": 0.4,
        "vegetation": 0.25,
        "shadow": 0.25,
        "repaint": 0.2,
        "demolished": 0.15,
        "permitted_building": 0.15,
    }
    counts = {k: max(mk, int(round(real * s))) for k, s in share.items()}
    if not st["changes"]:  # same scene on both dates: only nuisance differences
        counts = {k: v if k in NO_CHANGE_KINDS else 0 for k, v in counts.items()}
    return counts


def _epoch(
    world: World,
    recs: list[ChangeRecord],
    season: str,
    sun: Sun,
    palette: np.ndarray,
    rng: np.random.Generator,
    noise_seed: int,
    satellite: bool,
) -> Epoch:
    removed = set().union(*(r.remove_bids for r in recs)) if recs else set()
    blds = [b for b in world.buildings if b.bid not in removed and b.parent not in removed]
    cars_out = set().union(*(r.remove_cars for r in recs)) if recs else set()
    tone_of: dict[int, int] = {}
    trees_out = set().union(*(r.remove_trees for r in recs)) if recs else set()
    ep = Epoch(
        season,
        sun,
        palette,
        blds,
        [],
        [c for c in world.cars if c.cid not in cars_out],
        noise_seed=noise_seed,
    )
    for r in recs:
        ep.buildings += r.add_buildings
        ep.cars += r.add_cars
        ep.grounds += r.grounds
        ep.lines += r.lines
        ep.roof_of.update(r.roof_of)
        ep.crop_of.update(r.crop_of)
        tone_of.update(r.tone_of)
    ep.trees = [
        replace(t, tone=tone_of[i]) if i in tone_of else t
        for i, t in enumerate(world.trees)
        if i not in trees_out
    ]
    ep.gain = tuple(float(g) for g in rng.uniform(0.9, 1.1, 3) * rng.uniform(0.88, 1.12))  # type: ignore[assignment]
    ep.gamma = float(rng.uniform(0.85, 1.15))
    ep.haze = float(rng.uniform(6, 22) if satellite else rng.uniform(0, 6))
    ep.shadow_depth = float(np.clip(0.62 - 0.25 * math.sin(math.radians(sun.elevation)), 0.3, 0.6))
    return ep


def _to_change(world: World, rec: ChangeRecord, suns: tuple[Sun, Sun]) -> Change:
    fr = world.frame
    if rec.kind == "shadow" and rec.shadow_of is not None:
        b = rec.shadow_of
        c = fr.to_px(b.rect.corners())
        pts = np.concatenate([c + shadow_offset(s, b.height, fr.gsd) for s in suns] + [c])
        poly = cv2.convexHull(pts.astype(np.float32))[:, 0, :].astype(float)
    else:
        poly = fr.to_px(rec.poly)
    return Change(rec.kind, rec.cls, rec.expected, poly, rec.cid)


def _layout(
    world: World, recs: list[ChangeRecord], foot: np.ndarray, base: np.ndarray
) -> SceneLayout:
    fr = world.frame

    def box(b: tuple[float, float, float, float]) -> np.ndarray:
        x0, y0, x1, y1 = b
        return fr.to_px(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))

    return SceneLayout(
        cells=[(box(c.bounds), c.kind, c.col, c.row) for c in world.cells],
        compounds=[(box(c.interior), c.idx) for c in world.cells if c.kind == "compound"],
        roads=[(fr.to_px(np.array([r.p0, r.p1])), r.width / fr.gsd, r.main) for r in world.roads],
        buildings=[
            (b.bid, fr.to_px(b.rect.corners()), b.height, b.kind)
            for b in world.buildings
            if b.parent is None
        ],
        permits=[(r.cid, fr.to_px(r.permit)) for r in recs if r.permit is not None],
        footprint=foot,
        baseline=base,
    )


class _Scene:
    """Shared set-up of a pair or a sequence: style, world, masks, planner, noise."""

    def __init__(self, seed: int, size_px: int, gsd: float, style: dict[str, Any] | None):
        if size_px < 64 or size_px > 40000:
            raise ConfigError(f"size_px={size_px!r} is out of range; use 64..40000 pixels")
        if not 0.02 <= gsd <= 2.0:
            raise ConfigError(f"gsd={gsd!r} m/px is out of range; use 0.02..2")
        self.seed, self.n, self.gsd = seed, size_px, gsd
        self.st = st = _style(seed, style)
        ss = np.random.SeedSequence(seed).spawn(6)
        self.rngs = [np.random.default_rng(s) for s in ss]
        size_m = size_px * gsd
        self.frame = Frame(size_m * 1.4143 + 40, size_px, gsd, math.radians(float(st["angle_deg"])))
        roof_cols, mats = sample_roof_palette(self.rngs[0], st["roof_weights"])
        self.roof_cols = roof_cols
        self.world = build_world(self.rngs[1], self.frame, st | {"roof_materials": mats})
        self.foot, self.base = _valid_masks(self.rngs[2], size_px, st)
        k = max(1, size_px // 512)
        both = _mask(self.foot, size_px, k) & _mask(self.base, size_px, k)
        both = cv2.erode(both.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        self.planner = ChangePlanner(self.world, self.rngs[3], both, k)
        self.soil = self.rngs[0].uniform(0.9, 1.1, 3)
        self.date_after = dt.date.fromisoformat(str(st["date_after"]))
        self.date_before = self.date_after - dt.timedelta(days=int(st["days_before"]))
        self.lf, self.tile = world_noise(int(self.rngs[4].integers(2**31)), size_px, size_px, gsd)

    def epoch(
        self, recs: list[ChangeRecord], date: dt.date, hour: float, noise: int, satellite: bool
    ) -> tuple[np.ndarray, EpochInfo, Sun]:
        season, sun = _season(date), _sun(date, hour)
        pal = epoch_palette(season, self.roof_cols, self.soil)
        ep = _epoch(
            self.world,
            recs,
            season,
            sun,
            pal,
            np.random.default_rng([self.seed, noise]),
            int(noise + self.seed * 1000),
            satellite,
        )
        img = render_epoch(self.world, ep, self.lf, self.tile)
        bg = self.st["before_gsd"]
        if satellite and bg:
            f = self.gsd / float(bg)
            small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (self.n, self.n), interpolation=cv2.INTER_LINEAR)
        info = EpochInfo(date.isoformat(), season, round(sun.azimuth, 2), round(sun.elevation, 2))
        return img, info, sun


def _masked(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    img[~valid] = 0
    return img
