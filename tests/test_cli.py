"""The ``buildwatch`` command: help is useful, errors are one clear line with an exit code."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from geo.errors import BuildwatchError, ConfigError, InputFileError, LockError
from pipelines import cli


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_help_lists_the_flow(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    assert "synth-district" in out
    assert "Exit codes" in out


def test_every_listed_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    group = cli.cli
    ctx = click.Context(group)
    names = group.list_commands(ctx)
    assert names, "no subcommands registered"
    for name in names:
        code, out, _ = run_cli([name, "--help"], capsys)
        assert code == 0, name
        assert "Usage:" in out and len(out.splitlines()) >= 4, f"{name} --help is too thin"


def test_unknown_command_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["no-such-command"], capsys)
    assert code == 2
    assert "No such command 'no-such-command'" in err


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("config.yaml: key 'filters.min_area' unknown"), 2),
        (InputFileError("x"), 3),
        (LockError("held"), 75),
    ],
)
def test_buildwatch_errors_become_one_line_and_exit_code(
    exc: BuildwatchError,
    code: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @click.command("boom")
    def boom() -> None:
        raise exc

    monkeypatch.setitem(cli.COMMANDS, "boom", "tests.test_cli:_boom")
    monkeypatch.setattr(sys.modules[__name__], "_boom", boom, raising=False)
    got, _, err = run_cli(["boom"], capsys)
    assert got == code
    assert err.strip() == f"error: {exc}"
    assert "Traceback" not in err


def test_console_script_runs_in_a_fresh_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "version" in proc.stdout
