"""Tile candidates -> map candidates: the in-process tile loop, or candidates computed elsewhere.

Both give the same :class:`~pipelines.leads.georef.MapCandidates` for the same tiles: a tile's
transform and shape come from its window on the pair's working grid. Also the run facts that a
summary needs from an open pair (valid coverage, registration, footprint areas).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import cv2
import numpy as np
import shapely

from geo.errors import ModelError
from models.candidates import Candidates
from pipelines.leads.georef import MapCandidates, georeference

__all__ = [
    "Predict",
    "tile_candidates",
    "precomputed_candidates",
    "usable_coverage",
    "registration_dict",
    "coverage_dict",
]

Predict = Callable[[list[np.ndarray]], list[Candidates]]


def _batched(items: Iterator[Any], n: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _six_band(tiles: list[Any]) -> Any:
    """The tile pairs as (h, w, 6) arrays (flight RGB, then baseline RGB): one ``(n, h, w, 6)``
    block when they share a size — a model that takes such a batch uses it without copying —
    else a list."""
    shapes = {t.flight.shape[:2] for t in tiles}
    if len(shapes) != 1:
        return [np.concatenate([t.flight, t.baseline], axis=-1) for t in tiles]
    h, w = shapes.pop()
    block = np.empty((len(tiles), h, w, 6), np.uint8)
    for i, t in enumerate(tiles):
        # cv2 interleaves the six planes into the block in place: 2.4x faster here than two
        # strided numpy assignments (8 tiles of 512 px: 6.7 against 16.2 ms)
        cv2.merge([*cv2.split(t.flight), *cv2.split(t.baseline)], dst=block[i])
    return block


def tile_candidates(
    pair: Any,
    predict: Predict,
    size: int,
    overlap: int,
    batch: int,
    prefetch: int,
    progress: Callable[[int], None] | None,
) -> tuple[MapCandidates, int, int]:
    """Read the pair's tiles in batches, predict, georeference; (candidates, tiles, raw count)."""
    parts: list[MapCandidates] = []
    n_tiles = n_raw = 0
    for tiles in _batched(iter(pair.tiles(size=size, overlap=overlap, prefetch=prefetch)), batch):
        images = _six_band(tiles)
        results = predict(images)
        if len(results) != len(tiles):
            raise ModelError(f"predict returned {len(results)} results for {len(tiles)} tiles")
        for t, cands in zip(tiles, results, strict=True):
            n_raw += len(cands)
            h, w = t.flight.shape[:2]
            parts.append(georeference(cands, t.transform, (h, w), tile_id=int(t.tile.index)))
        n_tiles += len(tiles)
        if progress is not None:
            progress(len(tiles))
    return MapCandidates.concat(parts), n_tiles, n_raw


def precomputed_candidates(
    pair: Any,
    candidates: Mapping[int, Candidates | None],
    size: int,
    overlap: int,
    progress: Callable[[int], None] | None,
) -> tuple[MapCandidates, int, int]:
    """Georeference candidates computed elsewhere (e.g. on dask workers) from the tile windows.

    No pixels are read: each tile's transform and shape come from ``pair.tile_windows``, exactly
    as :meth:`tiles` would produce them, so the result equals the in-process tile loop's.
    """
    windows = pair.tile_windows(size, overlap)
    expected = {int(w.index) for w in windows}
    given = {int(i) for i in candidates}
    if given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        raise ModelError(
            f"precomputed candidates do not match this pair's {len(expected)} tiles of {size} px "
            f"(overlap {overlap}): missing tiles {missing[:5]}, unknown tiles {extra[:5]}; "
            "compute them with the same tiling and co-registration settings"
        )
    parts: list[MapCandidates] = []
    n_tiles = n_raw = 0
    for w in windows:
        cands = candidates[int(w.index)]
        if cands is None:  # no valid pixels: the tile loop skips such tiles too
            continue
        n_tiles += 1
        n_raw += len(cands)
        transform = w.transform(pair.transform)
        parts.append(georeference(cands, transform, (w.height, w.width), tile_id=int(w.index)))
    if progress is not None and n_tiles:
        progress(n_tiles)
    return MapCandidates.concat(parts), n_tiles, n_raw


def usable_coverage(footprints: Any, registration: Any) -> shapely.Geometry:
    """The compared area: the common footprint minus what is not comparable (misregistered)."""
    common = footprints.common
    failed = getattr(registration, "not_comparable", None)
    if failed is None or failed.is_empty:
        return common
    return shapely.make_valid(common.difference(failed))


def registration_dict(reg: Any) -> dict[str, Any]:
    """The co-registration outcome as plain JSON values (for the run summary)."""
    out: dict[str, Any] = {}
    keys = ("status", "decision", "message", "mode", "dx_m", "dy_m", "local_max_m")
    for key in keys:
        value = getattr(reg, key, None)
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    for key in ("residual_px", "residual_ref_px", "residual_m"):
        value = getattr(reg, key, None)
        out[key] = round(float(value), 3) if value is not None and np.isfinite(value) else None
    gate = getattr(reg, "gate", None)
    if gate is not None:
        out["gate"] = {
            "ref_gsd_m": round(gate.ref_gsd, 4),
            "max_residual_px": gate.max_residual_px,
            "max_residual_m": round(gate.max_residual_m, 3),
            "max_window_residual_px": gate.max_window_px,
            "min_psr": gate.min_psr,
        }
    out["estimates"] = f"{getattr(reg, 'n_estimates', 0)}/{getattr(reg, 'n_windows', 0)}"
    failed = getattr(reg, "not_comparable", None)
    out["not_comparable_m2"] = round(float(failed.area), 1) if failed is not None else 0.0
    return out


def coverage_dict(fp: Any, registration: Any = None) -> dict[str, float]:
    """Areas (m²) of the pair: flight, baseline, common, unknown (flight only), compared and not
    comparable (common but misregistered)."""

    def area(g: shapely.Geometry | None) -> float:
        return round(float(g.area), 1) if g is not None else 0.0

    out = {k: area(getattr(fp, k, None)) for k in ("flight", "baseline", "common", "unknown")}
    out["compared"] = area(usable_coverage(fp, registration))
    out["not_comparable"] = area(getattr(registration, "not_comparable", None))
    return out
