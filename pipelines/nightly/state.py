"""What the nightly job remembers between runs: processed flights, tile checkpoints, lock, health.

* :class:`StateDB` — a small SQLite file beside the outputs; one row per flight content hash with
  the stage it reached (``running`` → ``detected`` → ``done``, or ``failed``); a ``done`` flight
  (leads ingested into the ledger) is skipped, so it is never ingested twice.
* :class:`TileCheckpoint` — one SQLite file per flight, one row per finished tile (its candidates
  as arrays). A run killed mid-flight resumes from the tiles already stored. The checkpoint is
  bound to a *key* (flight, baseline, model and tiling parameters); a different key discards it.
* :class:`RunLock` — ``fcntl.flock`` on a lock file; the kernel releases it when the holder dies,
  so there are no stale locks. A second run raises :class:`geo.errors.LockError` (exit code 75)
  naming the holder's pid and start time.
* :func:`write_health` — a JSON file a monitor can read: last success, last run status, counts.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from geo.atomic import write_text_atomic
from geo.errors import LedgerError, LockError
from models.candidates import Candidates

__all__ = [
    "StateDB",
    "TileCheckpoint",
    "RunLock",
    "write_health",
    "read_health",
]

STAGES = ("running", "detected", "done", "failed")


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path, timeout=30, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise LedgerError(
            f"{path}: cannot open the nightly state database ({exc}); check permissions"
        ) from exc
    return con


class StateDB:
    """Processed flights keyed by content hash (SQLite)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._con = _connect(self.path)
        self._con.execute(
            """CREATE TABLE IF NOT EXISTS flights (
                content_hash TEXT PRIMARY KEY, flight_id TEXT NOT NULL, path TEXT NOT NULL,
                flight_date TEXT, baseline_id TEXT, stage TEXT NOT NULL, out_dir TEXT,
                n_leads INTEGER, error TEXT, started TEXT, updated TEXT NOT NULL)"""
        )

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stage(self, content_hash: str) -> str | None:
        row = self._con.execute(
            "SELECT stage FROM flights WHERE content_hash = ?", (content_hash,)
        ).fetchone()
        return None if row is None else str(row[0])

    def record(self, content_hash: str, *, stage: str, **fields: Any) -> None:
        """Insert or update a flight's row; ``fields`` are column values (flight_id, path...)."""
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} is not one of {STAGES}")
        cols = {
            "stage": stage,
            "updated": _now(),
            **{k: v for k, v in fields.items() if v is not None},
        }
        bad = set(cols) - {
            "stage",
            "updated",
            "flight_id",
            "path",
            "flight_date",
            "baseline_id",
            "out_dir",
            "n_leads",
            "error",
            "started",
        }
        if bad:
            raise ValueError(f"StateDB.record: unknown columns {sorted(bad)}")
        if self.stage(content_hash) is None:
            cols.setdefault("flight_id", "")
            cols.setdefault("path", "")
            names = ["content_hash", *cols]
            marks = ",".join("?" * len(names))
            self._con.execute(
                f"INSERT INTO flights ({','.join(names)}) VALUES ({marks})",
                (content_hash, *cols.values()),
            )
        else:
            sets = ",".join(f"{k} = ?" for k in cols)
            self._con.execute(
                f"UPDATE flights SET {sets} WHERE content_hash = ?", (*cols.values(), content_hash)
            )

    def rows(self) -> list[dict[str, Any]]:
        cur = self._con.execute("SELECT * FROM flights ORDER BY flight_date, flight_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _pack(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _unpack(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _pack_outlines(outline: np.ndarray) -> bytes:
    """Outlines as one float32 array: ``n``, then each vertex count (-1 = none), then vertices."""
    counts = [-1 if o is None else len(o) for o in outline]
    verts = [np.asarray(o, np.float32).ravel() for o in outline if o is not None]
    flat = np.concatenate([np.float32([len(counts)] + counts), *verts]).astype(np.float32)
    return _pack(flat)


def _unpack_outlines(blob: bytes | None, n: int) -> np.ndarray:
    out = np.empty(n, object)
    if blob is None:
        return out
    flat = _unpack(blob)
    counts = flat[1 : 1 + int(flat[0])].astype(np.int64)
    pos = 1 + len(counts)
    for i, k in enumerate(counts):
        if k >= 0:
            out[i] = flat[pos : pos + 2 * k].reshape(k, 2)
            pos += 2 * k
    return out


class TileCheckpoint:
    """Finished tiles of one flight: ``tile index -> Candidates``, committed as they arrive."""

    def __init__(self, path: Path, key: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self._con = _connect(self.path)
        self._con.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self._con.execute(
            """CREATE TABLE IF NOT EXISTS tiles (tile_index INTEGER PRIMARY KEY, xyxy BLOB,
               score BLOB, class_id BLOB, tile_id BLOB, finished TEXT, outline BLOB)"""
        )
        columns = {r[1] for r in self._con.execute("PRAGMA table_info(tiles)")}
        if "outline" not in columns:  # a checkpoint written before outlines existed
            self._con.execute("ALTER TABLE tiles ADD COLUMN outline BLOB")
        key_text = json.dumps(dict(key), sort_keys=True, default=str)
        row = self._con.execute("SELECT v FROM meta WHERE k = 'key'").fetchone()
        if row is not None and row[0] != key_text:
            self._con.execute("DELETE FROM tiles")  # different flight/baseline/model: start over
        self._con.execute("INSERT OR REPLACE INTO meta VALUES ('key', ?)", (key_text,))

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> TileCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done(self) -> set[int]:
        return {int(r[0]) for r in self._con.execute("SELECT tile_index FROM tiles")}

    def save(self, results: Mapping[int, Candidates | None]) -> None:
        """Store finished tiles (one transaction: a batch is stored whole or not at all)."""
        rows = [
            (int(i), None, None, None, None, _now(), None)
            if c is None
            else (
                int(i),
                _pack(c.xyxy),
                _pack(c.score),
                _pack(c.class_id),
                _pack(c.tile_id),
                _now(),
                _pack_outlines(c.outline),
            )
            for i, c in results.items()
        ]
        with self._con:
            self._con.execute("BEGIN")
            self._con.executemany(
                "INSERT OR REPLACE INTO tiles (tile_index, xyxy, score, class_id, tile_id, "
                "finished, outline) VALUES (?,?,?,?,?,?,?)",
                rows,
            )

    def load(self, indices: Iterable[int] | None = None) -> dict[int, Candidates | None]:
        rows = self._con.execute(
            "SELECT tile_index, xyxy, score, class_id, tile_id, outline FROM tiles"
        ).fetchall()
        wanted = None if indices is None else set(indices)
        out: dict[int, Candidates | None] = {}
        for i, x, s, c, t, o in rows:
            if wanted is not None and int(i) not in wanted:
                continue
            if x is None:
                out[int(i)] = None
                continue
            score = _unpack(s)
            out[int(i)] = Candidates(
                _unpack(x), score, _unpack(c), _unpack(t), _unpack_outlines(o, len(score))
            )
        return out


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``path`` for the life of the ``with`` block."""

    def __init__(self, path: Path, what: str = "buildwatch nightly") -> None:
        self.path = Path(path)
        self.what = what
        self._fh: io.TextIOWrapper | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            try:
                info = json.loads(holder)
                who = f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
            except ValueError:
                who = "a process that did not record its pid"
            raise LockError(
                f"another {self.what} run holds the lock {self.path} ({who}); "
                "this run exits without doing anything — wait for it to finish"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def read_health(path: Path) -> dict[str, Any]:
    """The health file's content, or ``{}`` when there is none yet (or it is unreadable)."""
    try:
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


def write_health(
    path: Path,
    *,
    status: str,
    started: str,
    counts: Mapping[str, int],
    exit_code: int,
    flights: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Update the health file: the last run, and ``last_success`` when ``status == 'ok'``.

    ``flights`` (flight id -> its status, co-registration and km² compared / not comparable)
    is the last run's per-flight outcome, so a monitor sees a partly compared flight by name.
    """
    health = read_health(path)
    finished = _now()
    health.update(
        {
            "last_run": {
                "started": started,
                "finished": finished,
                "status": status,
                "exit_code": exit_code,
            },
            "counts": dict(counts),
            "flights": {k: dict(v) for k, v in (flights or {}).items()},
            "pid": os.getpid(),
        }
    )
    if status == "ok":
        health["last_success"] = finished
    health.setdefault("last_success", None)
    write_text_atomic(path, json.dumps(health, ensure_ascii=False, indent=1), mkdir=True)
    return health
