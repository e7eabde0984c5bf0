"""Minimal stand-in for ``polars`` on the GPU machine (the 54 MB wheel does not fit the carry).

ultralytics' trainer calls ``polars.read_csv(bytes).to_dict(as_series=False)`` once per epoch to
embed results.csv in the checkpoint; nothing else in training (plots=False) needs polars.
scripts/device_train.sh copies this file to ``/tmp/bw-stub/polars/__init__.py`` only when the real
polars is not importable.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path


class DataFrame:
    """Columns as lists."""

    def __init__(self, columns: dict[str, list]) -> None:
        self._columns = columns

    def to_dict(self, as_series: bool = True) -> dict[str, list]:
        return {k: list(v) for k, v in self._columns.items()}


def _num(text: str) -> float | int | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


def read_csv(source, infer_schema_length=None, **_: object) -> DataFrame:  # type: ignore[no-untyped-def]
    if isinstance(source, bytes | bytearray):
        text = bytes(source).decode()
    else:
        text = Path(source).read_text()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return DataFrame({})
    header = [h.strip() for h in rows[0]]
    cols: dict[str, list] = {h: [] for h in header}
    for row in rows[1:]:
        for h, v in zip(header, row, strict=False):
            cols[h].append(_num(v.strip()))
    return DataFrame(cols)
