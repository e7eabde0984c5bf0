"""The city map: districts coloured by progress against their targets, with the supervised cases.

:func:`build_city_map` is an offline folium/Leaflet page in the district maps' style (Leaflet
inlined by :func:`pipelines.maps.folium_map.save_map`, no tiles, every label from the data
escaped); :func:`city_png` is the printable version (matplotlib, a CJK font from the machine).
District boundaries come from a ``districts`` layer (``district_code``, ``district_name``), the
supervised cases from the ledgers' ``lon``/``lat`` (EPSG:4490).
"""

from __future__ import annotations

import html
from pathlib import Path

import folium
import geopandas as gpd
import pandas as pd

from geo.units import read_layer
from pipelines.maps.folium_map import (
    BOX_CSS,
    MapControl,
    feature_collection,
    html_table,
)

__all__ = ["PROGRESS_BINS", "read_districts", "progress_colour", "build_city_map", "city_png"]

#: progress classes (share of the year's targets met) and their colours, worst first
PROGRESS_BINS: tuple[tuple[float, str, str], ...] = (
    (0.25, "#d7191c", "< 25 %"),
    (0.50, "#fdae61", "25–50 %"),
    (0.75, "#ffffbf", "50–75 %"),
    (1.00, "#a6d96a", "75–100 %"),
    (1.01, "#1a9641", "完成 (100 %)"),
)
NO_TARGET = "#bdbdbd"
OVERDUE = "#b10026"
SUPERVISED = "#fd8d3c"
_LONLAT = "EPSG:4490"


def progress_colour(progress: float | None) -> str:
    """The fill colour of a district's progress share (None or NaN: no target)."""
    if progress is None or progress != progress:
        return NO_TARGET
    for upper, colour, _ in PROGRESS_BINS:
        if progress < upper:
            return colour
    return PROGRESS_BINS[-1][1]


def read_districts(path: str | Path) -> gpd.GeoDataFrame:
    """The ``districts`` layer of *path* in EPSG:4490 (checked like every units layer)."""
    return read_layer(path, "districts", _LONLAT)


def _joined(districts: gpd.GeoDataFrame, ranking: pd.DataFrame | None) -> gpd.GeoDataFrame:
    d = districts.copy()
    d["district_code"] = d["district_code"].astype(str)
    if ranking is None or ranking.empty:
        d["progress"] = float("nan")
        d["rank"] = 0
        return d
    cols = [c for c in ranking.columns if c not in ("district_name",)]
    return d.merge(ranking[cols], on="district_code", how="left")


def _supervised_points(supervised: pd.DataFrame) -> gpd.GeoDataFrame:
    s = supervised.dropna(subset=["lon", "lat"]) if len(supervised) else supervised
    return gpd.GeoDataFrame(
        s, geometry=gpd.points_from_xy(s.get("lon", []), s.get("lat", [])), crs=_LONLAT
    )


def _district_popup(r: pd.Series) -> str:
    rows: list[tuple[str, object]] = [("区县", r.get("district_name") or r["district_code"])]
    if r.get("rank"):
        rows += [
            ("排名", int(r["rank"])),
            ("目标完成率", f"{float(r['progress']):.0%}"),
            ("办结案件", f"{int(r['closed_ytd'])} / {float(r['cases_to_close']):g}"),
            (
                "拆除面积（㎡）",
                f"{float(r['area_removed_ytd_m2']):g} / {float(r['area_to_remove_m2']):g}",
            ),
        ]
        if float(r.get("units_to_clear", 0) or 0) > 0:
            rows.append(
                ("整治完毕单元", f"{int(r['units_cleared_ytd'])} / {float(r['units_to_clear']):g}")
            )
    else:
        rows.append(("年度目标", "未下达"))
    rows += [("督办中", int(r.get("n_supervised", 0))), ("逾期", int(r.get("n_overdue", 0)))]
    return html_table(rows)


def _counts(d: gpd.GeoDataFrame, sup: pd.DataFrame) -> gpd.GeoDataFrame:
    codes = sup["district_code"].astype(str) if len(sup) else pd.Series(dtype=str)
    late = codes[sup["days_overdue"] > 0] if len(sup) else codes
    d["n_supervised"] = d["district_code"].map(codes.value_counts()).fillna(0).astype(int)
    d["n_overdue"] = d["district_code"].map(late.value_counts()).fillna(0).astype(int)
    return d


def build_city_map(
    districts: gpd.GeoDataFrame,
    ranking: pd.DataFrame | None,
    supervised: pd.DataFrame,
    *,
    title: str = "",
) -> folium.Map:
    """Districts coloured by progress (grey: no target), supervised cases on top."""
    d = _counts(_joined(districts, ranking), supervised)
    pts = _supervised_points(supervised)
    bounds = d.to_crs("EPSG:4326").total_bounds
    fmap = folium.Map(tiles=None, control_scale=True)
    fmap.default_js, fmap.default_css = [], []
    fmap.get_root().header.add_child(folium.Element("<meta charset='utf-8'>" + BOX_CSS))
    props = {
        "fill": [progress_colour(p) for p in d["progress"]],
        "label": [
            f"{n or c}" + (f"：第{int(k)}名，完成率{p:.0%}" if k == k and k else "：未下达目标")
            for n, c, k, p in zip(
                d["district_name"],
                d["district_code"],
                d["rank"].fillna(0),
                d["progress"],
                strict=True,
            )  # fmt: skip
        ],
        "popup": [_district_popup(r) for _, r in d.iterrows()],
    }
    folium.GeoJson(
        feature_collection(d, props),
        name="区县（按年度目标完成率）",
        style_function=lambda f: {
            "fillColor": f["properties"]["fill"],
            "fillOpacity": 0.7,
            "color": "#333",
            "weight": 2,
        },
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
        popup=folium.GeoJsonPopup(fields=["popup"], labels=False, max_width=360),
    ).add_to(fmap)
    if len(pts):  # one GeoJSON layer of circle markers (folium.Popup would need jQuery)
        late = [int(v) > 0 for v in pts["days_overdue"]]
        due = [
            f"逾期{int(r['days_overdue'])}天" if is_late else f"期限{r['deadline'] or '-'}"
            for (_, r), is_late in zip(pts.iterrows(), late, strict=True)
        ]
        marks = {
            "fill": [OVERDUE if x else SUPERVISED for x in late],
            "radius": [7 if x else 5 for x in late],
            "label": [
                f"{r['case_id']} {r.get('unit_name') or ''} {d}"
                for (_, r), d in zip(pts.iterrows(), due, strict=True)
            ],
            "popup": [
                html_table(
                    [
                        ("案件", r["case_id"]),
                        ("区县", r.get("district_name")),
                        ("乡镇(街道)", r.get("township_name")),
                        ("小区/村", r.get("unit_name")),
                        ("整改期限", r.get("deadline")),
                        ("逾期天数", int(r["days_overdue"])),
                    ]
                )
                for _, r in pts.iterrows()
            ],
        }
        folium.GeoJson(
            feature_collection(pts, marks),
            name="挂牌督办案件",
            marker=folium.CircleMarker(radius=5, weight=1, color="#000", fill=True),
            style_function=lambda f: {
                "fillColor": f["properties"]["fill"],
                "radius": f["properties"]["radius"],
                "fillOpacity": 0.95,
            },
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
            popup=folium.GeoJsonPopup(fields=["popup"], labels=False, max_width=320),
        ).add_to(fmap)
    legend = "<b>年度目标完成率</b><br>" + "".join(
        f"<i style='background:{c}'></i>{html.escape(lab)}<br>" for _, c, lab in PROGRESS_BINS
    )
    legend += f"<i style='background:{NO_TARGET}'></i>未下达目标<br>"
    legend += (
        f"<i style='background:{OVERDUE};border-radius:50%'></i>督办逾期<br>"
        f"<i style='background:{SUPERVISED};border-radius:50%'></i>督办中"
    )
    MapControl(legend, "bottomright", "bw-legend").add_to(fmap)
    if title:
        MapControl(
            f"<b style='font-size:14px'>{html.escape(title)}</b>", "topleft", "bw-title"
        ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    fmap.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    return fmap


def city_png(
    districts: gpd.GeoDataFrame,
    ranking: pd.DataFrame | None,
    supervised: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "",
) -> Path | None:
    """The printable city map (PNG); None (with a warning) without a CJK font."""
    from pipelines.maps.static import _font_or_warn, _save_png

    family = _font_or_warn("the city map")
    if family is None:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    d = _counts(_joined(districts, ranking), supervised)
    pts = _supervised_points(supervised)
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(9, 8), dpi=110)
        d.plot(ax=ax, color=[progress_colour(p) for p in d["progress"]], edgecolor="#333")
        for _, r in d.iterrows():
            pt = r.geometry.representative_point()
            rank = r["rank"]
            text = str(r["district_name"] or r["district_code"])
            if rank == rank and rank:
                text += f"\n第{int(rank)}名 {float(r['progress']):.0%}"
            if r["n_supervised"]:
                text += f"\n督办{int(r['n_supervised'])}（逾期{int(r['n_overdue'])}）"
            ax.annotate(text, (pt.x, pt.y), ha="center", va="center", fontsize=9,
                        bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8})  # fmt: skip
        if len(pts):
            late = pts["days_overdue"] > 0
            ax.scatter(pts.geometry.x[~late], pts.geometry.y[~late], s=30, c=SUPERVISED,
                       edgecolors="#000", linewidths=0.5, zorder=3)  # fmt: skip
            ax.scatter(pts.geometry.x[late], pts.geometry.y[late], s=55, c=OVERDUE,
                       edgecolors="#000", linewidths=0.5, zorder=4)  # fmt: skip
        handles: list[object] = [Patch(color=c, label=lab) for _, c, lab in PROGRESS_BINS]
        handles.append(Patch(color=NO_TARGET, label="未下达目标"))
        handles += [
            Line2D([], [], marker="o", ls="", color=OVERDUE, markeredgecolor="#000",
                   label="督办逾期"),
            Line2D([], [], marker="o", ls="", color=SUPERVISED, markeredgecolor="#000",
                   label="督办中"),
        ]  # fmt: skip
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
                  title="年度目标完成率")  # fmt: skip
        ax.set_title(title or "全市违法建筑整治 年度目标完成情况")
        ax.set_axis_off()
        return _save_png(fig, path)
