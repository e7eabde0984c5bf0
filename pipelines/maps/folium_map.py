"""Interactive clearance-priority maps (folium/Leaflet) for a district or a township.

Layers (all shown, switchable in the layer control, labels in Chinese):

* 航拍正射影像 — the flight orthophoto as a decimated image overlay (optional base layer);
* 乡镇（街道）界 — township outlines (not clickable);
* 整治优先级 — compounds/villages coloured by priority class, popups with the ranking figures;
* 热点片区 — hot-spot hulls (clusters of cases across unit boundaries);
* 案件 — cases coloured by state, popups with attributes and before/after evidence chips.

``offline=True`` writes a self-contained HTML file: no tile layer and no CDN; Leaflet's JS and CSS
(with its images as data URIs) are inlined from the copy vendored in ``pipelines/maps/vendor``
(Leaflet 1.9.4, BSD-2-Clause) or Debian's ``libjs-leaflet``. :func:`save_map` refuses to write an
offline map that still references a remote script or stylesheet.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
from functools import lru_cache
from pathlib import Path

import folium
import geopandas as gpd
import pandas as pd
from branca.element import Element, MacroElement
from jinja2 import Template

from geo.atomic import atomic_path
from geo.errors import InputFileError
from pipelines.cases.states import LEDGER_LABELS_ZH, STATE_LABELS_ZH
from pipelines.maps.overlay import Overlay
from pipelines.maps.priorities import PRIORITY_LABELS_ZH
from pipelines.maps.tables import UNIT_TYPE_LABELS_ZH
from pipelines.safety import escape_html

__all__ = [
    "STATE_COLOURS",
    "PRIORITY_COLOURS",
    "LEAFLET_DIRS",
    "build_map",
    "save_map",
    "leaflet_assets",
    "remote_assets",
    "BOX_CSS",
    "feature_collection",
    "html_table",
    "MapControl",
]

STATE_COLOURS: dict[str, str] = {
    "discovered": "#e31a1c",
    "stopped": "#ff7f00",
    "removed": "#33a02c",
    "evidence": "#6a3d9a",
    "notice": "#c51b7d",
    "penalty": "#8c510a",
    "enforced": "#1b7837",
    "rejected": "#969696",
}
#: outlines of units under watch: cleared (整治完毕), and cleared but building again
WATCH_OUTLINES: dict[str, dict[str, object]] = {
    "cleared": {"color": "#1b5e20", "weight": 3, "dashArray": "6 4"},
    "relapsed": {"color": "#d50000", "weight": 4, "dashArray": "2 4"},
}
PRIORITY_COLOURS: dict[str, str] = {
    "high": "#bd0026",
    "medium": "#fd8d3c",
    "low": "#fed976",
    "none": "#f7f7f7",
}
_VENDOR = Path(__file__).with_name("vendor") / "leaflet"
#: where Leaflet is looked for, in order: the vendored npm copy, then Debian's libjs-leaflet
LEAFLET_DIRS: tuple[Path, ...] = (_VENDOR, Path("/usr/share/javascript/leaflet"))
_REMOTE = re.compile(r"<(?:script|link)\b[^>]*(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)


@lru_cache(maxsize=1)
def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JS and CSS text, CSS images inlined as data URIs (from :data:`LEAFLET_DIRS`)."""
    for folder in LEAFLET_DIRS:
        js, css = folder / "leaflet.js", folder / "leaflet.css"
        if js.is_file() and css.is_file():
            css_text = css.read_text(encoding="utf-8")

            def inline(match: re.Match[str], base: Path = folder) -> str:
                img = base / match.group(1)
                if not img.is_file():
                    return match.group(0)
                data = base64.b64encode(img.read_bytes()).decode("ascii")
                return f"url(data:image/png;base64,{data})"

            css_text = re.sub(r"url\(\s*['\"]?(images/[^)'\"]+)['\"]?\s*\)", inline, css_text)
            return js.read_text(encoding="utf-8"), css_text
    raise InputFileError(
        f"Leaflet not found in {[str(d) for d in LEAFLET_DIRS]}; reinstall buildwatch (vendored copy) "
        "or `apt-get install libjs-leaflet`"
    )


def remote_assets(page: str) -> list[str]:
    """The ``<script src>``/``<link href>`` tags of ``page`` that point to a remote URL."""
    return [m.group(0) for m in _REMOTE.finditer(page)]


class _Control(MacroElement):
    """A fixed HTML box (legend, title) as a Leaflet control."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        (function() {
          var ctl = L.control({position: {{ this.position|tojson }}});
          ctl.onAdd = function () {
            var div = L.DomUtil.create('div', 'bw-box ' + {{ this.css_class|tojson }});
            div.innerHTML = {{ this.content|tojson }};
            return div;
          };
          ctl.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}"""
    )

    def __init__(self, content: str, position: str, css_class: str) -> None:
        super().__init__()
        self._name = "BwControl"
        self.content = content
        self.position = position
        self.css_class = css_class


_BOX_CSS = (
    "<style>.bw-box{background:rgba(255,255,255,.92);padding:6px 9px;border-radius:4px;"
    "font:12px/1.45 'Noto Sans CJK SC','Microsoft YaHei',sans-serif;box-shadow:0 1px 4px #0004}"
    ".bw-box i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;"
    "border:1px solid #555}.bw-pop td,.bw-pop th{padding:1px 4px;text-align:left;font-size:12px}"
    ".bw-pop img{width:150px;height:150px;object-fit:cover;margin:2px;border:1px solid #999}</style>"
)


#: the legend row and colour of areas the product could not look at
NOT_COMPARED_COLOUR = "#6b6b6b"
UNVERIFIED_COLOUR = "#e6550d"
_AREA_LABELS_ZH = {"not_comparable": "无法比对（配准不合格）", "unknown": "无基准影像"}


def _add_areas(fmap: folium.Map, areas: gpd.GeoDataFrame | None) -> str | None:
    """Draw the not comparable / unknown areas; return the legend's coverage line (or None)."""
    if areas is None:
        return None
    compared = float(areas.loc[areas["kind"] == "coverage", "area_m2"].sum())
    missing = areas.loc[areas["kind"].isin(list(_AREA_LABELS_ZH)) & ~areas.geometry.is_empty]
    if len(missing):
        props = {
            "label": [
                f"{_AREA_LABELS_ZH[k]}：{fid}（{a / 1e6:.4f} km²）"
                for k, fid, a in zip(
                    missing["kind"], missing["flight_id"], missing["area_m2"], strict=True
                )
            ],
        }
        folium.GeoJson(
            _geojson(missing, props),
            name="未比对区域",
            style_function=lambda f: {
                "color": NOT_COMPARED_COLOUR,
                "weight": 1,
                "dashArray": "2 4",
                "fillColor": NOT_COMPARED_COLOUR,
                "fillOpacity": 0.35,
            },
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
        ).add_to(fmap)
    unverified = areas.loc[
        (areas["kind"] == "coverage")
        & (areas["coreg_status"].astype(str) == "unverified")
        & ~areas.geometry.is_empty
    ]
    if len(unverified):
        folium.GeoJson(
            _geojson(
                unverified,
                {
                    "label": [
                        f"配准未验证（按原始地理参考比对）：{fid}"
                        for fid in unverified["flight_id"]
                    ]
                },
            ),
            name="配准未验证区域",
            style_function=lambda f: {
                "color": UNVERIFIED_COLOUR,
                "weight": 2,
                "dashArray": "8 6",
                "fill": False,
            },
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
        ).add_to(fmap)
    not_compared = float(missing["area_m2"].sum()) if len(missing) else 0.0
    if compared <= 0:
        return "<b style='color:#b30000'>本期航拍未完成任何比对（nothing compared）</b>"
    note = f"已比对 {compared / 1e6:.3f} km²；未比对 {not_compared / 1e6:.3f} km²"
    if len(unverified):
        ids = "、".join(html.escape(str(f)) for f in sorted(set(unverified["flight_id"])))
        note += (
            f"<br><i style='background:none;border:2px dashed {UNVERIFIED_COLOUR}'></i>"
            f"配准未验证（unverified，按原始地理参考比对）：{ids}"
        )
    return note


def _legend(states: list[str], coverage_note: str | None = None) -> str:
    rows = ["<b>整治优先级</b>"]
    for key, colour in PRIORITY_COLOURS.items():
        rows.append(f"<i style='background:{colour}'></i>{PRIORITY_LABELS_ZH[key]}")
    rows.append("<b>案件状态</b>")
    for state in states:
        rows.append(f"<i style='background:{STATE_COLOURS[state]}'></i>{STATE_LABELS_ZH[state]}")
    rows.append("<i style='background:none;border:2px dashed #d7301f'></i>热点片区")
    rows.append("<i style='background:none;border:3px dashed #1b5e20'></i>整治完毕（日常监管）")
    rows.append("<i style='background:none;border:3px dotted #d50000'></i>整治后又出现新线索")
    if coverage_note is not None:
        rows.append(
            f"<i style='background:{NOT_COMPARED_COLOUR};opacity:.5'></i>未比对区域"
            "（无法比对/无基准）"
        )
        rows.append(coverage_note)
    return "<br>".join(rows)


def _chip(path: object, embed: bool, html_dir: Path | None) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    if embed:
        mime = mimetypes.guess_type(p.name)[0] or "image/png"
        return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode('ascii')}"
    base = html_dir if html_dir is not None else Path.cwd()
    return Path(os.path.relpath(p.resolve(), base.resolve())).as_posix()


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table class='bw-pop'>{body}</table>"


def _unit_popup(u: pd.Series) -> str:
    return _table(
        [
            ("名称", u["unit_name"]),
            ("类型", UNIT_TYPE_LABELS_ZH.get(u["unit_type"], u["unit_type"])),
            ("编码", u["unit_code"]),
            ("乡镇（街道）", u["township_name"]),
            ("区县排名 / 乡镇排名", f"{u['rank_district']} / {u['rank_township']}"),
            ("整治优先级", f"{PRIORITY_LABELS_ZH[u['priority']]}（{u['priority_score']:.1f}）"),
            ("未结案件", u["open_cases"]),
            ("密度（件/公顷）", f"{u['density_per_ha']:.3f}"),
            ("新增面积（㎡）", f"{u['new_area_m2']:.0f}"),
            ("近一月新增 / 上一月", f"{u['new_recent']} / {u['new_previous']}"),
            ("核实确认比例", f"{100 * u['confirmed_share']:.0f}%"),
            ("整治完毕", str(u.get("cleared_on", "") or "—")),
            ("整治后新增线索", int(u.get("relapsed", 0) or 0)),
        ]
    )


def _case_popup(c: pd.Series, embed: bool, html_dir: Path | None) -> str:
    first = c["first_seen"]
    first = first.date().isoformat() if isinstance(first, pd.Timestamp) else str(first)
    table = _table(
        [
            ("案件编号", c["case_id"]),
            ("台账", LEDGER_LABELS_ZH.get(str(c["ledger"]), c["ledger"])),
            ("状态", STATE_LABELS_ZH.get(str(c["state"]), c["state"])),
            ("面积（㎡）", f"{float(c['area_m2']):.1f}"),
            ("置信度", f"{float(c['score']):.2f}" if pd.notna(c["score"]) else ""),
            ("所在单元", f"{c['unit_name']}（{c['unit_code']}）"),
            ("乡镇（街道）", c["township_name"]),
            ("责任主体", c["responsible_party"]),
            ("首次发现 / 最近发现", f"{first} / {c['last_seen']}"),
            ("挂牌督办", "是" if bool(c["supervised"]) else "否"),
            ("整改期限", c["deadline"] or "—"),
        ]
    )
    chips = []
    for key, label in (("evidence_before", "前期影像"), ("evidence_after", "本期影像")):
        src = _chip(c[key], embed, html_dir)
        if src is not None:
            chips.append(
                f"<figure style='display:inline-block;margin:0'><img src='{src}'><figcaption>{label}</figcaption></figure>"
            )
    return table + ("<div>" + "".join(chips) + "</div>" if chips else "<div>（无影像证据）</div>")


def _geojson(frame: gpd.GeoDataFrame, props: dict[str, list[object]]) -> dict[str, object]:
    """Features with ``props``; ``label`` (the hover tooltip, which Leaflet/folium put into the
    page as HTML) is plain text from the data and is escaped here, for every layer at once;
    ``popup`` is HTML already built from escaped parts (:func:`_table`)."""
    geo = frame.geometry.to_crs("EPSG:4326")
    features = []
    for i, geom in enumerate(geo):
        properties = {k: escape_html(v[i]) if k == "label" else v[i] for k, v in props.items()}
        features.append(
            {"type": "Feature", "properties": properties, "geometry": geom.__geo_interface__}
        )
    return {"type": "FeatureCollection", "features": features}


def build_map(
    units: gpd.GeoDataFrame,
    cases: gpd.GeoDataFrame,
    hotspots: gpd.GeoDataFrame | None = None,
    overlay: Overlay | None = None,
    title: str = "",
    offline: bool = True,
    embed_chips: bool = True,
    html_dir: Path | None = None,
    areas: gpd.GeoDataFrame | None = None,
) -> folium.Map:
    """A folium map of ranked ``units`` (rank_units output), ``cases`` and ``hotspots``.

    Relative chip paths (``embed_chips=False``) are written relative to ``html_dir``.
    ``areas`` (:func:`pipelines.run.read_area_layers`): the flights' not comparable and unknown
    areas are drawn hatched grey, and the legend says how much was compared — or that nothing
    was.
    """
    bounds = (
        units.to_crs("EPSG:4326").total_bounds
        if len(units)
        else cases.to_crs("EPSG:4326").total_bounds
    )
    fmap = folium.Map(tiles=None, control_scale=True, prefer_canvas=False)
    if offline:
        fmap.default_js, fmap.default_css = [], []
    else:
        folium.TileLayer("OpenStreetMap", name="在线底图（OpenStreetMap）").add_to(fmap)
    root = fmap.get_root()
    root.header.add_child(Element("<meta charset='utf-8'>" + _BOX_CSS), name="bw_css")
    if overlay is not None:
        folium.raster_layers.ImageOverlay(
            overlay.rgba,
            bounds=[list(overlay.bounds[0]), list(overlay.bounds[1])],
            name="航拍正射影像",
            opacity=1.0,
            pixelated=False,
            interactive=False,
        ).add_to(fmap)
    if len(units):
        towns = units.dissolve(by="township_code", as_index=False)
        folium.GeoJson(
            _geojson(towns, {"name": list(towns["township_name"])}),
            name="乡镇（街道）界",
            style_function=lambda f: {"color": "#222", "weight": 3, "fill": False},
            interactive=False,
        ).add_to(fmap)
        cleared_on = list(units["cleared_on"]) if "cleared_on" in units else [""] * len(units)
        relapsed = list(units["relapsed"]) if "relapsed" in units else [0] * len(units)
        props = {
            "priority": list(units["priority"]),
            "watch": [
                "relapsed" if r else "cleared" if c else ""
                for c, r in zip(cleared_on, relapsed, strict=True)
            ],
            "label": [
                f"{n}（第{r}名）"
                + (f" 整治完毕{c}" if c else "")
                + (f" · 整治后新增线索{k}宗" if k else "")
                for n, r, c, k in zip(
                    units["unit_name"], units["rank_district"], cleared_on, relapsed, strict=True
                )
            ],
            "popup": [_unit_popup(u) for _, u in units.iterrows()],
        }
        folium.GeoJson(
            _geojson(units, props),
            name="整治优先级（小区/村社区）",
            style_function=lambda f: {
                "fillColor": PRIORITY_COLOURS[f["properties"]["priority"]],
                "fillOpacity": 0.45,
                **WATCH_OUTLINES.get(f["properties"]["watch"], {"color": "#444", "weight": 1}),
            },
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
            popup=folium.GeoJsonPopup(fields=["popup"], labels=False, max_width=420),
        ).add_to(fmap)
    if hotspots is not None and len(hotspots):
        props = {
            "label": [
                f"{h}：{n} 件"
                for h, n in zip(hotspots["hotspot_id"], hotspots["n_cases"], strict=True)
            ],
            "popup": [
                _table(
                    [
                        ("热点", h.hotspot_id),
                        ("案件数", h.n_cases),
                        ("违建面积（㎡）", h.case_area_m2),
                        ("涉及单元", h.unit_names or h.unit_codes),
                        ("跨单元", "是" if h.crosses_units else "否"),
                    ]
                )
                for h in hotspots.itertuples()
            ],
        }
        folium.GeoJson(
            _geojson(hotspots, props),
            name="热点片区",
            style_function=lambda f: {
                "color": "#d7301f",
                "weight": 2,
                "dashArray": "6 4",
                "fillOpacity": 0.08,
            },
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
            popup=folium.GeoJsonPopup(fields=["popup"], labels=False),
        ).add_to(fmap)
    if len(cases):
        props = {
            "state": [str(s) for s in cases["state"]],
            "label": [
                f"{i} {STATE_LABELS_ZH.get(str(s), s)}"
                for i, s in zip(cases["case_id"], cases["state"], strict=True)
            ],
            "popup": [_case_popup(c, embed_chips, html_dir) for _, c in cases.iterrows()],
        }
        folium.GeoJson(
            _geojson(cases, props),
            name="案件（按状态）",
            smooth_factor=0.3,
            style_function=lambda f: {
                "color": STATE_COLOURS.get(f["properties"]["state"], "#000"),
                "weight": 3,
                "fillColor": STATE_COLOURS.get(f["properties"]["state"], "#000"),
                "fillOpacity": 0.85,
            },
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
            popup=folium.GeoJsonPopup(fields=["popup"], labels=False, max_width=360),
        ).add_to(fmap)
    coverage_note = _add_areas(fmap, areas)
    states = (
        [s for s in STATE_COLOURS if s in set(cases["state"].astype(str))] if len(cases) else []
    )
    _Control(_legend(states, coverage_note), "bottomright", "bw-legend").add_to(fmap)
    if title:
        _Control(
            f"<b style='font-size:14px'>{html.escape(title)}</b>", "topleft", "bw-title"
        ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    fmap.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    return fmap


def save_map(fmap: folium.Map, path: str | Path, offline: bool = True) -> Path:
    """Render ``fmap`` to ``path`` (atomically); offline maps get Leaflet inlined and are checked."""
    path = Path(path)
    page = fmap.get_root().render()
    if offline:
        js, css = leaflet_assets()
        inline = f"<style>{css}</style>\n<script>{js}</script>\n"
        page = _inject(page, inline)
        remote = remote_assets(page)
        if remote:
            raise InputFileError(
                f"{path}: offline map would still load {remote[0]!r}; report this as a bug"
            )
    with atomic_path(path, mkdir=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _inject(page: str, block: str) -> str:
    head = page.find("<head>")
    if head < 0:
        return block + page
    cut = head + len("<head>")
    return page[:cut] + "\n" + block + page[cut:]


#: the boxes' style (legend, title, popups), for other maps in the same style (the city map)
BOX_CSS = _BOX_CSS
#: GeoJSON features with escaped ``label`` tooltips (see :func:`_geojson`)
feature_collection = _geojson
#: a popup table built from escaped parts
html_table = _table
#: a fixed box on the map (legend, title)
MapControl = _Control
