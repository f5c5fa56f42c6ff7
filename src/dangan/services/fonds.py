"""全宗 and 机构: create and list the fonds and the departments whose records it holds."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dangan.db.models import Department, Fonds
from dangan.errors import Conflict, NotFound, Problems
from dangan.services.access import require
from dangan.services.context import Actor, Dangan
from dangan.services.views import department_view, fonds_view

DEPT_CODE = re.compile(r"[A-Z0-9]{1,16}")


def get_fonds(session: Session, code_or_id: str | int) -> Fonds:
    if isinstance(code_or_id, int):
        f = session.get(Fonds, code_or_id)
    else:
        f = session.scalar(select(Fonds).where(Fonds.code == str(code_or_id).upper()))
    if f is None:
        raise NotFound(f"全宗“{code_or_id}”不存在，请先用 dangan fonds create 新建或检查全宗号", code="FONDS_NOT_FOUND")
    return f


def create_fonds(app: Dangan, actor: Actor, code: str, name: str, unit: str = "", description: str = "") -> dict[str, Any]:
    code = (code or "").strip().upper()
    p = Problems()
    if not re.fullmatch(r"[A-Z0-9]{4}", code):
        p.add("code", "PATTERN_MISMATCH", "全宗号应为 4 位字母或数字，如 Z109、X013、0001", "全宗号", code)
    if not (name or "").strip():
        p.add("name", "REQUIRED", "全宗名称不能为空", "全宗名称")
    elif len(name) > 200:
        p.add("name", "TOO_LONG", "全宗名称不能超过 200 个字符", "全宗名称")
    p.raise_if_any()
    with app.uow(actor, "fonds.create", "fonds", code) as uow:
        require(actor, "fonds.manage")
        if uow.session.scalar(select(Fonds.id).where(Fonds.code == code)):
            raise Conflict(f"全宗号 {code} 已存在", code="FONDS_EXISTS")
        f = Fonds(code=code, name=name.strip(), unit=(unit or name).strip(), description=description)
        uow.session.add(f)
        uow.session.flush()
        uow.audit("fonds.create", "fonds", f.id, code=code, name=f.name)
        return fonds_view(f)


def list_fonds(app: Dangan, actor: Actor) -> list[dict[str, Any]]:
    with app.read_sessions() as s:
        return [fonds_view(f) for f in s.scalars(select(Fonds).order_by(Fonds.code))]


def create_department(
    app: Dangan, actor: Actor, fonds: str, code: str, name: str, parent: str | None = None, sort_order: int = 0
) -> dict[str, Any]:
    code = (code or "").strip().upper()
    p = Problems()
    if not DEPT_CODE.fullmatch(code):
        p.add("code", "PATTERN_MISMATCH", "机构代码应为 1–16 位大写字母或数字，如 BGS（办公室）", "机构代码", code)
    if not (name or "").strip() or len(name) > 100:
        p.add("name", "REQUIRED", "机构名称不能为空，且不超过 100 个字符", "机构名称")
    elif "-" in name or "·" in name:
        p.add("name", "INVALID_CHARACTERS", "机构名称会用于档号，不能包含“-”或“·”", "机构名称")
    p.raise_if_any()
    with app.uow(actor, "department.create", "department", code) as uow:
        if actor.scope_for("user.manage") is None:
            require(actor, "fonds.manage")
        f = get_fonds(uow.session, fonds)
        if uow.session.scalar(select(Department.id).where(Department.fonds_id == f.id, Department.code == code)):
            raise Conflict(f"全宗 {f.code} 已有机构代码 {code}", code="DEPARTMENT_EXISTS")
        parent_id = None
        if parent:
            parent_id = get_department(uow.session, f.id, parent).id
        d = Department(fonds_id=f.id, code=code, name=name.strip(), parent_id=parent_id, sort_order=sort_order)
        uow.session.add(d)
        uow.session.flush()
        uow.audit("department.create", "department", d.id, fonds=f.code, code=code, name=d.name)
        return department_view(d)


def get_department(session: Session, fonds_id: int, code: str) -> Department:
    d = session.scalar(select(Department).where(Department.fonds_id == fonds_id, Department.code == code.upper()))
    if d is None:
        d = session.scalar(select(Department).where(Department.fonds_id == fonds_id, Department.name == code))
    if d is None:
        raise NotFound(f"机构“{code}”不存在，请检查机构代码", code="DEPARTMENT_NOT_FOUND")
    return d


def list_departments(app: Dangan, actor: Actor, fonds: str) -> list[dict[str, Any]]:
    """The departments of a fonds: names only, needed by anyone who registers or browses records."""
    with app.read_sessions() as s:
        f = get_fonds(s, fonds)
        rows = s.scalars(select(Department).where(Department.fonds_id == f.id).order_by(Department.sort_order, Department.code))
        return [department_view(d) for d in rows]
