"""归档范围和保管期限表 per category: read, replace (audited) and suggest a 保管期限 at registration."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dangan.db.models import Category, Department
from dangan.domain.schedule import ScheduleRule, Suggestion, parse_rules, suggest
from dangan.services.access import require
from dangan.services.categories import get_category
from dangan.services.context import Actor, Dangan
from dangan.services.fonds import get_department, get_fonds

_CACHE: dict[tuple[int, str], list[ScheduleRule]] = {}


def rules_of(cat: Category) -> list[ScheduleRule]:
    """The category's rules, parsed once per version of its table (stored tables were validated when set)."""
    import json

    key = (cat.id, json.dumps(cat.retention_table, ensure_ascii=False, sort_keys=True))
    rules = _CACHE.get(key)
    if rules is None:
        rules, _ = parse_rules(cat.retention_table or [])
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = rules
    return rules


def suggestion_for(cat: Category, metadata: dict[str, Any], dept: Department | None) -> Suggestion | None:
    return suggest(rules_of(cat), metadata, (dept.code, dept.name) if dept else None)


def fill_retention(cat: Category, metadata: dict[str, Any], dept: Department | None
                   ) -> tuple[dict[str, Any], Suggestion | None]:
    """When a record arrives without a 保管期限 and the schedule covers it, take the suggested period.

    Business systems rarely know the retention period; the archivist sees the rule that chose it and may
    change it before acceptance. A record the schedule does not cover still fails as "required"."""
    if metadata.get("retention_period") not in (None, "") or not cat.retention_table:
        return metadata, None
    s = suggestion_for(cat, metadata, dept)
    if s is None:
        return metadata, None
    return {**metadata, "retention_period": s.retention_period}, s


def get_schedule(app: Dangan, actor: Actor, fonds: str, category: str) -> dict[str, Any]:
    with app.read_sessions() as s:
        cat = get_category(s, get_fonds(s, fonds).id, category)
        return _view(cat)


def _view(cat: Category) -> dict[str, Any]:
    return {"category": cat.code, "category_name": cat.name, "rules": [r.as_dict() for r in rules_of(cat)]}


def set_schedule(app: Dangan, actor: Actor, fonds: str, category: str, rules: Any) -> dict[str, Any]:
    """Replace the category's schedule; every rule is checked first and problems are named by rule number."""
    parsed, p = parse_rules(rules)
    with app.uow(actor, "schedule.update", "category", category) as uow:
        require(actor, "schedule.manage")
        p.raise_if_any("保管期限表有误，未保存，请按提示逐条修改")
        cat = get_category(uow.session, get_fonds(uow.session, fonds).id, category)
        before = len(cat.retention_table or [])
        cat.retention_table = [r.as_dict() for r in parsed]
        uow.audit("schedule.update", "category", cat.id, category=cat.code, rules_before=before, rules_after=len(parsed))
        return _view(cat)


def suggest_retention(app: Dangan, actor: Actor, fonds: str, category: str, metadata: dict[str, Any],
                      department: str | None = None) -> dict[str, Any] | None:
    """What the schedule suggests for a record being registered (shown beside the 保管期限 field)."""
    require(actor, "record.create")
    with app.read_sessions() as s:
        cat, dept = _cat_dept(s, fonds, category, department)
        sug = suggestion_for(cat, metadata, dept)
        return sug.as_dict() if sug else None


def _cat_dept(s: Session, fonds: str, category: str, department: str | None) -> tuple[Category, Department | None]:
    f = get_fonds(s, fonds)
    cat = get_category(s, f.id, category)
    return cat, get_department(s, f.id, department) if department else None
