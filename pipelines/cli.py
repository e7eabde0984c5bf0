"""The ``buildwatch`` command: a thin layer of options over the library.

Subcommands live one per module in :mod:`pipelines.commands` and are imported only when used,
so ``buildwatch --help`` stays fast. Any :class:`geo.errors.BuildwatchError` becomes one line on
stderr and the error's exit code; an ``OSError`` (disk full, read-only, permission) or an error
raised inside GDAL/OGR, SQL, spreadsheet or YAML libraries becomes one line and exit code 1;
other exceptions keep their traceback (they are bugs). ``--debug`` keeps every traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from geo.errors import BuildwatchError

__all__ = ["main", "cli"]

#: subcommand name -> "module:attribute"; a module not present yet is simply not listed
COMMANDS: dict[str, str] = {
    "synth-district": "pipelines.commands.synth:command",
    "synth-nights": "pipelines.commands.synth:nights_command",
    "inspect": "pipelines.commands.inspect:command",
    "coreg": "pipelines.commands.inspect:coreg_command",
    "detect": "pipelines.commands.detect:command",
    "run": "pipelines.commands.run:command",
    "demo": "pipelines.commands.demo:command",
    "build-dataset": "pipelines.commands.train:build_dataset_command",
    "train": "pipelines.commands.train:train_command",
    "evaluate": "pipelines.commands.train:evaluate_command",
    "export": "pipelines.commands.train:export_command",
    "calibrate": "pipelines.commands.train:calibrate_command",
    "cases": "pipelines.commands.cases:group",
    "report": "pipelines.commands.report:group",
    "priorities": "pipelines.commands.maps:priorities_command",
    "map": "pipelines.commands.maps:map_command",
    "nightly": "pipelines.commands.nightly:nightly_command",
    "batch": "pipelines.commands.nightly:batch_command",
    "review": "pipelines.commands.review:command",
    "city": "pipelines.commands.city:group",
}


def _load(name: str) -> click.Command | None:
    module_name, attr = COMMANDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return getattr(module, attr, None)


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return _load(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="buildwatch")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--log-json", is_flag=True, help="Log as JSON lines on stderr (for schedulers).")
@click.option("--debug", is_flag=True, help="Keep Python tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no normal output; errors only.")
def cli(verbose: int, log_json: bool, debug: bool, quiet: bool) -> None:
    """buildwatch: find new unauthorised structures from drone flights.

    \b
    The flow, one command per step or all at once:
      synth-district  make a synthetic district (flight, baseline, units, truth) to try things on
      detect          flight + baseline -> leads.gpkg (new-structure polygons)
      run             the whole job for one flight: leads, evidence, exports, summary
      cases, report   the two case ledgers (in-progress, existing) and their reports
      review          confirm or reject leads in the browser, beside their evidence
      city            the city's reports over every district ledger
      priorities, map where concentrated clearance (集中成片整治) should go
      nightly, batch  scheduled and bulk processing

    Exit codes: 0 ok, 1 error (incl. disk full, read-only), 2 bad config/option (incl. an
    output folder that cannot be written), 3 bad input file, 4 nothing could be compared
    (co-registration), 5 model problem, 6 ledger problem, 75 another run holds the lock.
    """
    from pipelines.logs import setup_logging
    from pipelines.progress import set_quiet

    set_quiet(quiet)
    setup_logging(verbose=verbose, json_lines=log_json)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning BuildwatchError into one line + exit code."""
    from geo.memory import limit_arenas

    limit_arenas()  # before any thread starts: memory stays flat with the number of threads
    try:
        cli.main(args=argv, prog_name="buildwatch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BuildwatchError as exc:
        if _debug(argv):
            raise
        logging.getLogger("buildwatch").debug("error", exc_info=True)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the disk, not the data: one line, the file and the fix
        if _debug(argv):
            raise
        click.echo(f"error: {_os_error_line(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:
        # an error raised inside a library (GDAL, OGR, SQL, spreadsheet, YAML) on the way out is
        # still one line; anything else is a bug in buildwatch and keeps its traceback
        root = type(exc).__module__.split(".")[0]
        if root not in _LIBRARIES or _debug(argv):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        click.echo(
            f"error: {root}: {message[:500]} (rerun with --debug for the traceback)", err=True
        )
        sys.exit(1)
    sys.exit(0)


#: libraries whose errors reach the user as one line (their message names the file or value)
_LIBRARIES = frozenset(
    {
        "rasterio",
        "pyogrio",
        "fiona",
        "sqlalchemy",
        "openpyxl",
        "yaml",
        "shapely",
        "pyproj",
        "psycopg2",
    }
)


def _debug(argv: list[str] | None) -> bool:
    return "--debug" in (sys.argv[1:] if argv is None else argv)


def _os_error_line(exc: OSError) -> str:
    """``exc`` as one line naming the file and what to do about it."""
    import errno

    where = exc.filename or "a file"
    fixes = {
        errno.ENOSPC: "the disk is full: free space or write elsewhere",
        errno.EROFS: "the file system is read-only: choose a writable output folder",
        errno.EACCES: "permission denied: choose a folder this user may write",
        errno.EPERM: "operation not permitted: choose a folder this user may write",
        errno.ENOENT: "no such file or folder: check the path",
        errno.EDQUOT: "the disk quota is exceeded: free space or write elsewhere",
    }
    fix = fixes.get(exc.errno or -1, "check the file and the disk")
    return f"{where}: {exc.strerror or exc}; {fix} (rerun with --debug for the traceback)"


if __name__ == "__main__":  # pragma: no cover
    main()
