"""Plain-data views of rows, shared by the CLI (--json), the REST API and the web pages."""

from __future__ import annotations

from typing import Any

from dangan.db.models import Category, Department, File, Fonds, Record
from dangan.domain.archival_code import CodeTemplate
from dangan.domain.presets import ARRANGEMENTS, ITEM_LABEL_IN, LEVEL_LABELS
from dangan.domain.retention import parse_retention
from dangan.domain.states import RecordState

ROLE_LABELS = {
    "main": "正文",
    "attachment": "附件",
    "processing_sheet": "处理单",
    "layout": "版式文件",
    "original": "原始格式",
    "draft": "定稿",
    "other": "其他",
    "scan": "扫描件",
}


def iso(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


def fonds_view(f: Fonds) -> dict[str, Any]:
    return {"id": f.id, "code": f.code, "name": f.name, "unit": f.unit, "description": f.description,
            "created_at": iso(f.created_at)}


def department_view(d: Department) -> dict[str, Any]:
    return {"id": d.id, "code": d.code, "name": d.name, "parent_id": d.parent_id}


def level_label(arrangement: str, level: str) -> str:
    if level == "item" and arrangement in ITEM_LABEL_IN:
        return ITEM_LABEL_IN[arrangement]
    return LEVEL_LABELS.get(level, level)


def category_view(c: Category, *, full: bool = True) -> dict[str, Any]:
    levels = ARRANGEMENTS[c.arrangement]["levels"]
    d: dict[str, Any] = {
        "id": c.id, "fonds_id": c.fonds_id, "code": c.code, "name": c.name, "arrangement": c.arrangement,
        "arrangement_label": ARRANGEMENTS[c.arrangement]["label"], "levels": levels,
        "level_labels": {lvl: level_label(c.arrangement, lvl.split("@")[0]) + ("（涉密件单独编号）" if "@" in lvl else "")
                         for lvl in c.code_templates},
        "code_preset": c.code_preset, "basis": c.basis,
        "code_patterns": {lvl: CodeTemplate.from_list(t).describe() for lvl, t in c.code_templates.items()},
    }
    if full:
        d["schemas"] = c.schemas
        d["code_templates"] = c.code_templates
        d["retention_table"] = c.retention_table
    return d


def file_view(f: File) -> dict[str, Any]:
    return {
        "id": f.id, "record_id": f.record_id, "role": f.role, "role_label": ROLE_LABELS.get(f.role, f.role),
        "name": f.name, "size": f.size, "media_type": f.media_type, "format_name": f.format_name,
        "sha256": f.sha256, "sm3": f.sm3, "storage_key": f.storage_key, "sequence": f.sequence,
        "version": f.version, "supersedes_id": f.supersedes_id, "is_current": f.is_current, "reason": f.reason,
        "source_created_at": iso(f.source_created_at), "created_at": iso(f.created_at), "created_by": f.created_by,
        "last_fixity_at": iso(f.last_fixity_at), "last_fixity_outcome": f.last_fixity_outcome,
        "puid": f.puid, "format_version": f.format_version, "identification": f.identification,
        "validation": f.validation,
    }


def retention_label(code: str | None) -> str:
    if not code:
        return ""
    try:
        return parse_retention(code).label
    except ValueError:
        return code


def record_view(r: Record, *, files: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": r.id, "fonds_id": r.fonds_id, "fonds_code": r.fonds.code, "category_id": r.category_id,
        "category_code": r.category.code, "category_name": r.category.name, "level": r.level,
        "level_label": level_label(r.category.arrangement, r.level), "parent_id": r.parent_id,
        "department_id": r.department_id,
        "department_code": r.department.code if r.department else None,
        "department_name": r.department.name if r.department else None,
        "state": r.state, "state_label": RecordState(r.state).label, "archival_code": r.archival_code,
        "seq": r.seq, "title": r.title, "year": r.year, "date": iso(r.date),
        "retention_period": r.retention_period, "retention_label": retention_label(r.retention_period),
        "expiry_date": iso(r.expiry_date), "security_level": r.security_level, "doc_number": r.doc_number,
        "responsible": r.responsible, "metadata": r.meta, "sender_ref": r.sender_ref,
        "created_at": iso(r.created_at), "created_by": r.created_by, "updated_at": iso(r.updated_at),
        "filed_at": iso(r.filed_at), "filed_by": r.filed_by, "row_version": r.row_version,
        "submitted_at": iso(r.submitted_at), "submitted_by": r.submitted_by, "return_reason": r.return_reason,
        "position": r.position,
    }
    if files:
        d["files"] = [file_view(f) for f in r.files]
    return d
