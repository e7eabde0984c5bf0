"""Training chips from a user-labelled real pair: two rasters + a polygon layer of new structures.

The pair is tiled on the working grid by :func:`geo.tiles.open_pair` (co-registered, baseline
normalised), so chips look exactly like what the detector sees at run time. Each label polygon
becomes a box in every tile it touches (clipped to the tile). Tiles without labels are *negatives*:
all tiles touching ``negatives`` polygons (e.g. leads rejected in the ledger: hard negatives) are
kept, plus a random ``negative_fraction`` of the others.

Two label layouts are understood (:func:`split_labels`):

* a plain polygon layer of new structures (optional ``class`` column, else ``new_building``);
* the ledger's export (``buildwatch cases export-labels labels.gpkg``, layer ``labels``): a
  ``label`` column where ``confirmed`` rows are positives (boxes) and ``rejected`` rows are hard
  negatives (their tiles are kept with no box there); with ``flight_id`` only the rows of that
  flight are used.

A deterministic ``val_fraction`` of the chips goes to the ``val`` split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from geo.errors import VectorError
from models.classes import CLASS_IDS
from models.datasets.writer import Box, write_chip, write_data_yaml

__all__ = ["build_labelled", "polygon_boxes", "split_labels", "LABEL_VALUES"]

#: values of the ledger export's ``label`` column
LABEL_VALUES = ("confirmed", "rejected")

log = logging.getLogger(__name__)


def polygon_boxes(geoms, classes, transform, width: int, height: int) -> list[Box]:  # type: ignore[no-untyped-def]
    """Pixel boxes (clipped to the tile) of the polygons touching a tile with ``transform``."""
    inverse = ~transform
    boxes: list[Box] = []
    for geom, cls in zip(geoms, classes, strict=True):
        if geom is None or geom.is_empty:
            continue
        x0, y0, x1, y1 = geom.bounds
        cols, rows = zip(
            *(inverse @ (x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))), strict=True
        )
        c0, c1 = max(0.0, min(cols)), min(float(width), max(cols))
        r0, r1 = max(0.0, min(rows)), min(float(height), max(rows))
        if c1 - c0 >= 2 and r1 - r0 >= 2:
            boxes.append((CLASS_IDS[cls], c0, r0, c1, r1))
    return boxes


def split_labels(gdf, source: str = "labels", flight_id: str | None = None):  # type: ignore[no-untyped-def]
    """``(positives, hard negatives)`` of a label layer (see the module docstring)."""
    if flight_id is not None:
        if "flight_id" not in gdf.columns:
            raise VectorError(
                f"{source}: flight_id {flight_id!r} given but the layer has no 'flight_id' "
                "column; drop flight_id from the config or export the labels from the ledger"
            )
        gdf = gdf[gdf["flight_id"].astype(str) == str(flight_id)]
    if "label" not in gdf.columns:
        return gdf, gdf.iloc[0:0]
    label = gdf["label"].fillna("").astype(str)
    bad = sorted(set(label) - set(LABEL_VALUES))
    if bad:
        raise VectorError(
            f"{source}: column 'label' has values {bad}; use confirmed (a real new structure) "
            "or rejected (a false detection: hard negative)"
        )
    return gdf[label == "confirmed"], gdf[label == "rejected"]


def build_labelled(
    flight: str | Path,
    baseline: str | Path,
    labels: str | Path,
    root: str | Path,
    *,
    split: str = "train",
    layer: str | None = None,
    class_column: str = "class",
    default_class: str = "new_building",
    negatives: str | Path | None = None,
    negative_fraction: float = 0.2,
    flight_id: str | None = None,
    val_fraction: float = 0.0,
    tag: str = "",
    gsd: float = 0.2,
    size: int = 512,
    overlap: int = 64,
    seed: int = 0,
) -> Path:
    """Tile a labelled pair into ``root`` (``split``, ``val_fraction`` to val); returns ``data.yaml``."""
    import geopandas as gpd
    import pandas as pd

    from geo.tiles import open_pair

    try:
        raw = gpd.read_file(labels, layer=layer or _first_layer(labels))
    except Exception as exc:
        where = f"{labels}" + (f" layer {layer!r}" if layer else "")
        raise VectorError(f"{where}: cannot read the labels ({exc})") from exc
    gdf, rejected = split_labels(raw, str(labels), flight_id)
    if class_column in gdf.columns:
        classes = [str(c) if c else default_class for c in gdf[class_column]]
    else:
        classes = [default_class] * len(gdf)
    bad = sorted({c for c in classes if c not in CLASS_IDS})
    if bad:
        raise VectorError(
            f"{labels}: column {class_column!r} has values {bad}; use new_building or construction"
        )
    neg = gpd.read_file(negatives, layer=_first_layer(negatives)) if negatives else None
    if len(rejected):
        extra = rejected[["geometry"]]
        if neg is not None and len(neg):
            extra = gpd.GeoDataFrame(
                pd.concat([extra, neg[["geometry"]].to_crs(extra.crs)], ignore_index=True),
                geometry="geometry",
                crs=extra.crs,
            )
        neg = extra
    rng = np.random.default_rng(seed)
    stem = Path(flight).stem
    n_pos = n_neg = n_hard = 0
    with open_pair(flight, baseline, gsd=gsd) as pair:
        if gdf.crs is None:
            raise VectorError(f"{labels}: layer has no CRS; set one (e.g. the flight's EPSG)")
        gdf = gdf.to_crs(pair.crs)
        sindex = gdf.sindex
        neg_index = neg.to_crs(pair.crs).sindex if neg is not None and len(neg) else None
        for tp in pair.tiles(size=size, overlap=overlap):
            h, w = tp.flight.shape[:2]
            t = tp.transform
            xs, ys = (t.c, t.c + t.a * w), (t.f, t.f + t.e * h)
            bbox = (min(xs), min(ys), max(xs), max(ys))
            hits = sindex.query(_box(bbox), predicate="intersects")
            boxes = polygon_boxes(gdf.geometry.values[hits], [classes[i] for i in hits], t, w, h)
            if not tp.valid.any():
                continue
            hard = neg_index is not None and len(
                neg_index.query(_box(bbox), predicate="intersects")
            )
            if not boxes and not hard and rng.random() >= negative_fraction:
                continue
            flight_px = np.where(tp.valid[..., None], tp.flight, 0).astype(np.uint8)
            base_px = np.where(tp.valid[..., None], tp.baseline, 0).astype(np.uint8)
            to = "val" if val_fraction and rng.random() < val_fraction else split
            write_chip(
                root, to, f"lab_{tag or stem}_{int(tp.tile.index):05d}", flight_px, base_px, boxes
            )
            n_pos += bool(boxes)
            n_neg += not boxes
            n_hard += bool(hard)
    log.info("labelled pair %s: %d chips with labels, %d negatives (%d touch hard negatives)",
             stem, n_pos, n_neg, n_hard)  # fmt: skip
    return write_data_yaml(root)


def _box(bounds: tuple[float, float, float, float]):  # type: ignore[no-untyped-def]
    from shapely.geometry import box

    return box(*bounds)


def _first_layer(path: str | Path) -> str:
    """The first data layer of a vector file (a GeoPackage's ``layer_styles`` is not data)."""
    import pyogrio

    names = [str(n) for n, _ in pyogrio.list_layers(path) if str(n) != "layer_styles"]
    if not names:
        raise VectorError(f"{path}: no layer with data; pass the labels GeoPackage")
    return names[0]
