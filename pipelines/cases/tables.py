"""The ledger's tables, declared once with SQLAlchemy Core for both backends.

* ``cases`` — one row per case (a feature table: polygon in the ledger's projected CRS);
  columns as in :data:`CASE_COLUMNS` (the cases contract shared with the maps).
* ``case_history`` — one row per change of a case (who, when, from, to, note, flight).
* ``ingests`` — one row per ingested flight (makes re-ingesting the same run a no-op).
* ``ledger_meta`` — key/value facts about the ledger (its SRID, schema version).

Schema versions: 1 (drone cases only); 2 adds the discovery channel of each case (``source``,
``report_ref``, ``address``, ``description``, ``reported_by``, ``location``) and the per-household
registration of existing cases (``household``, ``owner``). :data:`ADDED_IN` says which columns
each version added, so :meth:`pipelines.cases.store.LedgerStore.upgrade` can add them in place.

The geometry column is GeoPackage binary on SQLite and a PostGIS ``geometry(POLYGON, srid)``
through GeoAlchemy2 on PostgreSQL; :func:`polygon_type` hides the difference, so callers see
shapely geometries either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import shapely
from geoalchemy2 import Geometry
from geoalchemy2.elements import WKBElement
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from pipelines.cases import gpkg

__all__ = [
    "CASE_COLUMNS",
    "HISTORY_COLUMNS",
    "INGEST_COLUMNS",
    "SCHEMA_VERSION",
    "ADDED_IN",
    "SOURCES",
    "SOURCE_LABELS_ZH",
    "LOCATIONS",
    "polygon_type",
    "Tables",
    "build_tables",
]

SCHEMA_VERSION = "2"

#: discovery channels (DOMAIN: drone flights, patrols, the public hotline, the city's inspections)
SOURCES = ("drone", "patrol", "hotline", "inspection")
SOURCE_LABELS_ZH = {
    "drone": "无人机航拍",
    "patrol": "巡查",
    "hotline": "热线举报",
    "inspection": "督查",
}
#: how precisely a case's polygon says where the structure is
LOCATIONS = ("outline", "point", "unit")

#: the cases contract: column -> meaning (geometry is the polygon in the ledger CRS)
CASE_COLUMNS: dict[str, str] = {
    "case_id": "stable id BW-<district_code>-<6-digit sequence>",
    "ledger": "in_progress | existing",
    "state": "discovered/stopped/removed | evidence/notice/penalty/enforced | rejected",
    "reject_reason": "'' | false_detection | permitted | duplicate",
    "class": "detector class that opened the case: construction | new_building",
    "last_class": "class of the latest detection (a construction site may complete)",
    "score": "latest detector confidence",
    "area_m2": "latest polygon area, m²",
    "lon": "latest centroid longitude (EPSG:4490)",
    "lat": "latest centroid latitude (EPSG:4490)",
    "unit_type": "compound | village | community | unassigned",
    "unit_code": "compound or village/community code",
    "unit_name": "its name",
    "township_code": "township/street code",
    "township_name": "township/street name",
    "district_code": "district code",
    "district_name": "district name",
    "responsible_party": "who patrols/acts first",
    "first_seen": "ISO date of the first detection",
    "last_seen": "ISO date of the latest detection",
    "times_seen": "number of flights that detected it",
    "first_flight_id": "flight that first detected it",
    "last_flight_id": "latest flight that detected it",
    "not_observed": "the last flight covering the site did not detect it (verify on site)",
    "supervised": "挂牌督办 (supervised by the city, with a deadline)",
    "deadline": "ISO date or ''",
    "evidence_before": "path of the latest before chip",
    "evidence_after": "path of the latest after chip",
    "updated_at": "ISO timestamp of the latest change to the row",
    "source": "discovery channel that opened the case: drone | patrol | hotline | inspection",
    "report_ref": "patrol log / hotline ticket number(s), '; '-joined when several reports meet",
    "address": "reported address ('' for drone cases)",
    "description": "reported description",
    "reported_by": "reporter / patrol team / hotline seat",
    "location": "outline (the structure's polygon) | point (a reported position, buffered) | "
    "unit (only the compound/village is known: its polygon)",
    "household": "分户登记: household (door number) of an existing case",
    "owner": "分户登记: owner or occupant of an existing case",
}
#: columns each schema version added to ``cases`` (with the value existing rows get)
ADDED_IN: dict[str, dict[str, str]] = {
    "2": {
        "source": "drone",
        "report_ref": "",
        "address": "",
        "description": "",
        "reported_by": "",
        "location": "outline",
        "household": "",
        "owner": "",
    },
}
HISTORY_COLUMNS = (
    "case_id",
    "at",
    "who",
    "from_state",
    "to_state",
    "reject_reason",
    "note",
    "flight_id",
    "source",
    "recorded_at",
)
INGEST_COLUMNS = (
    "flight_id",
    "run_id",
    "at",
    "who",
    "source",
    "flight_date",
    "n_leads",
    "n_permitted",
    "n_new",
    "n_seen_again",
    "n_reopened",
    "n_not_observed",
)
_FLOATS = {"score", "area_m2", "lon", "lat"}
_INTS = {"times_seen"}
_BOOLS = {"not_observed", "supervised"}


class _GpkgPolygon(UserDefinedType[bytes]):
    """SQLite column declared ``POLYGON`` (as GeoPackage requires) holding GPKG blobs."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "POLYGON"


class _PostgisPolygon(TypeDecorator[BaseGeometry]):
    """PostGIS ``geometry(POLYGON, srid)`` through GeoAlchemy2, seen as shapely."""

    impl = Geometry
    cache_ok = True

    def __init__(self, srid: int) -> None:
        super().__init__("POLYGON", srid=srid)
        self.srid = srid

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else WKBElement(shapely.to_wkb(value), srid=self.srid)

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        data = value.data if isinstance(value, WKBElement) else value
        return shapely.from_wkb(data if isinstance(data, str) else bytes(data))


class _GpkgPolygonType(TypeDecorator[BaseGeometry]):
    """GeoPackage binary in a column declared ``POLYGON``, seen as shapely."""

    impl = _GpkgPolygon
    cache_ok = True

    def __init__(self, srid: int) -> None:
        super().__init__()
        self.srid = srid

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return gpkg.encode(value, self.srid)

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        return gpkg.decode(value)


def polygon_type(srid: int, dialect_name: str) -> TypeEngine[Any]:
    """The polygon column type for a backend (``sqlite`` → GeoPackage, else PostGIS)."""
    return _GpkgPolygonType(srid) if dialect_name == "sqlite" else _PostgisPolygon(srid)


@dataclass(frozen=True)
class Tables:
    """The ledger's SQLAlchemy tables for one SRID."""

    metadata: MetaData
    cases: Table
    history: Table
    ingests: Table
    meta: Table
    srid: int


def _type_of(name: str) -> Any:
    if name in _FLOATS:
        return Float
    if name in _INTS:
        return Integer
    if name in _BOOLS:
        return Boolean(create_constraint=False)
    return Text


def build_tables(srid: int, dialect_name: str) -> Tables:
    """Declare the four tables with geometry in EPSG:*srid* for a backend (``sqlite``/``postgresql``)."""
    md = MetaData()
    case_cols = [
        Column(name, _type_of(name), nullable=name not in ("case_id",), unique=name == "case_id")
        for name in CASE_COLUMNS
    ]
    cases = Table(
        "cases",
        md,
        Column("fid", Integer, primary_key=True, autoincrement=True),
        Column("geom", polygon_type(srid, dialect_name)),
        *case_cols,
        Index("cases_state_idx", "ledger", "state"),
        sqlite_autoincrement=True,
    )
    history = Table(
        "case_history",
        md,
        Column("hid", Integer, primary_key=True, autoincrement=True),
        *[Column(name, Text, nullable=name != "case_id") for name in HISTORY_COLUMNS],
        Index("case_history_case_idx", "case_id"),
        sqlite_autoincrement=True,
    )
    ingests = Table(
        "ingests",
        md,
        Column("iid", Integer, primary_key=True, autoincrement=True),
        *[
            Column(name, Integer if name.startswith("n_") else Text, unique=name == "flight_id")
            for name in INGEST_COLUMNS
        ],
        sqlite_autoincrement=True,
    )
    meta = Table(
        "ledger_meta",
        md,
        Column("mid", Integer, primary_key=True, autoincrement=True),
        Column("key", Text, unique=True, nullable=False),
        Column("value", Text),
    )
    return Tables(md, cases, history, ingests, meta, srid)
