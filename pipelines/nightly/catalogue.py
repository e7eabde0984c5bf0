"""The imagery catalogue: a folder of baseline rasters indexed into one GeoJSON file.

Each entry records the raster's footprint (EPSG:4326 polygon), acquisition date, CRS, GSD, path
and content hash. :func:`pick_baseline` chooses a flight's baseline: among entries dated strictly
before the flight that cover at least ``min_coverage`` of it, the most recent; ties go to the
largest coverage, then the image id (so the choice is deterministic).

Dates come from a sidecar (``<stem>.json|yaml`` with ``date``), else the ``TIFFTAG_DATETIME``
tag; a baseline with neither is an error (a wrong date would pick the wrong baseline silently).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyproj import CRS
from shapely import Polygon, from_geojson, to_geojson

from geo.atomic import write_text_atomic
from geo.errors import CoverageError, InputFileError
from pipelines.nightly.inbox import find_sidecar, read_sidecar
from pipelines.nightly.rasterinfo import file_sha256, parse_date, read_raster_info, to_crs

__all__ = ["CatalogueEntry", "build_catalogue", "load_catalogue", "pick_baseline", "coverage"]

log = logging.getLogger(__name__)

_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class CatalogueEntry:
    """One baseline raster in the catalogue."""

    image_id: str
    path: Path
    date: dt.date
    crs: str
    gsd_m: float
    footprint: Polygon  # EPSG:4326
    content_hash: str
    size: int
    mtime_ns: int

    def to_feature(self) -> dict[str, object]:
        return {
            "type": "Feature",
            "geometry": json.loads(to_geojson(self.footprint)),
            "properties": {
                "image_id": self.image_id,
                "path": str(self.path),
                "date": self.date.isoformat(),
                "crs": self.crs,
                "gsd_m": self.gsd_m,
                "content_hash": self.content_hash,
                "size": self.size,
                "mtime_ns": self.mtime_ns,
            },
        }

    @classmethod
    def from_feature(cls, feature: dict[str, object], where: Path) -> CatalogueEntry:
        try:
            props = dict(feature["properties"])  # type: ignore[call-overload]
            geom = from_geojson(json.dumps(feature["geometry"]))
            return cls(
                image_id=str(props["image_id"]),
                path=Path(props["path"]),
                date=dt.date.fromisoformat(str(props["date"])),
                crs=str(props["crs"]),
                gsd_m=float(props["gsd_m"]),
                footprint=geom,
                content_hash=str(props["content_hash"]),
                size=int(props["size"]),
                mtime_ns=int(props["mtime_ns"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(
                f"{where}: catalogue entry is malformed ({exc!r}); delete the file to rebuild it"
            ) from exc


def _index_one(path: Path) -> CatalogueEntry:
    info = read_raster_info(path)
    sidecar = find_sidecar(path)
    meta = read_sidecar(sidecar) if sidecar else {}
    if meta.get("date"):
        date = parse_date(meta["date"], where=str(sidecar))
    elif info.date is not None:
        date = info.date
    else:
        raise InputFileError(
            f"baseline {path}: no acquisition date (no sidecar {path.with_suffix('.json').name} "
            'with \'date\' and no TIFFTAG_DATETIME tag); add a sidecar like {"date": "2023-11-02"}'
        )
    stat = path.stat()
    return CatalogueEntry(
        image_id=str(meta.get("image_id") or path.stem),
        path=path.resolve(),
        date=date,
        crs=info.crs,
        gsd_m=info.gsd_m,
        footprint=info.footprint,
        content_hash=file_sha256(path),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )


def load_catalogue(path: Path) -> list[CatalogueEntry]:
    """Read a catalogue GeoJSON written by :func:`build_catalogue`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        features = data["features"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(
            f"{path}: not a buildwatch catalogue ({exc}); delete it to rebuild"
        ) from exc
    return [CatalogueEntry.from_feature(f, Path(path)) for f in features]


def build_catalogue(folder: Path, out_path: Path) -> list[CatalogueEntry]:
    """Index every GeoTIFF under ``folder`` into ``out_path`` (GeoJSON, written atomically).

    Entries whose file size and modification time are unchanged are reused from an existing
    catalogue, so a nightly refresh only hashes new or changed rasters.
    """
    folder, out_path = Path(folder), Path(out_path)
    if not folder.is_dir():
        raise InputFileError(
            f"catalogue folder {folder} is not a folder; fix nightly.catalogue_dir"
        )
    previous: dict[Path, CatalogueEntry] = {}
    if out_path.is_file():
        try:
            previous = {e.path: e for e in load_catalogue(out_path)}
        except InputFileError:
            log.warning("%s: unreadable, rebuilding it", out_path)
    entries = []
    for path in sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file()
    ):
        stat = path.stat()
        old = previous.get(path.resolve())
        if old is not None and old.size == stat.st_size and old.mtime_ns == stat.st_mtime_ns:
            entries.append(old)
        else:
            entries.append(_index_one(path))
    ids = [e.image_id for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputFileError(
            f"catalogue {folder}: image ids {dupes} are used by several rasters; rename one"
        )
    collection = {"type": "FeatureCollection", "features": [e.to_feature() for e in entries]}
    write_text_atomic(out_path, json.dumps(collection, ensure_ascii=False, indent=1), mkdir=True)
    log.info("catalogue %s: %d baseline rasters", out_path, len(entries))
    return entries


def coverage(flight_footprint: Polygon, baseline_footprint: Polygon, flight_crs: str) -> float:
    """Fraction of the flight's area (0..1) the baseline covers, measured in the flight's CRS."""
    crs = flight_crs if CRS.from_user_input(flight_crs).is_projected else "EPSG:3857"
    flight = to_crs(flight_footprint, "EPSG:4326", crs)
    base = to_crs(baseline_footprint, "EPSG:4326", crs)
    if flight.area <= 0:
        return 0.0
    return float(flight.intersection(base).area / flight.area)


def pick_baseline(
    entries: Sequence[CatalogueEntry],
    *,
    flight_id: str,
    flight_date: dt.date,
    flight_footprint: Polygon,
    flight_crs: str,
    min_coverage: float = 0.5,
) -> tuple[CatalogueEntry, float]:
    """The flight's baseline and its coverage: most recent earlier entry covering it.

    Raises:
        CoverageError: no catalogue entry dated before the flight covers ``min_coverage`` of it.
    """
    scored = []
    for entry in entries:
        if entry.date >= flight_date:
            continue
        cov = coverage(flight_footprint, entry.footprint, flight_crs)
        if cov >= min_coverage:
            scored.append((entry.date, cov, entry.image_id, entry))
    if not scored:
        raise CoverageError(
            f"flight {flight_id} ({flight_date}): no baseline in the catalogue ({len(entries)} rasters) "
            f"is dated before it and covers ≥{min_coverage:.0%} of it; add earlier imagery of this area "
            "to the catalogue folder or lower nightly.min_coverage"
        )
    # most recent first, then largest coverage, then image id (ascending) for determinism
    scored.sort(key=lambda s: (-s[0].toordinal(), -s[1], s[2]))
    best = scored[0]
    return best[3], best[1]
