"""Ranked clearance-priority tables per district and per township (CSV and XLSX), written atomically.

One CSV per district (``priorities_district_<code>.csv``) and per township
(``priorities_township_<code>.csv``), UTF-8 with BOM so Excel shows Chinese; one XLSX per
district with a sheet for the whole district and one per township. ``zh=True`` writes Chinese
column headers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from geo.atomic import atomic_path
from geo.joins import ADMIN_COLUMNS
from pipelines.maps.priorities import PRIORITY_LABELS_ZH
from pipelines.safety import neutralize_frame, safe_code, sheet_title

__all__ = [
    "TABLE_COLUMNS",
    "COLUMN_LABELS_ZH",
    "UNIT_TYPE_LABELS_ZH",
    "ranked_table",
    "write_tables",
]

#: columns of a ranked table, in order
TABLE_COLUMNS = (
    "rank_district",
    "rank_township",
    "unit_code",
    "unit_name",
    "unit_type",
    *ADMIN_COLUMNS,
    "priority",
    "priority_score",
    "open_cases",
    "cases_total",
    "new_area_m2",
    "area_ha",
    "density_per_ha",
    "new_recent",
    "new_previous",
    "growth",
    "confirmed_share",
    "rejected",
    "supervised",
    "as_of",
)
COLUMN_LABELS_ZH: dict[str, str] = {
    "rank_district": "区县排名",
    "rank_township": "乡镇（街道）排名",
    "unit_code": "单元编码",
    "unit_name": "小区/村（社区）名称",
    "unit_type": "单元类型",
    "township_code": "乡镇（街道）编码",
    "township_name": "乡镇（街道）",
    "district_code": "区县编码",
    "district_name": "区县",
    "priority": "整治优先级",
    "priority_score": "优先级得分",
    "open_cases": "未结案件数",
    "cases_total": "案件总数",
    "new_area_m2": "新增违建面积（平方米）",
    "area_ha": "单元面积（公顷）",
    "density_per_ha": "密度（件/公顷）",
    "new_recent": "近一月新增",
    "new_previous": "上一月新增",
    "growth": "环比增长",
    "confirmed_share": "核实确认比例",
    "rejected": "已驳回",
    "supervised": "挂牌督办",
    "as_of": "统计日期",
}
UNIT_TYPE_LABELS_ZH: dict[str, str] = {"compound": "居住小区", "village": "村", "community": "社区"}


def ranked_table(ranked: pd.DataFrame, zh: bool = False) -> pd.DataFrame:
    """The table view of :func:`~pipelines.maps.priorities.rank_units` output (no geometry)."""
    table = pd.DataFrame(ranked[list(TABLE_COLUMNS)]).copy()
    table["area_ha"] = table["area_ha"].round(2)
    if zh:
        table["priority"] = table["priority"].map(PRIORITY_LABELS_ZH).fillna(table["priority"])
        table["unit_type"] = table["unit_type"].map(UNIT_TYPE_LABELS_ZH).fillna(table["unit_type"])
        table = table.rename(columns=COLUMN_LABELS_ZH)
    return table


def write_tables(
    ranked: pd.DataFrame, out_dir: str | Path, zh: bool = False, xlsx: bool = True
) -> dict[str, Path]:
    """Write the ranked tables; returns ``{"district:<code>": csv, "district_xlsx:<code>": ...,
    "township:<code>": csv}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for dcode, dpart in ranked.groupby("district_code", sort=True):
        dpart = dpart.sort_values("rank_district")
        path = out_dir / f"priorities_district_{safe_code(dcode)}.csv"
        with atomic_path(path) as tmp:
            neutralize_frame(ranked_table(dpart, zh)).to_csv(tmp, index=False, encoding="utf-8-sig")
        paths[f"district:{dcode}"] = path
        towns = list(dpart.groupby("township_code", sort=True))
        for tcode, tpart in towns:
            tpath = out_dir / f"priorities_township_{safe_code(tcode)}.csv"
            with atomic_path(tpath) as tmp:
                neutralize_frame(ranked_table(tpart.sort_values("rank_township"), zh)).to_csv(
                    tmp, index=False, encoding="utf-8-sig"
                )
            paths[f"township:{tcode}"] = tpath
        if xlsx:
            xpath = out_dir / f"priorities_district_{safe_code(dcode)}.xlsx"
            with atomic_path(xpath) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as book:
                neutralize_frame(ranked_table(dpart, zh)).to_excel(
                    book, sheet_name="全区" if zh else "district", index=False
                )
                used = {"全区" if zh else "district"}
                for tcode, tpart in towns:
                    name = str(tpart["township_name"].iloc[0] or tcode) if zh else str(tcode)
                    title = sheet_title(name, fallback=safe_code(tcode))
                    while title in used:  # two townships whose titles clash after cleaning
                        title = sheet_title(f"{title[:27]}~{len(used)}")
                    used.add(title)
                    neutralize_frame(ranked_table(tpart.sort_values("rank_township"), zh)).to_excel(
                        book, sheet_name=title, index=False
                    )
            paths[f"district_xlsx:{dcode}"] = xpath
    return paths
