"""The record of one nightly/batch run: per-flight outcomes, counts, JSON and plain text."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from geo.atomic import write_text_atomic

__all__ = ["FlightReport", "RunSummary"]

#: processed (all compared), partial (processed, but part of the common area not comparable),
#: skipped (done before), failed (nothing written to the ledger; exit 4 when nothing compared)
FlightStatus = Literal["processed", "partial", "skipped", "waiting", "failed"]


@dataclass
class FlightReport:
    """What happened to one flight in one run."""

    flight_id: str
    content_hash: str
    path: str
    flight_date: str
    status: FlightStatus
    baseline_id: str | None = None
    coverage: float | None = None
    n_leads: int = 0
    new_cases: int = 0
    updated_cases: int = 0
    tiles_total: int = 0
    tiles_resumed: int = 0
    seconds: float = 0.0
    out_dir: str | None = None
    error: str | None = None
    exit_code: int = 0
    coreg_status: str | None = None
    compared_km2: float = 0.0
    not_comparable_km2: float = 0.0
    unknown_km2: float = 0.0


@dataclass
class RunSummary:
    """One run: when, where the tiles ran, each flight's report, the maps refreshed."""

    run_id: str
    kind: Literal["nightly", "batch"]
    started: str
    scheduler: str
    finished: str = ""
    flights: list[FlightReport] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_code: int = 0

    @property
    def status(self) -> str:
        """``ok`` (everything compared), ``partial`` (some flights failed or were compared only
        in part) or ``failed`` (nothing processed)."""
        failed = sum(f.status == "failed" for f in self.flights)
        partial = sum(f.status == "partial" for f in self.flights)
        if failed == 0 and partial == 0 and not self.errors:
            return "ok"
        done = sum(f.status in ("processed", "partial") for f in self.flights)
        return "partial" if done else "failed"

    def counts(self) -> dict[str, int]:
        c = {"flights_found": len(self.flights)}
        for status in ("processed", "partial", "skipped", "waiting", "failed"):
            c[f"flights_{status}"] = sum(f.status == status for f in self.flights)
        c["flights_unverified"] = sum(f.coreg_status == "unverified" for f in self.flights)
        for key in ("n_leads", "new_cases", "updated_cases", "tiles_total", "tiles_resumed"):
            c[key] = sum(int(getattr(f, key)) for f in self.flights)
        return c

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["counts"] = self.counts()
        return data

    def to_text(self) -> str:
        """A plain-text summary for people (and cron mail)."""
        c = self.counts()
        lines = [
            f"buildwatch {self.kind} run {self.run_id}: {self.status.upper()}",
            f"  started {self.started}, finished {self.finished}, tiles on {self.scheduler}",
            f"  flights: {c['flights_found']} found, {c['flights_processed']} processed, "
            f"{c['flights_partial']} partly compared, {c['flights_skipped']} already done, "
            f"{c['flights_waiting']} waiting, {c['flights_failed']} failed",
            f"  leads: {c['n_leads']}; cases: {c['new_cases']} new, {c['updated_cases']} seen again",
        ]
        for f in self.flights:
            if f.status in ("processed", "partial"):
                resumed = f" ({f.tiles_resumed} resumed)" if f.tiles_resumed else ""
                lines.append(
                    f"  - {f.flight_id} {f.flight_date}: baseline {f.baseline_id} "
                    f"({(f.coverage or 0):.0%} cover), {f.tiles_total} tiles{resumed}, {f.n_leads} leads, "
                    f"{f.new_cases} new cases, {f.seconds:.1f} s"
                )
                lines.append(
                    f"    {'PARTIAL: ' if f.status == 'partial' else ''}compared "
                    f"{f.compared_km2:.4f} km², not comparable {f.not_comparable_km2:.4f} km², "
                    f"unknown {f.unknown_km2:.4f} km²; co-registration {f.coreg_status}"
                )
            elif f.status == "failed":
                lines.append(f"  - {f.flight_id} {f.flight_date}: FAILED: {f.error}")
            elif f.status == "waiting":
                lines.append(f"  - {f.flight_id}: waiting: {f.error}")
            else:
                lines.append(f"  - {f.flight_id} {f.flight_date}: already processed, skipped")
        if self.maps:
            folders = sorted({str(Path(m).parent) for m in self.maps})
            lines.append(f"  maps and reports: {len(set(self.maps))} files in {', '.join(folders)}")
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write ``<run_id>.json`` and ``<run_id>.txt`` into ``folder`` (atomically)."""
        json_path, text_path = folder / f"{self.run_id}.json", folder / f"{self.run_id}.txt"
        write_text_atomic(
            json_path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1), mkdir=True
        )
        write_text_atomic(text_path, self.to_text(), mkdir=True)
        return json_path, text_path
