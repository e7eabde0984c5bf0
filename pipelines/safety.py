"""Text from inputs is hostile: one place that makes it safe to use as a name, a path, a
spreadsheet cell or HTML.

* :func:`safe_name` — ids from flags, sidecars, GeoTIFF tags and unit layers become file and
  folder names only through it (letters, digits, ``_``, ``-``, ``.``; no separators, no ``..``);
* :func:`inside` — every write that builds a path from data is checked to stay under its root;
* :func:`neutralize` / :func:`neutralize_frame` — a cell that a spreadsheet would read as a
  formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) is written as text,
  with the usual leading apostrophe; used by every CSV and XLSX writer;
* :func:`sheet_title` — an XLSX sheet title made from data;
* :func:`escape_html` — every text from data that reaches HTML (map tooltips, popups, legends).

>>> safe_name("../../../X")
'X'
>>> safe_name("夜航 2024/05/01")
'夜航_2024_05_01'
>>> neutralize("=HYPERLINK(\\"http://x\\")")
'\\'=HYPERLINK("http://x")'
>>> neutralize(-3.5), neutralize("东村")
(-3.5, '东村')
>>> sheet_title("东*镇[1]:统计/汇总?")
'东镇1统计汇总'
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from pathlib import Path
from typing import Any

import pandas as pd

from geo.errors import ConfigError

__all__ = [
    "MAX_NAME",
    "safe_name",
    "safe_code",
    "inside",
    "neutralize",
    "neutralize_frame",
    "sheet_title",
    "escape_html",
]

log = logging.getLogger(__name__)

#: longest name kept (characters)
MAX_NAME = 80
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def safe_name(text: object, what: str = "name") -> str:
    """``text`` reduced to a safe file/folder name; ValueError naming ``what`` if nothing is left.

    Unicode is NFKC-normalised (full-width forms become ASCII); every run of characters other
    than letters, digits, ``_``, ``-`` and ``.`` becomes one ``_``; leading and trailing
    ``.``/``_``/``-`` are dropped (so no ``..`` path component and no hidden file remains);
    at most :data:`MAX_NAME` characters are kept.
    """
    raw = unicodedata.normalize("NFKC", str(text))
    name = _UNSAFE.sub("_", raw)
    name = re.sub(r"_{2,}", "_", re.sub(r"\.{2,}", "_", name)).strip("._-")[:MAX_NAME].strip("._-")
    if not name:
        raise ValueError(f"{what} {str(text)!r} has no usable character; use letters and digits")
    if name != raw:
        log.warning("%s %r used as %r (reduced to a safe file name)", what, raw, name)
    return name


def safe_code(code: object) -> str:
    """A code from the data (district, township, unit) as a file-name part; ``none`` if empty.

    >>> safe_code("500104/../x"), safe_code("")
    ('500104_x', 'none')
    """
    try:
        return safe_name(code, "code")
    except ValueError:
        return "none"


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` resolved, after checking it lies under ``root`` (ConfigError otherwise)."""
    base = Path(root).resolve()
    target = (base / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if target != base and base not in target.parents:
        raise ConfigError(
            f"refusing to write {target}: outside the output folder {base} (a name from the "
            "input data tried to leave it)"
        )
    return target


def neutralize(value: Any) -> Any:
    """A string a spreadsheet would evaluate as a formula, prefixed with ``'``; else unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def neutralize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell (and column name) passed through
    :func:`neutralize`; numbers stay numbers."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralize)
    out.columns = [neutralize(c) for c in out.columns]
    return out


def sheet_title(name: object, fallback: str = "sheet") -> str:
    """A valid XLSX sheet title from ``name``: no ``[]:*?/\\``, no edge quotes, <= 31 chars."""
    title = _SHEET_BAD.sub("", str(name)).strip("'").strip()[:31].strip("'")
    return title or fallback


def escape_html(value: object) -> str:
    """``value`` as text safe inside HTML (``& < > " '`` escaped)."""
    return html.escape("" if value is None else str(value), quote=True)
