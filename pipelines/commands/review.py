"""``buildwatch review``: the review page over a case ledger, in the browser."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from pipelines.commands.cases import config_option, ledger_option, open_store

__all__ = ["command"]


@click.command("review")
@ledger_option
@config_option
@click.option(
    "--units",
    "units_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="units.gpkg: the compounds/villages on the case map and the queue's priority order.",
)
@click.option(
    "--evidence",
    "evidence",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder whose chips may be served (repeatable; default: every run folder the ledger "
    "ingested).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port (0 = any free port).")
@click.option(
    "--token",
    default="",
    envvar="BUILDWATCH_REVIEW_TOKEN",
    help="Access token, required when --host is not loopback (env BUILDWATCH_REVIEW_TOKEN).",
)
@click.option("--who", default=None, help="Reviewer name the page starts with (default: user).")
def command(
    ledger: str | None,
    config_path: Path | None,
    units_path: Path | None,
    evidence: tuple[Path, ...],
    host: str,
    port: int,
    token: str,
    who: str | None,
) -> None:
    """Confirm or reject leads in the browser, beside their before/after evidence.

    \b
    Prints its address and serves until Ctrl-C. Keys on the page: C confirm, X then 1/2/3
    reject with a reason, S skip, U undo, V/W/B side-by-side/swipe/blink.
    Listens on 127.0.0.1 only unless --host says otherwise, which needs --token.
    """
    from pipelines.review.app import ReviewSettings, create_app
    from pipelines.review.server import ReviewServer, check_bind, is_loopback

    check_bind(host, token)
    store, _cfg = open_store(ledger, config_path)
    units = None
    priority: dict[str, float] = {}
    if units_path is not None:
        from pipelines.maps.inputs import check_cases, load_units, planning_units
        from pipelines.maps.priorities import aggregate_units, rank_units

        units = planning_units(load_units(units_path), str(units_path))
        ranked = rank_units(aggregate_units(check_cases(store.cases()), units))
        priority = dict(zip(ranked["unit_code"].astype(str), ranked["priority_score"], strict=True))
    hosts = ["127.0.0.1", "localhost", "::1"] if is_loopback(host) else [host]
    settings = ReviewSettings(
        ledger=store.url,
        evidence=list(evidence),
        units=units,
        unit_priority=priority,
        who=who if who is not None else getpass.getuser(),
        token=token,
        hosts=hosts,
    )
    app = create_app(settings)
    server = ReviewServer(app, host, port)
    where = server.url + (f"?token={token}" if token else "")
    click.echo(f"buildwatch review: {where}")
    click.echo(f"  ledger {store.label}; evidence from {len(app.state.roots)} folder(s)")
    if not is_loopback(host):
        click.echo("  reachable from other machines: the access token is required on every request")
    click.echo("  Ctrl-C to stop")
    server.serve_forever()
