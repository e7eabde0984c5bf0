"""After a flight's run: its leads into the case ledger, then the clearance maps from the ledger.

``buildwatch run`` ends here, so one flight gives everything a district office uses: leads,
cases (two ledgers) and maps. The ledger is ``ledger.url`` from the config (a GeoPackage path or
``postgresql://…``); without one, ``<run folder>/ledger.gpkg`` — set ``ledger.url`` to keep cases
across flights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pipelines.config import BuildwatchConfig
from pipelines.run import RunOutputs

__all__ = ["Published", "publish_run"]

log = logging.getLogger(__name__)


@dataclass
class Published:
    """Where a run's leads went and what was drawn from them."""

    ledger: str
    new_cases: int
    seen_again: int
    reopened: int
    not_observed: int
    skipped: bool
    maps: dict[str, Path] = field(default_factory=dict)


def publish_run(
    outputs: RunOutputs,
    config: BuildwatchConfig,
    *,
    flight: str | Path | None = None,
    flight_id: str | None = None,
    flight_date: date | None = None,
    maps: bool = True,
) -> Published:
    """Ingest ``outputs`` into the ledger (one transaction) and render the maps into
    ``<run folder>/maps`` (when ``config.units.path`` is set and ``maps`` is true)."""
    from pipelines.cases.ingest import ingest_run
    from pipelines.cases.store import LedgerStore, read_cases

    url = str(config.ledger.url) if config.ledger.url else str(outputs.out_dir / "ledger.gpkg")
    store = LedgerStore(url, lock_timeout_s=config.ledger.lock_timeout_s)
    try:
        result = ingest_run(
            store,
            outputs.gpkg,
            flight_id=flight_id,
            flight_date=flight_date.isoformat() if flight_date else None,
            min_overlap=config.ledger.min_overlap,
            attach_m=config.ledger.attach_distance_m,
        )
    finally:
        store.dispose()
    published = Published(
        ledger=url,
        new_cases=result.n_new,
        seen_again=result.n_seen_again,
        reopened=result.n_reopened,
        not_observed=result.n_not_observed,
        skipped=result.skipped,
    )
    if maps and config.units.path is not None:
        from pipelines.maps.inputs import load_units
        from pipelines.maps.render import render_all
        from pipelines.run import read_area_layers

        published.maps = render_all(
            outputs.out_dir / "maps",
            read_cases(url),
            load_units(config.units.path),
            flight=flight,
            offline=config.maps.offline,
            config=config.maps,
            as_of=flight_date,
            zh=True,
            areas=read_area_layers([outputs.gpkg]),
            sources=[*([Path(url)] if "://" not in url else []), outputs.gpkg],
            cleared=_cleared(url),
        )
    elif maps:
        log.info("no units.path in the config: maps skipped (they rank compounds and villages)")
    return published


def _cleared(url: str):  # type: ignore[no-untyped-def]
    """The ledger's units under watch (cleared), for the maps."""
    from pipelines.cases.cleared import read_cleared
    from pipelines.cases.store import LedgerStore

    store = LedgerStore(url)
    try:
        return read_cleared(store)
    finally:
        store.dispose()
