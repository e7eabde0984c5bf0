"""geo.atomic: temp file beside the target, os.replace, umask-following mode, no leftovers."""

from __future__ import annotations

import doctest
import os
import stat
from pathlib import Path

import pytest

import geo.atomic
from geo.atomic import atomic_path, default_file_mode, write_bytes_atomic, write_text_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_doctests() -> None:
    result = doctest.testmod(geo.atomic)
    assert result.failed == 0 and result.attempted > 0


def test_replaces_the_target_through_a_hidden_temp_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "leads.csv"
    target.write_text("old\n")
    inode = target.stat().st_ino
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".leads.") and tmp.suffix == ".csv"
        assert not tmp.exists()  # the block creates it
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # nothing visible until the block ends
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != inode  # a new file moved in, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["leads.csv"]


def test_error_removes_the_temp_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text('{"ok": 1}')
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text('{"half')
        raise RuntimeError("disk full")
    assert target.read_text() == '{"ok": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_error_before_any_target_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad"), atomic_path(tmp_path / "x.png") as tmp:
        tmp.write_bytes(b"\x89PNG")
        raise ValueError("bad")
    assert list(tmp_path.iterdir()) == []


def test_block_that_writes_nothing_fails_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("keep")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass
    assert target.read_text() == "keep"


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_follows_umask_not_mkstemp(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        assert default_file_mode() == mode
        with atomic_path(tmp_path / "map.html") as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # a writer that creates it private
            os.close(fd)
        path = write_bytes_atomic(tmp_path / "chip.png", b"png")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "map.html").stat().st_mode) == mode
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_suffix_and_mkdir(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "deep" / "er" / "README"
    with pytest.raises(FileNotFoundError):
        write_text_atomic(target, "x")
    with atomic_path(target, suffix=".tmp", mkdir=True) as tmp:
        assert tmp.suffix == ".tmp" and tmp.name.startswith(".README.")
        tmp.write_text("ok")
    assert target.read_text() == "ok"
    assert write_text_atomic(tmp_path / "z.txt", "é", encoding="latin-1").read_bytes() == b"\xe9"
