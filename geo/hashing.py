"""Content hashes of files, streamed (orthophotos and weights can be gigabytes).

>>> import tempfile, os
>>> with tempfile.NamedTemporaryFile(delete=False) as fh:
...     _ = fh.write(b"buildwatch")
>>> file_sha256(fh.name)[:12]
'80085815131a'
>>> os.unlink(fh.name)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]

_CHUNK = 4 * 1024 * 1024


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
