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
from typing import Any

import numpy as np

from geo.errors import ConfigError
from geo.synthetic.changes import NUISANCE_KINDS, REAL_KINDS, ChangeRecord
from geo.synthetic.scene_setup import (
    STYLE_KEYS,
    _counts,
    _layout,
    _mask,
    _masked,
    _Scene,
    _to_change,
)
from geo.synthetic.scene_types import Change, EpochInfo, SceneLayout, ScenePair, SceneSequence

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


def render_pair(
    seed: int, size_px: int, gsd: float, *, style: dict[str, Any] | None = None
) -> ScenePair:
    """Render a before/after pair of a seeded synthetic scene with its true changes.

    ``style`` may override any of :data:`STYLE_KEYS` (``{"footprint": False, "baseline_clip":
    False}`` gives all-valid images; ``before_gsd`` blurs the before epoch to that resolution;
    ``{"changes": False}`` gives a *no-change* pair: the same scene on both dates, differing only
    by illumination, season, sun and shadows, moved cars and vegetation; the baseline is the
    same as with changes).
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
            if not sc.st["changes"]:
                extra = {"moved_car": extra["moved_car"]}
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
