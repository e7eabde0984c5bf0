"""``buildwatch cases``: the two case ledgers (in-progress, existing) — list, show, update, import.

The ledger is ``--ledger`` (a GeoPackage path or ``postgresql://`` URL) or ``ledger.url`` of
``--config``. Library code lives in :mod:`pipelines.cases`; this module only parses options and
prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["group", "open_store", "ledger_option", "config_option"]

ledger_option = click.option(
    "--ledger",
    "ledger",
    default=None,
    metavar="PATH|URL",
    help="Case ledger: GeoPackage path or postgresql://... (default: ledger.url of --config).",
)
config_option = click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="buildwatch YAML config (section ledger: url, lock_timeout_s, min_overlap).",
)


def open_store(ledger: str | None, config_path: Path | None) -> tuple[Any, Any]:
    """The ledger store and the ledger config section from the options."""
    from geo.errors import ConfigError
    from pipelines.cases.store import LedgerStore
    from pipelines.config import load_config

    cfg = load_config(config_path).ledger
    url = ledger or cfg.url
    if not url:
        raise ConfigError(
            "no ledger given; pass --ledger PATH.gpkg|postgresql://... or set ledger.url"
        )
    return LedgerStore(url, lock_timeout_s=cfg.lock_timeout_s), cfg


@click.group("cases")
def group() -> None:
    """The case ledgers: 在建 (in-progress: discovered → stopped → removed) and 存量 (existing:
    evidence → notice → penalty → enforced); any open case may be rejected with a reason."""


@group.command("ingest")
@click.argument("leads_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@ledger_option
@config_option
@click.option("--flight-id", default=None, help="Flight id (default: the leads' flight_id).")
@click.option("--run-id", default="", help="Run id; a run already ingested is skipped.")
@click.option(
    "--flight-date", default=None, metavar="YYYY-MM-DD", help="Default: leads' flight_date."
)
@click.option(
    "--coverage",
    "coverage_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Polygon file of the area the flight saw (default: layer 'coverage' of LEADS, if any).",
)
@click.option("--who", default="buildwatch", show_default=True, help="Recorded in the history.")
def ingest_command(
    leads_path: Path,
    ledger: str | None,
    config_path: Path | None,
    flight_id: str | None,
    run_id: str,
    flight_date: str | None,
    coverage_path: Path | None,
    who: str,
) -> None:
    """Put a run's leads (LEADS = its leads.gpkg) into the ledger; creates the ledger if absent."""
    import geopandas as gpd

    from pipelines.cases.ingest import ingest_run

    store, cfg = open_store(ledger, config_path)
    r = ingest_run(
        store,
        leads_path,
        flight_id=flight_id,
        run_id=run_id,
        flight_date=flight_date,
        coverage=gpd.read_file(coverage_path) if coverage_path is not None else None,
        who=who,
        min_overlap=cfg.min_overlap,
        attach_m=cfg.attach_distance_m,
    )
    if r.skipped:
        click.echo(f"flight {r.flight_id} was already ingested into {store.label}; nothing changed")
        return
    click.echo(
        f"flight {r.flight_id} -> {store.label}: {r.n_leads} leads ({r.n_permitted} permitted "
        f"skipped), {r.n_new} new cases, {r.n_seen_again} seen again, {r.n_reopened} reopened, "
        f"{r.n_not_observed} not observed"
    )


@group.command("list")
@ledger_option
@config_option
@click.option("--ledger-kind", type=click.Choice(["in_progress", "existing"]), default=None)
@click.option("--state", "states", multiple=True, help="Only these states (repeatable).")
@click.option("--township", default=None, help="Township code.")
@click.option("--district", default=None, help="District code.")
@click.option("--open", "open_only", is_flag=True, help="Only open cases.")
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the list (.csv or .gpkg).",
)
def list_command(
    ledger: str | None,
    config_path: Path | None,
    ledger_kind: str | None,
    states: tuple[str, ...],
    township: str | None,
    district: str | None,
    open_only: bool,
    out_path: Path | None,
) -> None:
    """List cases (one line each)."""
    store, _ = open_store(ledger, config_path)
    cases = store.cases(
        ledger=ledger_kind,
        states=list(states) or None,
        township_code=township,
        district_code=district,
        open_only=open_only,
    )
    for _, c in cases.iterrows():
        flags = ("  督办 " + c["deadline"] if c["supervised"] else "") + (
            "  not observed" if c["not_observed"] else ""
        )
        click.echo(
            f"{c['case_id']}  {c['ledger']:<11} {c['state']:<10} {c['class']:<12} "
            f"{c['township_name'] or c['township_code']:<8} {c['unit_name']:<10} "
            f"seen {c['times_seen']}x {c['first_seen']}..{c['last_seen']}{flags}"
        )
    click.echo(f"{len(cases)} case(s)")
    if out_path is not None:
        _write_list(cases, out_path)
        click.echo(f"wrote {out_path}")


def _write_list(cases: Any, out_path: Path) -> None:
    import pandas as pd

    from geo.atomic import atomic_path
    from geo.errors import ConfigError
    from pipelines.safety import neutralize_frame

    suffix = out_path.suffix.lower()
    if suffix not in (".csv", ".gpkg"):
        raise ConfigError(f"--out {out_path}: use .csv or .gpkg")
    with atomic_path(out_path, suffix=suffix) as tmp:
        if suffix == ".csv":
            neutralize_frame(pd.DataFrame(cases.drop(columns="geometry"))).to_csv(
                tmp, index=False, encoding="utf-8-sig"
            )
        else:
            from pipelines.qgis import style_gpkg

            cases.to_file(tmp, layer="cases", driver="GPKG")
            style_gpkg(tmp)


@group.command("show")
@click.argument("case_id")
@ledger_option
@config_option
def show_command(case_id: str, ledger: str | None, config_path: Path | None) -> None:
    """One case and its full history."""
    from geo.errors import LedgerError
    from pipelines.cases.states import STATE_LABELS_ZH, allowed_transitions

    store, _ = open_store(ledger, config_path)
    found = store.cases(case_ids=[case_id])
    if found.empty:
        raise LedgerError(f"case {case_id}: no such case in {store.label}")
    c = found.iloc[0]
    for name, value in c.drop(labels="geometry").items():
        click.echo(f"{name:>18}: {value}")
    click.echo(f"{'area polygon':>18}: {c.geometry.wkt[:80]}...")
    nxt = allowed_transitions(c["ledger"], c["state"])
    click.echo(f"{'next':>18}: {', '.join(f'{s} ({STATE_LABELS_ZH[s]})' for s in nxt) or '-'}")
    click.echo("history:")
    for _, h in store.history(case_id).iterrows():
        move = f"{h['from_state'] or '-'} -> {h['to_state']}"
        reason = f" [{h['reject_reason']}]" if h["reject_reason"] else ""
        click.echo(f"  {h['at']}  {h['who']:<12} {move:<24}{reason} {h['note']}")


@group.command("update")
@click.argument("case_id")
@click.option("--to", "to_state", required=True, help="New state (English or Chinese).")
@click.option("--who", required=True, help="Who made the change.")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="Default: today.")
@click.option("--note", default="", help="Note for the history.")
@click.option("--reason", default="", help="Reject reason: false_detection|permitted|duplicate.")
@ledger_option
@config_option
def update_command(
    case_id: str,
    to_state: str,
    who: str,
    day: str | None,
    note: str,
    reason: str,
    ledger: str | None,
    config_path: Path | None,
) -> None:
    """Move one case to its next state (or reject it with a reason)."""
    from datetime import date

    from pipelines.cases.imports import Update, apply_updates, normalise_reason, normalise_state

    store, _ = open_store(ledger, config_path)
    day = day or date.today().isoformat()
    upd = Update(case_id, normalise_state(to_state), who, day, note, normalise_reason(reason))
    result = apply_updates(store, [upd], source="cli:update")
    for cid, frm, to in result.changes:
        click.echo(f"{cid}: {frm} -> {to}")


@group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and show what would change; write nothing.")
@ledger_option
@config_option
def import_command(path: Path, dry_run: bool, ledger: str | None, config_path: Path | None) -> None:
    """Apply a township's update file (CSV/XLSX: case_id, to_state, who, date, note, reason).

    Every row is checked first; any problem -> all problems listed and nothing applied.
    """
    from pipelines.cases.imports import import_updates

    store, _ = open_store(ledger, config_path)
    result = import_updates(store, path, dry_run=dry_run)
    for cid, frm, to in result.changes:
        click.echo(f"{cid}: {frm} -> {to}")
    verb = "would apply" if dry_run else "applied"
    click.echo(f"{verb} {len(result.changes)} update(s) from {path.name}")


@group.command("import-reports")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--units",
    "units_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="units.gpkg: reports are placed in its compounds/villages, townships and districts.",
)
@click.option(
    "--source",
    type=click.Choice(["patrol", "hotline", "inspection"]),
    default=None,
    help="Channel of every row when the file has no source (渠道) column.",
)
@click.option("--who", required=True, help="Who imports the reports (recorded in the history).")
@click.option("--dry-run", is_flag=True, help="Validate and show what would happen; write nothing.")
@ledger_option
@config_option
def import_reports_command(
    path: Path,
    units_path: Path,
    source: str | None,
    who: str,
    dry_run: bool,
    ledger: str | None,
    config_path: Path | None,
) -> None:
    """Open cases from patrol logs and hotline reports (CSV/XLSX; see pipelines.cases.channels).

    Each row needs a date and a location: lon/lat, a unit_code, or an address naming a compound or
    village. A report near an open case (any channel) attaches to it instead of opening another.
    Any bad row -> every problem listed with its row number, nothing written.
    """
    from pyproj import CRS

    from geo.units import read_units
    from pipelines.cases.channels import import_reports

    store, cfg = open_store(ledger, config_path)
    if store.exists():
        crs = f"EPSG:{store.require().srid}"
    else:
        import pyogrio

        native = pyogrio.read_info(units_path, layer="districts")["crs"]
        if not native or not CRS.from_user_input(native).is_projected:
            from geo.errors import CRSError

            raise CRSError(
                f"{units_path}: layer 'districts' is in {native or 'no CRS'}; the new ledger needs "
                "a projected CRS: write the units in the district's projected CRS (e.g. EPSG:4544)"
            )
        crs = native
    units = read_units(units_path, crs, optional=False)
    r = import_reports(
        store,
        path,
        units,
        default_source=source,
        who=who,
        attach_m=cfg.attach_distance_m,
        radius_m=cfg.report_radius_m,
        dry_run=dry_run,
    )
    for row, cid, what in r.outcome:
        click.echo(f"row {row}: {cid} ({'new case' if what == 'new' else 'attached to it'})")
    verb = "would open" if dry_run else "opened"
    click.echo(
        f"{path.name}: {verb} {r.n_new} case(s); {r.n_attached} report(s) attached to open cases"
    )


@group.command("upgrade")
@ledger_option
@config_option
def upgrade_command(ledger: str | None, config_path: Path | None) -> None:
    """Bring a ledger written by an older buildwatch to this schema (columns added, none lost)."""
    store, _ = open_store(ledger, config_path)
    before, after = store.upgrade()
    if before == after:
        click.echo(f"{store.label}: already schema version {after}; nothing to do")
    else:
        click.echo(f"{store.label}: upgraded from schema version {before} to {after}")


@group.command("register")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--who", required=True, help="Who registers the households.")
@ledger_option
@config_option
def register_command(path: Path, who: str, ledger: str | None, config_path: Path | None) -> None:
    """Register cases per household (分户登记; CSV/XLSX: case_id, household, owner)."""
    from pipelines.cases.households import read_registrations, register_households

    store, _ = open_store(ledger, config_path)
    n = register_households(store, read_registrations(path), who=who, source=f"import:{path.name}")
    click.echo(f"registered {n} case(s) by household from {path.name}")


@group.command("households")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Workbook to write (.xlsx): a summary and a sheet per compound/village.",
)
@click.option("--unit", "unit_code", default=None, help="Only this compound/village code.")
@ledger_option
@config_option
def households_command(
    out_path: Path, unit_code: str | None, ledger: str | None, config_path: Path | None
) -> None:
    """Export the existing ledger per compound/village and household (分小区分户)."""
    from pipelines.cases.households import export_households

    store, _ = open_store(ledger, config_path)
    summary = export_households(store, out_path, unit_code=unit_code)
    click.echo(
        f"{out_path}: {len(summary)} compound(s)/village(s), {int(summary['n_cases'].sum())} "
        f"existing case(s), {int(summary['n_households'].sum())} household(s) registered"
    )


@group.command("supervise")
@click.argument("case_id")
@click.option("--deadline", default=None, metavar="YYYY-MM-DD", help="Deadline for clearance.")
@click.option("--who", required=True, help="Who orders the supervision (挂牌督办).")
@click.option("--note", default="")
@click.option("--off", is_flag=True, help="Lift the supervision.")
@ledger_option
@config_option
def supervise_command(
    case_id: str,
    deadline: str | None,
    who: str,
    note: str,
    off: bool,
    ledger: str | None,
    config_path: Path | None,
) -> None:
    """Put a case under supervision (挂牌督办) with a deadline, or lift it."""
    from pipelines.cases.imports import supervise

    store, _ = open_store(ledger, config_path)
    supervise(store, case_id, deadline=deadline, who=who, note=note, off=off)
    click.echo(f"{case_id}: supervision {'lifted' if off else f'until {deadline}'}")


@group.command("clear")
@click.argument("unit_code")
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD", help="When it was cleared.")
@click.option("--who", required=True, help="Who certifies the clearance (整治完毕).")
@click.option("--name", "unit_name", default="", help="The unit's name (for reports).")
@click.option("--note", default="")
@click.option("--off", is_flag=True, help="Lift the mark (the unit leaves the watch list).")
@ledger_option
@config_option
def clear_command(
    unit_code: str,
    day: str,
    who: str,
    unit_name: str,
    note: str,
    off: bool,
    ledger: str | None,
    config_path: Path | None,
) -> None:
    """Mark a compound or village cleared (整治完毕): it stays under watch; any case found in it
    afterwards is flagged in the daily report and on the maps and raises its priority."""
    from pipelines.cases.cleared import mark_cleared

    store, _ = open_store(ledger, config_path)
    mark_cleared(store, unit_code, day=day, who=who, unit_name=unit_name, note=note, off=off)
    click.echo(
        f"{unit_code}: {'no longer under watch' if off else f'cleared on {day}, under watch'}"
    )


@group.command("overdue")
@ledger_option
@config_option
@click.option("--today", default=None, metavar="YYYY-MM-DD", help="Reference day (default today).")
def overdue_command(ledger: str | None, config_path: Path | None, today: str | None) -> None:
    """Supervised open cases past their deadline (逾期督办案件)."""
    from datetime import date

    from pipelines.cases.imports import overdue

    store, _ = open_store(ledger, config_path)
    late = overdue(store, date.fromisoformat(today) if today else None)
    for _, c in late.iterrows():
        click.echo(
            f"{c['case_id']}  {c['state']:<10} deadline {c['deadline']}  "
            f"{c['days_overdue']} day(s) overdue  {c['township_name']} {c['unit_name']}"
        )
    click.echo(f"{len(late)} overdue supervised case(s)")


@group.command("export-labels")
@click.argument("out_path", type=click.Path(dir_okay=False, path_type=Path))
@ledger_option
@config_option
def export_labels_command(out_path: Path, ledger: str | None, config_path: Path | None) -> None:
    """Confirmed and rejected (hard-negative) cases as a labelled GeoPackage for training."""
    from pipelines.cases.feedback import export_labels

    store, _ = open_store(ledger, config_path)
    counts = export_labels(store, out_path)
    click.echo(
        f"wrote {out_path}: {int(counts.get('confirmed', 0))} confirmed, "
        f"{int(counts.get('rejected', 0))} rejected (hard negatives)"
    )
