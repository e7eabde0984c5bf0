"""Open a QGIS project headless with Debian's QGIS and render it to a PNG (run by /usr/bin/python3).

Usage: qgis_render_project.py PROJECT.qgz OUT.png [GPKG ...]
Prints one JSON object: each project layer's name, validity, renderer type, legend labels and
feature count; and, for each GPKG given, the renderer QGIS loads for each of its layers by
default (from its layer_styles table), without the project.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def describe(layer):
    r = layer.renderer() if layer.isValid() else None
    labels = []
    if r is not None and r.type() == "categorizedSymbol":
        labels = [c.label() for c in r.categories()]
    return {
        "name": layer.name(),
        "valid": layer.isValid(),
        "source": layer.source(),
        "renderer": r.type() if r is not None else None,
        "labels": labels,
        "features": layer.featureCount() if layer.isValid() else -1,
        "labelling": bool(layer.labelsEnabled()) if layer.isValid() else False,
    }


def main():
    project_path, png = sys.argv[1], sys.argv[2]
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    ok = project.read(project_path)
    layers = list(project.mapLayers().values())
    out = {"read": bool(ok), "layers": [describe(lyr) for lyr in layers], "defaults": {}}
    settings = QgsMapSettings()
    order = [project.mapLayer(t.layerId()) for t in project.layerTreeRoot().findLayers()]
    settings.setLayers([lyr for lyr in order if lyr is not None and lyr.isValid()])
    settings.setDestinationCrs(project.crs())
    extent = None
    for lyr in settings.layers():
        e = settings.layerExtentToOutputExtent(lyr, lyr.extent())
        if extent is None:
            extent = e
        else:
            extent.combineExtentWith(e)
    if extent is not None:
        settings.setExtent(extent.buffered(extent.width() * 0.02 + 1))
    settings.setOutputSize(QSize(1200, 900))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    out["png"] = bool(job.renderedImage().save(png, "PNG"))
    results = job.takeLabelingResults()
    out["labels_drawn"] = len(results.allLabels()) if results is not None else 0
    for gpkg in sys.argv[3:]:
        import sqlite3

        con = sqlite3.connect(gpkg)
        names = [r[0] for r in con.execute("SELECT f_table_name FROM layer_styles")]
        con.close()
        out["defaults"][gpkg] = {
            n: describe(QgsVectorLayer(f"{gpkg}|layername={n}", n, "ogr")) for n in names
        }
    print(json.dumps(out, ensure_ascii=False))
    app.exitQgis()


if __name__ == "__main__":
    main()
