"""The real per-flight job behind :class:`~pipelines.nightly.job.FlightBackend`.

Tiles come from :func:`geo.tiles.open_pair` (each worker opens and co-registers the pair once and
keeps it, and loads the detector once, in per-process caches); the client hands the candidates
per tile index to :func:`pipelines.run.run_flight` (``candidates=``), which georeferences them from
the tile windows without reading the tiles again, then merges, filters, joins and writes the
outputs exactly as ``buildwatch run`` does; the ledger is
:func:`pipelines.cases.ingest.ingest_leads` (idempotent per flight id) with the run's ``coverage``
layer, so open cases the flight covered without detecting them become ``not_observed``; maps and the daily report are :func:`pipelines.maps.render.render_all` and
:mod:`pipelines.cases.reports`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from models.candidates import Candidates
from pipelines.config import BuildwatchConfig
from pipelines.nightly.job import FlightOutputs, IngestOutcome, PairRef

__all__ = ["BuildwatchBackend"]

log = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def _open(
    flight: str,
    baseline: str,
    gsd: float,
    radiometric: str,
    coreg: tuple[tuple[str, Any], ...],
) -> Any:
    """One open, co-registered pair per process (workers reuse it across tile batches)."""
    from geo.tiles import open_pair

    return open_pair(flight, baseline, gsd=gsd, radiometric=radiometric, **dict(coreg))  # type: ignore[arg-type]


class _CallbackDetector:
    """A plain ``predict(images) -> list[Candidates]`` callable dressed as a detector."""

    card = None

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def predict(self, images: list[np.ndarray], conf: float = 0.0) -> list[Candidates]:
        return list(self.fn(images))


@lru_cache(maxsize=1)
def _detector(config_json: str, predict: str | None) -> Any:
    """The detector, loaded once per process (keyed by the detector config and callback)."""
    if predict:
        module, _, attr = predict.partition(":")
        return _CallbackDetector(getattr(importlib.import_module(module), attr))
    from pipelines.detect import load_detector

    return load_detector(BuildwatchConfig.model_validate_json(config_json))


@dataclass(frozen=True)
class BuildwatchBackend:
    """The per-flight job of ``buildwatch run``, split for checkpointing and dask."""

    config: BuildwatchConfig = field(default_factory=lambda: BuildwatchConfig())
    #: optional ``"module:function"`` predict callback used instead of the detector (tests, demos)
    predict: str | None = None

    def detector(self) -> Any:
        """The detector (or callback) this backend runs, loaded once per process.

        Raises:
            ModelError: the weights are missing or cannot be loaded.
        """
        return _detector(self._det_json(), self.predict)

    def describe(self) -> str:
        """One line for people: which model runs, on which runtime."""
        det = self.detector()
        card = getattr(det, "card", None)
        if card is None:
            return f"stand-in callback {self.predict} (not model output)"
        runtime = getattr(getattr(det, "backend", None), "name", "?")
        digest = str(getattr(card, "sha256", "") or "")[:12]
        extra = "".join(f", {label}" for attr, label in (("consensus", "scale consensus"),
                        ("unchanged", "unchanged-structure test"))
                        if isinstance(getattr(det, attr, None), dict))  # fmt: skip
        return f"{card.name} ({runtime}{', ' + digest if digest else ''}{extra})"

    def _model_info(self) -> Any:
        from pipelines.detect import ModelInfo

        card = getattr(_detector(self._det_json(), self.predict), "card", None)
        return ModelInfo(
            working_gsd_m=getattr(card, "working_gsd_m", None),
            imgsz=getattr(card, "imgsz", None),
            overlap=getattr(card, "overlap", None),
            baseline_radiometry=getattr(card, "baseline_radiometry", None),
        )

    def _tiling(self) -> tuple[float, int, int]:
        from pipelines.detect import tiling_params

        return tiling_params(self.config, self._model_info())

    def _radiometric(self) -> str:
        """The baseline normalisation ``buildwatch run`` would use with this model."""
        from pipelines.detect import radiometric_mode

        return radiometric_mode(self.config, self._model_info())

    def _det_json(self) -> str:
        return BuildwatchConfig(detector=self.config.detector).model_dump_json()

    def _pair(self, pair: PairRef) -> Any:
        gsd, _, _ = self._tiling()
        kwargs = self.config.coreg.pair_kwargs() | self.config.input.pair_kwargs()
        coreg = tuple(sorted(kwargs.items()))
        return _open(pair.flight, pair.baseline, gsd, self._radiometric(), coreg)

    def tile_indices(self, pair: PairRef) -> list[int]:
        _, size, overlap = self._tiling()
        return [int(w.index) for w in self._pair(pair).tile_windows(size, overlap)]

    def checkpoint_key(self, pair: PairRef) -> dict[str, Any]:
        det = _detector(self._det_json(), self.predict)
        card = getattr(det, "card", None)
        return {
            "flight": pair.flight,
            "flight_sha256": pair.content_hash,
            "baseline": pair.baseline,
            "tiling": self._tiling(),
            "model": str(getattr(card, "sha256", "") or getattr(card, "name", "")),
            "conf": self.config.detector.conf,
            "coreg": self.config.coreg.model_dump(),
            "radiometric": self._radiometric(),
        }

    def predict_tiles(self, pair: PairRef, indices: Sequence[int]) -> dict[int, Candidates | None]:
        _, size, overlap = self._tiling()
        imagery = self._pair(pair)
        windows = {int(w.index): w for w in imagery.tile_windows(size, overlap)}
        det = _detector(self._det_json(), self.predict)
        out: dict[int, Candidates | None] = {}
        valid: list[tuple[int, np.ndarray]] = []
        for i in indices:
            tp = imagery.read_tile(windows[int(i)])
            if tp.valid.any():
                valid.append((int(i), np.concatenate([tp.flight, tp.baseline], axis=-1)))
            else:
                out[int(i)] = None  # detect_leads skips such tiles too
        step = self.config.detector.batch
        for start in range(0, len(valid), step):
            chunk = valid[start : start + step]
            results = det.predict([img for _, img in chunk], conf=self.config.detector.conf)
            for (i, _), cands in zip(chunk, results, strict=True):
                out[i] = cands.with_tile_id(i)
        return out

    def finish_flight(
        self, pair: PairRef, candidates: Mapping[int, Candidates | None], out_dir: Path
    ) -> FlightOutputs:
        from pipelines.run import run_flight

        det = _detector(self._det_json(), self.predict)
        day = dt.date.fromisoformat(pair.flight_date) if pair.flight_date else None
        outputs = run_flight(
            pair.flight,
            config=self.config,
            baseline=pair.baseline,
            out_dir=out_dir,
            predict=det.fn if isinstance(det, _CallbackDetector) else det,  # names the model
            flight_date=day,
            candidates=candidates,
            flight_id=pair.flight_id,
        )
        result = outputs.result
        return FlightOutputs(
            out_dir=out_dir,
            leads_path=outputs.gpkg,
            n_leads=len(result.leads),
            coreg_status=str(result.registration.get("status", "off")),
            compared_m2=float(result.coverage_m2.get("compared", 0.0)),
            not_comparable_m2=float(result.coverage_m2.get("not_comparable", 0.0)),
            unknown_m2=float(result.coverage_m2.get("unknown", 0.0)),
        )

    def _ledger_url(self) -> str:
        url = self.config.ledger.url
        if url:
            return str(url)
        root = self.config.nightly.output_root
        return str(root / "ledger.gpkg")

    def ingest(self, pair: PairRef, outputs: FlightOutputs) -> IngestOutcome:
        from pipelines.cases.ingest import content_run_id, ingest_run
        from pipelines.cases.store import LedgerStore

        store = LedgerStore(self._ledger_url(), lock_timeout_s=self.config.ledger.lock_timeout_s)
        try:
            result = ingest_run(
                store,
                outputs.leads_path,
                flight_id=pair.flight_id,
                flight_date=pair.flight_date,
                min_overlap=self.config.ledger.min_overlap,
                attach_m=self.config.ledger.attach_distance_m,
                run_id=content_run_id(pair.content_hash),
            )
        finally:
            store.dispose()
        return IngestOutcome(
            new_cases=result.n_new, updated_cases=result.n_seen_again + result.n_reopened
        )

    def refresh(self, output_root: Path) -> list[Path]:
        from pipelines.cases.reports import daily_report, write_report
        from pipelines.cases.store import LedgerStore, read_cases
        from pipelines.maps.inputs import load_units
        from pipelines.maps.render import render_all
        from pipelines.publish import _cleared

        written: list[Path] = []
        url = self._ledger_url()
        reports = output_root / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        from pipelines.run import area_table, read_area_layers

        runs = sorted(output_root.glob("*/leads.gpkg"))
        areas = read_area_layers(runs)
        report = daily_report(LedgerStore(url)).with_coverage(area_table(areas))
        written += write_report(report, reports / f"daily-{dt.date.today().isoformat()}.xlsx")
        if self.config.units.path is not None:
            paths = render_all(
                output_root / "maps",
                read_cases(url),
                load_units(self.config.units.path),
                offline=True,
                config=self.config.maps,
                areas=areas,
                sources=[*([Path(url)] if "://" not in url else []), *runs],
                cleared=_cleared(url),
            )
            written += list(paths.values())
        return written
