"""The ledger store: one SQLAlchemy Core code path over a GeoPackage file or PostgreSQL/PostGIS.

The backend is chosen by URL: a plain path (or ``sqlite:///path``) is a single GeoPackage file that
QGIS opens directly; ``postgresql://user@host:port/db`` is PostGIS through GeoAlchemy2 (put
``?options=-csearch_path%3Dmyschema,public`` in the URL to use a schema other than ``public``).

Every write is one transaction that holds the ledger's writer lock for its whole length, so a
process killed mid-write leaves the ledger exactly as it was and two writers are serialised: on
SQLite ``BEGIN IMMEDIATE`` with a busy timeout, on PostgreSQL ``pg_try_advisory_xact_lock``
polled until the same timeout. A writer that cannot get the lock in time gets
:class:`geo.errors.LockError`.

>>> store = LedgerStore("/tmp/ledger.gpkg")  # doctest: +SKIP
>>> with store.write() as conn:  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from geo.errors import ConfigError, LedgerError, LockError
from pipelines.cases import gpkg
from pipelines.cases.states import CLOSED_STATES
from pipelines.cases.tables import ADDED_IN, CASE_COLUMNS, SCHEMA_VERSION, Tables, build_tables

__all__ = ["LedgerStore", "resolve_url", "now_iso", "read_cases"]

log = logging.getLogger(__name__)

#: schema versions this buildwatch can upgrade from, oldest first
_OLDER = ["1"]

_ATTRIBUTE_TABLES = [
    ("case_history", "buildwatch case history: one row per change (who, when, from, to, note)"),
    ("ingests", "buildwatch ingested flights (re-ingesting the same flight is a no-op)"),
    ("ledger_meta", "buildwatch ledger facts (srid, schema version)"),
]


def now_iso() -> str:
    """The current local time as an ISO timestamp (seconds)."""
    return datetime.now().isoformat(timespec="seconds")


def resolve_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL for a ledger given as a URL or a plain path (a path means GeoPackage).

    >>> resolve_url("postgres://u@127.0.0.1/db")
    'postgresql+psycopg2://u@127.0.0.1/db'
    >>> resolve_url("/data/ledger.gpkg")
    'sqlite:////data/ledger.gpkg'
    """
    s = str(url_or_path).strip()
    if not s:
        raise ConfigError("ledger: empty URL or path; pass --ledger PATH.gpkg or postgresql://...")
    if "://" not in s:
        return f"sqlite:///{Path(s).expanduser().resolve()}"
    for plain in ("postgres://", "postgresql://"):
        if s.startswith(plain):  # psycopg2 is the driver we ship (SQLAlchemy 2.1 defaults to v3)
            s = "postgresql+psycopg2://" + s[len(plain) :]
    if s.startswith(("postgresql+psycopg2://", "sqlite:///")):
        return s
    raise ConfigError(
        f"ledger: unsupported URL {s!r}; use a GeoPackage path, sqlite:///PATH or postgresql://..."
    )


class LedgerStore:
    """A case ledger at *url_or_path*: opening, locking, transactions and reads.

    Parameters
    ----------
    url_or_path:
        GeoPackage path or ``postgresql://`` URL.
    lock_timeout_s:
        how long a writer waits for another writer before :class:`LockError`.
    """

    def __init__(self, url_or_path: str | Path, *, lock_timeout_s: float = 30.0) -> None:
        self.url = resolve_url(url_or_path)
        self.kind = "postgis" if self.url.startswith("postgresql") else "gpkg"
        self.lock_timeout_s = float(lock_timeout_s)
        self._tables: Tables | None = None
        self.engine = self._make_engine()

    # -- engine and locking -------------------------------------------------------------------
    def _make_engine(self) -> Engine:
        if self.kind == "postgis":
            return create_engine(  # batched UPDATEs: one round trip per page, not per row
                self.url,
                poolclass=NullPool,
                executemany_mode="values_plus_batch",
                executemany_batch_page_size=500,
            )
        path = Path(self.url[len("sqlite:///") :])
        if not path.parent.is_dir():
            raise ConfigError(f"ledger {path}: folder {path.parent} does not exist; create it")
        engine = create_engine(
            self.url, poolclass=NullPool, connect_args={"timeout": self.lock_timeout_s}
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("bw_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @property
    def label(self) -> str:
        """The ledger's location for messages (password hidden)."""
        if self.kind == "gpkg":
            return self.url[len("sqlite:///") :]
        return self.engine.url.render_as_string(hide_password=True)

    def _lock_error(self) -> LockError:
        return LockError(
            f"ledger {self.label} is being written by another process (waited "
            f"{self.lock_timeout_s:g} s); try again when it finishes"
        )

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction holding the writer lock; commits on success, else rolls back."""
        try:
            with self.engine.connect().execution_options(bw_write=True) as conn:
                try:
                    with conn.begin():
                        if self.kind == "postgis":
                            self._pg_lock(conn)
                        yield conn
                except OperationalError as exc:
                    if "database is locked" in str(exc):
                        raise self._lock_error() from exc
                    raise
        except OperationalError as exc:
            if "database is locked" in str(exc):
                raise self._lock_error() from exc
            raise LedgerError(f"ledger {self.label}: {exc.orig}") from exc
        except DBAPIError as exc:
            raise LedgerError(f"ledger {self.label}: {exc.orig}") from exc

    def _pg_lock(self, conn: Connection) -> None:
        key = text("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '/bw-ledger'))")
        deadline = time.monotonic() + self.lock_timeout_s
        while not conn.execute(key).scalar():
            if time.monotonic() >= deadline:
                raise self._lock_error()
            time.sleep(0.1)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot; never blocks on the writer lock)."""
        try:
            with self.engine.connect() as conn:
                yield conn  # closing the connection rolls the (read-only) transaction back
        except DBAPIError as exc:
            raise LedgerError(f"ledger {self.label}: {exc.orig}") from exc

    # -- schema ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        """True when the ledger's tables are there."""
        if self.kind == "gpkg" and not Path(self.label).exists():
            return False
        try:
            with self.engine.connect() as conn:
                return bool(inspect(conn).has_table("ledger_meta"))
        except DBAPIError as exc:
            raise LedgerError(f"ledger {self.label}: cannot connect ({exc.orig})") from exc

    def require(self) -> Tables:
        """The tables of an existing ledger, or a clear error when there is none."""
        if self._tables is None:
            if not self.exists():
                raise LedgerError(
                    f"no ledger at {self.label}; create it by ingesting leads: "
                    "buildwatch cases ingest LEADS.gpkg --ledger ..."
                )
            with self.engine.connect() as conn:
                self._check_version(conn)
                srid = conn.execute(text("SELECT value FROM ledger_meta WHERE key = 'srid'"))
                self._tables = build_tables(int(srid.scalar_one()), self.engine.dialect.name)
        return self._tables

    def schema_version(self, conn: Connection) -> str:
        """The ledger's schema version as recorded in ``ledger_meta``."""
        found = conn.execute(text("SELECT value FROM ledger_meta WHERE key = 'schema_version'"))
        return str(found.scalar() or "")

    def _check_version(self, conn: Connection) -> None:
        found = self.schema_version(conn)
        if found == SCHEMA_VERSION:
            return
        if found in _OLDER:
            raise LedgerError(
                f"ledger {self.label} has schema version {found}; this buildwatch uses "
                f"{SCHEMA_VERSION}: upgrade it once with `buildwatch cases upgrade --ledger "
                f"{self.label}` (adds columns, keeps every case)"
            )
        raise LedgerError(
            f"ledger {self.label} has schema version {found!r}, which this buildwatch (version "
            f"{SCHEMA_VERSION}) does not know; use the buildwatch that wrote it, or a newer one"
        )

    def upgrade(self) -> tuple[str, str]:
        """Bring an older ledger to :data:`SCHEMA_VERSION` in one transaction (columns added
        with their defaults, nothing removed); returns (from, to). A current ledger is left as is.
        """
        if not self.exists():
            raise LedgerError(f"no ledger at {self.label}; nothing to upgrade")
        with self.write() as conn:
            found = self.schema_version(conn)
            self._upgrade(conn)
        self._tables = None
        return found, SCHEMA_VERSION

    def _upgrade(self, conn: Connection) -> None:
        """Add what each later schema version added (inside the write transaction *conn*)."""
        found = self.schema_version(conn)
        if found == SCHEMA_VERSION:
            return
        if found not in _OLDER:
            self._check_version(conn)  # raises: a version this buildwatch does not know
        have = {c["name"] for c in inspect(conn).get_columns("cases")}
        for version in _OLDER[_OLDER.index(found) + 1 :] + [SCHEMA_VERSION]:
            for name, default in ADDED_IN.get(version, {}).items():
                if name not in have:
                    conn.exec_driver_sql(f"ALTER TABLE cases ADD COLUMN {name} TEXT")
                    conn.execute(text(f"UPDATE cases SET {name} = :v"), {"v": default})
        conn.execute(
            text("UPDATE ledger_meta SET value = :v WHERE key = 'schema_version'"),
            {"v": SCHEMA_VERSION},
        )
        log.warning("upgraded ledger %s from schema %s to %s", self.label, found, SCHEMA_VERSION)

    def ensure(self, conn: Connection, srid: int | None) -> Tables:
        """The ledger's tables, creating an empty ledger in EPSG:*srid* if there is none yet.

        Call inside the write transaction *conn* (so two creators cannot race).
        """
        if inspect(conn).has_table("ledger_meta"):
            self._upgrade(conn)  # the nightly ingest keeps working after a buildwatch update
            found = conn.execute(text("SELECT value FROM ledger_meta WHERE key = 'srid'"))
            self._tables = build_tables(int(found.scalar_one()), self.engine.dialect.name)
            if self.kind == "gpkg" and not inspect(conn).has_table("layer_styles"):
                self._style(conn)  # a ledger from before styles: QGIS opens it styled from now on
            return self._tables
        if srid is None:
            raise LedgerError(
                f"no ledger at {self.label} and no EPSG code to create one in; "
                "give the leads a CRS with an EPSG code"
            )
        if self.kind == "gpkg":
            other = sorted(
                n
                for n in inspect(conn).get_table_names()
                if not n.startswith(("gpkg_", "rtree_", "sqlite_"))
            )
            if other:
                raise LedgerError(
                    f"{self.label} is a GeoPackage with layer(s) {', '.join(other)} but no case "
                    "ledger (a leads file?); it is not turned into one: pass the ledger's file "
                    "(or a new file name) as --ledger"
                )
        return self._create(conn, srid)

    def _create(self, conn: Connection, srid: int) -> Tables:
        t = build_tables(srid, self.engine.dialect.name)
        if self.kind == "gpkg":
            gpkg.init_metadata(conn, srid)
        elif not conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first():
            raise LedgerError(
                f"ledger {self.label}: the database lacks PostGIS; run CREATE EXTENSION postgis"
            )
        t.metadata.create_all(conn)
        if self.kind == "gpkg":
            gpkg.register(conn, [("cases", "geom", "POLYGON", srid)], _ATTRIBUTE_TABLES)
            self._style(conn)
        conn.execute(
            t.meta.insert(),
            [
                {"key": "srid", "value": str(srid)},
                {"key": "schema_version", "value": SCHEMA_VERSION},
                {"key": "created_at", "value": now_iso()},
            ],
        )
        log.info("created ledger %s (EPSG:%d)", self.label, srid)
        self._tables = t
        return t

    @staticmethod
    def _style(conn: Connection) -> None:
        """The cases layer's QGIS style in ``layer_styles`` (inside the write transaction)."""
        from pipelines.qgis import style_connection

        style_connection(conn.connection.driver_connection, ["cases"])  # type: ignore[arg-type]

    # -- reads ----------------------------------------------------------------------------------
    def cases(
        self,
        conn: Connection | None = None,
        *,
        ledger: str | None = None,
        states: Sequence[str] | None = None,
        case_ids: Sequence[str] | None = None,
        township_code: str | None = None,
        district_code: str | None = None,
        open_only: bool = False,
        columns: Sequence[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Cases as a GeoDataFrame (ledger CRS), filtered; ordered by case id."""
        t = self.require()
        c = t.cases.c
        names = list(columns) if columns is not None else list(CASE_COLUMNS)
        query = select(c.geom, *[c[n] for n in names]).order_by(c.case_id)
        if ledger:
            query = query.where(c.ledger == ledger)
        if states:
            query = query.where(c.state.in_(list(states)))
        if case_ids is not None:
            query = query.where(c.case_id.in_(list(case_ids)))
        if township_code:
            query = query.where(c.township_code == township_code)
        if district_code:
            query = query.where(c.district_code == district_code)
        if open_only:
            query = query.where(c.state.not_in(sorted(CLOSED_STATES)))
        if conn is None:
            with self.read() as own:
                rows = own.execute(query).all()
        else:
            rows = conn.execute(query).all()
        frame = pd.DataFrame([r[1:] for r in rows], columns=names)
        for name in ("not_observed", "supervised"):
            if name in frame:
                frame[name] = frame[name].fillna(False).astype(bool)
        return gpd.GeoDataFrame(frame, geometry=[r[0] for r in rows], crs=f"EPSG:{t.srid}")

    def history(self, case_id: str | None = None, conn: Connection | None = None) -> pd.DataFrame:
        """History rows (all, or of one case) in the order they were written."""
        t = self.require()
        h = t.history.c
        query = select(t.history).order_by(h.hid)
        if case_id is not None:
            query = query.where(h.case_id == case_id)
        if conn is None:
            with self.read() as own:
                rows = own.execute(query).mappings().all()
        else:
            rows = conn.execute(query).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=["hid", *t.history.c.keys()[1:]])

    def ingests(self) -> pd.DataFrame:
        """The ingested flights, oldest first."""
        t = self.require()
        with self.read() as conn:
            rows = conn.execute(select(t.ingests).order_by(t.ingests.c.iid)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=list(t.ingests.c.keys()))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def read_cases(url_or_path: str | Path) -> gpd.GeoDataFrame:
    """All cases of the ledger at *url_or_path* (the cases contract; used by the maps)."""
    store = LedgerStore(url_or_path)
    try:
        return store.cases()
    finally:
        store.dispose()
