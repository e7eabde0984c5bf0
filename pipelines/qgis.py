"""QGIS styles inside the GeoPackages buildwatch writes, and a QGIS project beside the maps.

GIS staff open any of the product's GeoPackages in QGIS and get the district maps' symbology with
Chinese legend labels, without rebuilding it: every styled layer has a row in the file's
``layer_styles`` table — the table QGIS (and GDAL's OGR GPKG driver) reads a layer's default style
from — with the style as QGIS QML and as OGC SLD 1.1 (for other desktop GIS and GeoServer).
:func:`write_project` puts a ``.qgz`` project beside the district maps with every layer of the
given GeoPackages that carries a style, by relative path, in map order (areas not looked at on
top, then hot spots, leads, cases, priorities).

``STYLES`` maps a layer name (``leads``, ``cases``, ``units`` of priorities.gpkg, ``hotspots``,
``coverage``, ``not_comparable``, ``unknown``, ``summary_units``, ``summary_townships``,
``labels``) to its :class:`Style`; :func:`style_gpkg` adds the rows to a file (call it on the
temp file, before the atomic rename).

>>> qml = Style("cases", "state", (("discovered", "发现", "#e53935"),)).qml("Polygon")
>>> "categorizedSymbol" in qml and "发现" in qml
True
"""

from __future__ import annotations

import os
import sqlite3
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from geo.atomic import atomic_path
from pipelines.cases.states import REJECT_REASON_LABELS_ZH, STATE_LABELS_ZH

__all__ = [
    "LAYER_STYLES_DDL",
    "Style",
    "STYLES",
    "style_gpkg",
    "styled_layers",
    "write_project",
]

#: the ``layer_styles`` table as QGIS creates it in a GeoPackage
LAYER_STYLES_DDL = """CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    f_table_catalog TEXT(256),
    f_table_schema TEXT(256),
    f_table_name TEXT(256),
    f_geometry_column TEXT(256),
    styleName TEXT(30),
    styleQML TEXT,
    styleSLD TEXT,
    useAsDefault BOOLEAN,
    description TEXT,
    owner TEXT(30),
    ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)"""
_FONT = "Noto Sans CJK SC"
_QGIS_VERSION = "3.22.16-Białowieża"


def _rgba(hex_color: str, alpha: int = 255) -> str:
    h = hex_color.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


@dataclass(frozen=True)
class Style:
    """One layer's symbology: categories on ``field`` (value, Chinese label, colour), or a single
    symbol when ``field`` is empty; ``fill`` 'solid' / 'no' / 'b_diagonal'; an optional label
    (a QGIS expression)."""

    title: str
    field: str
    categories: tuple[tuple[str, str, str], ...]
    fill: str = "solid"
    fill_alpha: int = 110
    outline: str = "solid"
    width_mm: float = 0.5
    label: str = ""

    # -- QGIS QML --------------------------------------------------------------------------
    def _symbol(self, name: str, color: str, geometry: str) -> str:
        props = {
            "color": _rgba(color, self.fill_alpha if self.fill == "solid" else 255),
            "style": self.fill,
            "outline_color": _rgba(color),
            "outline_style": self.outline,
            "outline_width": f"{self.width_mm:g}",
            "outline_width_unit": "MM",
            "joinstyle": "miter",
        }
        if geometry == "Point":
            kind, cls = "marker", "SimpleMarker"
            props |= {"name": "circle", "size": "2.6", "outline_width": "0.3"}
        else:
            kind, cls = "fill", "SimpleFill"
        body = "".join(f"<prop k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in props.items())
        return (
            f'<symbol type="{kind}" name={quoteattr(name)} alpha="1" clip_to_extent="1" '
            f'force_rhr="0"><layer class="{cls}" enabled="1" locked="0" pass="0">{body}'
            "</layer></symbol>"
        )

    def qml(self, geometry: str = "Polygon") -> str:
        """The style as a QGIS QML document (symbology and labels)."""
        if self.field:
            cats = "".join(
                f'<category render="true" symbol="{i}" value={quoteattr(v)} label={quoteattr(lab)}/>'
                for i, (v, lab, _c) in enumerate(self.categories)
            )
            syms = "".join(
                self._symbol(str(i), c, geometry) for i, (_v, _l, c) in enumerate(self.categories)
            )
            renderer = (
                f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(self.field)} '
                'symbollevels="0" enableorderby="0" forceraster="0">'
                f"<categories>{cats}</categories><symbols>{syms}</symbols></renderer-v2>"
            )
        else:
            color = self.categories[0][2]
            renderer = (
                '<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" '
                f'forceraster="0"><symbols>{self._symbol("0", color, geometry)}</symbols>'
                "</renderer-v2>"
            )
        labeling = ""
        if self.label:
            labeling = (
                '<labeling type="simple"><settings calloutType="simple">'
                f'<text-style fieldName={quoteattr(self.label)} isExpression="1" '
                f'fontFamily="{_FONT}" fontSize="9" fontSizeUnit="Point" '
                'textColor="20,20,20,255" textOpacity="1">'
                '<text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" '
                'bufferColor="255,255,255,255" bufferOpacity="0.8"/></text-style>'
                '<placement placement="1" offsetType="0"/>'
                '<rendering obstacle="0" scaleVisibility="0" drawLabels="1" displayAll="0"/>'
                "</settings></labeling>"
            )
        gtype = {"Point": 0, "LineString": 1}.get(geometry, 2)
        return (
            "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
            f'<qgis version="{_QGIS_VERSION}" styleCategories="Symbology|Labeling" '
            f'labelsEnabled="{1 if self.label else 0}">{renderer}{labeling}'
            f"<layerGeometryType>{gtype}</layerGeometryType></qgis>"
        )

    # -- OGC SLD 1.1 -----------------------------------------------------------------------
    def sld(self, layer: str) -> str:
        """The style as an OGC SLD 1.1 / Symbology Encoding document."""
        rules = []
        entries = self.categories if self.field else self.categories[:1]
        for value, label, color in entries:
            filt = (
                "<ogc:Filter><ogc:PropertyIsEqualTo>"
                f"<ogc:PropertyName>{escape(self.field)}</ogc:PropertyName>"
                f"<ogc:Literal>{escape(value)}</ogc:Literal>"
                "</ogc:PropertyIsEqualTo></ogc:Filter>"
                if self.field
                else ""
            )
            fill = (
                ""
                if self.fill == "no"
                else f'<se:Fill><se:SvgParameter name="fill">{color}</se:SvgParameter>'
                f'<se:SvgParameter name="fill-opacity">'
                f"{(self.fill_alpha / 255 if self.fill == 'solid' else 0.35):.2f}"
                "</se:SvgParameter></se:Fill>"
            )
            dash = (
                '<se:SvgParameter name="stroke-dasharray">6 3</se:SvgParameter>'
                if self.outline != "solid"
                else ""
            )
            rules.append(
                f"<se:Rule><se:Name>{escape(label)}</se:Name><se:Description><se:Title>"
                f"{escape(label)}</se:Title></se:Description>{filt}<se:PolygonSymbolizer>{fill}"
                f'<se:Stroke><se:SvgParameter name="stroke">{color}</se:SvgParameter>'
                f'<se:SvgParameter name="stroke-width">{self.width_mm * 3.78:.1f}'
                f"</se:SvgParameter>{dash}</se:Stroke></se:PolygonSymbolizer></se:Rule>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" '
            'xmlns:se="http://www.opengis.net/se" xmlns:ogc="http://www.opengis.net/ogc" '
            'xmlns:xlink="http://www.w3.org/1999/xlink" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<NamedLayer><se:Name>{escape(layer)}</se:Name><UserStyle>"
            f"<se:Name>{escape(self.title)}</se:Name><se:FeatureTypeStyle>{''.join(rules)}"
            "</se:FeatureTypeStyle></UserStyle></NamedLayer></StyledLayerDescriptor>"
        )


_STATE_COLORS = {
    "discovered": "#e53935",
    "stopped": "#fb8c00",
    "removed": "#43a047",
    "evidence": "#8e24aa",
    "notice": "#5e35b1",
    "penalty": "#3949ab",
    "enforced": "#00897b",
    "rejected": "#9e9e9e",
}
_STATE_EXPR = (
    "CASE "
    + " ".join(f"WHEN \"state\" = '{s}' THEN '{zh}'" for s, zh in STATE_LABELS_ZH.items())
    + ' ELSE "state" END'
)

STYLES: dict[str, Style] = {
    "cases": Style(
        "案件（按状态）",
        "state",
        tuple((s, f"{zh}（{s}）", _STATE_COLORS[s]) for s, zh in STATE_LABELS_ZH.items()),
        label=f"\"case_id\" || '\\n' || {_STATE_EXPR}",
    ),
    "leads": Style(
        "本次航拍线索",
        "class",
        (
            ("construction", "在建（construction）", "#fb8c00"),
            ("new_building", "新建完成（new_building）", "#e53935"),
        ),
        label='"lead_id"',
    ),
    "units": Style(
        "集中成片整治优先级",
        "priority",
        (
            ("high", "优先级 高", "#c62828"),
            ("medium", "优先级 中", "#fb8c00"),
            ("low", "优先级 低", "#fdd835"),
            ("none", "无待整治案件", "#bdbdbd"),
        ),
        fill_alpha=90,
        width_mm=0.3,
        label='"unit_name"',
    ),
    "hotspots": Style(
        "新增违建热点",
        "",
        (("", "热点区域", "#d50000"),),
        fill="b_diagonal",
        outline="dash",
        width_mm=0.8,
        label="'热点 ' || \"n_cases\"",
    ),
    "coverage": Style(
        "已比对区域", "", (("", "已比对区域（本次航拍）", "#2e7d32"),), fill="no", width_mm=0.6
    ),
    "not_comparable": Style(
        "未比对区域（配准超限）",
        "",
        (("", "未比对：配准超限，未检测", "#616161"),),
        fill="b_diagonal",
        outline="dash",
    ),
    "unknown": Style(
        "未知区域（无基准影像）", "", (("", "未知：无基准影像，未检测", "#9e9e9e"),), fill_alpha=120
    ),
    "summary_units": Style(
        "本次线索按小区/村汇总",
        "",
        (("", "小区/村（本次线索）", "#1e88e5"),),
        fill="no",
        width_mm=0.4,
        label='"unit_name" || \' \' || "n_leads"',
    ),
    "summary_townships": Style(
        "本次线索按乡镇（街道）汇总",
        "",
        (("", "乡镇（街道）", "#3949ab"),),
        fill="no",
        width_mm=0.8,
        label='"township_name"',
    ),
    "labels": Style(
        "审核结果（训练标签）",
        "label",
        (
            ("confirmed", "确认", "#2e7d32"),
            ("rejected", f"驳回（{REJECT_REASON_LABELS_ZH['false_detection']}）", "#c62828"),
        ),
    ),
}
#: drawing order in a project, top first
_ORDER = (
    "not_comparable",
    "unknown",
    "coverage",
    "hotspots",
    "leads",
    "cases",
    "labels",
    "summary_units",
    "summary_townships",
    "units",
)


def _geometry_column(conn: sqlite3.Connection, table: str) -> tuple[str, str, int] | None:
    row = conn.execute(
        "SELECT column_name, geometry_type_name, srs_id FROM gpkg_geometry_columns "
        "WHERE table_name = ?",
        (table,),
    ).fetchone()
    return (str(row[0]), str(row[1]), int(row[2])) if row else None


def style_gpkg(path: str | Path, layers: Sequence[str] | None = None) -> list[str]:
    """Add (or replace) the default style of each known layer of the GeoPackage *path*.

    Layers without an entry in :data:`STYLES` are left alone. Returns the styled layer names.
    Writes in place: call it on a file that is not published yet (the temp file of
    :func:`geo.atomic.atomic_path`), or on a ledger under its writer lock.
    """
    conn = sqlite3.connect(str(path))
    try:
        with conn:
            return style_connection(conn, layers)
    finally:
        conn.close()


def style_connection(conn: sqlite3.Connection, layers: Sequence[str] | None = None) -> list[str]:
    """:func:`style_gpkg` on an open DB-API connection to a GeoPackage (inside its transaction)."""
    names = [
        str(r[0])
        for r in conn.execute("SELECT table_name FROM gpkg_contents WHERE data_type = 'features'")
    ]
    wanted = [n for n in names if n in STYLES and (layers is None or n in layers)]
    if not wanted:
        return []
    conn.execute(LAYER_STYLES_DDL)
    has = conn.execute("SELECT 1 FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
    if not has:
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', "
            "'QGIS styles (QML and SLD) of this file''s layers', "
            "strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
        )
    for name in wanted:
        geom = _geometry_column(conn, name)
        if geom is None:
            continue
        column, gtype, _srs = geom
        base = "Point" if "POINT" in gtype.upper() else "Polygon"
        style = STYLES[name]
        conn.execute(
            "DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?",
            (name, style.title[:30]),
        )
        conn.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (name,))
        conn.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
            "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, owner) "
            "VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, 'buildwatch')",
            (name, column, style.title[:30], style.qml(base), style.sld(name), style.title),
        )
    return wanted


def styled_layers(path: str | Path) -> list[tuple[str, str, str, int, str]]:
    """(layer, geometry type, title, srs id, default QML) of each styled layer of *path*."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'layer_styles'"
        ).fetchone():
            return []
        rows = conn.execute(
            "SELECT s.f_table_name, g.geometry_type_name, s.description, g.srs_id, s.styleQML "
            "FROM layer_styles s JOIN gpkg_geometry_columns g ON g.table_name = s.f_table_name "
            "WHERE s.useAsDefault ORDER BY s.id"
        ).fetchall()
    finally:
        conn.close()
    return [(str(a), str(b), str(c), int(d), str(e)) for a, b, c, d, e in rows]


def _srs_xml(srid: int) -> str:
    from pyproj import CRS

    crs = CRS.from_epsg(srid)
    return (
        f"<spatialrefsys><wkt>{escape(crs.to_wkt())}</wkt><srid>{srid}</srid><authid>EPSG:{srid}</authid>"
        f"<description>{escape(crs.name)}</description></spatialrefsys>"
    )


def write_project(
    path: str | Path, sources: Sequence[str | Path], title: str = "buildwatch"
) -> Path | None:
    """A QGIS project (``.qgz``) at *path* with every styled layer of the GeoPackages *sources*,
    by paths relative to the project's folder. None when no source has a styled layer."""
    path = Path(path)
    layers = []
    for src in sources:
        src = Path(src)
        if not src.is_file():
            continue
        rel = Path(os.path.relpath(src.resolve(), path.resolve().parent)).as_posix()
        rel = rel if rel.startswith(".") else f"./{rel}"
        for name, gtype, desc, srid, qml in styled_layers(src):
            where = src.parent.name if src.stem == "leads" else src.stem  # runs: their folder
            layers.append((name, gtype, desc, srid, qml, rel, where))
    if not layers:
        return None
    layers.sort(key=lambda r: _ORDER.index(r[0]) if r[0] in _ORDER else len(_ORDER))
    srid = next((r[3] for r in layers if r[0] in ("units", "cases")), layers[0][3])
    tree, maps = [], []
    for name, gtype, desc, lsrid, qml, rel, stem in layers:
        lid = f"{stem}_{name}_{uuid.uuid4().hex[:8]}"
        run_layer = name in ("leads", "coverage", "not_comparable", "unknown", "summary_units")
        label = f"{desc}（{stem}）" if run_layer or name == "summary_townships" else desc
        source = f"{rel}|layername={name}"
        tree.append(
            f'<layer-tree-layer id="{lid}" name={quoteattr(label)} source={quoteattr(source)} '
            'providerKey="ogr" checked="Qt::Checked" expanded="1"/>'
        )
        inner = qml.split('styleCategories="Symbology|Labeling"', 1)[-1]
        inner = inner[inner.index(">") + 1 : inner.rindex("</qgis>")]
        geometry = "Point" if "POINT" in gtype.upper() else "Polygon"
        maps.append(
            f'<maplayer type="vector" geometry="{geometry}" labelsEnabled="'
            f'{1 if "<labeling" in inner else 0}"><id>{lid}</id>'
            f"<datasource>{escape(source)}</datasource><layername>{escape(label)}</layername>"
            f'<srs>{_srs_xml(lsrid)}</srs><provider encoding="UTF-8">ogr</provider>{inner}'
            "</maplayer>"
        )
    qgs = (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
        f'<qgis projectname={quoteattr(title)} version="{_QGIS_VERSION}">'
        f"<title>{escape(title)}</title><projectCrs>{_srs_xml(srid)}</projectCrs>"
        f"<layer-tree-group>{''.join(tree)}</layer-tree-group>"
        f"<projectlayers>{''.join(maps)}</projectlayers>"
        '<properties><Paths><Absolute type="bool">false</Absolute></Paths>'
        '<SpatialRefSys><ProjectionsEnabled type="int">1</ProjectionsEnabled></SpatialRefSys>'
        "</properties>"
        "</qgis>"
    )
    with (
        atomic_path(path, mkdir=True) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        zf.writestr(f"{path.stem}.qgs", qgs)
    return path
