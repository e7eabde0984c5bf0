"""Atomic file writes: a hidden temp file beside the target, then ``os.replace``.

A reader (a web server, the nightly inbox, a person opening the CSV) sees either the old file or
the whole new one, never a half-written one; on an error the temp file is removed and the old
file is left as it was. The new file gets the mode a plain ``open()`` would give it
(``0o666 & ~umask``), not ``mkstemp``'s private ``0o600``.

This is for single files. Swapping whole folders (a run's staged outputs, the synthetic
district) is a different job and stays with its owner.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> with atomic_path(folder / "table.csv") as tmp:
...     _ = tmp.write_text("a,b\\n1,2\\n")
...     (tmp.parent == folder, tmp.name.startswith("."), tmp.suffix)
(True, True, '.csv')
>>> write_text_atomic(folder / "note.txt", "你好\\n").read_text(encoding="utf-8")
'你好\\n'
>>> sorted(p.name for p in folder.iterdir())  # no temp files left
['note.txt', 'table.csv']
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "check_writable",
    "write_bytes_atomic",
    "write_text_atomic",
    "default_file_mode",
]


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file now: ``0o666`` less the process umask."""
    try:  # Linux: read the umask without changing it (os.umask is process-wide, not thread-safe)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, suffix: str | None = None, mkdir: bool = False
) -> Iterator[Path]:
    """Yield a temp path beside ``target``; when the block ends without error it replaces it.

    The temp path is hidden (``.<stem>.<random><suffix>``) and does not exist yet: the block
    creates it (``open``, ``to_csv``, ``to_file``, ``savefig`` ...). ``suffix`` defaults to
    ``target``'s, so writers that pick a format from the file name still see the right one.
    On success the file's mode is set to :func:`default_file_mode` and it is moved over
    ``target`` with ``os.replace``; on an exception the temp file is removed, ``target`` is left
    untouched, and the exception propagates. ``mkdir=True`` creates missing parent folders first.

    Raises:
        FileNotFoundError: the block finished without creating the temp file (nothing written),
            or the folder is missing and ``mkdir`` is False.
    """
    target = Path(target)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    ext = target.suffix if suffix is None else suffix
    tmp = target.with_name(f".{target.stem}.{secrets.token_hex(6)}{ext}")
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(
    target: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", mkdir: bool = False
) -> Path:
    """Write ``text`` to ``target`` atomically (see :func:`atomic_path`); returns ``target``."""
    target = Path(target)
    with atomic_path(target, mkdir=mkdir) as tmp:
        tmp.write_text(text, encoding=encoding)
    return target


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes, *, mkdir: bool = False) -> Path:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path`); returns ``target``."""
    target = Path(target)
    with atomic_path(target, mkdir=mkdir) as tmp:
        tmp.write_bytes(data)
    return target


def check_writable(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Make ``folder`` (and parents) and prove a file can be created in it, before long work.

    Raises :class:`geo.errors.ConfigError` naming the folder and the fix (read-only, no
    permission, disk full) instead of failing after the work is done.
    """
    from geo.errors import ConfigError

    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".bw-write-check-", dir=path)
        try:
            os.write(fd, b"0" * 4096)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"{what} {path} is not writable ({exc.strerror or exc}); choose a writable folder "
            "or free disk space"
        ) from exc
    return path
