"""GIS staff open the product's GeoPackages styled: ``layer_styles`` (QML + SLD) and ``maps.qgz``.

Every file is checked against the table QGIS defines for styles in a GeoPackage and registered as
an attributes table; where Debian's QGIS is installed (``python3-qgis``), the project is opened
headless from a copy in another folder (relative paths) and rendered to a PNG, and each
GeoPackage is opened alone to show QGIS takes its default style from the file.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import box

from pipelines.maps.render import render_all
from pipelines.qgis import STYLES, write_project
from pipelines.run import write_leads_gpkg
from tests._maps_fixtures import cases, units  # noqa: F401 - fixtures
from tests._review_fixtures import make_reviewable

#: the columns (and declared types) of QGIS's layer_styles table in a GeoPackage
QGIS_LAYER_STYLES = {
    "id": "INTEGER",
    "f_table_catalog": "TEXT(256)",
    "f_table_schema": "TEXT(256)",
    "f_table_name": "TEXT(256)",
    "f_geometry_column": "TEXT(256)",
    "styleName": "TEXT(30)",
    "styleQML": "TEXT",
    "styleSLD": "TEXT",
    "useAsDefault": "BOOLEAN",
    "description": "TEXT",
    "owner": "TEXT(30)",
    "ui": "TEXT(30)",
    "update_time": "DATETIME",
}
SE = "{http://www.opengis.net/se}"


def _check_styles(path: Path, expect: set[str]) -> dict[str, tuple[str, str]]:
    con = sqlite3.connect(path)
    try:
        cols = {r[1]: r[2] for r in con.execute("PRAGMA table_info(layer_styles)")}
        assert cols == QGIS_LAYER_STYLES, path
        kind = con.execute(
            "SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'"
        ).fetchone()
        assert kind == ("attributes",), path
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = con.execute(
            "SELECT s.f_table_name, s.f_geometry_column, g.column_name, s.styleQML, s.styleSLD "
            "FROM layer_styles s JOIN gpkg_geometry_columns g ON g.table_name = s.f_table_name "
            "WHERE s.useAsDefault = 1"
        ).fetchall()
    finally:
        con.close()
    styled = {r[0]: (r[3], r[4]) for r in rows}
    assert set(styled) == expect, path
    assert all(r[1] == r[2] for r in rows)  # the style names the layer's real geometry column
    for name, (qml, sld) in styled.items():
        root = ET.fromstring(qml.split("'SYSTEM'>", 1)[1])
        renderer = root.find("renderer-v2")
        assert renderer is not None
        if STYLES[name].field:
            assert renderer.get("type") == "categorizedSymbol"
            assert renderer.get("attr") == STYLES[name].field
            labels = [c.get("label") for c in renderer.iter("category")]
            assert labels and all(any("\u4e00" <= ch <= "\u9fff" for ch in lab) for lab in labels)
        rules = ET.fromstring(sld).iter(f"{SE}Rule")
        assert [r.find(f"{SE}Name").text for r in rules], name  # type: ignore[union-attr]
    return styled


def test_leads_and_ledger_carry_their_styles(tmp_path: Path) -> None:
    crs = "EPSG:4544"
    poly = box(500_000, 3_270_000, 500_010, 3_270_010)
    layers = {
        "leads": gpd.GeoDataFrame(
            {"lead_id": ["L1"], "class": ["construction"]}, geometry=[poly], crs=crs
        ),
        "coverage": gpd.GeoDataFrame({"area_m2": [1.0]}, geometry=[poly.buffer(50)], crs=crs),
        "not_comparable": gpd.GeoDataFrame({"area_m2": [0.0]}, geometry=[poly.buffer(5)], crs=crs),
        "unknown": gpd.GeoDataFrame({"area_m2": [0.0]}, geometry=[poly.buffer(2)], crs=crs),
    }
    path = tmp_path / "leads.gpkg"
    write_leads_gpkg(path, layers)
    _check_styles(path, {"leads", "coverage", "not_comparable", "unknown"})
    # GDAL still reads every layer as before (styles are an attributes table beside them)
    assert {str(n) for n, _ in pyogrio.list_layers(path)} >= set(layers)
    assert list(gpd.read_file(path, layer="leads")["lead_id"]) == ["L1"]

    r = make_reviewable(tmp_path / "ledger-run")
    _check_styles(Path(r.ledger), {"cases"})
    # a ledger written before styles existed gets them on its next write
    con = sqlite3.connect(r.ledger)
    with con:
        con.execute("DROP TABLE layer_styles")
        con.execute("DELETE FROM gpkg_contents WHERE table_name = 'layer_styles'")
    con.close()
    from pipelines.cases.imports import Update, apply_updates
    from pipelines.cases.store import LedgerStore

    store = LedgerStore(r.ledger)
    with store.write() as conn:
        store.ensure(conn, None)
    apply_updates(store, [Update(r.case_ids[0], "stopped", "x", "2024-05-02")])
    store.dispose()
    _check_styles(Path(r.ledger), {"cases"})


def test_render_all_writes_a_relative_project(
    tmp_path: Path,
    units: dict[str, gpd.GeoDataFrame],  # noqa: F811
    cases: gpd.GeoDataFrame,  # noqa: F811
) -> None:
    r = make_reviewable(tmp_path / "district")
    paths = render_all(tmp_path / "district" / "maps", cases, units, sources=[Path(r.ledger)])
    _check_styles(paths["units"], {"units"})
    if "hotspots" in paths:
        _check_styles(paths["hotspots"], {"hotspots"})
    project = paths["qgis_project"]
    assert project.name == "maps.qgz"
    with zipfile.ZipFile(project) as zf:
        (name,) = zf.namelist()
        qgs = zf.read(name).decode()
    root = ET.fromstring(qgs.split("'SYSTEM'>", 1)[1])
    sources = [e.text or "" for e in root.iter("datasource")]
    assert "./priorities.gpkg|layername=units" in sources
    assert "../ledger.gpkg|layername=cases" in sources
    assert str(tmp_path) not in qgs  # nothing absolute: the folder can move
    assert root.find("properties/Paths/Absolute").text == "false"  # type: ignore[union-attr]


def _qgis_python() -> str | None:
    py = shutil.which("python3", path="/usr/bin")
    if py is None:
        return None
    probe = subprocess.run(
        [py, "-c", "import qgis.core"],
        capture_output=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    return py if probe.returncode == 0 else None


def test_qgis_opens_the_project_and_renders_it(
    tmp_path: Path,
    units: dict[str, gpd.GeoDataFrame],  # noqa: F811
    cases: gpd.GeoDataFrame,  # noqa: F811
) -> None:
    py = _qgis_python()
    if py is None:
        pytest.skip("Debian's QGIS is not installed (apt-get install python3-qgis qgis-providers)")
    district = tmp_path / "district"
    r = make_reviewable(district)
    run = district / "runs" / "night_01"
    crs = "EPSG:4544"
    lead = cases.geometry.iloc[0]
    write_leads_gpkg(
        run / "leads.gpkg",
        {
            "leads": gpd.GeoDataFrame(
                {"lead_id": ["L1"], "class": ["new_building"]}, geometry=[lead], crs=cases.crs
            ).to_crs(crs),
            "not_comparable": gpd.GeoDataFrame(
                {"area_m2": [1.0]}, geometry=[lead.buffer(30)], crs=cases.crs
            ).to_crs(crs),
        },
    )
    render_all(district / "maps", cases, units, sources=[Path(r.ledger), run / "leads.gpkg"])
    moved = tmp_path / "handed-to-township"
    shutil.copytree(district, moved)  # relative paths: the copy opens on its own
    shutil.rmtree(district)
    png = tmp_path / "project.png"
    script = Path(__file__).resolve().parents[1] / "scripts" / "qgis_render_project.py"
    gpkgs = [moved / "ledger.gpkg", moved / "maps" / "priorities.gpkg"]
    done = subprocess.run(
        [py, str(script), str(moved / "maps" / "maps.qgz"), str(png), *map(str, gpkgs)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["read"] and out["png"]
    layers = {lyr["source"].split("layername=")[1]: lyr for lyr in out["layers"]}
    assert set(layers) >= {"units", "cases", "leads", "not_comparable"}
    assert all(lyr["valid"] for lyr in out["layers"]), out["layers"]
    assert all(str(moved) in lyr["source"] for lyr in out["layers"])
    assert layers["cases"]["renderer"] == "categorizedSymbol"
    assert "发现（discovered）" in layers["cases"]["labels"]
    assert layers["units"]["labels"][0] == "优先级 高"
    assert out["labels_drawn"] > 0  # Chinese map labels were placed
    import cv2

    image = cv2.imread(str(png))
    assert image is not None and int((image.min(axis=2) < 250).sum()) > 2_000  # drawn, not blank
    # each GeoPackage opened alone: QGIS takes the default style from the file itself
    assert out["defaults"][str(gpkgs[0])]["cases"]["renderer"] == "categorizedSymbol"
    assert out["defaults"][str(gpkgs[1])]["units"]["labels"][-1] == "无待整治案件"


def test_project_needs_a_styled_layer(tmp_path: Path) -> None:
    plain = tmp_path / "plain.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4544").to_file(plain)
    assert write_project(tmp_path / "p.qgz", [plain, tmp_path / "missing.gpkg"]) is None
    assert not (tmp_path / "p.qgz").exists()
