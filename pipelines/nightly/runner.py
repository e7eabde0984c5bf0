"""The nightly job: new flights in the inbox -> baseline -> leads -> ledger -> maps -> summary.

:func:`run_nightly` is one pass over the inbox (what ``buildwatch nightly --once`` and a systemd
timer run); :func:`process_flights` is the shared core that ``buildwatch batch`` also uses.

Guarantees, in order of the steps:

* one run at a time: the whole pass holds :class:`~pipelines.nightly.state.RunLock`;
* a flight already ``done`` (by content hash) is skipped; flights go to the ledger in date order;
* tiles are checkpointed per batch, so a killed run resumes where it stopped;
* a flight's leads are ingested once: the state DB marks it ``done`` right after the ingest, and
  a flight is only re-run (and re-ingested) if it never reached ``done``;
* the run summary (JSON + text) and the health file are written even when a flight fails.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from geo.errors import BuildwatchError
from pipelines.config import BuildwatchConfig, NightlyConfig
from pipelines.nightly.catalogue import CatalogueEntry, build_catalogue, pick_baseline
from pipelines.nightly.distributed import (
    Executor,
    PendingFlight,
    collect_flight,
    make_executor,
    submit_flight,
)
from pipelines.nightly.inbox import FlightInput, InboxProblem, survey_inbox
from pipelines.nightly.job import FlightBackend, PairRef
from pipelines.nightly.rasterinfo import read_raster_info
from pipelines.nightly.state import RunLock, StateDB, TileCheckpoint, write_health
from pipelines.nightly.summary import FlightReport, RunSummary
from pipelines.safety import inside, safe_name

__all__ = ["FlightTask", "run_nightly", "process_flights", "plan_flights", "ProgressFn"]

log = logging.getLogger(__name__)

#: progress callback: (flight_id, tiles done, tiles total)
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FlightTask:
    """A flight to process and, when already known (batch manifests), its baseline path."""

    flight: FlightInput
    baseline: Path | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def _run_id() -> str:
    now = dt.datetime.now()
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}-{os.getpid()}"


def _paths(ncfg: NightlyConfig) -> NightlyConfig:
    """Nightly config with defaults filled (when the caller built it without resolve_paths)."""
    if ncfg.state_db is None or ncfg.lock_file is None or ncfg.health_file is None:
        return ncfg.resolve_paths(Path.cwd())
    return ncfg


def plan_flights(
    tasks: Sequence[FlightTask],
    catalogue: Sequence[CatalogueEntry],
    ncfg: NightlyConfig,
    state: StateDB,
) -> list[tuple[FlightTask, PairRef | None, FlightReport]]:
    """Decide each flight's fate: skip (done), fail (no baseline), or process with this pair."""
    planned = []
    for task in sorted(tasks, key=lambda t: (t.flight.date, t.flight.flight_id)):
        f = task.flight
        report = FlightReport(
            flight_id=f.flight_id,
            content_hash=f.content_hash,
            path=str(f.orthophoto),
            flight_date=f.date.isoformat(),
            status="processed",
        )
        if state.stage(f.content_hash) == "done":
            report.status = "skipped"
            planned.append((task, None, report))
            continue
        try:
            if task.baseline is not None:
                baseline_id, baseline_path, cov = task.baseline.stem, str(task.baseline), None
            else:
                info = read_raster_info(f.orthophoto)
                entry, cov = pick_baseline(
                    catalogue,
                    flight_id=f.flight_id,
                    flight_date=f.date,
                    flight_footprint=info.footprint,
                    flight_crs=info.crs,
                    min_coverage=ncfg.min_coverage,
                )
                baseline_id, baseline_path = entry.image_id, str(entry.path)
        except BuildwatchError as exc:
            report.status, report.error, report.exit_code = "failed", str(exc), exc.exit_code
            log.error("%s: %s", f.flight_id, exc)
            planned.append((task, None, report))
            continue
        report.baseline_id, report.coverage = baseline_id, cov
        pair = PairRef(
            flight_id=f.flight_id,
            flight=str(f.orthophoto),
            baseline_id=baseline_id,
            baseline=baseline_path,
            flight_date=f.date.isoformat(),
            district=f.district,
            content_hash=f.content_hash,
        )
        planned.append((task, pair, report))
    return planned


def _submit(
    backend: FlightBackend, pair: PairRef, out_dir: Path, executor: Executor, batch: int
) -> PendingFlight:
    checkpoint = TileCheckpoint(out_dir / "tiles.sqlite", backend.checkpoint_key(pair))
    try:
        return submit_flight(backend, pair, checkpoint, executor, batch)
    except BaseException:
        checkpoint.close()
        raise


def process_flights(
    tasks: Sequence[FlightTask],
    *,
    config: BuildwatchConfig,
    backend: FlightBackend,
    catalogue: Sequence[CatalogueEntry] = (),
    scheduler: str | None = None,
    kind: str = "nightly",
    progress: ProgressFn | None = None,
    lookahead: int = 1,
    problems: Sequence[InboxProblem] = (),
) -> RunSummary:
    """Process flights in date order under the caller's lock; return the run summary.

    ``problems`` (from :func:`pipelines.nightly.inbox.survey_inbox`) are inbox entries that
    wait or failed on their own; they are reported beside the flights that were processed.

    With a dask ``scheduler`` the tile batches of the next ``lookahead`` flights are submitted
    while the current one is collected, so flights overlap on the cluster; the ledger still
    receives them one at a time, in date order.
    """
    ncfg = _paths(config.nightly)
    summary = RunSummary(
        run_id=_run_id(),
        kind="batch" if kind == "batch" else "nightly",
        started=_now(),
        scheduler=scheduler or "in-process",
    )
    assert ncfg.state_db is not None
    with StateDB(ncfg.state_db) as state, make_executor(scheduler) as executor:
        planned = plan_flights(tasks, catalogue, ncfg, state)
        summary.flights = [report for _, _, report in planned] + [
            FlightReport(
                flight_id=p.flight_id,
                content_hash="",
                path=str(p.path),
                flight_date="",
                status=p.status,
                error=p.error,
                exit_code=p.exit_code,
            )
            for p in problems
        ]
        todo = [(pair, report) for _, pair, report in planned if pair is not None]
        queue: deque[tuple[PairRef, FlightReport, PendingFlight | BaseException, float]] = deque()
        ahead = lookahead if scheduler else 0

        def fill(upto: int) -> None:
            while todo and len(queue) <= upto:
                pair, report = todo.pop(0)
                t0 = time.perf_counter()
                state.record(
                    report.content_hash,
                    stage="running",
                    flight_id=pair.flight_id,
                    path=report.path,
                    flight_date=report.flight_date,
                    baseline_id=pair.baseline_id,
                    started=_now(),
                )
                try:
                    pending: PendingFlight | BaseException = _submit(
                        backend,
                        pair,
                        inside(ncfg.output_root, safe_name(pair.flight_id, "flight id")),
                        executor,
                        ncfg.tile_batch,
                    )
                except BuildwatchError as exc:
                    pending = exc
                queue.append((pair, report, pending, t0))

        fill(ahead)
        any_ingested = False
        while queue:
            pair, report, pending, t0 = queue.popleft()
            fill(ahead)
            out_dir = inside(ncfg.output_root, safe_name(pair.flight_id, "flight id"))
            try:
                if isinstance(pending, BaseException):
                    raise pending
                report.tiles_total, report.tiles_resumed = len(pending.indices), pending.resumed
                try:
                    candidates = collect_flight(pending, executor, progress)
                finally:
                    pending.checkpoint.close()
                outputs = backend.finish_flight(pair, candidates, out_dir)
                state.record(
                    report.content_hash,
                    stage="detected",
                    out_dir=str(out_dir),
                    n_leads=outputs.n_leads,
                )
                outcome = backend.ingest(pair, outputs)
                state.record(report.content_hash, stage="done", error="")
                any_ingested = True
                report.n_leads, report.out_dir = outputs.n_leads, str(out_dir)
                report.coreg_status = outputs.coreg_status
                report.compared_km2 = round(outputs.compared_m2 / 1e6, 6)
                report.not_comparable_km2 = round(outputs.not_comparable_m2 / 1e6, 6)
                report.unknown_km2 = round(outputs.unknown_m2 / 1e6, 6)
                if outputs.not_comparable_m2 > 0:
                    report.status = "partial"
                report.new_cases, report.updated_cases = outcome.new_cases, outcome.updated_cases
            except BuildwatchError as exc:
                report.status, report.error, report.exit_code = "failed", str(exc), exc.exit_code
                state.record(report.content_hash, stage="failed", error=str(exc))
                log.error("%s: %s", pair.flight_id, exc)
            report.seconds = round(time.perf_counter() - t0, 2)
            log.info(
                "flight %s: %s, %d leads",
                pair.flight_id,
                report.status,
                report.n_leads,
                extra={
                    "flight_id": pair.flight_id,
                    "status": report.status,
                    "n_leads": report.n_leads,
                    "seconds": report.seconds,
                },
            )
    if any_ingested and ncfg.refresh_maps:
        try:
            summary.maps = [str(p) for p in backend.refresh(ncfg.output_root)]
        except BuildwatchError as exc:
            summary.errors.append(f"map refresh failed: {exc}")
            log.error("map refresh failed: %s", exc)
    failed = [f for f in summary.flights if f.status == "failed"]
    summary.exit_code = failed[0].exit_code if failed else (1 if summary.errors else 0)
    summary.finished = _now()
    summary.write(ncfg.output_root / "runs")
    return summary


def run_nightly(
    config: BuildwatchConfig,
    backend: FlightBackend,
    *,
    scheduler: str | None = None,
    progress: ProgressFn | None = None,
) -> RunSummary:
    """One nightly pass: lock, scan the inbox, refresh the catalogue, process, write health.

    Raises:
        LockError: another nightly/batch run holds the lock (nothing is done; exit code 75).
        BuildwatchError: the inbox or catalogue cannot be read (health records the failure).
    """
    ncfg = _paths(config.nightly)
    assert (
        ncfg.lock_file is not None
        and ncfg.health_file is not None
        and ncfg.catalogue_file is not None
    )
    scheduler = scheduler or ncfg.scheduler
    started = _now()
    with RunLock(ncfg.lock_file, "buildwatch nightly/batch"):
        try:
            flights, problems = survey_inbox(
                ncfg.inbox, ignore=ncfg.ignore, settle_seconds=ncfg.settle_seconds
            )
            for p in problems:
                log.warning("%s: %s", p.flight_id, p.error)
            catalogue = build_catalogue(ncfg.catalogue_dir, ncfg.catalogue_file)
            log.info(
                "inbox %s: %d flights; catalogue: %d baselines",
                ncfg.inbox,
                len(flights),
                len(catalogue),
            )
            summary = process_flights(
                [FlightTask(f) for f in flights],
                config=config,
                backend=backend,
                catalogue=catalogue,
                scheduler=scheduler,
                progress=progress,
                problems=problems,
            )
        except Exception as exc:
            code = exc.exit_code if isinstance(exc, BuildwatchError) else 1
            write_health(
                ncfg.health_file, status="failed", started=started, counts={}, exit_code=code
            )
            raise
        write_health(
            ncfg.health_file,
            status=summary.status,
            started=started,
            counts=summary.counts(),
            exit_code=summary.exit_code,
            flights={
                f.flight_id: {
                    "status": f.status,
                    "coreg_status": f.coreg_status,
                    "compared_km2": f.compared_km2,
                    "not_comparable_km2": f.not_comparable_km2,
                    "unknown_km2": f.unknown_km2,
                    "error": f.error,
                }
                for f in summary.flights
            },
        )
    return summary
