"""Which flight is this? The flight id (and date) a run stamps on its leads, from the metadata.

Lead ids are ``<flight_id>-00001``, so two nights must never share a flight id even when both
rasters are called ``flight.tif`` (as in ``night_01/flight.tif``, ``night_02/flight.tif``). The
flight id is taken, first match wins, from:

1. the explicit ``flight_id`` argument;
2. the sidecar metadata beside the raster, ``<stem>.json|.yaml|.yml`` (key ``flight_id``), read
   by the nightly inbox's own reader (:func:`pipelines.nightly.inbox.find_sidecar` /
   :func:`~pipelines.nightly.inbox.read_sidecar`); its ``date`` becomes the flight date when
   none was given;
3. the GeoTIFF metadata tag ``FLIGHT_ID``;
4. the file stem.

The baseline id is the baseline's ``FLIGHT_ID`` tag, else its file stem.

>>> resolve_identity(Path("no/such/night.tif"), Path("no/such/base.tif"), flight_id="F7")
FlightIdentity(flight_id='F7', baseline_id='base', flight_date=None, source='argument')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import rasterio
from rasterio.errors import RasterioIOError

from geo.errors import ConfigError
from pipelines.nightly.inbox import find_sidecar, read_sidecar
from pipelines.nightly.rasterinfo import parse_date
from pipelines.safety import safe_name

__all__ = ["FlightIdentity", "ID_TAG", "raster_tag", "resolve_identity"]

log = logging.getLogger(__name__)

#: GeoTIFF metadata tag (default domain) holding a raster's flight id
ID_TAG = "FLIGHT_ID"


@dataclass(frozen=True)
class FlightIdentity:
    """The ids a run stamps on its leads; ``source`` says where the flight id came from."""

    flight_id: str
    baseline_id: str
    flight_date: date | None
    source: Literal["argument", "sidecar", "tag", "stem"]


def raster_tag(path: Path, key: str) -> str | None:
    """A GeoTIFF metadata tag's value (stripped), or None when absent, empty or unreadable."""
    if not path.is_file():
        return None
    try:
        with rasterio.open(path) as src:
            value = src.tags().get(key)
    except RasterioIOError:
        return None  # opening the pair reports unreadable rasters with a clear message
    text = "" if value is None else str(value).strip()
    return text or None


def resolve_identity(
    flight: Path,
    baseline: Path,
    *,
    flight_id: str | None = None,
    flight_date: date | None = None,
) -> FlightIdentity:
    """The flight id, baseline id and flight date for a flight/baseline pair (see module doc).

    Raises:
        InputFileError: the sidecar exists but is not a JSON/YAML mapping.
        RasterError: the sidecar's ``date`` is not a date.
    """
    flight, baseline = Path(flight), Path(baseline)
    baseline_id = raster_tag(baseline, ID_TAG) or baseline.stem
    source: Literal["argument", "sidecar", "tag", "stem"] = "argument"
    sidecar = find_sidecar(flight) if not (flight_id and flight_date) else None
    meta = read_sidecar(sidecar) if sidecar is not None else {}
    if flight_date is None and meta.get("date"):
        flight_date = parse_date(meta["date"], where=f"{sidecar} key 'date'")
    if not flight_id:
        flight_id, source = str(meta.get("flight_id") or "").strip(), "sidecar"
    if not flight_id:
        flight_id, source = raster_tag(flight, ID_TAG) or "", "tag"
    if not flight_id:
        flight_id, source = flight.stem, "stem"
    try:  # ids become lead ids and file/folder names: one safe form, whatever the source
        flight_id = safe_name(flight_id, f"flight id (from the {source})")
        baseline_id = safe_name(baseline_id, "baseline id")
    except ValueError as exc:
        raise ConfigError(f"{flight}: {exc}") from exc
    log.debug("%s: flight id %r (from %s), baseline id %r", flight, flight_id, source, baseline_id)
    return FlightIdentity(flight_id, baseline_id, flight_date, source)
