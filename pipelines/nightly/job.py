"""The per-flight job as the nightly runner sees it: a small backend interface.

The runner never imports the detector, the ledger or the maps directly; it talks to a
:class:`FlightBackend`. :mod:`pipelines.nightly.adapters` implements it over the real modules
(``geo.tiles``, ``models``, ``pipelines.leads``, ``pipelines.cases``, ``pipelines.maps``);
:mod:`pipelines.nightly.testing` implements a tiny deterministic stand-in for tests and demos.

A backend is a picklable value (paths and settings, never arrays or open files): the tile step
(:meth:`FlightBackend.predict_tiles`) runs on dask workers, which open the flight/baseline pair
themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from geo.errors import ConfigError
from models.candidates import Candidates

__all__ = ["PairRef", "FlightBackend", "IngestOutcome", "FlightOutputs", "load_backend"]


@dataclass(frozen=True)
class PairRef:
    """What a worker needs to open one flight/baseline pair: ids and paths, no pixels."""

    flight_id: str
    flight: str
    baseline_id: str
    baseline: str
    flight_date: str | None = None
    district: str | None = None
    #: SHA-256 of the flight file: checkpoints and the ledger know a flight by content too
    content_hash: str = ""


@dataclass(frozen=True)
class FlightOutputs:
    """What the per-flight job wrote: the output folder, the leads file and how many leads."""

    out_dir: Path
    leads_path: Path
    n_leads: int
    #: co-registration outcome (geo.registration) and the areas (m²) it left
    coreg_status: str = "verified"
    compared_m2: float = 0.0
    not_comparable_m2: float = 0.0
    unknown_m2: float = 0.0


@dataclass(frozen=True)
class IngestOutcome:
    """What ingesting one flight's leads did to the ledger."""

    new_cases: int = 0
    updated_cases: int = 0


@runtime_checkable
class FlightBackend(Protocol):
    """The per-flight job, split where the nightly runner needs to split it."""

    def tile_indices(self, pair: PairRef) -> list[int]:
        """Indices of the tiles to run the detector on (in the job's own tile order)."""
        ...

    def checkpoint_key(self, pair: PairRef) -> dict[str, Any]:
        """Everything a finished tile's candidates depend on (model, tiling, inputs)."""
        ...

    def predict_tiles(self, pair: PairRef, indices: Sequence[int]) -> dict[int, Candidates | None]:
        """Candidates for each tile index; ``None`` for a tile with no valid pixels (not run).

        Runs on workers: it must not need the client, only the pair's paths.
        """
        ...

    def finish_flight(
        self, pair: PairRef, candidates: Mapping[int, Candidates | None], out_dir: Path
    ) -> FlightOutputs:
        """Candidates of every tile -> leads, evidence and exports in ``out_dir``."""
        ...

    def ingest(self, pair: PairRef, outputs: FlightOutputs) -> IngestOutcome:
        """Put one flight's leads into the case ledger (called once per flight)."""
        ...

    def refresh(self, output_root: Path) -> list[Path]:
        """Re-render maps and reports from the ledger; returns the files written."""
        ...


def load_backend(spec: str, **kwargs: Any) -> FlightBackend:
    """Build a backend from ``"module:attr"`` (a class or factory called with ``kwargs``).

    >>> load_backend("pipelines.nightly.testing:FakeBackend").tile_size
    64
    """
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "Backend")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"nightly backend {spec!r} cannot be imported ({exc}); use 'module:attr', "
            "e.g. pipelines.nightly.adapters:BuildwatchBackend"
        ) from exc
    backend = factory(**kwargs)
    if not isinstance(backend, FlightBackend):
        raise ConfigError(f"nightly backend {spec!r} does not implement FlightBackend")
    return backend
