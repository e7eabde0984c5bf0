"""Find the flights waiting in an inbox folder.

An inbox holds, at its top level or one folder down:

* GeoTIFF orthophotos (``*.tif`` / ``*.tiff``), e.g. ``2024-05-01_north.tif`` or
  ``night_01/flight.tif``;
* OpenDroneMap project folders, recognised by ``<project>/odm_orthophoto/odm_orthophoto.tif``.

Each flight may carry sidecar metadata (JSON or YAML) with ``date``, ``flight_id`` and
``district``: ``<stem>.json|.yaml|.yml`` beside a GeoTIFF, or ``flight.json|yaml|yml`` /
``metadata.json|yaml|yml`` at the top of an ODM project. Missing fields fall back to the GeoTIFF's
``TIFFTAG_DATETIME`` tag, then the file's modification date (logged as a warning).

>>> flight_id_from_path(Path("inbox/night_01/flight.tif"), Path("inbox"))
'night_01'
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml

from geo.errors import BuildwatchError, InputFileError
from pipelines.nightly.rasterinfo import file_sha256, parse_date, read_raster_info
from pipelines.safety import safe_name

__all__ = [
    "FlightInput",
    "scan_inbox",
    "describe_flight",
    "read_sidecar",
    "find_sidecar",
    "flight_id_from_path",
    "InboxProblem",
    "survey_inbox",
]

log = logging.getLogger(__name__)

_TIF_SUFFIXES = (".tif", ".tiff")
_ODM_ORTHO = Path("odm_orthophoto") / "odm_orthophoto.tif"
_SIDECAR_SUFFIXES = (".json", ".yaml", ".yml")
_GENERIC_STEMS = {"flight", "orthophoto", "ortho", "odm_orthophoto", "image", "mosaic"}


@dataclass(frozen=True)
class FlightInput:
    """One flight found in the inbox.

    Attributes:
        flight_id: id from the sidecar, else the ODM project / folder name / file stem.
        orthophoto: path of the GeoTIFF orthophoto.
        date: acquisition date (sidecar, then TIFF tag, then file modification date).
        date_source: where ``date`` came from.
        district: district code or name from the sidecar, when given.
        content_hash: SHA-256 of the orthophoto's bytes (what "already processed" means).
        kind: ``geotiff`` or ``odm`` (an OpenDroneMap project folder).
        sidecar: path of the sidecar metadata file, when one was found.
    """

    flight_id: str
    orthophoto: Path
    date: dt.date
    date_source: Literal["sidecar", "tiff_tag", "mtime"]
    district: str | None
    content_hash: str
    kind: Literal["geotiff", "odm"]
    sidecar: Path | None = None


def read_sidecar(path: Path) -> dict[str, Any]:
    """Read a JSON/YAML sidecar into a dict; one clear error if it is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InputFileError(
            f"{path}: sidecar metadata is not valid JSON/YAML ({exc}); fix or remove it"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputFileError(
            f"{path}: sidecar metadata must be a mapping (date, flight_id, district), got {type(data).__name__}"
        )
    return data


def find_sidecar(orthophoto: Path, project: Path | None = None) -> Path | None:
    """The sidecar of an orthophoto (``<stem>.json`` beside it) or of an ODM project folder."""
    candidates = [orthophoto.with_suffix(s) for s in _SIDECAR_SUFFIXES]
    if project is not None:
        candidates = [
            project / f"{name}{s}" for name in ("flight", "metadata") for s in _SIDECAR_SUFFIXES
        ]
    return next((c for c in candidates if c.is_file()), None)


def flight_id_from_path(orthophoto: Path, inbox: Path) -> str:
    """Fallback flight id: the file stem, or its folder's name when the stem is generic."""
    stem = orthophoto.stem
    parent = orthophoto.parent
    if stem.lower() in _GENERIC_STEMS and parent != inbox:
        return parent.name
    return stem


def _candidates(inbox: Path, ignore: Sequence[str]) -> list[tuple[Path, Path | None]]:
    """(orthophoto, ODM project or None) for every flight-looking file in the inbox."""
    found: list[tuple[Path, Path | None]] = []
    entries = sorted(inbox.iterdir())
    for entry in entries:
        if any(fnmatch(entry.name, pat) for pat in ignore) or entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in _TIF_SUFFIXES:
            found.append((entry, None))
        elif entry.is_dir() and (entry / _ODM_ORTHO).is_file():
            found.append((entry / _ODM_ORTHO, entry))
        elif entry.is_dir():
            for sub in sorted(entry.iterdir()):
                if (
                    sub.is_file()
                    and sub.suffix.lower() in _TIF_SUFFIXES
                    and not any(fnmatch(sub.name, pat) for pat in ignore)
                ):
                    found.append((sub, None))
    return found


def describe_flight(
    path: Path,
    *,
    inbox: Path | None = None,
    flight_id: str | None = None,
    date: dt.date | str | None = None,
) -> FlightInput:
    """A :class:`FlightInput` for a GeoTIFF or an ODM project folder; arguments beat the sidecar.

    Raises:
        InputFileError: the path is neither a GeoTIFF nor an ODM project, or its sidecar is bad.
    """
    path = Path(path)
    project: Path | None = None
    if path.is_dir():
        if not (path / _ODM_ORTHO).is_file():
            raise InputFileError(
                f"{path}: a folder but not an OpenDroneMap project (no {_ODM_ORTHO}); pass the orthophoto"
            )
        project, ortho = path, path / _ODM_ORTHO
    elif path.is_file() and path.suffix.lower() in _TIF_SUFFIXES:
        ortho = path
    else:
        raise InputFileError(f"{path}: not a GeoTIFF (.tif/.tiff) or an ODM project folder")
    sidecar = find_sidecar(ortho, project)
    meta = read_sidecar(sidecar) if sidecar else {}
    where = str(sidecar or ortho)
    fallback_id = (
        project.name if project is not None else flight_id_from_path(ortho, inbox or ortho.parent)
    )
    try:  # the id names the flight's output folder: never a path
        flight_id = safe_name(flight_id or meta.get("flight_id") or fallback_id, "flight id")
    except ValueError as exc:
        raise InputFileError(f"{where}: {exc}") from exc
    date_source: Literal["sidecar", "tiff_tag", "mtime"]
    if date:
        day, date_source = parse_date(date, where=f"{ortho} (given date)"), "sidecar"
    elif meta.get("date"):
        day, date_source = parse_date(meta["date"], where=where), "sidecar"
    else:
        info_date = read_raster_info(ortho).date
        if info_date is not None:
            day, date_source = info_date, "tiff_tag"
        else:
            day = dt.date.fromtimestamp(ortho.stat().st_mtime)
            date_source = "mtime"
            log.warning(
                "%s: no date in a sidecar or TIFF tag; using the file date %s (add a sidecar %s)",
                ortho,
                day,
                ortho.with_suffix(".json").name,
            )
    district = meta.get("district") or meta.get("district_code")
    return FlightInput(
        flight_id=flight_id,
        orthophoto=ortho,
        date=day,
        date_source=date_source,
        district=str(district) if district else None,
        content_hash=file_sha256(ortho),
        kind="odm" if project is not None else "geotiff",
        sidecar=sidecar,
    )


@dataclass(frozen=True)
class InboxProblem:
    """A flight in the inbox that cannot be taken this pass; the others go on without it.

    ``status`` is ``waiting`` (still being written: taken once it has stopped changing) or
    ``failed`` (bad sidecar, unreadable file, a flight id claimed twice).
    """

    path: Path
    flight_id: str
    status: Literal["waiting", "failed"]
    error: str
    exit_code: int = 0


def _newest_mtime(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    sidecars = [path.with_suffix(s) for s in _SIDECAR_SUFFIXES] if path.is_file() else []
    sidecars += [path.parent / f"{n}{s}" for n in ("flight", "metadata") for s in _SIDECAR_SUFFIXES]
    stamps = [p.stat().st_mtime for p in [*files, *sidecars] if p.is_file()]
    return max(stamps) if stamps else 0.0


def survey_inbox(
    inbox: Path,
    *,
    ignore: Sequence[str] = (),
    settle_seconds: float = 0.0,
    now: float | None = None,
) -> tuple[list[FlightInput], list[InboxProblem]]:
    """The flights in ``inbox`` ordered by (date, flight_id), and the ones that must wait or
    failed — each on its own: one bad or half-copied flight never stops the others.

    A flight whose files changed less than ``settle_seconds`` ago is ``waiting`` (a copy still
    running); a malformed sidecar or unreadable file is ``failed``; when two different files
    claim one flight id, the second is ``failed``.

    Raises:
        InputFileError: the inbox itself is missing.
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise InputFileError(
            f"inbox {inbox} is not a folder; create it or fix nightly.inbox in the config"
        )
    clock = time.time() if now is None else now
    flights: list[FlightInput] = []
    problems: list[InboxProblem] = []
    for ortho, project in _candidates(inbox, ignore):
        path = project or ortho
        try:
            fallback = safe_name(
                path.name if project is not None else flight_id_from_path(ortho, inbox), "flight"
            )
        except ValueError:
            fallback = "unnamed"
        age = clock - _newest_mtime(path)
        if age < settle_seconds:
            problems.append(
                InboxProblem(
                    path,
                    fallback,
                    "waiting",
                    f"{path}: changed {age:.0f} s ago (< nightly.settle_seconds "
                    f"{settle_seconds:g}); still being copied? taken on a later pass",
                )  # fmt: skip
            )
            continue
        try:
            flights.append(describe_flight(path, inbox=inbox))
        except BuildwatchError as exc:
            problems.append(InboxProblem(path, fallback, "failed", str(exc), exc.exit_code))
    seen: dict[str, FlightInput] = {}
    for flight in flights:
        other = seen.get(flight.flight_id)
        if other is not None and other.content_hash != flight.content_hash:
            problems.append(
                InboxProblem(
                    flight.orthophoto,
                    flight.flight_id,
                    "failed",
                    f"inbox {inbox}: flight id {flight.flight_id!r} is used by both "
                    f"{other.orthophoto} and {flight.orthophoto}; give one of them a sidecar with "
                    "a distinct flight_id",
                    InputFileError.exit_code,
                )  # fmt: skip
            )
            continue
        seen[flight.flight_id] = flight
    return sorted(seen.values(), key=lambda f: (f.date, f.flight_id)), problems


def scan_inbox(inbox: Path, *, ignore: Sequence[str] = ()) -> list[FlightInput]:
    """Every flight in ``inbox``, ordered by (date, flight_id) — the order they must be ingested.

    Raises:
        InputFileError: the inbox is missing, a sidecar is malformed, or two different files
            claim the same flight id (:func:`survey_inbox` reports these per flight instead).
    """
    flights, problems = survey_inbox(inbox, ignore=ignore)
    if problems:
        raise InputFileError(problems[0].error)
    return flights
