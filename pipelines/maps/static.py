"""Static outputs for printed reports: a PNG priority map per township and a monthly trend chart.

Chinese labels need a CJK font. :func:`find_cjk_font` looks for Noto Sans CJK (Debian
``fonts-noto-cjk``) or WenQuanYi among the system fonts matplotlib can see; without one the
functions log a warning naming the package to install and return ``None`` (no PNG full of boxes).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo.atomic import atomic_path
from pipelines.cases.states import STATE_LABELS_ZH
from pipelines.maps.folium_map import PRIORITY_COLOURS, STATE_COLOURS
from pipelines.maps.priorities import PRIORITY_LABELS_ZH

__all__ = ["CJK_FONT_HINTS", "find_cjk_font", "township_png", "trend_png", "monthly_counts"]

log = logging.getLogger(__name__)

#: substrings of font file names tried in order
CJK_FONT_HINTS = (
    "NotoSansCJK-Regular",
    "NotoSansCJK",
    "NotoSerifCJK-Regular",
    "wqy-zenhei",
    "wqy-microhei",
)


@lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """The family name of an installed CJK font, registered with matplotlib; ``None`` if absent."""
    from matplotlib import font_manager

    files = font_manager.findSystemFonts()
    for hint in CJK_FONT_HINTS:
        for path in sorted(files):
            if hint.lower() in Path(path).name.lower():
                try:
                    font_manager.fontManager.addfont(path)
                    return str(font_manager.FontProperties(fname=path).get_name())
                except (OSError, RuntimeError, ValueError):  # unreadable font file
                    continue
    return None


def _font_or_warn(what: str) -> str | None:
    family = find_cjk_font()
    if family is None:
        log.warning(
            "no CJK font found (install Debian fonts-noto-cjk: `make sysdeps`); skipping %s", what
        )
    return family


def monthly_counts(cases: pd.DataFrame) -> pd.DataFrame:
    """Cases per month of first sighting (rows, ``YYYY-MM``) by current state (columns)."""
    if cases.empty:
        return pd.DataFrame()
    month = pd.to_datetime(cases["first_seen"]).dt.to_period("M").astype(str)
    table = pd.crosstab(month, cases["state"].astype(str))
    order = [s for s in STATE_COLOURS if s in table.columns]
    return table[order].sort_index()


def trend_png(cases: pd.DataFrame, path: str | Path, title: str = "") -> Path | None:
    """A stacked bar chart of cases by state per month (:func:`monthly_counts`); ``None`` without a CJK font."""
    family = _font_or_warn("the trend chart")
    if family is None:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    counts = monthly_counts(cases)
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
        bottom = None
        for state in counts.columns:
            ax.bar(
                counts.index,
                counts[state],
                bottom=bottom,
                color=STATE_COLOURS[state],
                label=STATE_LABELS_ZH.get(state, state),
            )
            bottom = counts[state] if bottom is None else bottom + counts[state]
        ax.set_xlabel("首次发现月份")
        ax.set_ylabel("案件数")
        ax.set_title(title or "违法建筑案件月度趋势（按当前状态）")
        if len(counts.columns):
            ax.legend(ncol=4, fontsize=8)
        return _save_png(fig, path)


def township_png(
    units: gpd.GeoDataFrame,
    cases: gpd.GeoDataFrame,
    township_code: str,
    path: str | Path,
    top_n: int = 5,
) -> Path | None:
    """A printed-report map of one township: units by priority, cases by state, top units named."""
    family = _font_or_warn(f"the map of township {township_code}")
    if family is None:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    part = units.loc[units["township_code"] == township_code]
    if part.empty:
        raise KeyError(f"township {township_code!r} has no units")
    town_cases = cases.loc[cases["unit_code"].isin(part["unit_code"])]
    name = str(part["township_name"].iloc[0] or township_code)
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
        part.plot(
            ax=ax,
            color=[PRIORITY_COLOURS[p] for p in part["priority"]],
            edgecolor="#444",
            linewidth=0.8,
        )
        if len(town_cases):
            town_cases.plot(
                ax=ax,
                color=[STATE_COLOURS.get(str(s), "#000") for s in town_cases["state"]],
                edgecolor="none",
                markersize=10,
            )
            cent = town_cases.geometry.centroid
            ax.scatter(
                cent.x,
                cent.y,
                s=8,
                c=[STATE_COLOURS.get(str(s), "#000") for s in town_cases["state"]],
            )
        for _, u in part.sort_values("rank_township").head(top_n).iterrows():
            if u["priority_score"] <= 0:
                continue
            pt = u.geometry.representative_point()
            ax.annotate(
                f"{int(u['rank_township'])}. {u['unit_name']}",
                (pt.x, pt.y),
                ha="center",
                fontsize=9,
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8},
            )
        handles = [
            Patch(color=PRIORITY_COLOURS[k], label=f"优先级 {PRIORITY_LABELS_ZH[k]}")
            for k in PRIORITY_COLOURS
        ]
        states = [s for s in STATE_COLOURS if s in set(town_cases["state"].astype(str))]
        handles += [Patch(color=STATE_COLOURS[s], label=STATE_LABELS_ZH[s]) for s in states]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        ax.set_title(
            f"{name} 违法建筑整治优先级（{part['as_of'].iloc[0] if 'as_of' in part else ''}）"
        )
        ax.set_axis_off()
        return _save_png(fig, path)


def _save_png(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path, mkdir=True) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
