"""Keeping the process small: glibc's allocator told to hand freed memory back to the system.

A run reads many short-lived buffers from several threads (GDAL decoding, numpy tiles); glibc
keeps freed memory in per-thread arenas, so the resident size grows with the number of threads
and never shrinks. :func:`limit_arenas` caps the arenas (call it early, in the CLI) and
:func:`release_memory` returns free pages after a phase. Both do nothing off glibc.

>>> release_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["limit_arenas", "release_memory"]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(n: int = 2) -> bool:
    """Cap glibc malloc arenas at *n* (the default is 8 per core); True when applied."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, int(n)) == 1)


def release_memory() -> bool:
    """Return free heap pages to the system (``malloc_trim``); True when anything was released."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
