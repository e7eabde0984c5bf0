"""``buildwatch nightly`` and ``buildwatch batch``: scheduled and bulk processing."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

__all__ = ["nightly_command", "batch_command"]

log = logging.getLogger(__name__)

#: the backend the commands use; tests point this at pipelines.nightly.testing:FakeBackend
BACKEND_ENV = "BUILDWATCH_NIGHTLY_BACKEND"
DEFAULT_BACKEND = "pipelines.nightly.adapters:BuildwatchBackend"

_config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="buildwatch YAML config.",
)
_scheduler_option = click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:8786",
    help="dask.distributed scheduler for tiles and flights (default: nightly.scheduler, else in-process).",
)


def _progress() -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    """Per flight: a tile bar on a TTY, a plain line per 10 % otherwise, nothing with --quiet
    (:class:`pipelines.progress.Progress`)."""
    from pipelines.progress import Progress, quiet

    if quiet():
        return None, lambda: None
    bars: dict[str, Progress] = {}

    def update(flight_id: str, done: int, total: int) -> None:
        bar = bars.get(flight_id)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[flight_id] = Progress(f"flight {flight_id}", total, stream=sys.stderr)
        if done > bar.done:
            bar(done - bar.done)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close


def _setup(config_path: Path):  # type: ignore[no-untyped-def]
    from pipelines.config import load_config
    from pipelines.nightly.job import load_backend

    config = load_config(config_path)
    backend = load_backend(os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND, config=config)
    return config, backend


@click.command("nightly")
@_config_option
@_scheduler_option
@click.option("--once", is_flag=True, help="One pass over the inbox, then exit (timers, cron).")
def nightly_command(config_path: Path, scheduler: str | None, once: bool) -> None:
    """Process new flights from the inbox: baseline, leads, ledger, maps, run summary.

    \b
    Exit codes: 0 ok (or nothing new), 75 another nightly/batch run holds the lock,
    2 bad config, 3 bad input, 4 co-registration, 5 model, 6 ledger (first failed flight).
    """
    from pipelines.nightly.runner import run_nightly

    config, backend = _setup(config_path)
    stop = {"flag": False}

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop["flag"] = True
        log.warning("signal %d: stopping after the current pass", signum)

    if not once:
        signal.signal(signal.SIGTERM, on_term)
    while True:
        update, close = _progress()
        try:
            summary = run_nightly(config, backend, scheduler=scheduler, progress=update)
        finally:
            close()
        if not _quiet():
            click.echo(summary.to_text(), nl=False)
        if once or stop["flag"]:
            break
        deadline = time.monotonic() + config.nightly.poll_seconds
        while time.monotonic() < deadline and not stop["flag"]:
            time.sleep(min(1.0, deadline - time.monotonic()))
        if stop["flag"]:
            break
    if summary.exit_code:
        sys.exit(summary.exit_code)


@click.command("batch")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_config_option
@_scheduler_option
def batch_command(manifest: Path, config_path: Path, scheduler: str | None) -> None:
    """Re-process the flights listed in MANIFEST (CSV/YAML: flight, baseline, date; or a text list)."""
    from pipelines.nightly.batch import run_batch

    config, backend = _setup(config_path)
    update, close = _progress()
    try:
        summary = run_batch(config, backend, manifest, scheduler=scheduler, progress=update)
    finally:
        close()
    if not _quiet():
        click.echo(summary.to_text(), nl=False)
    if summary.exit_code:
        sys.exit(summary.exit_code)


def _quiet() -> bool:
    from pipelines.progress import quiet

    return quiet()
