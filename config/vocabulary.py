"""The fixed vocabularies shared by the organisation, triage and the ledger."""

from __future__ import annotations

# Unit types: key -> the label offices use. Triage routes to a type; the
# organisation turns a type into a real unit (属地 resolution).
UNIT_TYPES: dict[str, str] = {
    "approval": "行政审批",
    "natural_resources": "规划和自然资源",
    "ecology": "生态环境",
    "housing": "住房和城乡建设",
    "urban_management": "城市管理",
    "transport": "交通运输",
    "water": "水利",
    "energy": "能源",
    "industry": "工业和信息化",
    "development": "发展和改革",
    "finance": "财政",
    "financial_office": "金融办",
    "commerce": "商务和招商",
    "public_security": "公安",
    "power": "供电",
    "statistics": "统计",
    "human_resources": "人力资源和社会保障",
    "county_government": "县区政府",
}

ROLES: tuple[str, ...] = ("liaison", "unit_contact", "unit_leader", "office", "project_leader")

CHANNELS: tuple[str, ...] = ("wecom", "dingtalk", "local")

PROJECT_LEVELS: dict[str, str] = {"province": "省级", "city": "市级", "county": "县级"}

# Resolution tiers and their labels.
TIERS: dict[str, str] = {"obstruction": "阻工扰工(3日)", "general": "一般问题(7日)", "major": "重大复杂(1个月)"}
