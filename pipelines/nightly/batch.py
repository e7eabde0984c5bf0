"""``buildwatch batch``: re-process a list of historical flights (analysts, city-wide runs).

A manifest is CSV (header ``flight[,baseline][,date][,flight_id]``), YAML (a list of such
mappings, or ``{flights: [...]}``) or plain text (one flight path per line, ``#`` comments).
Relative paths are taken relative to the manifest's folder. A row without a baseline gets one
from the imagery catalogue (``nightly.catalogue_dir``), exactly as the nightly job does.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geo.errors import ConfigError, InputFileError
from pipelines.config import BuildwatchConfig
from pipelines.nightly.catalogue import build_catalogue
from pipelines.nightly.inbox import describe_flight
from pipelines.nightly.job import FlightBackend
from pipelines.nightly.runner import FlightTask, ProgressFn, _paths, process_flights
from pipelines.nightly.state import RunLock
from pipelines.nightly.summary import RunSummary

__all__ = ["ManifestRow", "read_manifest", "run_batch"]

log = logging.getLogger(__name__)

_KEYS = {"flight", "baseline", "date", "flight_id"}


@dataclass(frozen=True)
class ManifestRow:
    """One flight of a batch manifest."""

    flight: Path
    baseline: Path | None = None
    date: dt.date | str | None = None
    flight_id: str | None = None


def _row(raw: dict[str, Any], base: Path, where: str) -> ManifestRow:
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown column(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    if not raw.get("flight"):
        raise ConfigError(f"{where}: 'flight' is empty; give the orthophoto or ODM folder path")

    def path(value: Any) -> Path | None:
        if value in (None, ""):
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else base / p

    flight = path(raw["flight"])
    assert flight is not None
    return ManifestRow(
        flight=flight,
        baseline=path(raw.get("baseline")),
        date=raw.get("date") or None,
        flight_id=str(raw["flight_id"]) if raw.get("flight_id") else None,
    )


def read_manifest(path: Path) -> list[ManifestRow]:
    """Rows of a CSV/YAML/text manifest (see module docstring).

    Raises:
        ConfigError: unknown columns, an empty flight, or an unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"manifest {path} not found; pass a CSV, YAML or text list of flights")
    base = path.resolve().parent
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        rows = [
            _row(
                {k.strip(): (v or "").strip() for k, v in r.items() if k},
                base,
                f"{path} line {i + 2}",
            )
            for i, r in enumerate(reader)
        ]
    elif path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        items = data.get("flights") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ConfigError(f"{path}: expected a list of flights (or 'flights:' with a list)")
        rows = [
            _row(item if isinstance(item, dict) else {"flight": item}, base, f"{path} item {i + 1}")
            for i, item in enumerate(items)
        ]
    else:
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        rows = [_row({"flight": ln}, base, f"{path}") for ln in lines if ln]
    if not rows:
        raise ConfigError(f"manifest {path} lists no flights")
    return rows


def run_batch(
    config: BuildwatchConfig,
    backend: FlightBackend,
    manifest: Path,
    *,
    scheduler: str | None = None,
    progress: ProgressFn | None = None,
) -> RunSummary:
    """Process every flight of ``manifest`` (skipping ones already done) under the run lock."""
    ncfg = _paths(config.nightly)
    assert ncfg.lock_file is not None and ncfg.catalogue_file is not None
    rows = read_manifest(manifest)
    tasks = [
        FlightTask(describe_flight(r.flight, flight_id=r.flight_id, date=r.date), r.baseline)
        for r in rows
    ]
    with RunLock(ncfg.lock_file, "buildwatch nightly/batch"):
        catalogue = []
        if any(t.baseline is None for t in tasks):
            catalogue = build_catalogue(ncfg.catalogue_dir, ncfg.catalogue_file)
        return process_flights(
            tasks,
            config=config,
            backend=backend,
            catalogue=catalogue,
            scheduler=scheduler or ncfg.scheduler,
            kind="batch",
            progress=progress,
        )
