"""Render a synthetic before/after scene pair with ground-truth changes (numpy, scipy, cv2 only).

This is the pure core the district writer and the training-data builder share. It must not import
rasterio, shapely, geopandas, pyproj or torch.

>>> pair = render_pair(3, 256, 0.25, style={"footprint": False})
>>> pair.after.shape, pair.before.dtype, bool(pair.valid_after.all())
((256, 256, 3), dtype('uint8'), True)
>>> sorted({c.expected for c in pair.changes}) == ["lead", "none", "permitted"]
True
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from geo.errors import ConfigError
from geo.synthetic.changes import NUISANCE_KINDS, REAL_KINDS, ChangePlanner, ChangeRecord
from geo.synthetic.layout import Frame, World, build_world
from geo.synthetic.palette import SEASONS, epoch_palette, sample_roof_palette
from geo.synthetic.render import Epoch, Sun, render_epoch, shadow_offset, world_noise

__all__ = [
    "Change",
    "SceneLayout",
    "ScenePair",
    "SceneSequence",
    "EpochInfo",
    "render_pair",
    "render_sequence",
    "STYLE_KEYS",
    "CHANGE_KINDS",
]

CHANGE_KINDS = REAL_KINDS + NUISANCE_KINDS
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
)


@dataclass(frozen=True, eq=False)
class Change:
    """One true change: its kind, detector class ('' for nuisance), expected outcome, outline.

    ``polygon`` is an (N, 2) float array of pixel x, y on the scene grid; ``change_id`` is stable
    across the nights of a sequence.
    """

    kind: str
    cls: str
    expected: str
    polygon: np.ndarray
    change_id: int = 0


@dataclass(frozen=True, eq=False)
class SceneLayout:
    """The scene's structure in pixel units, for vector layers.

    cells: (polygon, kind, col, row) per block between road centrelines (kind compound | village |
    park); compounds: (polygon inside the wall, cell index); roads: ((2, 2) centreline, width px,
    main); buildings: (building id, polygon, height m, kind) standing in the *before* epoch;
    permits: (change_id, polygon); footprint: the flight's outline; baseline: the before epoch's.
    """

    cells: list[tuple[np.ndarray, str, int, int]]
    compounds: list[tuple[np.ndarray, int]]
    roads: list[tuple[np.ndarray, float, bool]]
    buildings: list[tuple[int, np.ndarray, float, str]]
    permits: list[tuple[int, np.ndarray]]
    footprint: np.ndarray
    baseline: np.ndarray


@dataclass(frozen=True)
class EpochInfo:
    """When an epoch was taken and how it was lit."""

    date: str
    season: str
    sun_azimuth: float
    sun_elevation: float


@dataclass(frozen=True, eq=False)
class ScenePair:
    """A flight (``after``) and its baseline (``before``) on the same pixel grid, with truth."""

    after: np.ndarray
    before: np.ndarray
    valid_after: np.ndarray
    valid_before: np.ndarray
    changes: list[Change]
    layout: SceneLayout
    info_after: EpochInfo
    info_before: EpochInfo
    gsd: float
    seed: int


@dataclass(frozen=True, eq=False)
class SceneSequence:
    """One baseline and N nights over the same scene; ``changes[k]`` is night k vs the baseline."""

    before: np.ndarray
    valid_before: np.ndarray
    nights: list[np.ndarray]
    valid_nights: list[np.ndarray]
    changes: list[list[Change]]
    removed: list[list[int]]
    layout: SceneLayout
    info_before: EpochInfo
    info_nights: list[EpochInfo]
    gsd: float
    seed: int


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
        "hours": (float(rng.uniform(9.5, 14.5)), float(rng.uniform(9.5, 14.5))),
    }
    out.update(style)
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
    return {k: max(mk, int(round(real * s))) for k, s in share.items()}


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


def render_pair(
    seed: int, size_px: int, gsd: float, *, style: dict[str, Any] | None = None
) -> ScenePair:
    """Render a before/after pair of a seeded synthetic scene with its true changes.

    ``style`` may override any of :data:`STYLE_KEYS` (``{"footprint": False, "baseline_clip":
    False}`` gives all-valid images; ``before_gsd`` blurs the before epoch to that resolution).
    """
    sc = _Scene(seed, size_px, gsd, style)
    recs = sc.planner.plan(_counts(size_px, gsd, sc.st, sc.rngs[5]))
    hours = sc.st["hours"]
    before, info_b, sun_b = sc.epoch([], sc.date_before, hours[1], 1, True)
    after, info_a, sun_a = sc.epoch(recs, sc.date_after, hours[0], 2, False)
    va, vb = _mask(sc.foot, size_px), _mask(sc.base, size_px)
    changes = [_to_change(sc.world, r, (sun_b, sun_a)) for r in recs]
    return ScenePair(
        _masked(after, va),
        _masked(before, vb),
        va,
        vb,
        changes,
        _layout(sc.world, recs, sc.foot, sc.base),
        info_a,
        info_b,
        gsd,
        seed,
    )


def render_sequence(
    seed: int, size_px: int, gsd: float, nights: int, *, style: dict[str, Any] | None = None
) -> SceneSequence:
    """One baseline and ``nights`` consecutive flights over the same scene.

    Night 1 is the :func:`render_pair` scene's flight; on each later night about half of the
    construction sites are completed (same change id, kind ``new_building``), about one in six
    new structures is removed (listed in ``removed``), a few new sites and buildings appear, and
    the cars that moved are drawn afresh.
    """
    if nights < 1:
        raise ConfigError(f"nights={nights!r}; use 1 or more")
    sc = _Scene(seed, size_px, gsd, style)
    counts = _counts(size_px, gsd, sc.st, sc.rngs[5])
    recs = sc.planner.plan(counts)
    hours = sc.st["hours"]
    before, info_b, sun_b = sc.epoch([], sc.date_before, hours[1], 1, True)
    vb = _mask(sc.base, size_px)
    rng = np.random.default_rng([seed, 99])
    imgs, valids, changes, removed, infos, all_recs = [], [], [], [], [], list(recs)
    for k in range(nights):
        gone: list[int] = []
        if k > 0:
            nxt: list[ChangeRecord] = []
            for r in recs:
                if r.kind == "moved_car":
                    continue
                if r.kind == "construction" and rng.random() < 0.5:
                    nxt.append(sc.planner.complete(r))
                elif r.kind in ("new_building", "extension") and rng.random() < 1 / 6:
                    gone.append(r.cid)
                else:
                    nxt.append(r)
            extra = {
                "construction": 1 + int(rng.integers(2)),
                "new_building": int(rng.integers(2)),
                "moved_car": max(1, counts["moved_car"]),
            }
            nxt += sc.planner.plan(extra)
            recs = nxt
            all_recs += recs
        date = sc.date_after + dt.timedelta(days=k)
        img, info, sun = sc.epoch(recs, date, float(rng.uniform(9.5, 14.5)), 2 + k, False)
        foot = sc.foot + rng.normal(0, 0.01 * size_px, sc.foot.shape) * (k > 0)
        va = _mask(foot, size_px)
        imgs.append(_masked(img, va))
        valids.append(va)
        changes.append([_to_change(sc.world, r, (sun_b, sun)) for r in recs])
        removed.append(gone)
        infos.append(info)
    seen: dict[int, ChangeRecord] = {r.cid: r for r in all_recs}
    return SceneSequence(
        _masked(before, vb),
        vb,
        imgs,
        valids,
        changes,
        removed,
        _layout(sc.world, list(seen.values()), sc.foot, sc.base),
        info_b,
        infos,
        gsd,
        seed,
    )
