"""The documented schemas of buildwatch's tables: one place defines the columns.

Leads (one new structure found on one flight) are a GeoDataFrame in the flight's projected CRS.
``buildwatch detect`` writes them to the GeoPackage layer ``leads``; other tools rely on the
first six columns keeping their names and meaning.
"""

from __future__ import annotations

__all__ = ["LEAD_COLUMNS", "LEAD_CORE_COLUMNS", "LEAD_COLUMNS_ZH", "UNIT_TYPES", "LEAD_STATUSES"]

#: the columns other tools rely on (exact names, exact meaning)
LEAD_CORE_COLUMNS: dict[str, str] = {
    "lead_id": "stable id: <flight_id>-<5-digit number ordered by position>",
    "score": "detector confidence after seam fusion, 0..1",
    "class": "new_building (completed) | construction (under construction)",
    "area_m2": "polygon area in square metres (projected CRS)",
    "lon": "centroid longitude, EPSG:4490 (CGCS2000; equal to WGS84 at map precision)",
    "lat": "centroid latitude, EPSG:4490",
}

#: every column of the ``leads`` layer, in order, with its meaning
LEAD_COLUMNS: dict[str, str] = {
    **LEAD_CORE_COLUMNS,
    "status": "lead | permitted (inside an approved permit: kept, not a lead)",
    "known_building": "overlaps the known-buildings layer (flag only)",
    "unit_type": "compound | village | community | unassigned",
    "unit_code": "code of the compound or village/community the lead falls in",
    "unit_name": "its name",
    "township_code": "township/street code (乡镇/街道)",
    "township_name": "township/street name",
    "district_code": "district/county code (区县)",
    "district_name": "district/county name",
    "responsible_party": "who patrols/acts first: property company, village or community committee",
    "responsible_type": "property_company | village_committee | community_committee | township",
    "evidence_before": "path of the before chip PNG, relative to the output folder",
    "evidence_after": "path of the after chip PNG, relative to the output folder",
    "flight_id": "id of the flight (file stem or sidecar)",
    "baseline_id": "id of the baseline imagery",
    "flight_date": "date of the flight (ISO, when known)",
    "coreg_status": "co-registration of the flight against its baseline: verified (measured, "
    "corrected where needed) | unverified (too little evidence: used as georeferenced, check "
    "alignment in the evidence) | off",
    "model_name": "detector model name from its card",
    "model_sha256": "first 16 hex digits of the weights file's SHA-256",
    "thresholds": "JSON of the score/area thresholds used",
    "software_version": "buildwatch version",
}

LEAD_STATUSES = ("lead", "permitted")
UNIT_TYPES = ("compound", "village", "community", "unassigned")

#: Chinese headers for exports read by district offices
LEAD_COLUMNS_ZH: dict[str, str] = {
    "lead_id": "线索编号",
    "score": "置信度",
    "class": "类别",
    "area_m2": "面积(平方米)",
    "lon": "经度",
    "lat": "纬度",
    "status": "状态",
    "known_building": "已有建筑",
    "unit_type": "单元类型",
    "unit_code": "小区/村(社区)编码",
    "unit_name": "小区/村(社区)名称",
    "township_code": "乡镇(街道)编码",
    "township_name": "乡镇(街道)",
    "district_code": "区县编码",
    "district_name": "区县",
    "responsible_party": "责任主体",
    "responsible_type": "责任主体类型",
    "evidence_before": "航拍前影像",
    "evidence_after": "航拍后影像",
    "flight_id": "航拍批次",
    "baseline_id": "基准影像",
    "flight_date": "航拍日期",
    "coreg_status": "配准状态",
    "model_name": "模型",
    "model_sha256": "模型哈希",
    "thresholds": "阈值",
    "software_version": "软件版本",
}
