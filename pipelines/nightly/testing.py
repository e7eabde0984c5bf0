"""A tiny deterministic stand-in for the per-flight job, for tests and the nightly demo.

:class:`FakeBackend` implements :class:`pipelines.nightly.job.FlightBackend` without a model:
flight and baseline must share one pixel grid; each tile's "detection" is the bounding box of the
pixels whose colour changed by more than ``threshold`` (:func:`fake_predict`, importable by dask
workers). Its ledger is a SQLite file with an append-only ``sightings`` table, so ingesting a
flight twice shows up as duplicate rows. Two environment variables help crash tests:
``BUILDWATCH_FAKE_TILE_DELAY`` (seconds of sleep per tile) and ``BUILDWATCH_FAKE_TILE_LOG`` (a
file that gets one ``flight_id tile_index pid`` line per predicted tile).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from geo.atomic import write_text_atomic
from models.candidates import Candidates
from pipelines.nightly.job import FlightOutputs, IngestOutcome, PairRef

__all__ = ["FakeBackend", "fake_predict", "write_pair"]


def fake_predict(tiles: list[np.ndarray], threshold: int = 40) -> list[Candidates]:
    """Per HxWx6 tile (flight RGB + baseline RGB): the bounding box of changed pixels, if any."""
    out = []
    for tile in tiles:
        diff = np.abs(tile[..., :3].astype(np.int16) - tile[..., 3:].astype(np.int16)).mean(axis=2)
        rows, cols = np.nonzero(diff > threshold)
        if rows.size == 0:
            out.append(Candidates.empty())
            continue
        score = float(min(1.0, diff[rows, cols].mean() / 255 + 0.5))
        cls = 0 if tile[rows, cols, :3].mean() > 128 else 1
        xyxy = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], np.float32)
        out.append(Candidates(xyxy, np.array([score], np.float32), np.array([cls])))
    return out


def _grid(width: int, height: int, size: int) -> list[tuple[int, int]]:
    return [(r, c) for r in range(0, height, size) for c in range(0, width, size)]


@dataclass(frozen=True)
class FakeBackend:
    """Stand-in per-flight job (see module docstring); ``tile_size`` px tiles, no overlap."""

    tile_size: int = 64
    threshold: int = 40
    config: Any = field(default=None, compare=False, repr=False)  # accepted, unused

    def tile_indices(self, pair: PairRef) -> list[int]:
        with rasterio.open(pair.flight) as src:
            return list(range(len(_grid(src.width, src.height, self.tile_size))))

    def checkpoint_key(self, pair: PairRef) -> dict[str, Any]:
        return {
            "backend": "fake",
            "tile": self.tile_size,
            "threshold": self.threshold,
            "flight": pair.flight,
            "baseline": pair.baseline,
        }

    def predict_tiles(self, pair: PairRef, indices: Sequence[int]) -> dict[int, Candidates | None]:
        delay = float(os.environ.get("BUILDWATCH_FAKE_TILE_DELAY", "0") or 0)
        log_path = os.environ.get("BUILDWATCH_FAKE_TILE_LOG")
        with rasterio.open(pair.flight) as fsrc, rasterio.open(pair.baseline) as bsrc:
            grid = _grid(fsrc.width, fsrc.height, self.tile_size)
            arrays = []
            for i in indices:
                r, c = grid[i]
                win = Window(c, r, self.tile_size, self.tile_size)
                a = fsrc.read((1, 2, 3), window=win, boundless=True, fill_value=0)
                b = bsrc.read((1, 2, 3), window=win, boundless=True, fill_value=0)
                arrays.append(np.concatenate([a, b]).transpose(1, 2, 0))
        result: dict[int, Candidates | None] = {}
        for i, cand in zip(indices, fake_predict(arrays, self.threshold), strict=True):
            if delay:
                time.sleep(delay)
            if log_path:
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(f"{pair.flight_id} {i} {os.getpid()}\n")
            result[int(i)] = cand.with_tile_id(int(i))
        return result

    def finish_flight(
        self, pair: PairRef, candidates: Mapping[int, Candidates | None], out_dir: Path
    ) -> FlightOutputs:
        with rasterio.open(pair.flight) as src:
            transform, grid = src.transform, _grid(src.width, src.height, self.tile_size)
        leads = []
        for i in sorted(candidates):
            r, c = grid[i]
            cands = candidates[i]
            if cands is None:
                continue
            for (x0, y0, x1, y1), s, k in zip(cands.xyxy, cands.score, cands.class_id, strict=True):
                cx, cy = transform @ (c + (x0 + x1) / 2, r + (y0 + y1) / 2)
                leads.append(
                    {
                        "lead_id": f"{pair.flight_id}-{len(leads) + 1:05d}",
                        "x": round(float(cx), 2),
                        "y": round(float(cy), 2),
                        "score": round(float(s), 4),
                        "class_id": int(k),
                    }
                )
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "leads.json"
        write_text_atomic(path, json.dumps(leads, indent=1))
        return FlightOutputs(out_dir=out_dir, leads_path=path, n_leads=len(leads))

    def ingest(self, pair: PairRef, outputs: FlightOutputs) -> IngestOutcome:
        leads = json.loads(outputs.leads_path.read_text(encoding="utf-8"))
        con = sqlite3.connect(outputs.out_dir.parent / "fake-ledger.sqlite", isolation_level=None)
        con.execute(
            "CREATE TABLE IF NOT EXISTS cases (key TEXT PRIMARY KEY, first TEXT, last TEXT)"
        )
        con.execute("CREATE TABLE IF NOT EXISTS sightings (flight_id TEXT, key TEXT)")
        new = updated = 0
        with con:
            con.execute("BEGIN")
            for lead in leads:
                key = f"{round(lead['x'] / 4) * 4}:{round(lead['y'] / 4) * 4}:{lead['class_id']}"
                con.execute("INSERT INTO sightings VALUES (?, ?)", (pair.flight_id, key))
                if con.execute("SELECT 1 FROM cases WHERE key = ?", (key,)).fetchone():
                    con.execute("UPDATE cases SET last = ? WHERE key = ?", (pair.flight_id, key))
                    updated += 1
                else:
                    con.execute(
                        "INSERT INTO cases VALUES (?, ?, ?)", (key, pair.flight_id, pair.flight_id)
                    )
                    new += 1
        con.close()
        return IngestOutcome(new_cases=new, updated_cases=updated)

    def refresh(self, output_root: Path) -> list[Path]:
        db = output_root / "fake-ledger.sqlite"
        n = 0
        if db.is_file():
            con = sqlite3.connect(db)
            n = con.execute("SELECT count(*) FROM cases").fetchone()[0]
            con.close()
        path = output_root / "maps" / "index.html"
        write_text_atomic(path, f"<html><body><p>{n} cases</p></body></html>\n", mkdir=True)
        return [path]


def write_pair(
    folder: Path,
    seed: int,
    *,
    size: int = 256,
    changes: int = 4,
    date: str = "2024-05-01",
    baseline_date: str = "2024-01-01",
    crs: str = "EPSG:4544",
) -> tuple[Path, Path]:
    """A seeded flight/baseline GeoTIFF pair on one grid, the flight with ``changes`` new boxes."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 90, (3, size, size), dtype=np.uint8)
    flight = base.copy()
    for _ in range(changes):
        r, c = rng.integers(0, size - 24, 2)
        h, w = rng.integers(8, 24, 2)
        flight[:, r : r + h, c : c + w] = rng.integers(150, 250) if rng.random() < 0.5 else 0
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": from_origin(500_000, 3_300_000, 0.2, 0.2),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, arr, when in (("flight", flight, date), ("baseline", base, baseline_date)):
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr)
            dst.update_tags(TIFFTAG_DATETIME=when.replace("-", ":") + " 22:00:00")
        paths.append(path)
    return paths[0], paths[1]
