"""Just enough of the OGC GeoPackage format for the embedded ledger, written with plain SQL.

The ledger file is a real GeoPackage that QGIS and GDAL open directly: ``application_id`` 'GPKG',
the three required metadata tables (``gpkg_spatial_ref_sys``, ``gpkg_contents``,
``gpkg_geometry_columns``), a feature table whose geometries are GeoPackage binary blobs
(header ``GP`` + envelope + ISO WKB), and attribute tables registered with ``data_type``
``attributes``. No SpatiaLite is needed: spatial work happens in shapely.

>>> from shapely.geometry import box
>>> blob = encode(box(0, 0, 2, 1), 4544)
>>> blob[:2], decode(blob).bounds
(b'GP', (0.0, 0.0, 2.0, 1.0))
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

__all__ = ["APPLICATION_ID", "USER_VERSION", "encode", "decode", "init_metadata", "register"]

APPLICATION_ID = 0x47504B47  # 'GPKG'
USER_VERSION = 10200  # GeoPackage 1.2
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def encode(geom: BaseGeometry | None, srs_id: int) -> bytes | None:
    """GeoPackage binary (little-endian header with an XY envelope, then ISO WKB)."""
    if geom is None:
        return None
    if geom.is_empty:
        flags = 0b0001_0001  # empty, no envelope, little endian
        return struct.pack("<2sBBi", b"GP", 0, flags, srs_id) + shapely.to_wkb(geom, byte_order=1)
    minx, miny, maxx, maxy = geom.bounds
    head = struct.pack("<2sBBi4d", b"GP", 0, 0b0000_0011, srs_id, minx, maxx, miny, maxy)
    return head + shapely.to_wkb(geom, byte_order=1, flavor="iso")


def decode(blob: bytes | memoryview | None) -> BaseGeometry | None:
    """Shapely geometry from a GeoPackage binary blob (``None`` stays ``None``)."""
    if blob is None:
        return None
    data = bytes(blob)
    if data[:2] != b"GP":
        raise ValueError(f"not a GeoPackage geometry blob (starts {data[:4]!r}); expected b'GP'")
    flags = data[3]
    size = 8 + _ENVELOPE_BYTES[(flags >> 1) & 0b111]
    return shapely.from_wkb(data[size:])


_DDL = [
    """CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
        srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY,
        organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
        definition TEXT NOT NULL, description TEXT)""",
    """CREATE TABLE IF NOT EXISTS gpkg_contents (
        table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
        identifier TEXT UNIQUE, description TEXT DEFAULT '',
        last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
        CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
        table_name TEXT NOT NULL, column_name TEXT NOT NULL,
        geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL,
        z TINYINT NOT NULL, m TINYINT NOT NULL,
        CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
        CONSTRAINT uk_gc_table_name UNIQUE (table_name),
        CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
        CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
]

_DEFAULT_SRS = [
    ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate"),
]


def init_metadata(conn: Connection, srs_id: int) -> None:
    """Create the GeoPackage metadata tables and register *srs_id* (an EPSG code)."""
    conn.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.exec_driver_sql(f"PRAGMA user_version = {USER_VERSION}")
    for ddl in _DDL:
        conn.exec_driver_sql(ddl)
    rows = list(_DEFAULT_SRS)
    wgs84 = CRS.from_epsg(4326)
    rows.append(
        ("WGS 84 geodetic", 4326, "EPSG", 4326, wgs84.to_wkt("WKT1_GDAL"), "longitude/latitude")
    )
    if srs_id not in (-1, 0, 4326):
        crs = CRS.from_epsg(srs_id)
        rows.append((crs.name, srs_id, "EPSG", srs_id, crs.to_wkt("WKT1_GDAL"), crs.name))
    for row in rows:
        conn.execute(
            text(
                "INSERT OR IGNORE INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization,"
                " organization_coordsys_id, definition, description)"
                " VALUES (:a, :b, :c, :d, :e, :f)"
            ),
            dict(zip("abcdef", row, strict=True)),
        )


def register(
    conn: Connection,
    features: Iterable[tuple[str, str, str, int]],
    attributes: Iterable[tuple[str, str]],
) -> None:
    """Register feature tables ``(table, geom_column, geometry_type, srs_id)`` and attribute
    tables ``(table, description)`` in ``gpkg_contents`` (idempotent)."""
    for table, column, geom_type, srs_id in features:
        conn.execute(
            text(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier,"
                " description, srs_id) VALUES (:t, 'features', :t, :d, :s)"
            ),
            {"t": table, "d": f"buildwatch {table}", "s": srs_id},
        )
        conn.execute(
            text("INSERT OR IGNORE INTO gpkg_geometry_columns VALUES (:t, :c, :g, :s, 0, 0)"),
            {"t": table, "c": column, "g": geom_type, "s": srs_id},
        )
    for table, description in attributes:
        conn.execute(
            text(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier,"
                " description) VALUES (:t, 'attributes', :t, :d)"
            ),
            {"t": table, "d": description},
        )
