"""Load a running gridmap in QGIS, headless, the way a planner's QGIS does (tests/tests/qgis.rs).

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis/load_gridmap.py http://127.0.0.1:PORT

Prints one JSON object: per OGC collection the layer's validity, its field names and the number
of features QGIS reads (following every page), the counts under `datetime` subsets QGIS turns
into a `datetime=` query, and the vector tile layer with its style converted by QGIS's own
MapLibre/Mapbox GL converter (the warnings it gives, the colours and labels it kept).
"""

import json
import sys

from qgis.core import (
    QgsApplication,
    QgsMapBoxGlStyleConversionContext,
    QgsMapBoxGlStyleConverter,
    QgsVectorLayer,
    QgsVectorTileLayer,
)
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtNetwork import QNetworkRequest
from qgis.core import QgsNetworkAccessManager


def fetch_json(url):
    """GET through QGIS's own network stack (what the layer loaders use)."""
    reply = QgsNetworkAccessManager.instance().blockingGet(QNetworkRequest(QUrl(url)))
    return json.loads(bytes(reply.content()).decode("utf-8"))


def count(layer):
    return sum(1 for _ in layer.getFeatures())


def main(base):
    out = {"qgis": None, "collections": {}, "datetime": {}, "tiles": {}}
    from qgis.core import Qgis

    out["qgis"] = Qgis.QGIS_VERSION
    for name in ("grids", "buildings", "stations", "reports"):
        uri = f"url='{base}/ogc' typename='{name}' pageSize='1000' restrictToRequestBBOX='0'"
        layer = QgsVectorLayer(uri, name, "OAPIF")
        entry = {"valid": layer.isValid()}
        if layer.isValid():
            entry["fields"] = [f.name() for f in layer.fields()]
            entry["count"] = count(layer)
            entry["updated_at_type"] = (
                layer.fields().field("updated_at").typeName() if "updated_at" in entry["fields"] else None
            )
        out["collections"][name] = entry

    # A datetime subset: QGIS sends it to the server as `datetime=…` (it is a date-time field).
    for label, subset in (
        ("after_2030", "\"updated_at\" > '2030-01-01T00:00:00Z'"),
        ("after_2000", "\"updated_at\" > '2000-01-01T00:00:00Z'"),
    ):
        layer = QgsVectorLayer(
            f"url='{base}/ogc' typename='grids' pageSize='1000' restrictToRequestBBOX='0'", "grids", "OAPIF"
        )
        layer.setSubsetString(subset)
        out["datetime"][label] = count(layer) if layer.isValid() else None

    # The vector tiles with gridmap's style, converted by QGIS.
    style = fetch_json(f"{base}/tiles/style.json")
    context = QgsMapBoxGlStyleConversionContext()
    converter = QgsMapBoxGlStyleConverter()
    result = converter.convert(style, context)
    tiles = QgsVectorTileLayer(f"type=xyz&url={base}/tiles/grids/{{z}}/{{x}}/{{y}}.mvt&zmin=0&zmax=22", "grids")
    out["tiles"] = {
        "valid": tiles.isValid(),
        "converted": result == QgsMapBoxGlStyleConverter.Success,
        "warnings": list(converter.warnings()),
        "renderer_styles": [s.styleName() for s in converter.renderer().styles()] if converter.renderer() else [],
        "labeling_styles": [s.styleName() for s in converter.labeling().styles()] if converter.labeling() else [],
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    try:
        main(sys.argv[1].rstrip("/"))
    finally:
        app.exitQgis()
